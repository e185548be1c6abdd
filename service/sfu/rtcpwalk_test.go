package sfu

import (
	"testing"

	"github.com/pion/rtcp"
)

// rtcpSeen records what walkRTCP tells.
type rtcpSeen struct {
	keyframes []uint32
	estimates map[uint32]uint64
	losses    map[uint32]uint8
	nacks     int
}

func newRTCPSeen() *rtcpSeen {
	return &rtcpSeen{estimates: map[uint32]uint64{}, losses: map[uint32]uint8{}}
}

func (s *rtcpSeen) keyframe(ssrc uint32)             { s.keyframes = append(s.keyframes, ssrc) }
func (s *rtcpSeen) estimate(ssrc uint32, bps uint64) { s.estimates[ssrc] = bps }
func (s *rtcpSeen) loss(ssrc uint32, fraction uint8) { s.losses[ssrc] = fraction }
func (s *rtcpSeen) nack()                            { s.nacks++ }

// realRTCP is a compound packet as a bot's pion sends it: a receiver report, a NACK, a PLI, a
// FIR, a REMB and an SDES.
func realRTCP(t testing.TB) []byte {
	t.Helper()
	raw, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: 9, Reports: []rtcp.ReceptionReport{{SSRC: 100, FractionLost: 12}, {SSRC: 101, FractionLost: 200}}},
		&rtcp.TransportLayerNack{SenderSSRC: 9, MediaSSRC: 100, Nacks: []rtcp.NackPair{{PacketID: 5}}},
		&rtcp.PictureLossIndication{SenderSSRC: 9, MediaSSRC: 102},
		&rtcp.FullIntraRequest{SenderSSRC: 9, FIR: []rtcp.FIREntry{{SSRC: 103, SequenceNumber: 1}, {SSRC: 104, SequenceNumber: 2}}},
		&rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 9, Bitrate: 1_500_000, SSRCs: []uint32{102, 103}},
		&rtcp.SenderReport{SSRC: 9, Reports: []rtcp.ReceptionReport{{SSRC: 105, FractionLost: 3}}},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 9, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "bot"}}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestWalkRTCP: walkRTCP reads what pion/rtcp writes as pion reads it (report blocks, NACK,
// PLI, FIR entries, REMB's bitrate and SSRCs), allocates nothing, and refuses truncated and
// malformed packets.
func TestWalkRTCP(t *testing.T) {
	raw := realRTCP(t)
	s := newRTCPSeen()
	if !walkRTCP(raw, s) {
		t.Fatal("walkRTCP refused pion's compound packet")
	}
	pkts, err := rtcp.Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	remb := pkts[4].(*rtcp.ReceiverEstimatedMaximumBitrate)
	if len(s.keyframes) != 3 || s.keyframes[0] != 102 || s.keyframes[1] != 103 || s.keyframes[2] != 104 {
		t.Errorf("key frame requests for %v", s.keyframes)
	}
	if s.estimates[102] != uint64(remb.Bitrate) || s.estimates[103] != uint64(remb.Bitrate) || len(s.estimates) != 2 {
		t.Errorf("estimates %v, pion reads %v", s.estimates, remb.Bitrate)
	}
	if s.losses[100] != 12 || s.losses[101] != 200 || s.losses[105] != 3 || len(s.losses) != 3 || s.nacks != 1 {
		t.Errorf("losses %v nacks %d", s.losses, s.nacks)
	}
	if n := testing.AllocsPerRun(100, func() { walkRTCP(raw, nopVisitor{}) }); n != 0 {
		t.Errorf("%v allocations a compound packet", n)
	}
	for i := range len(raw) {
		if walkRTCP(raw[:i], nopVisitor{}) && i%4 != 0 {
			t.Errorf("accepted %d of %d bytes", i, len(raw))
		}
	}
	bad := append([]byte(nil), raw...)
	bad[0] = 0x40 // version 1
	if walkRTCP(bad, nopVisitor{}) {
		t.Error("accepted version 1")
	}
}

type nopVisitor struct{}

func (nopVisitor) keyframe(uint32)         {}
func (nopVisitor) estimate(uint32, uint64) {}
func (nopVisitor) loss(uint32, uint8)      {}
func (nopVisitor) nack()                   {}

// FuzzWalkRTCP: no input makes walkRTCP panic; what pion/rtcp reads as PLIs and FIRs,
// walkRTCP reads as the same key frame requests.
func FuzzWalkRTCP(f *testing.F) {
	f.Add(realRTCP(f))
	for _, p := range []rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: 7}, &rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: 1e9, SSRCs: []uint32{1}},
		&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2}}}} {
		raw, _ := p.Marshal()
		f.Add(raw)
	}
	f.Add([]byte{0xa0, 201, 0, 1, 0, 0, 0, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newRTCPSeen()
		ok := walkRTCP(b, s)
		pkts, err := rtcp.Unmarshal(b)
		if err != nil || !ok {
			return
		}
		var want []uint32
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication:
				want = append(want, p.MediaSSRC)
			case *rtcp.FullIntraRequest:
				for _, e := range p.FIR {
					want = append(want, e.SSRC)
				}
			}
		}
		if len(want) != len(s.keyframes) {
			t.Fatalf("pion reads key frame requests for %v, walkRTCP for %v", want, s.keyframes)
		}
		for i := range want {
			if want[i] != s.keyframes[i] {
				t.Fatalf("pion reads key frame requests for %v, walkRTCP for %v", want, s.keyframes)
			}
		}
	})
}
