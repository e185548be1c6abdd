package leg

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"
)

// bench is a Mux without its reader and one leg whose SRTP keys are set by hand, so that tests
// feed handle() packets a sender context encrypted with the same keys.
type bench struct {
	mux    *Mux
	leg    *Leg
	sender *srtp.Context // encrypts what the leg's remote context decrypts
	from   netip.AddrPort
	rtp    int // packets delivered
	rtcp   int
	last   []byte
}

const (
	benchUfrag = "legufrag"
	benchPwd   = "legpasswordlegpassword"
	benchPeer  = "peerufrag"
)

func newBench(tb testing.TB, profile srtp.ProtectionProfile) *bench {
	tb.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	b := &bench{mux: newMux(conn), from: netip.MustParseAddrPort("127.0.0.1:9")}
	keyLen, err := profile.KeyLen()
	if err != nil {
		tb.Fatal(err)
	}
	saltLen, err := profile.SaltLen()
	if err != nil {
		tb.Fatal(err)
	}
	key, salt := bytes.Repeat([]byte{7}, keyLen), bytes.Repeat([]byte{9}, saltLen)
	remote, err := srtp.CreateContext(key, salt, profile,
		srtp.SRTPReplayProtection(srtpReplayWindow), srtp.SRTCPReplayProtection(srtpReplayWindow))
	if err != nil {
		tb.Fatal(err)
	}
	local, err := srtp.CreateContext(key, salt, profile)
	if err != nil {
		tb.Fatal(err)
	}
	if b.sender, err = srtp.CreateContext(key, salt, profile); err != nil {
		tb.Fatal(err)
	}
	l := &Leg{
		mux: b.mux, cfg: Config{LocalUfrag: benchUfrag, RemoteUfrag: benchPeer},
		integrity: stun.NewShortTermIntegrity(benchPwd),
		plain:     make([]byte, readBufferSize), cipher: make([]byte, readBufferSize+64),
		connected: make(chan struct{}), done: make(chan struct{}),
	}
	l.cfg.OnRTP = func(pkt *rtp.Packet) { b.rtp++; b.last = pkt.Payload }
	l.cfg.OnRTCP = func([]byte) { b.rtcp++ }
	l.dtls = newDTLSConn(l)
	l.keys.Store(&srtpKeys{remote: remote, local: local})
	b.leg = l
	b.mux.byUfrag[benchUfrag] = l
	b.mux.byAddr[b.from] = l
	l.setRemote(b.from)
	return b
}

// packets encrypts n consecutive RTP packets (mid and audio-level extensions, a CSRC, 60 bytes
// of payload, as the SFU forwards audio) starting at sequence number seq.
func (b *bench) packets(tb testing.TB, seq uint16, n int) [][]byte {
	tb.Helper()
	out := make([][]byte, n)
	for i := range out {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq + uint16(i),
			Timestamp: 960 * uint32(int(seq)+i), SSRC: 0xabc, CSRC: []uint32{42}}, Payload: bytes.Repeat([]byte{byte(i)}, 60)}
		if err := p.SetExtension(1, []byte("audio0")); err != nil {
			tb.Fatal(err)
		}
		if err := p.SetExtension(2, []byte{0x80 | 30}); err != nil {
			tb.Fatal(err)
		}
		raw, err := p.Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		if out[i], err = b.sender.EncryptRTP(nil, raw, nil); err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

var profiles = []struct {
	name    string
	profile srtp.ProtectionProfile
}{
	{"AEAD_AES_128_GCM", srtp.ProtectionProfileAeadAes128Gcm},
	{"AEAD_AES_256_GCM", srtp.ProtectionProfileAeadAes256Gcm},
	{"AES128_CM_HMAC_SHA1_80", srtp.ProtectionProfileAes128CmHmacSha1_80},
}

