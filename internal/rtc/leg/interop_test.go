package leg

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
)

// pionOffer is the service's side of a bot leg as the service builds it: rtc.NewAPI with
// rtc.ServiceSettingEngine(true), the layout's transceivers, a complete offer.
type pionOffer struct {
	pc     *webrtc.PeerConnection
	tracks *rtc.OfferTracks
	offer  string

	connected chan struct{}
	connOnce  sync.Once
	received  chan rtp.Packet // the bot's audio0 packets (payload copied)
	readers   sync.WaitGroup
	next      rtp.Packet // the benchmarks' stream
}

func newPionOffer(t testing.TB, ctx context.Context, profiles ...dtls.SRTPProtectionProfile) *pionOffer {
	t.Helper()
	s := rtc.ServiceSettingEngine(true)
	if len(profiles) > 0 {
		s.SetSRTPProtectionProfiles(profiles...)
	}
	api, err := rtc.NewAPI(s)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &pionOffer{pc: pc, connected: make(chan struct{}), received: make(chan rtp.Packet, 256)}
	t.Cleanup(func() {
		_ = pc.Close()
		p.readers.Wait()
	})
	p.tracks, err = rtc.AddOfferTransceivers(pc, rtc.DefaultLayout(), "service")
	if err != nil {
		t.Fatal(err)
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			p.connOnce.Do(func() { close(p.connected) })
		}
	})
	pc.OnTrack(func(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { readTrack(&p.readers, track, p.received) })
	p.offer, err = rtc.CompleteOffer(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readTrack starts a goroutine (counted in wg) that reads track's RTP packets until it ends
// and hands them to out (payload copied; dropped when out is full).
func readTrack(wg *sync.WaitGroup, track *webrtc.TrackRemote, out chan<- rtp.Packet) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			pkt, _, err := track.ReadRTP()
			if err != nil {
				return
			}
			pkt.Payload = bytes.Clone(pkt.Payload)
			select {
			case out <- *pkt:
			default:
			}
		}
	}()
}

func randomString(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// answerWithLeg parses the offer, makes a leg on mux and returns it with its answer.
func answerWithLeg(t testing.TB, mux *Mux, offer string, cfg Config, ssrc uint32) (*Leg, string) {
	t.Helper()
	o, err := ParseOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	cert, fp := testCert(t)
	cfg.LocalUfrag, cfg.LocalPwd = randomString(t, 16), randomString(t, 32)
	cfg.RemoteUfrag = o.Ufrag
	if cfg.RemoteFingerprints == nil {
		cfg.RemoteFingerprints = o.Fingerprints
	}
	cfg.Certificate = cert
	cfg.HandshakeTimeout = 10 * time.Second
	l, err := mux.NewLeg(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	answer, err := o.Answer(AnswerParams{
		Ufrag: cfg.LocalUfrag, Pwd: cfg.LocalPwd, Fingerprint: fp,
		Candidate: mux.LocalAddr(), SSRC: map[string]uint32{"audio0": ssrc},
	})
	if err != nil {
		t.Fatal(err)
	}
	return l, answer
}

func wait(t testing.TB, ctx context.Context, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, ctx.Err())
	}
}

func payloadOf(i int) []byte {
	return []byte(fmt.Sprintf("opus-frame-%03d-%s", i, bytes.Repeat([]byte{byte(i)}, 40)))
}

// TestPionOffererToLeg: a pion/webrtc offerer built as the service builds its bot legs connects
// to a leg (ICE-lite, DTLS server) on loopback; 100 RTP packets each way arrive, in order, and
// pion's RTCP arrives; pion's close ends the leg's DTLS session cleanly. Once with pion's
// SRTP profiles, once with each profile alone.
func TestPionOffererToLeg(t *testing.T) {
	for _, tc := range []struct {
		name     string
		profiles []dtls.SRTPProtectionProfile
		want     srtp.ProtectionProfile
	}{
		{"pion default", nil, srtp.ProtectionProfileAeadAes256Gcm},
		{"AEAD_AES_128_GCM", []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM}, srtp.ProtectionProfileAeadAes128Gcm},
		{"AES128_CM_HMAC_SHA1_80", []dtls.SRTPProtectionProfile{dtls.SRTP_AES128_CM_HMAC_SHA1_80}, srtp.ProtectionProfileAes128CmHmacSha1_80},
	} {
		t.Run(tc.name, func(t *testing.T) { testPionOffererToLeg(t, tc.profiles, tc.want) })
	}
}

