package loadgen

import (
	"bytes"
	"net"
	"testing"
	"time"
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
