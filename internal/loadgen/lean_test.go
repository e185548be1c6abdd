package loadgen

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
)

// rtpPacket marshals an Opus RTP packet with a transport-wide sequence number in extension id
// (one-byte elements unless twoByte) and, for realism, an audio level in id 1.
func rtpPacket(t testing.TB, seq, twccSeq uint16, ts, ssrc uint32, id uint8, twoByte bool) []byte {
	t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc}}
	p.Payload = []byte{0xf8, 0xff, 0xfe}
	if twoByte {
		p.ExtensionProfile = 0x1000
	}
	if err := p.Header.SetExtension(1, []byte{0x85}); err != nil {
		t.Fatal(err)
	}
	if id != 0 {
		if err := p.Header.SetExtension(id, []byte{byte(twccSeq >> 8), byte(twccSeq)}); err != nil {
			t.Fatal(err)
		}
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRTPHead(t *testing.T) {
	for _, twoByte := range []bool{false, true} {
		b := rtpPacket(t, 65535, 4242, 960*7, 0xdeadbeef, 3, twoByte)
		h, ok := parseRTPHead(b, 3)
		if !ok || h.pt != 111 || h.seq != 65535 || h.ts != 960*7 || h.ssrc != 0xdeadbeef || !h.hasTWCC || h.twcc != 4242 {
			t.Fatalf("two-byte %v: %+v %v", twoByte, h, ok)
		}
		if h, ok := parseRTPHead(b, 0); !ok || h.hasTWCC {
			t.Fatalf("without an id: %+v %v", h, ok)
		}
		if h, ok := parseRTPHead(b, 5); !ok || h.hasTWCC {
			t.Fatalf("another id: %+v %v", h, ok)
		}
		if _, ok := parseRTPHead(b[:14], 3); ok {
			t.Fatal("truncated extension parsed")
		}
	}
	if _, ok := parseRTPHead([]byte{0x80, 111, 0, 1}, 3); ok {
		t.Fatal("short header parsed")
	}
}

// newTestCall is a call with the counters the receive side writes, outside any run.
func newTestCall(mode Mode) *call {
	g := &Generator{cfg: Config{Mode: mode, DecodeEvery: 10}, rxGaps: newHist(500*time.Microsecond, 2000)}
	c := &call{id: 1, g: g, estCh: make(chan struct{}), ended: make(chan struct{})}
	c.pubUp, c.botIn = true, true
	return c
}

// TestLeanRx feeds a lean subscriber a stream with one packet lost and one reordered and
// checks the call's counters, the gap histogram, and the feedback and reports it sends.
func TestLeanRx(t *testing.T) {
	c := newTestCall(Sendrecv)
	r := newLeanRx(c, 99)
	r.twccID.Store(3)
	var sent []rtcp.Packet
	r.write = func(p []rtcp.Packet) error {
		for _, q := range p {
			// Copy: the receiver report is reused.
			if rr, ok := q.(*rtcp.ReceiverReport); ok {
				cp := *rr
				cp.Reports = append([]rtcp.ReceptionReport(nil), rr.Reports...)
				q = &cp
			}
			sent = append(sent, q)
		}
		return nil
	}
	const ssrc = 0x1234
	t0 := time.Unix(1000, 0).UnixNano()
	r.epoch = t0
	// 100 packets 20 ms apart (2 s); seq 10 is lost, 20 and 21 arrive swapped.
	for i := 0; i < 100; i++ {
		seq := i
		switch i {
		case 10:
			continue
		case 20:
			seq = 21
		case 21:
			seq = 20
		}
		b := rtpPacket(t, uint16(60000+seq), uint16(seq), uint32(seq*960), ssrc, 3, false)
		h, ok := parseRTPHead(b, 3)
		if !ok {
			t.Fatal("parse")
		}
		r.receive(h, t0+int64(i)*int64(20*time.Millisecond))
	}
	if got := c.recv.Load(); got != 99 {
		t.Fatalf("received %d, want 99", got)
	}
	if got := c.expected.Load(); got != 100 {
		t.Fatalf("expected %d, want 100 (seq 60000..60099 across the wrap)", got)
	}
	if c.state.Load() != stateEstablished {
		t.Fatal("not established by the first packet")
	}
	gaps := c.g.rxGaps.snapshot()
	if n := gaps.total(); n != 98 {
		t.Fatalf("%d gaps, want 98", n)
	}
	if p := gaps.quantile(0.5); p < 20*time.Millisecond || p > 21*time.Millisecond {
		t.Fatalf("gap p50 %v, want 20 ms", p)
	}
	var fb, rr int
	var last *rtcp.ReceiverReport
	for _, p := range sent {
		switch p := p.(type) {
		case *rtcp.TransportLayerCC:
			fb++
			if p.MediaSSRC != ssrc || p.SenderSSRC != 99 {
				t.Fatalf("feedback %+v", p)
			}
		case *rtcp.ReceiverReport:
			rr++
			last = p
		}
	}
	// 2 s of packets: feedback every 100 ms, reports every second after the first.
	if fb < 18 || fb > 21 {
		t.Fatalf("%d feedback packets in 2 s, want about 20", fb)
	}
	if rr != 1 || last == nil || len(last.Reports) != 1 {
		t.Fatalf("%d receiver reports (%+v), want 1", rr, last)
	}
	rep := last.Reports[0]
	// Sent as packet 50 (seq 60050) arrived: 50 expected since 60000, 49 received.
	if rep.SSRC != ssrc || rep.TotalLost != 1 || rep.FractionLost != 256/51 || rep.LastSequenceNumber != 60050 {
		t.Fatalf("report %+v: want 1 lost of 51, highest seq 60050", rep)
	}
}

func TestTake(t *testing.T) {
	c := newTestCall(Sendrecv)
	r := newLeanRx(c, 7)
	r.write = func([]rtcp.Packet) error { return nil }
	stun := []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	dtls := []byte{22, 0xfe, 0xfd, 0, 0}
	rr := []byte{0x81, 201, 0, 7, 0, 0, 0, 1}
	vp8 := rtpPacket(t, 1, 1, 0, 5, 0, false)
	vp8[1] = 96
	for _, tc := range []struct {
		name string
		pkt  []byte
		take bool
	}{
		{"stun", stun, false}, {"dtls", dtls, false}, {"rtcp", rr, true},
		{"opus", rtpPacket(t, 1, 1, 0, 5, 0, false), true}, {"vp8", vp8, false},
	} {
		if got := r.take(tc.pkt, 1); got != tc.take {
			t.Errorf("%s: take %v, want %v", tc.name, got, tc.take)
		}
		if got := takePublisher(tc.pkt, 1); got != isRTPOrRTCP(tc.pkt) {
			t.Errorf("%s: publisher take %v", tc.name, got)
		}
	}
	if c.recv.Load() != 1 {
		t.Fatalf("received %d, want 1 (the Opus packet)", c.recv.Load())
	}
}

// seqPacket is an Opus packet whose sequence numbers and timestamp setSeq rewrites in place.
type seqPacket []byte

func newSeqPacket(t testing.TB) seqPacket {
	p := seqPacket(rtpPacket(t, 0, 0, 0, 5, 3, false))
	p.setSeq(t, 0)
	return p
}

// setSeq sets the RTP and transport-wide sequence numbers to seq and the timestamp to follow.
func (p seqPacket) setSeq(t testing.TB, seq uint16) {
	p[2], p[3] = byte(seq>>8), byte(seq)
	ts := uint32(seq) * 960
	p[4], p[5], p[6], p[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
	// Extension: 0xBEDE, length; audio level (id 1, 1 byte); transport-cc (id 3, 2 bytes).
	p[19], p[20] = byte(seq>>8), byte(seq)
	if t != nil && seq == 0 {
		if h, ok := parseRTPHead(p, 3); !ok || !h.hasTWCC || h.twcc != seq {
			t.Fatalf("test packet layout: %+v", h)
		}
	}
}

// TestTakeAllocs: taking a packet off a lean subscriber's socket allocates nothing between
// the feedback packets (which pion's RTCP path builds every 100 ms).
func TestTakeAllocs(t *testing.T) {
	c := newTestCall(Sendrecv)
	r := newLeanRx(c, 7)
	r.twccID.Store(3)
	r.write = func([]rtcp.Packet) error { return nil }
	p := newSeqPacket(t)
	seq := uint16(0)
	for ; seq < 500; seq++ {
		p.setSeq(nil, seq)
		r.take(p, int64(seq)*int64(20*time.Millisecond))
	}
	allocs := testing.AllocsPerRun(200, func() {
		r.nextFB, r.nextRR = 1<<62, 1<<62
		p.setSeq(nil, seq)
		seq++
		r.take(p, int64(seq)*int64(20*time.Millisecond))
	})
	if allocs != 0 {
		t.Fatalf("%v allocations a packet", allocs)
	}
}

func BenchmarkTake(b *testing.B) {
	c := newTestCall(Sendrecv)
	r := newLeanRx(c, 7)
	r.twccID.Store(3)
	r.write = func([]rtcp.Packet) error { return nil }
	p := newSeqPacket(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.setSeq(nil, uint16(i))
		r.take(p, int64(i)*int64(20*time.Millisecond))
	}
}

// TestTakePass: a sampled call's subscriber counts its Opus packets and passes them on (to be
// decoded), with their arrival times.
func TestTakePass(t *testing.T) {
	c := newTestCall(Sendrecv)
	r := newLeanRx(c, 7)
	r.pass = true
	r.write = func([]rtcp.Packet) error { return nil }
	p := newSeqPacket(t)
	at := r.epoch + int64(3*time.Second)
	for seq := uint16(100); seq < 200; seq++ {
		p.setSeq(nil, seq)
		if r.take(p, at+int64(seq)*1000) {
			t.Fatal("a sampled call's Opus packet was kept from pion")
		}
	}
	if c.recv.Load() != 100 {
		t.Fatalf("received %d, want 100", c.recv.Load())
	}
	if got, ok := r.arrival(199); !ok || got != at+199*1000 {
		t.Fatalf("arrival of 199: %d %v, want %d", got, ok, at+199*1000)
	}
	if _, ok := r.arrival(100); ok {
		t.Fatal("an arrival older than the ring was found")
	}
}

// TestSendFrameAllocs: preparing and writing a lean publisher's packet (audio level and
// transport-wide sequence number set in place) allocates nothing on the generator's side.
func TestSendFrameAllocs(t *testing.T) {
	sig, err := GenerateSignal(1)
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCall(Sendrecv)
	c.audio, err = webrtc.NewTrackLocalStaticRTP(rtc.OpusCodec().RTPCodecCapability, "audio", "test")
	if err != nil {
		t.Fatal(err)
	}
	c.pkt.Header.Version = 2
	c.levelID, c.twccID = 1, 3
	slot := 0
	c.sendFrame(sig, 1, slot)
	allocs := testing.AllocsPerRun(200, func() {
		slot++
		c.sendFrame(sig, int64(slot), slot)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations a frame", allocs)
	}
	h, ok := parseRTPHead(mustMarshal(t, &c.pkt), 3)
	if !ok || !h.hasTWCC || h.twcc != uint16(slot) {
		t.Fatalf("last packet %+v, want transport-wide number %d", h, slot)
	}
}

func mustMarshal(t *testing.T, p *rtp.Packet) []byte {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