func testPionOffererToLeg(t *testing.T, profiles []dtls.SRTPProtectionProfile, want srtp.ProtectionProfile) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mux := testMux(t)

	p := newPionOffer(t, ctx, profiles...)
	got := make(chan rtp.Packet, 256)
	rtcpSeen := make(chan struct{})
	var rtcpOnce sync.Once
	const ssrc = 0x5b0710
	l, answer := answerWithLeg(t, mux, p.offer, Config{
		OnRTP: func(pkt *rtp.Packet) {
			c := *pkt
			c.Header.CSRC = nil
			c.Header.Extensions = nil
			c.Payload = bytes.Clone(pkt.Payload)
			select {
			case got <- c:
			default:
			}
		},
		OnRTCP: func([]byte) { rtcpOnce.Do(func() { close(rtcpSeen) }) },
	}, ssrc)
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatalf("pion refused the leg's answer: %v\n%s", err, answer)
	}
	wait(t, ctx, p.connected, "pion connected")
	wait(t, ctx, l.Connected(), "leg connected")
	if got := l.keys.Load().profile; got != want {
		t.Errorf("SRTP profile %v, want %v", got, want)
	}

	// pion → leg.
	const n = 100
	for i := range n {
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(1000 + i), Timestamp: uint32(960 * i)}, Payload: payloadOf(i)}
		if err := p.tracks.Audio[0].WriteRTP(pkt); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // pacing, as a real sender; nothing is timed
	}
	for i := range n {
		select {
		case pkt := <-got:
			if !bytes.Equal(pkt.Payload, payloadOf(i)) {
				t.Fatalf("packet %d: payload %q, want %q", i, pkt.Payload, payloadOf(i))
			}
			if pkt.PayloadType != 111 {
				t.Fatalf("packet %d: payload type %d", i, pkt.PayloadType)
			}
		case <-ctx.Done():
			t.Fatalf("leg got %d of %d packets (stats %+v)", i, n, mux.Stats())
		}
	}

	if extra, s := len(got), mux.Stats(); extra != 0 || s.RTP != n {
		t.Fatalf("leg got %d packets more than sent (stats %+v)", extra, s)
	}

	// leg → pion.
	for i := range n {
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: ssrc, SequenceNumber: uint16(7000 + i), Timestamp: uint32(960 * i)}, Payload: payloadOf(i)}
		if err := l.WriteRTP(pkt); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	for i := range n {
		select {
		case pkt := <-p.received:
			if !bytes.Equal(pkt.Payload, payloadOf(i)) {
				t.Fatalf("pion's packet %d: payload %q, want %q", i, pkt.Payload, payloadOf(i))
			}
			if pkt.SSRC != ssrc {
				t.Fatalf("pion's packet %d: SSRC %#x", i, pkt.SSRC)
			}
		case <-ctx.Done():
			t.Fatalf("pion got %d of %d packets", i, n)
		}
	}
	if extra := len(p.received); extra != 0 {
		t.Fatalf("pion got %d packets more than sent", extra)
	}
	wait(t, ctx, rtcpSeen, "RTCP from pion")
	if s := mux.Stats(); s.SRTPDropped != 0 {
		t.Errorf("SRTP dropped: %+v", s)
	}
	// pion's close sends close_notify: the leg's session ends without an error.
	if err := p.pc.Close(); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, l.Done(), "the leg's DTLS session to end after pion's close")
	if err := l.Err(); err != nil {
		t.Errorf("leg error after the peer's clean close: %v", err)
	}
	if err := l.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: ssrc}}); !errors.Is(err, ErrClosed) {
		t.Errorf("write after the peer's close: %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWrongFingerprint: a leg told another certificate's fingerprint fails the handshake.
func TestWrongFingerprint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mux := testMux(t)
	p := newPionOffer(t, ctx)
	_, wrong := testCert(t)
	l, answer := answerWithLeg(t, mux, p.offer, Config{RemoteFingerprints: []Fingerprint{wrong}}, 1)
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, l.Done(), "the leg's handshake to fail")
	if err := l.Err(); !errors.Is(err, ErrFingerprint) {
		t.Fatalf("handshake with a wrong fingerprint: %v, want ErrFingerprint", err)
	}
	select {
	case <-l.Connected():
		t.Fatal("leg connected with a wrong fingerprint")
	default:
	}
}
