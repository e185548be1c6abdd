package leg

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/rtc/rtctest"
)

// stream collects what a leg's callbacks get: RTP packets (payload copied) and whether RTCP came.
type stream struct {
	rtp      chan rtp.Packet
	rtcp     chan struct{}
	rtcpOnce sync.Once
}

func newStream() *stream { return &stream{rtp: make(chan rtp.Packet, 256), rtcp: make(chan struct{})} }

// config sets a Config's callbacks to the stream's.
func (s *stream) config(cfg Config) Config {
	cfg.OnRTP = func(pkt *rtp.Packet) {
		select {
		case s.rtp <- rtp.Packet{Header: rtp.Header{PayloadType: pkt.PayloadType, SSRC: pkt.SSRC, SequenceNumber: pkt.SequenceNumber}, Payload: bytes.Clone(pkt.Payload)}:
		default:
		}
	}
	cfg.OnRTCP = func([]byte) { s.rtcpOnce.Do(func() { close(s.rtcp) }) }
	return cfg
}

// sendAndExpect writes n packets with write (paced, as a real sender; nothing is timed) and
// checks that exactly those arrive on got, in order.
func sendAndExpect(t *testing.T, ctx context.Context, write func(*rtp.Packet) error, ssrc uint32, got <-chan rtp.Packet, what string) {
	t.Helper()
	const n = 100
	for i := range n {
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: PayloadTypeOpus, SSRC: ssrc, SequenceNumber: uint16(3000 + i), Timestamp: uint32(960 * i)}, Payload: payloadOf(i)}
		if err := write(pkt); err != nil {
			t.Fatalf("%s: write %d: %v", what, i, err)
		}
		time.Sleep(time.Millisecond)
	}
	for i := range n {
		select {
		case pkt := <-got:
			if !bytes.Equal(pkt.Payload, payloadOf(i)) || pkt.SequenceNumber != uint16(3000+i) {
				t.Fatalf("%s: packet %d: seq %d payload %q", what, i, pkt.SequenceNumber, pkt.Payload)
			}
		case <-ctx.Done():
			t.Fatalf("%s: %d of %d packets arrived", what, i, n)
		}
	}
	if extra := len(got); extra != 0 {
		t.Fatalf("%s: %d packets more than sent", what, extra)
	}
}

// offering is the service's side made by this package: its credentials and certificate, and
// the offer pion/webrtc makes as the service does today, rewritten with them.
type offering struct {
	cfg   Config
	offer string
}

