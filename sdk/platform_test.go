package sdk

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/internal/playout"
	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/rtc/leg"
	"github.com/switchboard-rtc/switchboard/internal/rtc/rtctest"
	"github.com/switchboard-rtc/switchboard/media"
)

// TestImpairedPath: with 10 % loss and up to 40 ms of jitter between the service and the bot,
// audio keeps coming at one event per 20 ms of media, and video recovers at the next key frame
// (the bot asks for one) and shows the pattern again.
func TestImpairedPath(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var alog audioLog
	asock, err := NewAudioSocket(alog.settings(Recvonly))
	if err != nil {
		t.Fatal(err)
	}
	var vlog videoLog
	vsock, err := NewVideoSocket(vlog.settings(VideoSocketSettings{Direction: Recvonly}))
	if err != nil {
		t.Fatal(err)
	}
	tc := newTestCall(t, true, asock, vsock)
	tc.relay.Impair(0.10, 40*time.Millisecond)

	const frames = 150 // 3 s of audio, and video at 25 frames a second
	const w, h = 320, 180
	// A machine that stalls the process makes the socket's clock skip ticks, and a slow event
	// goroutine makes the socket drop events, both by design; the counts allow for them.
	missed := func() int { return int(asock.clockStats.Stats().Skipped + asock.Dropped()) }
	var before, after, missedBefore, missedAfter int
	sendPaced(t, tc.peer, 0, 31, frames, func(i int) {
		if i == 0 {
			before, missedBefore = alog.count(), missed()
		}
		if i == frames/2 {
			tc.peer.LoseNextVideo(rtc.VideoMID(0)) // a loss no retransmission repairs
		}
		if i%2 == 0 {
			if err := tc.peer.SendVideo(rtc.VideoMID(0), 32, rtctest.TestPattern(w, h, i/2), w, h, false); err != nil {
				t.Fatal(err)
			}
		}
	})
	after, missedAfter = alog.count(), missed()
	forwarded, dropped := tc.relay.Stats()
	tc.relay.Impair(0, 0)
	// Clean path again: the next frames (after a key frame if one is still needed) show the pattern.
	for i := frames / 2; i < frames/2+15; i++ {
		if err := tc.peer.SendVideo(rtc.VideoMID(0), 32, rtctest.TestPattern(w, h, i), w, h, false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	plis, nacks := tc.peer.KeyFrameRequests(rtc.VideoMID(0)), tc.peer.NACKs(rtc.VideoMID(0))
	tc.close()
	missedAll := missed()
	if a, v := asock.pool.Stats().Outstanding, vsock.pool.Stats().Outstanding; a != 0 || v != 0 {
		t.Errorf("%d audio and %d video buffers outlive the call", a, v)
	}

	t.Logf("relay forwarded %d media packets, dropped %d; bot sent %d PLI, %d NACK", forwarded, dropped, plis, nacks)
	if dropped == 0 {
		t.Fatal("the relay dropped nothing")
	}
	alog.mu.Lock()
	defer alog.mu.Unlock()
	t.Logf("clock ticks skipped and events dropped: %d during the sending, %d in all", missedAfter-missedBefore, missedAll)
	if got := after - before + missedAfter - missedBefore; got < frames-1-2 || got > frames-1+2 {
		t.Errorf("%d audio events (and %d skipped or dropped) while %d packets were sent 20 ms apart, want %d±2 in all", after-before, missedAfter-missedBefore, frames, frames-1)
	}
	if alog.tsErrors > missedAll {
		t.Errorf("%d audio events whose timestamp did not follow the previous by 20 ms, %d ticks skipped or events dropped", alog.tsErrors, missedAll)
	}
	if want := int(alog.lastTS/(20*time.Millisecond)) + 1; alog.events+missedAll != want {
		t.Errorf("%d audio events and %d skipped or dropped for %v of media, want %d", alog.events, missedAll, alog.lastTS+20*time.Millisecond, want)
	}
	audible := 0
	for _, s := range alog.silent {
		if !s {
			audible++
		}
	}
	if audible < frames*9/10 {
		t.Errorf("%d audible audio events for %d packets sent", audible, frames)
	}
	want := make([]int16, 0, 25*media.FrameSamples)
	frame := make([]int16, media.FrameSamples)
	for i := 60; i < 85; i++ {
		testSignal(i, frame)
		want = append(want, frame...)
	}
	corr, _ := bestCorrelation(want, alog.pcm)
	t.Logf("audio: %d events, %d audible, correlation %.3f", alog.events, audible, corr)

	vlog.mu.Lock()
	defer vlog.mu.Unlock()
	best := 1e9
	for i := frames/2 + 10; i < frames/2+15; i++ {
		best = min(best, lumaError(vlog.last, rtctest.TestPattern(w, h, i), w, h))
	}
	t.Logf("video: %d frames, last luma error %.2f", vlog.frames, best)
	if vlog.frames < frames/4 || best > 6 {
		t.Errorf("video did not recover: %d frames, last picture's luma error %.1f", vlog.frames, best)
	}
	if plis == 0 {
		t.Error("the bot never asked for a key frame")
	}
}

// FuzzAnswer feeds offers (seeded with a real one) to a media configuration's answer: a bad
// offer is an error, never a panic or a leak.
func FuzzAnswer(f *testing.F) {
	offer, err := os.ReadFile("testdata/offer.sdp")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(offer))
	f.Add(strings.Replace(string(offer), "a=mid:audio0", "a=mid:video9", 1))
	f.Add(strings.Replace(string(offer), "a=setup:actpass", "a=setup:passive", -1))
	p, err := NewMediaPlatform(MediaPlatformSettings{InternalIP: "127.0.0.1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	defer p.Close()
	f.Fuzz(func(t *testing.T, offer string) {
		a, err := NewAudioSocket(AudioSocketSettings{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := NewVideoSocket(VideoSocketSettings{Direction: Recvonly})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := p.CreateMediaConfiguration(a, v)
		if err != nil {
			t.Fatal(err)
		}
		defer cfg.close()
		layout, perr := parseOffer(offer)
		start := time.Now()
		answer, err := cfg.answer("fuzz", offer)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("answer took %v (err %v)", d, err)
		}
		if err == nil && !strings.Contains(answer, "a=ice-lite") {
			t.Fatalf("answer without ice-lite:\n%s", answer)
		}
		if err == nil && (perr != nil || layout.slots.audio < 1 || layout.slots.video < 1) {
			t.Fatalf("answered an offer whose slots are %+v (%v)", layout.slots, perr)
		}
	})
}

func TestCreateMediaConfigurationErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, err := NewMediaPlatform(MediaPlatformSettings{InternalIP: "127.0.0.1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var nilAudio *AudioSocket
	if _, err := p.CreateMediaConfiguration(nilAudio); err == nil {
		t.Error("nil AudioSocket accepted")
	}
	a1, _ := NewAudioSocket(AudioSocketSettings{})
	a2, _ := NewAudioSocket(AudioSocketSettings{})
	if _, err := p.CreateMediaConfiguration(a1, a2); err == nil {
		t.Error("two AudioSockets accepted")
	}
	if _, err := NewVideoSocket(VideoSocketSettings{Direction: Sendrecv}); err == nil {
		t.Error("sending video socket without formats accepted")
	}
	if _, err := NewVideoSocket(VideoSocketSettings{ScreenShare: true}); err == nil {
		t.Error("sending screen-share socket accepted")
	}
	cfg, err := p.CreateMediaConfiguration(a1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.answer("c", "v=0\r\n"); err == nil {
		t.Error("bad offer answered")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	if _, err := p.CreateMediaConfiguration(a2); err != ErrPlatformClosed {
		t.Errorf("after Close: %v, want ErrPlatformClosed", err)
	}
}

// TestMediaSlots: IncomingCall.MediaSlots reports the offer's layout, and exactly that many
// VideoSockets answer it: one more fails with ErrBadOffer.
func TestMediaSlots(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p, err := NewMediaPlatform(MediaPlatformSettings{InternalIP: "127.0.0.1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, layout := range []rtc.Layout{rtc.DefaultLayout(), {Audio: 1, Video: 2}, {Audio: 2, Video: 1, ScreenShare: true}} {
		peer, err := rtctest.New(rtctest.Config{Layout: layout})
		if err != nil {
			t.Fatal(err)
		}
		offer, err := peer.Offer(ctx)
		peer.Close()
		if err != nil {
			t.Fatal(err)
		}
		in := incomingFromWire(&protocol.IncomingCall{CallID: "c", MediaOffer: &protocol.SessionDescription{SDP: offer}})
		audio, video, screen := in.MediaSlots()
		if audio != layout.Audio || video != layout.Video || screen != layout.ScreenShare {
			t.Errorf("layout %+v: MediaSlots %d, %d, %v", layout, audio, video, screen)
		}
		for _, n := range []int{video, video + 1} {
			sockets := make([]MediaSocket, n)
			for i := range sockets {
				if sockets[i], err = NewVideoSocket(VideoSocketSettings{Direction: Recvonly}); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := p.CreateMediaConfiguration(sockets...)
			if err != nil {
				t.Fatal(err)
			}
			_, err = cfg.answer("c", offer)
			cfg.close()
			if ok := n <= video; (err == nil) != ok || (!ok && !errors.Is(err, ErrBadOffer)) {
				t.Errorf("layout %+v, %d VideoSockets: answer error %v", layout, n, err)
			}
		}
	}
	if a, v, s := incomingFromWire(&protocol.IncomingCall{CallID: "c"}).MediaSlots(); a != 0 || v != 0 || s {
		t.Errorf("no offer: MediaSlots %d, %d, %v", a, v, s)
	}
	if a, v, s := incomingFromWire(&protocol.IncomingCall{CallID: "c", MediaOffer: &protocol.SessionDescription{SDP: "nonsense"}}).MediaSlots(); a != 0 || v != 0 || s {
		t.Errorf("unreadable offer: MediaSlots %d, %d, %v", a, v, s)
	}
}

// TestLogKeys: the media side logs the call id under the handler's key, call_id, and every
// key is snake case.
func TestLogKeys(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var buf syncBuffer
	p, err := NewMediaPlatform(MediaPlatformSettings{InternalIP: "127.0.0.1", Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := NewAudioSocket(AudioSocketSettings{})
	cfg, err := p.CreateMediaConfiguration(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.answer("c-77", "v=0\r\n"); err == nil {
		t.Fatal("bad offer answered")
	}
	cfg.close()
	_ = p.Close()
	sawCall := false
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["call_id"] == "c-77" {
			sawCall = true
		}
		for k := range rec {
			if strings.ToLower(k) != k {
				t.Errorf("log key %q is not snake case: %s", k, line)
			}
		}
	}
	if !sawCall {
		t.Errorf("no log line with call_id c-77 in:\n%s", buf.String())
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMediaSocketClose: an error path closes the sockets it made through the MediaSocket
// interface, with no type assertion; a closed socket refuses to send and to join a call.
func TestMediaSocketClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a, err := NewAudioSocket(AudioSocketSettings{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVideoSocket(VideoSocketSettings{Direction: Recvonly})
	if err != nil {
		t.Fatal(err)
	}
	sockets := []MediaSocket{a, v}
	for _, s := range sockets {
		s.Close()
		s.Close() // idempotent
	}
	if err := a.Send(&media.AudioBuffer{}); !errors.Is(err, ErrSocketClosed) {
		t.Errorf("audio Send after Close: %v, want ErrSocketClosed", err)
	}
	p, err := NewMediaPlatform(MediaPlatformSettings{InternalIP: "127.0.0.1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.CreateMediaConfiguration(sockets...); !errors.Is(err, ErrSocketInUse) {
		t.Errorf("closed sockets in a media configuration: %v, want ErrSocketInUse", err)
	}
}

// TestPublicAddressAndCertificate: the answer's candidate carries PublicIP:PublicPort, and its
// fingerprint is that of the certificate given in the settings.
func TestPublicAddressAndCertificate(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewMediaPlatform(MediaPlatformSettings{
		InternalIP: "127.0.0.1", PublicIP: "203.0.113.7", PublicPort: 3478,
		Certificate: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sock, _ := NewAudioSocket(AudioSocketSettings{})
	cfg, err := p.CreateMediaConfiguration(sock)
	if err != nil {
		t.Fatal(err)
	}
	offer, err := os.ReadFile("testdata/offer.sdp")
	if err != nil {
		t.Fatal(err)
	}
	answer, err := cfg.answer("c", string(offer))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(answer, " 203.0.113.7 3478 typ host") {
		t.Errorf("answer's candidate is not the public address:\n%s", answer)
	}
	sum := sha256.Sum256(der)
	var fp strings.Builder
	for i, b := range sum {
		if i > 0 {
			fp.WriteByte(':')
		}
		fmt.Fprintf(&fp, "%02X", b)
	}
	if !strings.Contains(strings.ToUpper(answer), "A=FINGERPRINT:SHA-256 "+fp.String()) {
		t.Errorf("answer lacks the certificate's fingerprint %s", fp.String())
	}
}

func TestMediaFailureHook(t *testing.T) {
	m := &MediaConfiguration{}
	var got []error
	m.fail(ErrBadOffer) // before the handler registers: reported at registration
	m.onFailure(func(err error) { got = append(got, err) })
	m.fail(ErrPlatformClosed)
	if len(got) != 1 || got[0] != ErrBadOffer {
		t.Errorf("hook calls %v, want one with the first failure", got)
	}
}

// discardWriter is a transport that sends nothing (tests without a network).
type discardWriter struct{}

func (discardWriter) WriteRTP(*rtp.Packet) error { return nil }
func (discardWriter) WriteRTCP([]byte) error     { return nil }

// readerPath is the platform's reader handing a call's packets to its sockets, without the
// network: audio into a slot's jitter buffer (and the 20 ms clock that plays it), video into
// the socket's ring (taken out again as its goroutine does, without decoding), and a compound
// RTCP packet (receiver report, PLI, REMB) about the stream the video socket sends.
type readerPath struct {
	m     *MediaConfiguration
	audio *AudioSocket
	video *VideoSocket
	apkt  rtp.Packet
	vpkts []rtp.Packet
	opus  [][]byte
	rtcp  []byte
	n     int
}

func newReaderPath(t testing.TB) *readerPath {
	t.Helper()
	a := offlineAudioSocket(t, 3, Recvonly, releaseAll)
	v, err := NewVideoSocket(VideoSocketSettings{Direction: Sendrecv,
		SupportedSendFormats: []media.VideoFormat{{PixelFormat: media.I420, Width: 320, Height: 180, FrameRate: 30}}})
	if err != nil {
		t.Fatal(err)
	}
	v.in = newPacketRing()
	audio0 := rtc.Line{Kind: rtc.KindAudio, Index: 0, MID: rtc.AudioMID(0)}
	video0 := rtc.Line{Kind: rtc.KindVideo, Index: 0, MID: rtc.VideoMID(0)}
	p := &readerPath{audio: a, video: v, opus: encodedSignal(t, 50)}
	p.m = &MediaConfiguration{
		recv: []rtpRoute{{ssrc: 11, sock: a, line: audio0}, {ssrc: 12, sock: a, line: rtc.Line{Kind: rtc.KindAudio, Index: 1, MID: rtc.AudioMID(1)}},
			{ssrc: 21, sock: v, line: video0}},
		sent: []rtpRoute{{ssrc: 99, sock: v, line: video0}},
	}
	p.m.ready.Store(true)
	p.apkt = rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 11, CSRC: []uint32{7}}}
	for _, frame := range videoPackets(t, 4, 320, 180) {
		for _, b := range frame {
			var pkt rtp.Packet
			if err := pkt.Unmarshal(b); err != nil {
				t.Fatal(err)
			}
			pkt.SSRC = 21
			p.vpkts = append(p.vpkts, pkt)
		}
	}
	p.rtcp, err = rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: 5, Reports: []rtcp.ReceptionReport{{SSRC: 99}}},
		&rtcp.PictureLossIndication{SenderSSRC: 5, MediaSSRC: 99},
		&rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 5, Bitrate: 1e6, SSRCs: []uint32{99}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// step is 20 ms of one call: an audio packet, a video packet, the RTCP, and a clock tick.
func (p *readerPath) step() {
	p.apkt.SequenceNumber, p.apkt.Timestamp = uint16(p.n), uint32(p.n*960)
	p.apkt.Payload = p.opus[p.n%len(p.opus)]
	p.m.onRTP(&p.apkt)
	p.m.onRTP(&p.vpkts[p.n%len(p.vpkts)])
	for {
		if _, ok := p.video.in.peek(); !ok {
			break
		}
		p.video.in.pop()
	}
	p.m.onRTCP(p.rtcp)
	p.audio.tick(time.Duration(p.n) * 20 * time.Millisecond)
	p.audio.events.drain(p.audio.deliver)
	p.n++
}

// TestReaderPathAllocs: the reader's hand-off of RTP and RTCP to the sockets allocates nothing,
// and routes by SSRC: audio reaches its slot, video its ring, PLI and REMB the sending socket.
func TestReaderPathAllocs(t *testing.T) {
	if media.DebugChecks {
		t.Skip("the checking build's buffer quarantine is not the steady state")
	}
	p := newReaderPath(t)
	for i := 0; i < 100; i++ {
		p.step()
	}
	if a := testing.AllocsPerRun(200, p.step); a != 0 {
		t.Errorf("%.2f allocations per 20 ms of a call's reader path, want 0", a)
	}
	if got := p.audio.slots[0].pushes.Load(); got != uint64(p.n) {
		t.Errorf("audio slot 0 got %d packets, want %d", got, p.n)
	}
	if got := p.audio.slots[1].pushes.Load(); got != 0 {
		t.Errorf("audio slot 1 got %d packets, want none", got)
	}
	if got := p.video.KeyFrameRequests(); got != uint64(p.n) {
		t.Errorf("%d key frame requests, want %d", got, p.n)
	}
	if got := p.video.estimate.Load(); got != 1e6 {
		t.Errorf("estimate %d bit/s, want 1000000", got)
	}
	unknown := p.apkt
	unknown.SSRC = 12345
	p.m.onRTP(&unknown) // no route: dropped
}

// BenchmarkReaderPath is TestReaderPathAllocs's step: per 20 ms of a call, one audio and one
// video packet and one compound RTCP packet handed over, plus the audio clock's tick.
func BenchmarkReaderPath(b *testing.B) {
	p := newReaderPath(b)
	for i := 0; i < 100; i++ {
		p.step()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.step()
	}
}

// FuzzRTCPFeedback feeds compound RTCP (seeded with what the service sends: reports, PLI, FIR,
// REMB) to the reader's RTCP walk: bad input is skipped, never a panic, and feedback reaches only
// the socket whose SSRC it names.
func FuzzRTCPFeedback(f *testing.F) {
	for _, pkts := range [][]rtcp.Packet{
		{&rtcp.ReceiverReport{SSRC: 5, Reports: []rtcp.ReceptionReport{{SSRC: 99}}}, &rtcp.PictureLossIndication{SenderSSRC: 5, MediaSSRC: 99}},
		{&rtcp.SenderReport{SSRC: 5}, &rtcp.FullIntraRequest{SenderSSRC: 5, FIR: []rtcp.FIREntry{{SSRC: 99, SequenceNumber: 1}, {SSRC: 3}}}},
		{&rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 5, Bitrate: 2.5e6, SSRCs: []uint32{99, 4}}},
		{&rtcp.TransportLayerNack{SenderSSRC: 5, MediaSSRC: 99, Nacks: []rtcp.NackPair{{PacketID: 7, LostPackets: 3}}}},
	} {
		b, err := rtcp.Marshal(pkts)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := NewVideoSocket(VideoSocketSettings{Direction: Sendonly,
			SupportedSendFormats: []media.VideoFormat{{PixelFormat: media.I420, Width: 320, Height: 180, FrameRate: 30}}})
		if err != nil {
			t.Fatal(err)
		}
		other, err := NewVideoSocket(VideoSocketSettings{Direction: Sendonly,
			SupportedSendFormats: []media.VideoFormat{{PixelFormat: media.I420, Width: 320, Height: 180, FrameRate: 30}}})
		if err != nil {
			t.Fatal(err)
		}
		m := &MediaConfiguration{sent: []rtpRoute{{ssrc: 99, sock: v}, {ssrc: 98, sock: other}}}
		m.ready.Store(true)
		m.onRTCP(in)
		if bytes.Contains(in, []byte{0, 0, 0, 98}) {
			return // the input may name the other socket
		}
		if other.KeyFrameRequests() != 0 || other.estimate.Load() != int64(other.settings.MaxBitrateKbps)*1000 {
			t.Errorf("feedback reached a socket the input does not name")
		}
	})
}

// TestConsentLost: a service that stops reaching the bot (no ICE check, no packet: here the relay
// between them stops) fails the call's media once the consent timeout has passed, with an error
// wrapping leg.ErrConsent, as pion's failed ICE state did; the sockets go Inactive.
func TestConsentLost(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var alog audioLog
	asock, err := NewAudioSocket(alog.settings(Sendrecv))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewMediaPlatform(MediaPlatformSettings{InternalIP: "127.0.0.1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.consentTimeout, p.consentCheck = 4*time.Second, 50*time.Millisecond // pion checks every 2 s
	cfg, err := p.CreateMediaConfiguration(asock)
	if err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 1)
	cfg.onFailure(func(err error) { failed <- err })
	peer, err := rtctest.New(rtctest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	offer, err := peer.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := cfg.answer("consent", offer)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := rtctest.NewRelay(p.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	if err := peer.Accept(rtctest.RewriteCandidates(answer, relay.Addr())); err != nil {
		t.Fatal(err)
	}
	if err := peer.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failed:
		t.Fatalf("media failed while the service was there: %v", err)
	case <-time.After(5 * time.Second): // consent held past the timeout
	}
	relay.Close()
	select {
	case err := <-failed:
		if !errors.Is(err, leg.ErrConsent) {
			t.Errorf("media failed with %v, want leg.ErrConsent", err)
		}
	case <-ctx.Done():
		t.Fatal("media did not fail after the service went silent")
	}
	if st := asock.SendStatus(); st != Inactive {
		t.Errorf("send status %v after the failure, want Inactive", st)
	}
	cfg.close()
}

// TestClockStartSpreadsPhases: audio clocks started at the same instant tick at phases spread
// over the 20 ms frame, each within one frame of the start, and none two alike.
func TestClockStartSpreadsPhases(t *testing.T) {
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &MediaPlatform{epoch: epoch}
	const n = 50
	now := epoch.Add(7*time.Second + 3*time.Millisecond)
	var phases []time.Duration
	for range n {
		start := p.clockStart(now)
		if start.Before(now) || !start.Before(now.Add(playout.FrameDuration)) {
			t.Fatalf("clock starts at %v, not within a frame of %v", start.Sub(now), now)
		}
		phases = append(phases, start.Sub(epoch)%playout.FrameDuration)
	}
	slices.Sort(phases)
	// n points of a golden-ratio sequence leave gaps of at most three lengths, the smallest
	// above frame/(n·φ²); a clustered schedule would have gaps of 0.
	for i := 1; i < n; i++ {
		if gap := phases[i] - phases[i-1]; gap < playout.FrameDuration/(n*3) {
			t.Fatalf("phases %v and %v only %v apart: %v", phases[i-1], phases[i], gap, phases)
		}
	}
	if spread := phases[n-1] - phases[0]; spread < playout.FrameDuration*9/10 {
		t.Fatalf("phases cover %v of the %v frame", spread, playout.FrameDuration)
	}
}
