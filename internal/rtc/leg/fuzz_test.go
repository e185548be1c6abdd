package leg

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"
)

// FuzzHandle feeds the reader any datagram, sent over loopback from the leg's address or from
// an unknown one and read as the reader reads (readBatch): STUN (a real binding request with
// USE-CANDIDATE among the seeds), DTLS records, SRTP and SRTCP, garbage. Nothing may panic, and
// nothing but a good SRTP packet is delivered.
func FuzzHandle(f *testing.F) {
	b := newBench(f, srtp.ProtectionProfileAeadAes128Gcm)
	f.Add(bindingRequest(f, benchUfrag+":"+benchPeer, benchPwd, true), false)
	f.Add(bindingRequest(f, benchUfrag+":"+benchPeer, benchPwd, false), true)
	f.Add(bindingRequest(f, benchUfrag+":"+benchPeer, "wrongpasswordwrongpassword", true), false)
	for _, p := range b.packets(f, 500, 2) {
		f.Add(p, true)
		f.Add(p, false)
	}
	rr, err := (&rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 2}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	enc, err := b.sender.EncryptRTCP(nil, rr, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc, true)
	// A DTLS handshake record header (ClientHello), truncated.
	f.Add([]byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40, 1, 0, 0, 34}, true)
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42}, false)
	f.Add([]byte{0x80}, true)
	f.Add([]byte{0x80, 200, 0, 1}, true)
	f.Add([]byte("junk junk junk junk"), true)
	f.Add([]byte{}, false)
	// Later packets of the seeded stream, so that the fuzzer can mutate fresh ones.
	pending := b.packets(f, 1000, 64)
	peer := b.fromSocket(f)
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	defer stranger.Close()
	to := b.mux.LocalAddr()
	var mu sync.Mutex
	f.Fuzz(func(t *testing.T, data []byte, known bool) {
		mu.Lock()
		defer mu.Unlock()
		from := stranger
		if known {
			from = peer
		}
		if len(data) > readBufferSize+1 {
			data = data[:readBufferSize+1] // longer ones are cut short as one byte over is
		}
		if _, err := from.WriteToUDPAddrPort(data, to); err != nil {
			t.Fatalf("send %d bytes: %v", len(data), err)
		}
		if err := b.mux.conn.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		before := b.rtp
		b.readAll(t, 1)
		if b.rtp > before && len(b.last) > len(data) {
			t.Fatalf("delivered a %d-byte payload from a %d-byte datagram", len(b.last), len(data))
		}
		if len(pending) > 0 { // the stream goes on between inputs
			b.mux.handle(pending[0], b.from)
			pending = pending[1:]
		}
	})
}