func newOffering(t *testing.T, ctx context.Context, mux *Mux) *offering {
	t.Helper()
	p := newPionOffer(t, ctx)
	cert, fp := testCert(t)
	o := &offering{cfg: Config{LocalUfrag: randomString(t, 16), LocalPwd: randomString(t, 32), Certificate: cert, HandshakeTimeout: 10 * time.Second}}
	var err error
	if o.offer, err = RewriteOffer(p.offer, o.cfg.LocalUfrag, o.cfg.LocalPwd, fp, mux.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	return o
}

// leg makes the offering leg for answer on mux, with edit applied to its configuration.
func (o *offering) leg(t *testing.T, mux *Mux, answer string, cfg Config, edit func(*OfferConfig)) *Leg {
	t.Helper()
	a, err := ParseAnswer(answer)
	if err != nil {
		t.Fatalf("%v\n%s", err, answer)
	}
	cfg.LocalUfrag, cfg.LocalPwd, cfg.Certificate, cfg.HandshakeTimeout = o.cfg.LocalUfrag, o.cfg.LocalPwd, o.cfg.Certificate, o.cfg.HandshakeTimeout
	oc := a.OfferConfig(cfg)
	if edit != nil {
		edit(&oc)
	}
	l, err := mux.NewOfferLeg(oc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func writeRTCPAndWait(t *testing.T, ctx context.Context, from *Leg, to *stream, what string) {
	t.Helper()
	raw, err := (&rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 2}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := from.WriteRTCP(raw); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, to.rtcp, what)
}

// legPair is an offering leg on muxO and an answering leg on a Mux of its own, configured with
// cfgO (and edit) and cfgA; it returns them with the answering Mux and the answer.
func legPair(t *testing.T, ctx context.Context, muxO *Mux, cfgO, cfgA Config, edit func(*OfferConfig)) (legO, legA *Leg, muxA *Mux, answer string) {
	t.Helper()
	muxA = testMux(t)
	o := newOffering(t, ctx, muxO)
	legA, answer = answerWithLeg(t, muxA, o.offer, cfgA, 0xa)
	return o.leg(t, muxO, answer, cfgO, edit), legA, muxA, answer
}

// TestOfferLegToLeg: an offering leg and an answering leg on two Muxes: ICE (checks, then
// consent), DTLS, 100 RTP packets each way exactly and in order, RTCP each way, and the
// offerer's Close ends both sessions cleanly.
func TestOfferLegToLeg(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	muxO := testMux(t)
	inA, inO := newStream(), newStream()
	const ssrcA, ssrcO = 0xa, 0x0
	legO, legA, _, _ := legPair(t, ctx, muxO, inO.config(Config{}), inA.config(Config{}), nil)
	wait(t, ctx, legO.Connected(), "offering leg connected")
	wait(t, ctx, legA.Connected(), "answering leg connected")
	if pa, po := legA.keys.Load().profile, legO.keys.Load().profile; pa != po {
		t.Fatalf("SRTP profiles %v and %v", pa, po)
	}
	sendAndExpect(t, ctx, legO.WriteRTP, ssrcO, inA.rtp, "offerer → answerer")
	sendAndExpect(t, ctx, legA.WriteRTP, ssrcA, inO.rtp, "answerer → offerer")
	writeRTCPAndWait(t, ctx, legO, inA, "RTCP to the answerer")
	writeRTCPAndWait(t, ctx, legA, inO, "RTCP to the offerer")
	if s := muxO.Stats(); s.STUNResponses == 0 || s.SRTPDropped != 0 {
		t.Errorf("offerer's stats %+v", s)
	}
	if err := legO.Close(); err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, legA.Done(), "the answerer's session to end after the offerer's close")
	for _, l := range []*Leg{legO, legA} {
		if err := l.Err(); err != nil {
			t.Errorf("error after a clean close: %v", err)
		}
	}
}

// pionAnswer is a pion/webrtc answerer built as the SDK's media platform builds it:
// rtctest.BotAPI (ICE-lite on a UDP mux on 127.0.0.1, DTLS server), a track on the first audio
// m-line, rtc.CompleteAnswer.
type pionAnswer struct {
	pc       *webrtc.PeerConnection
	track    *webrtc.TrackLocalStaticRTP
	answer   string
	received chan rtp.Packet
	readers  sync.WaitGroup
}

func newPionAnswer(t *testing.T, ctx context.Context, offer string) *pionAnswer {
	t.Helper()
	pc, err := rtctest.BotAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &pionAnswer{pc: pc, received: make(chan rtp.Packet, 256)}
	t.Cleanup(func() {
		_ = pc.Close()
		p.readers.Wait()
	})
	pc.OnTrack(func(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { readTrack(&p.readers, track, p.received) })
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatalf("pion refused the offer: %v\n%s", err, offer)
	}
	if p.track, err = webrtc.NewTrackLocalStaticRTP(rtc.OpusCodec().RTPCodecCapability, "audio0", "bot"); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(p.track); err != nil {
		t.Fatal(err)
	}
	if p.answer, err = rtc.CompleteAnswer(ctx, pc, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

// offeredSSRC is the SSRC the offer announces on its first audio m-line.
func offeredSSRC(t *testing.T, offer string) uint32 {
	t.Helper()
	_, rest, ok := strings.Cut(offer, "m=audio")
	for _, line := range strings.Split(rest, "\n") {
		if v, found := strings.CutPrefix(strings.TrimSpace(line), "a=ssrc:"); ok && found {
			id, _, _ := strings.Cut(v, " ")
			n, err := strconv.ParseUint(id, 10, 32)
			if err == nil {
				return uint32(n)
			}
		}
	}
	t.Fatalf("no audio SSRC in the offer\n%s", offer)
	return 0
}

// TestOfferLegToPion: an offering leg connects to a real pion/webrtc answerer built as the
// SDK builds it; 100 RTP packets each way arrive exactly and in order; the leg's close ends
// pion's session.
func TestOfferLegToPion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	muxO := testMux(t)
	o := newOffering(t, ctx, muxO)
	p := newPionAnswer(t, ctx, o.offer)
	connected, ended := make(chan struct{}), make(chan struct{})
	var once, endOnce sync.Once
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			once.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateFailed:
			endOnce.Do(func() { close(ended) })
		}
	})
	in := newStream()
	legO := o.leg(t, muxO, p.answer, in.config(Config{}), nil)
	wait(t, ctx, legO.Connected(), "offering leg connected")
	wait(t, ctx, connected, "pion connected")
	sendAndExpect(t, ctx, legO.WriteRTP, offeredSSRC(t, o.offer), p.received, "leg → pion")
	sendAndExpect(t, ctx, p.track.WriteRTP, 0, in.rtp, "pion → leg")
	if err := legO.Close(); err != nil {
		t.Fatal(err)
	}
	if err := legO.Err(); err != nil {
		t.Errorf("error after Close: %v", err)
	}
	wait(t, ctx, ended, "pion's session to end after the leg's close")
}