// TestReceiveDecrypts: SRTP and SRTCP from the leg's address are decrypted and delivered;
// a replayed packet, a tampered one, and one from another address are not.
func TestReceiveDecrypts(t *testing.T) {
	for _, pr := range profiles {
		t.Run(pr.name, func(t *testing.T) {
			b := newBench(t, pr.profile)
			pkts := b.packets(t, 100, 3)
			b.mux.handle(pkts[0], b.from)
			if b.rtp != 1 || !bytes.Equal(b.last, bytes.Repeat([]byte{0}, 60)) {
				t.Fatalf("delivered %d, last payload %x", b.rtp, b.last)
			}
			b.mux.handle(pkts[0], b.from) // replay
			tampered := bytes.Clone(pkts[1])
			tampered[len(tampered)-1] ^= 1
			b.mux.handle(tampered, b.from)
			b.mux.handle(pkts[1], netip.MustParseAddrPort("127.0.0.1:10"))
			if b.rtp != 1 {
				t.Fatalf("replayed, tampered or foreign packet delivered (%d)", b.rtp)
			}
			if s := b.mux.Stats(); s.SRTPDropped != 2 || s.Unknown != 1 {
				t.Fatalf("stats %+v", s)
			}
			b.mux.handle(pkts[1], b.from)
			b.mux.handle(pkts[2], b.from)
			if b.rtp != 3 || b.last[0] != 2 {
				t.Fatalf("delivered %d", b.rtp)
			}
			rr, err := (&rtcp.ReceiverReport{SSRC: 0xdef, Reports: []rtcp.ReceptionReport{{SSRC: 0xabc}}}).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			enc, err := b.sender.EncryptRTCP(nil, rr, nil)
			if err != nil {
				t.Fatal(err)
			}
			b.mux.handle(enc, b.from)
			if b.rtcp != 1 {
				t.Fatalf("RTCP not delivered (%+v)", b.mux.Stats())
			}
		})
	}
}

// TestReceiveAllocs: the decrypt-and-deliver path allocates nothing per packet.
func TestReceiveAllocs(t *testing.T) {
	for _, pr := range profiles {
		t.Run(pr.name, func(t *testing.T) {
			b := newBench(t, pr.profile)
			const runs = 1000
			pkts := b.packets(t, 1, runs+2)
			b.mux.handle(pkts[0], b.from) // the SSRC's state is made once
			i := 1
			allocs := testing.AllocsPerRun(runs, func() {
				b.mux.handle(pkts[i], b.from)
				i++
			})
			if allocs != 0 {
				t.Fatalf("%v allocations per received packet", allocs)
			}
			if b.rtp != i {
				t.Fatalf("delivered %d of %d", b.rtp, i)
			}
		})
	}
}

// TestSendAllocs: WriteRTP allocates nothing per packet.
func TestSendAllocs(t *testing.T) {
	b := newBench(t, srtp.ProtectionProfileAeadAes128Gcm)
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 0x77}, Payload: make([]byte, 80)}
	if err := b.leg.WriteRTP(pkt); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		pkt.SequenceNumber++
		pkt.Timestamp += 960
		if err := b.leg.WriteRTP(pkt); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per sent packet", allocs)
	}
}

// BenchmarkReceive is the reader's per-packet work once a datagram is read: demultiplex by
// address, SRTP decrypt (with the replay check), parse, deliver.
func BenchmarkReceive(b *testing.B) {
	for _, pr := range profiles {
		b.Run(pr.name, func(b *testing.B) {
			bb := newBench(b, pr.profile)
			const chunk = 4096
			seq := uint16(1)
			b.ReportAllocs()
			b.SetBytes(60)
			b.ResetTimer()
			for done := 0; done < b.N; {
				b.StopTimer()
				n := min(chunk, b.N-done)
				pkts := bb.packets(b, seq, n)
				seq += uint16(n)
				b.StartTimer()
				for _, p := range pkts {
					bb.mux.handle(p, bb.from)
				}
				done += n
			}
			b.StopTimer()
			if bb.rtp != b.N {
				b.Fatalf("delivered %d of %d", bb.rtp, b.N)
			}
		})
	}
}

// BenchmarkSend is WriteRTP: marshal, SRTP encrypt, write to the socket.
func BenchmarkSend(b *testing.B) {
	bb := newBench(b, srtp.ProtectionProfileAeadAes128Gcm)
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 0x77}, Payload: make([]byte, 60)}
	b.ReportAllocs()
	for b.Loop() {
		pkt.SequenceNumber++
		if err := bb.leg.WriteRTP(pkt); err != nil {
			b.Fatal(err)
		}
	}
}
