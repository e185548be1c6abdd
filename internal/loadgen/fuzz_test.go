package loadgen

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// FuzzCandidate: candidates from the service are parsed and rewritten without panicking, and a
// rewritten candidate names the new address.
func FuzzCandidate(f *testing.F) {
	f.Add("candidate:1966762134 1 udp 2130706431 127.0.0.1 40001 typ host")
	f.Add("candidate:3 1 udp 1694498815 192.0.2.7 5000 typ srflx raddr 0.0.0.0 rport 0 generation 0")
	f.Add("candidate:1 1 tcp 1 ::1 9 typ host tcptype active")
	f.Add("candidate:1 1 UDP 1 abc.local 9 typ host")
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 31000}
	f.Fuzz(func(t *testing.T, cand string) {
		if _, ok := candidateAddr(cand); !ok {
			return
		}
		out := withAddr(cand, to)
		if a, ok := candidateAddr(out); !ok || !a.IP.Equal(to.IP) || a.Port != to.Port {
			t.Fatalf("rewritten %q to %q: %v %v", cand, out, a, ok)
		}
	})
}

// FuzzBotMetrics: whatever a metrics endpoint serves, parsing returns a value or an error.
func FuzzBotMetrics(f *testing.F) {
	f.Add([]byte(`# TYPE switchboard_sdk_audio_event_interval_seconds histogram
switchboard_sdk_audio_event_interval_seconds_bucket{le="0.019"} 3
switchboard_sdk_audio_event_interval_seconds_bucket{le="0.02"} 90
switchboard_sdk_audio_event_interval_seconds_bucket{le="0.021"} 99
switchboard_sdk_audio_event_interval_seconds_bucket{le="+Inf"} 100
switchboard_sdk_audio_event_interval_seconds_sum 2.0
switchboard_sdk_audio_event_interval_seconds_count 100
# TYPE switchboard_sdk_audio_events_total counter
switchboard_sdk_audio_events_total 101
`))
	f.Add([]byte("up 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseBotMetrics(bytes.NewReader(data))
		if err != nil {
			return
		}
		_ = s.interval.quantile(0.99)
		_ = s.interval.max()
		_ = s.sub(s)
	})
}

// FuzzProc: /proc lines of any shape parse to a value or an error.
func FuzzProc(f *testing.F) {
	f.Add([]byte("1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 1000 300"))
	f.Add([]byte("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseStatCPU(data)
		_, _, _ = parseStatusMemory(data)
	})
}

// FuzzDetector: received payloads of any content go through the marker detector without
// panicking.
func FuzzDetector(f *testing.F) {
	sig, err := GenerateSignal(1)
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range sig.Packets[:4] {
		f.Add(p.Payload)
	}
	f.Add([]byte{0xff, 0xff, 0xff})
	d, err := NewDetector()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(d.Close)
	at := time.Unix(1, 0)
	f.Fuzz(func(t *testing.T, payload []byte) {
		d.Frame(payload, at)
	})
}

// FuzzRTPHead: whatever arrives on a socket, parseRTPHead does not panic, and what it accepts
// as RTP reads as pion reads it (sequence number, timestamp, SSRC, payload type, transport-cc
// extension).
func FuzzRTPHead(f *testing.F) {
	f.Add(rtpPacket(f, 65535, 4242, 960*7, 0xdeadbeef, 3, false))
	f.Add(rtpPacket(f, 1, 2, 3, 4, 3, true))
	f.Add(rtpPacket(f, 1, 2, 3, 4, 0, false))
	f.Add([]byte{0x81, 201, 0, 7, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok := parseRTPHead(b, 3)
		var ph rtp.Header
		if _, err := ph.Unmarshal(b); err != nil || !ok {
			return
		}
		if h.seq != ph.SequenceNumber || h.ts != ph.Timestamp || h.ssrc != ph.SSRC || h.pt != ph.PayloadType {
			t.Fatalf("parsed %+v, pion %+v", h, ph)
		}
		if ext := ph.GetExtension(3); len(ext) >= 2 && ph.Extension && (ph.ExtensionProfile == 0xBEDE || ph.ExtensionProfile&0xfff0 == 0x1000) {
			if !h.hasTWCC || h.twcc != uint16(ext[0])<<8|uint16(ext[1]) {
				t.Fatalf("transport-cc %v %d, pion %x", h.hasTWCC, h.twcc, ext)
			}
		}
	})
}
