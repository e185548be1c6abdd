package leg

import (
	"slices"
	"testing"

	"github.com/pion/rtcp"
)

// rtcpSeen records what WalkRTCP tells.
type rtcpSeen struct {
	keyframes []uint32
	estimates map[uint32]uint64
	losses    map[uint32]uint8
	nacks     []rtcp.NackPair // by media SSRC 100 only
	nackSSRC  []uint32
}

func newRTCPSeen() *rtcpSeen {
	return &rtcpSeen{estimates: map[uint32]uint64{}, losses: map[uint32]uint8{}}
}

func (s *rtcpSeen) KeyFrame(ssrc uint32)             { s.keyframes = append(s.keyframes, ssrc) }
func (s *rtcpSeen) Estimate(ssrc uint32, bps uint64) { s.estimates[ssrc] = bps }
func (s *rtcpSeen) Loss(ssrc uint32, fraction uint8) { s.losses[ssrc] = fraction }
func (s *rtcpSeen) NACK(ssrc uint32, pid, blp uint16) {
	s.nackSSRC = append(s.nackSSRC, ssrc)
	s.nacks = append(s.nacks, rtcp.NackPair{PacketID: pid, LostPackets: rtcp.PacketBitmap(blp)})
}

// realRTCP is a compound packet as a bot sends it: a receiver report, a NACK, a PLI, a
// FIR, a REMB and an SDES.
func realRTCP(t testing.TB) []byte {
	t.Helper()
	raw, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: 9, Reports: []rtcp.ReceptionReport{{SSRC: 100, FractionLost: 12}, {SSRC: 101, FractionLost: 200}}},
		&rtcp.TransportLayerNack{SenderSSRC: 9, MediaSSRC: 100, Nacks: []rtcp.NackPair{{PacketID: 5}, {PacketID: 40, LostPackets: 0x8001}}},
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

// TestWalkRTCP: WalkRTCP reads what pion/rtcp writes as pion reads it (report blocks, NACK,
// PLI, FIR entries, REMB's bitrate and SSRCs), allocates nothing, and refuses truncated and
// malformed packets.
func TestWalkRTCP(t *testing.T) {
	raw := realRTCP(t)
	s := newRTCPSeen()
	if !WalkRTCP(raw, s) {
		t.Fatal("WalkRTCP refused pion's compound packet")
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
	if s.losses[100] != 12 || s.losses[101] != 200 || s.losses[105] != 3 || len(s.losses) != 3 {
		t.Errorf("losses %v", s.losses)
	}
	nack := pkts[1].(*rtcp.TransportLayerNack)
	if len(s.nacks) != 2 || s.nacks[0] != nack.Nacks[0] || s.nacks[1] != nack.Nacks[1] || s.nackSSRC[0] != 100 || s.nackSSRC[1] != 100 {
		t.Errorf("NACK entries %v for %v, pion reads %v", s.nacks, s.nackSSRC, nack.Nacks)
	}
	if n := testing.AllocsPerRun(100, func() { WalkRTCP(raw, nopVisitor{}) }); n != 0 {
		t.Errorf("%v allocations a compound packet", n)
	}
	for i := range len(raw) {
		if WalkRTCP(raw[:i], nopVisitor{}) && i%4 != 0 {
			t.Errorf("accepted %d of %d bytes", i, len(raw))
		}
	}
	bad := append([]byte(nil), raw...)
	bad[0] = 0x40 // version 1
	if WalkRTCP(bad, nopVisitor{}) {
		t.Error("accepted version 1")
	}
}

type nopVisitor struct{}

func (nopVisitor) KeyFrame(uint32)             {}
func (nopVisitor) Estimate(uint32, uint64)     {}
func (nopVisitor) Loss(uint32, uint8)          {}
func (nopVisitor) NACK(uint32, uint16, uint16) {}

// FuzzWalkRTCP: no input makes WalkRTCP panic; what pion/rtcp reads as PLIs and FIRs,
// WalkRTCP reads as the same key frame requests.
func FuzzWalkRTCP(f *testing.F) {
	f.Add(realRTCP(f))
	for _, p := range []rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: 7}, &rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: 1e9, SSRCs: []uint32{1}},
		&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2}}}} {
		raw, _ := p.Marshal()
		f.Add(raw)
	}
	f.Add([]byte{0xa0, 201, 0, 1, 0, 0, 0, 4})
	nack, _ := (&rtcp.TransportLayerNack{MediaSSRC: 3, Nacks: []rtcp.NackPair{{PacketID: 9, LostPackets: 0x10}, {PacketID: 70}}}).Marshal()
	f.Add(nack)
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newRTCPSeen()
		ok := WalkRTCP(b, s)
		pkts, err := rtcp.Unmarshal(b)
		if err != nil || !ok {
			return
		}
		var want []uint32
		var wantNACK []rtcp.NackPair
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication:
				want = append(want, p.MediaSSRC)
			case *rtcp.FullIntraRequest:
				for _, e := range p.FIR {
					want = append(want, e.SSRC)
				}
			case *rtcp.TransportLayerNack:
				wantNACK = append(wantNACK, p.Nacks...)
			}
		}
		if !slices.Equal(wantNACK, s.nacks) {
			t.Fatalf("pion reads NACK entries %v, WalkRTCP %v", wantNACK, s.nacks)
		}
		if len(want) != len(s.keyframes) {
			t.Fatalf("pion reads key frame requests for %v, WalkRTCP for %v", want, s.keyframes)
		}
		for i := range want {
			if want[i] != s.keyframes[i] {
				t.Fatalf("pion reads key frame requests for %v, WalkRTCP for %v", want, s.keyframes)
			}
		}
	})
}

// TestPLI: PLI writes what pion/rtcp reads as that PLI.
func TestPLI(t *testing.T) {
	var b [12]byte
	pkts, err := rtcp.Unmarshal(PLI(&b, 7, 0x01020304))
	if err != nil || len(pkts) != 1 {
		t.Fatalf("pion reads %v, %v", pkts, err)
	}
	if p, ok := pkts[0].(*rtcp.PictureLossIndication); !ok || p.SenderSSRC != 7 || p.MediaSSRC != 0x01020304 {
		t.Fatalf("pion reads %#v", pkts[0])
	}
}

// TestNewCredentials: ICE credentials of ice-chars, of the lengths RFC 8445 needs, never the
// same twice; SSRCs are never 0 nor taken.
func TestNewCredentials(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		u, p, err := NewCredentials()
		if err != nil {
			t.Fatal(err)
		}
		if len(u) != 16 || len(p) != 32 || seen[u] || seen[p] {
			t.Fatalf("credentials %q %q", u, p)
		}
		seen[u], seen[p] = true, true
		for _, c := range u + p {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				t.Fatalf("credential character %q", c)
			}
		}
	}
	var first uint32
	for i := range 100 {
		s, err := NewSSRC(func(s uint32) bool { return i > 0 && s == first })
		if err != nil || s == 0 || i > 0 && s == first {
			t.Fatalf("SSRC %d, %v", s, err)
		}
		if i == 0 {
			first = s
		}
	}
}