// TestOfferConsent: once the answerer has gone (its socket closed, no close_notify), the
// offering leg fails with ErrConsent; an answerer that never answers fails ICE (ErrICE) at the
// handshake timeout. Short timeouts; only liveness is waited for.
func TestOfferConsent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	legO, legA, muxA, answer := legPair(t, ctx, testMux(t), Config{}, Config{}, func(c *OfferConfig) {
		c.ConsentInterval, c.ConsentTimeout = 50*time.Millisecond, time.Second // generous: a busy machine must not fail it early
	})
	wait(t, ctx, legO.Connected(), "offering leg connected")
	wait(t, ctx, legA.Connected(), "answering leg connected")
	_ = muxA.conn.Close() // gone without a word
	wait(t, ctx, legO.Done(), "the offering leg to fail")
	if err := legO.Err(); !errors.Is(err, ErrConsent) {
		t.Fatalf("after the answerer went: %v, want ErrConsent", err)
	}

	// Nobody at the candidate (the closed socket): ICE never succeeds.
	lonely := newOffering(t, ctx, testMux(t)).leg(t, testMux(t), answer, Config{}, func(c *OfferConfig) { c.HandshakeTimeout = 100 * time.Millisecond })
	wait(t, ctx, lonely.Done(), "ICE to time out")
	if err := lonely.Err(); !errors.Is(err, ErrICE) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unanswered checks: %v, want ErrICE and DeadlineExceeded", err)
	}
}

// TestOfferWrongFingerprint: an answer whose fingerprint is not the answerer's certificate's
// fails the offering leg's handshake with ErrFingerprint.
func TestOfferWrongFingerprint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, wrong := testCert(t)
	legO, _, _, _ := legPair(t, ctx, testMux(t), Config{}, Config{}, func(c *OfferConfig) { c.RemoteFingerprints = []Fingerprint{wrong} })
	wait(t, ctx, legO.Done(), "the handshake to fail")
	if err := legO.Err(); !errors.Is(err, ErrFingerprint) {
		t.Fatalf("wrong fingerprint: %v, want ErrFingerprint", err)
	}
	select {
	case <-legO.Connected():
		t.Fatal("connected with a wrong fingerprint")
	default:
	}
}
