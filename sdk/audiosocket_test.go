package sdk

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/internal/opus"
	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/rtc/rtctest"
	"github.com/switchboard-rtc/switchboard/media"
)

// testCall is a bot's media platform connected to a test peer in the service's role.
type testCall struct {
	platform *MediaPlatform
	config   *MediaConfiguration
	peer     *rtctest.Peer
	relay    *rtctest.Relay
}

// newTestCall answers a fresh peer's offer with sockets and waits until both sides connect. With
// relay, the peer reaches the bot through an impairing relay.
func newTestCall(t testing.TB, relay bool, sockets ...MediaSocket) *testCall {
	t.Helper()
	return newTestCallOn(t, MediaPlatformSettings{}, relay, sockets...)
}

// newTestCallOn is newTestCall on a platform with settings (its address and names are the
// test's).
func newTestCallOn(t testing.TB, settings MediaPlatformSettings, relay bool, sockets ...MediaSocket) *testCall {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	settings.InternalIP, settings.ServiceFQDN, settings.AppID = "127.0.0.1", "bot.test", "test"
	p, err := NewMediaPlatform(settings)
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCall{platform: p}
	t.Cleanup(tc.close)
	tc.config, err = p.CreateMediaConfiguration(sockets...)
	if err != nil {
		t.Fatal(err)
	}
	tc.peer, err = rtctest.New(rtctest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	offer, err := tc.peer.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := tc.config.answer("call-1", offer)
	if err != nil {
		t.Fatal(err)
	}
	if relay {
		if tc.relay, err = rtctest.NewRelay(p.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		answer = rtctest.RewriteCandidates(answer, tc.relay.Addr())
	}
	if err := tc.peer.Accept(answer); err != nil {
		t.Fatal(err)
	}
	if err := tc.peer.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return tc
}

func (tc *testCall) close() {
	if tc.peer != nil {
		tc.peer.Close()
	}
	if tc.config != nil {
		tc.config.close()
	}
	if tc.relay != nil {
		tc.relay.Close()
	}
	_ = tc.platform.Close()
}

// audioLog collects a socket's events.
type audioLog struct {
	mu       sync.Mutex
	events   int
	pcm      []int16 // every frame's samples, in order
	silent   []bool
	speakers map[uint32]int
	unmixed  int
	statuses []MediaSendStatus
	dominant []uint32
	lastTS   time.Duration
	tsErrors int
}

func (l *audioLog) settings(dir StreamDirection) AudioSocketSettings {
	l.speakers = map[uint32]int{}
	return AudioSocketSettings{
		Direction: dir,
		OnAudioReceived: func(e AudioReceivedEvent) {
			l.mu.Lock()
			if l.events > 0 && e.Buffer.Timestamp != l.lastTS+20*time.Millisecond {
				l.tsErrors++
			}
			l.lastTS = e.Buffer.Timestamp
			l.events++
			l.pcm = append(l.pcm, e.Buffer.Samples()...)
			l.silent = append(l.silent, e.Buffer.Silence)
			for _, id := range e.Buffer.ActiveSpeakers() {
				l.speakers[id]++
			}
			l.unmixed += len(e.Unmixed)
			l.mu.Unlock()
			e.Buffer.Release()
			for _, u := range e.Unmixed {
				u.Release()
			}
		},
		OnSendStatusChanged: func(s MediaSendStatus) {
			l.mu.Lock()
			l.statuses = append(l.statuses, s)
			l.mu.Unlock()
		},
		OnDominantSpeakerChanged: func(id uint32) {
			l.mu.Lock()
			l.dominant = append(l.dominant, id)
			l.mu.Unlock()
		},
	}
}

func (l *audioLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.events
}

// testSignal is frame i of a test signal: two tones whose loudness swells and fades, so that
// alignment by correlation has one clear peak.
func testSignal(i int, pcm []int16) {
	for k := range pcm {
		n := float64(i*len(pcm) + k)
		env := 0.55 + 0.45*math.Sin(2*math.Pi*n/16000/0.7)
		v := env * (6000*math.Sin(2*math.Pi*330*n/16000) + 3000*math.Sin(2*math.Pi*1210*n/16000))
		pcm[k] = int16(v)
	}
}

// bestCorrelation returns the highest normalised correlation of want against got over all
// alignments (got may lead by any amount of leading silence).
func bestCorrelation(want, got []int16) (corr float64, lag int) {
	best, bestLag := -1.0, 0
	var ew float64
	for _, v := range want {
		ew += float64(v) * float64(v)
	}
	for l := 0; l+len(want) <= len(got); l++ {
		var dot, eg float64
		for i, v := range want {
			g := float64(got[l+i])
			dot += float64(v) * g
			eg += g * g
		}
		if eg == 0 {
			continue
		}
		if c := dot / math.Sqrt(ew*eg); c > best {
			best, bestLag = c, l
		}
	}
	return best, bestLag
}

// sendPaced sends frames [0, n) of testSignal on slot with source, one every 20 ms of wall
// clock without drift, and calls at(i) just before frame i.
func sendPaced(t testing.TB, peer *rtctest.Peer, slot int, source uint32, n int, at func(i int)) {
	t.Helper()
	pcm := make([]int16, media.FrameSamples)
	start := time.Now()
	for i := 0; i < n; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * 20 * time.Millisecond)))
		if at != nil {
			at(i)
		}
		testSignal(i, pcm)
		if err := peer.SendAudio(slot, source, pcm); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAudioReceive: a speaker's audio on the second audio m-line reaches the bot as one event
// per 20 ms of media, carrying the signal and the speaker's source id.
func TestAudioReceive(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var log audioLog
	settings := log.settings(Recvonly)
	settings.ReceiveUnmixed = true
	sock, err := NewAudioSocket(settings)
	if err != nil {
		t.Fatal(err)
	}
	metrics := NewAudioMetrics()
	tc := newTestCallOn(t, MediaPlatformSettings{AudioMetrics: metrics}, false, sock)

	const frames = 150
	// A machine that stalls the process makes the socket's clock skip ticks, and a slow event
	// goroutine makes the socket drop events, both by design; the counts allow for them.
	missed := func() int { return int(sock.clockStats.Stats().Skipped + sock.Dropped()) }
	var before, after, missedBefore, missedAfter int
	sendPaced(t, tc.peer, 1, 4242, frames, func(i int) {
		if i == 0 {
			before, missedBefore = log.count(), missed()
		}
	})
	after, missedAfter = log.count(), missed()
	tc.config.dominantSpeakerChanged(4242)
	time.Sleep(300 * time.Millisecond) // let the jitter buffer play out
	tc.close()
	missedAll := missed()
	if st := sock.pool.Stats(); st.Outstanding != 0 {
		t.Errorf("%d audio buffers outlive the call", st.Outstanding)
	}
	// The platform's AudioMetrics saw every event the bot did.
	var counted dto.Metric
	if err := metrics.events.Write(&counted); err != nil {
		t.Fatal(err)
	}
	if got, want := counted.GetCounter().GetValue(), float64(log.count()); got != want {
		t.Errorf("the platform's AudioMetrics counted %v events, the bot got %v", got, want)
	}

	if got := after - before + missedAfter - missedBefore; got < frames-1-2 || got > frames-1+2 {
		t.Errorf("%d events (and %d skipped or dropped) while %d packets were sent 20 ms apart, want %d±2 in all", after-before, missedAfter-missedBefore, frames, frames-1)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if log.tsErrors > missedAll {
		t.Errorf("%d events whose timestamp did not follow the previous by 20 ms, %d ticks skipped or events dropped", log.tsErrors, missedAll)
	}
	if want := int(log.lastTS/(20*time.Millisecond)) + 1; log.events+missedAll != want {
		t.Errorf("%d events and %d skipped or dropped for %v of media, want %d (one per 20 ms)", log.events, missedAll, log.lastTS+20*time.Millisecond, want)
	}
	audible := 0
	for _, s := range log.silent {
		if !s {
			audible++
		}
	}
	if audible < frames-2 || audible > frames+8 {
		t.Errorf("%d audible events for %d packets", audible, frames)
	}
	if log.speakers[4242] < frames*8/10 {
		t.Errorf("source 4242 active in %d events, want most of %d (speakers %v)", log.speakers[4242], frames, log.speakers)
	}
	if log.unmixed < frames*8/10 {
		t.Errorf("%d unmixed buffers", log.unmixed)
	}
	if len(log.dominant) != 1 || log.dominant[0] != 4242 {
		t.Errorf("dominant speaker events %v, want [4242]", log.dominant)
	}
	want := make([]int16, 0, 50*media.FrameSamples)
	frame := make([]int16, media.FrameSamples)
	for i := 50; i < 100; i++ { // a stretch from the middle of the signal
		testSignal(i, frame)
		want = append(want, frame...)
	}
	corr, lag := bestCorrelation(want, log.pcm)
	t.Logf("events %d, audible %d, correlation %.3f at lag %d samples, last ts %v, dropped %d", log.events, audible, corr, lag, log.lastTS, sock.Dropped())
	if corr < 0.9 {
		t.Errorf("correlation of received audio with the signal sent = %.3f, want ≥ 0.9", corr)
	}
}

// TestAudioSend: the bot's audio reaches the peer on audio0 and decodes to what was sent; the
// send status turns Active once connected, and every sent buffer comes back through OnSendDone.
func TestAudioSend(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var log audioLog
	settings := log.settings(Sendrecv)
	active := make(chan struct{})
	var once sync.Once
	settings.OnSendStatusChanged = func(s MediaSendStatus) {
		if s == Active {
			once.Do(func() { close(active) })
		}
	}
	var doneMu sync.Mutex
	done := 0
	settings.OnSendDone = func(b *media.AudioBuffer) {
		doneMu.Lock()
		done++
		doneMu.Unlock()
		b.Release()
	}
	sock, err := NewAudioSocket(settings)
	if err != nil {
		t.Fatal(err)
	}
	if err := sock.Send(&media.AudioBuffer{}); err != ErrNotSending {
		t.Errorf("Send before connecting: %v, want ErrNotSending", err)
	}
	tc := newTestCall(t, false, sock)
	select {
	case <-active:
	case <-time.After(10 * time.Second):
		t.Fatal("send status never became Active")
	}
	pool := media.NewAudioPool("bot")
	const frames = 150
	start := time.Now()
	for i := 0; i < frames; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * 20 * time.Millisecond)))
		b := pool.Get()
		testSignal(i, b.Samples())
		if err := sock.Send(b); err != nil {
			t.Fatalf("Send frame %d: %v", i, err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	got, packets := tc.peer.ReceivedAudio()
	tc.close()
	doneMu.Lock()
	defer doneMu.Unlock()
	if done != frames {
		t.Errorf("OnSendDone called %d times for %d frames", done, frames)
	}
	if st := pool.Stats(); st.Outstanding != 0 {
		t.Errorf("bot's pool has %d buffers outstanding", st.Outstanding)
	}
	if packets < frames-2 {
		t.Errorf("peer received %d packets of %d", packets, frames)
	}
	want := make([]int16, 0, 50*media.FrameSamples)
	frame := make([]int16, media.FrameSamples)
	for i := 50; i < 100; i++ {
		testSignal(i, frame)
		want = append(want, frame...)
	}
	corr, _ := bestCorrelation(want, got)
	t.Logf("peer got %d packets, correlation %.3f", packets, corr)
	if corr < 0.9 {
		t.Errorf("correlation of the bot's audio at the peer = %.3f, want ≥ 0.9", corr)
	}
}

// TestNothingAfterClose: once the call's media is closed, no socket callback runs again, every
// buffer the bot handed to Send came back through OnSendDone, and Send (even racing the close)
// refuses with ErrSocketClosed, leaving the buffer the bot's.
func TestNothingAfterClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var closed, late atomic.Bool
	var audio *AudioSocket
	audio, err := NewAudioSocket(AudioSocketSettings{
		Direction: Sendrecv,
		OnAudioReceived: func(e AudioReceivedEvent) {
			if closed.Load() {
				late.Store(true)
			}
			if audio.Send(e.Buffer) != nil {
				e.Buffer.Release()
			}
		},
		OnSendDone: func(b *media.AudioBuffer) {
			if closed.Load() {
				late.Store(true)
			}
			b.Release()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	video, err := NewVideoSocket(VideoSocketSettings{Direction: Sendrecv, SupportedSendFormats: []media.VideoFormat{media.NV12_320x180_15},
		OnSendDone: func(b *media.VideoBuffer) {
			if closed.Load() {
				late.Store(true)
			}
			b.Release()
		}})
	if err != nil {
		t.Fatal(err)
	}
	tc := newTestCall(t, false, audio, video)
	waitUntil(t, 10*time.Second, "both sockets Active", func() bool { return audio.SendStatus() == Active && video.SendStatus() == Active })
	// A bot goroutine keeps sending through the close.
	apool, vpool := media.NewAudioPool("bot audio"), media.NewVideoPool("bot video")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var refusedAudio, refusedVideo atomic.Int64
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if b := apool.Get(); audio.Send(b) != nil {
				b.Release()
				refusedAudio.Add(1)
			}
			if b := vpool.Get(media.NV12_320x180_15); video.Send(b) != nil {
				b.Release()
				refusedVideo.Add(1)
			}
			time.Sleep(time.Millisecond)
		}
	})
	time.Sleep(300 * time.Millisecond)
	tc.config.close()
	closed.Store(true)
	if err := audio.Send(apool.Get()); !errors.Is(err, ErrSocketClosed) {
		t.Errorf("audio Send after close: %v, want ErrSocketClosed", err)
	}
	if err := video.Send(vpool.Get(media.NV12_320x180_15)); !errors.Is(err, ErrSocketClosed) {
		t.Errorf("video Send after close: %v, want ErrSocketClosed", err)
	}
	time.Sleep(200 * time.Millisecond) // room for a stray callback
	close(stop)
	wg.Wait()
	tc.close()
	if late.Load() {
		t.Error("a socket callback ran after the media was closed")
	}
	// Two buffers were refused above and are still the test's; everything else came back.
	if st := apool.Stats(); st.Outstanding != 1 {
		t.Errorf("bot's audio pool has %d buffers outstanding, want 1", st.Outstanding)
	}
	if st := vpool.Stats(); st.Outstanding != 1 {
		t.Errorf("bot's video pool has %d buffers outstanding, want 1", st.Outstanding)
	}
	t.Logf("refused after close: %d audio, %d video", refusedAudio.Load(), refusedVideo.Load())
}

// TestAnswerLayout: the answer keeps the offer's m-lines; lines without a socket are inactive and
// directions follow the sockets.
func TestAnswerLayout(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sock, err := NewAudioSocket(AudioSocketSettings{Direction: Sendonly})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewMediaPlatform(MediaPlatformSettings{InternalIP: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg, err := p.CreateMediaConfiguration(sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateMediaConfiguration(sock); err != ErrSocketInUse {
		t.Errorf("second configuration with the same socket: %v, want ErrSocketInUse", err)
	}
	peer, err := rtctest.New(rtctest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offer, err := peer.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := cfg.answer("call-2", offer)
	if err != nil {
		t.Fatal(err)
	}
	mids, dirs, err := rtc.MIDs(answer)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"audio0": "sendonly", "audio1": "inactive", "audio2": "inactive", "video0": "inactive", rtc.ScreenShareMID: "inactive"}
	for i, mid := range mids {
		if w, ok := want[mid]; ok && dirs[i].String() != w {
			t.Errorf("m-line %s is %s, want %s", mid, dirs[i], w)
		}
	}
	if _, err := cfg.answer("call-2", offer); err == nil {
		t.Error("second answer accepted")
	}
	cfg.close()
	cfg.close()
}

// offlineAudioSocket is a receiving (and, with send, sending) socket with lines audio slots and
// no network: the test feeds the slots' playouts and runs the clock's tick by hand.
func offlineAudioSocket(t testing.TB, lines int, dir StreamDirection, onAudio func(AudioReceivedEvent)) *AudioSocket {
	t.Helper()
	return offlineAudioSocketClock(t, lines, dir, onAudio, nil)
}

// offlineAudioSocketClock is offlineAudioSocket with the slots' playouts on the clock now (nil:
// their own).
func offlineAudioSocketClock(t testing.TB, lines int, dir StreamDirection, onAudio func(AudioReceivedEvent), now func() time.Duration) *AudioSocket {
	t.Helper()
	s, err := NewAudioSocket(AudioSocketSettings{Direction: dir, ReceiveUnmixed: true, OnAudioReceived: onAudio})
	if err != nil {
		t.Fatal(err)
	}
	call := &callMedia{ctx: context.Background(), callID: "offline", log: slog.New(slog.DiscardHandler)}
	for i := 0; i < lines; i++ {
		call.lines = append(call.lines, rtc.Line{Kind: rtc.KindAudio, Index: i, MID: rtc.AudioMID(i)})
	}
	if dir.sends() {
		s.sendOn(rtc.Line{Kind: rtc.KindAudio, MID: rtc.AudioMID(0)}, discardWriter{}, 1)
	}
	s.mu.Lock()
	s.call = call
	s.log = call.log
	s.playoutNow = now
	for _, line := range call.lines {
		sl, err := s.newSlot(line.Index)
		if err != nil {
			t.Fatal(err)
		}
		s.slots = append(s.slots, sl)
	}
	s.order = make([]int, 0, lines)
	s.ids = make([]uint32, 0, lines)
	if dir.sends() {
		s.enc, err = s.newEncoder()
		if err != nil {
			t.Fatal(err)
		}
		s.opusOut = make([]byte, opus.MaxPacketSize)
		s.status.Store(uint32(Active))
	}
	s.mu.Unlock()
	t.Cleanup(s.close)
	return s
}

// encodedSignal returns n Opus packets of testSignal.
func encodedSignal(t testing.TB, n int) [][]byte {
	t.Helper()
	enc, err := opus.NewEncoder(opus.EncoderConfig{Bitrate: 32000})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	pcm := make([]int16, media.FrameSamples)
	out := make([][]byte, n)
	for i := range out {
		testSignal(i, pcm)
		b := make([]byte, opus.MaxPacketSize)
		m, err := enc.Encode(pcm, b)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b[:m]
	}
	return out
}

// audioFrameStep is one 20 ms of a call's audio path without the network: a packet into each
// slot (as the read goroutines do), one clock tick (playout, mix, speakers, unmixed buffers,
// encode and RTP of a frame the bot sent through Send), and the event goroutine's delivery to
// a bot that releases everything.
type audioFrameStep struct {
	s        *AudioSocket
	packets  [][]byte
	pool     *media.AudioPool
	n        int
	speakers int // slots that get packets; 0: all
}

func (a *audioFrameStep) step() {
	pkt := a.packets[a.n%len(a.packets)]
	for i, sl := range a.s.slots {
		if a.speakers > 0 && i >= a.speakers {
			break
		}
		sl.source.Store(uint32(10 + i))
		sl.push(uint16(a.n), uint32(a.n*960), pkt)
	}
	if a.s.sender != nil {
		b := a.pool.Get()
		copy(b.Samples(), a.s.slots[0].pcm[:])
		if err := a.s.Send(b); err != nil {
			panic(err)
		}
	}
	a.s.tick(time.Duration(a.n) * 20 * time.Millisecond)
	a.s.events.drain(a.s.deliver)
	a.n++
}

func releaseAll(e AudioReceivedEvent) {
	e.Buffer.Release()
	for _, u := range e.Unmixed {
		u.Release()
	}
}

// TestAudioFrameAllocs: the per-frame audio path allocates nothing in the steady state.
func TestAudioFrameAllocs(t *testing.T) {
	if media.DebugChecks {
		t.Skip("the checking build's buffer quarantine is not the steady state")
	}
	for _, dir := range []StreamDirection{Recvonly, Sendrecv} {
		for _, speakers := range []int{3, 1} {
			a := &audioFrameStep{s: offlineAudioSocket(t, 3, dir, releaseAll), packets: encodedSignal(t, 50), pool: media.NewAudioPool("bot"), speakers: speakers}
			for i := 0; i < 200; i++ {
				a.step()
			}
			if n := testing.AllocsPerRun(200, a.step); n != 0 {
				t.Errorf("%v, %d speakers: %.2f allocations per audio frame, want 0", dir, speakers, n)
			}
		}
	}
}

// BenchmarkAudioFrame measures the per-frame audio path of one call with three speakers
// (decode, mix, unmixed buffers, delivery), and with sending (plus Opus encode); the
// "1speaker" cases have audio on one of the three slots, the others idle, as most calls do.
func BenchmarkAudioFrame(b *testing.B) {
	for _, c := range []struct {
		dir      StreamDirection
		speakers int
	}{{Recvonly, 3}, {Sendrecv, 3}, {Recvonly, 1}, {Sendrecv, 1}} {
		name := c.dir.String()
		if c.speakers == 1 {
			name += "-1speaker"
		}
		dir := c.dir
		b.Run(name, func(b *testing.B) {
			a := &audioFrameStep{s: offlineAudioSocket(b, 3, dir, releaseAll), packets: encodedSignal(b, 50), pool: media.NewAudioPool("bot"), speakers: c.speakers}
			for i := 0; i < 200; i++ {
				a.step()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a.step()
			}
		})
	}
}

// speechLikeSignal is frame i of a voiced, speech-like signal: a harmonic series on a gliding
// pitch with two formant-like peaks, under a syllable-rate envelope.
func speechLikeSignal(i int, pcm []int16) {
	for k := range pcm {
		t := float64(i*len(pcm)+k) / 16000
		// The pitch glides between 100 and 180 Hz; its phase is the integral of the frequency.
		phase := 2 * math.Pi * (140*t - 40/(2*math.Pi*1.3)*math.Cos(2*math.Pi*1.3*t))
		env := 0.55 + 0.45*math.Sin(2*math.Pi*3.7*t)
		f0 := 140 + 40*math.Sin(2*math.Pi*1.3*t)
		var v float64
		for h := 1; h <= 12; h++ {
			fh := f0 * float64(h)
			w := 1/(1+math.Pow((fh-500)/300, 2)) + 0.6/(1+math.Pow((fh-1500)/400, 2)) + 0.05
			v += w * math.Sin(float64(h)*phase)
		}
		pcm[k] = int16(max(-32768, min(32767, 3500*env*v)))
	}
}

// toneSignal is frame i of a 1 kHz tone at about -12 dBFS.
func toneSignal(i int, pcm []int16) {
	for k := range pcm {
		n := float64(i*len(pcm) + k)
		pcm[k] = int16(8000 * math.Sin(2*math.Pi*1000*n/16000))
	}
}

// codecPass encodes frames frames of signal as the socket does (32 kbit/s, FEC, the given
// complexity), decodes them and returns the correlation and the SNR (dB) of the decoded audio
// against the input, aligned for the codec's delay, past the first 100 ms.
func codecPass(t *testing.T, cfg opus.EncoderConfig, signal func(int, []int16), frames int) (corr, snr float64) {
	t.Helper()
	enc, err := opus.NewEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.SetComplexity(cfg.Complexity); err != nil { // 0 is a complexity here, not "the default"
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := opus.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	in := make([]int16, frames*media.FrameSamples)
	out := make([]int16, 0, len(in))
	pkt := make([]byte, opus.MaxPacketSize)
	pcm := make([]int16, opus.MaxFrameSamples)
	for i := 0; i < frames; i++ {
		frame := in[i*media.FrameSamples : (i+1)*media.FrameSamples]
		signal(i, frame)
		n, err := enc.Encode(frame, pkt)
		if err != nil {
			t.Fatal(err)
		}
		m, err := dec.Decode(pkt[:n], pcm)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pcm[:m]...)
	}
	const skip, maxLag = 1600, 800
	window := in[skip : len(in)-maxLag]
	var ew float64
	for _, v := range window {
		ew += float64(v) * float64(v)
	}
	best, lag := -1.0, 0
	for l := 0; l <= maxLag; l++ {
		var dot, eg float64
		for i, v := range window {
			g := float64(out[skip+l+i])
			dot += float64(v) * g
			eg += g * g
		}
		if eg > 0 && dot/math.Sqrt(ew*eg) > best {
			best, lag = dot/math.Sqrt(ew*eg), l
		}
	}
	var noise float64
	for i, v := range window {
		d := float64(v) - float64(out[skip+lag+i])
		noise += d * d
	}
	return best, 10 * math.Log10(ew/noise)
}

// TestOpusEncodingQuality: both encodings at the socket's default complexity (0) keep the audio
// tests' bar (correlation ≥ 0.9 through encode and decode) on speech-like audio and on tones, and
// the default, LowDelayEncoding, keeps the waveform at SNR ≥ 15 dB; the figures of complexity 1
// and 5 are logged beside them for the trade-off.
func TestOpusEncodingQuality(t *testing.T) {
	for _, sig := range []struct {
		name string
		f    func(int, []int16)
	}{{"speech-like", speechLikeSignal}, {"two tones", testSignal}, {"1 kHz tone", toneSignal}} {
		for _, e := range []AudioEncoding{LowDelayEncoding, VoiceEncoding} {
			for _, c := range []int{0, 1, 5} {
				cfg := e.encoderConfig(32000)
				cfg.Complexity = c
				corr, snr := codecPass(t, cfg, sig.f, 150)
				t.Logf("%s, %s encoding, complexity %d: correlation %.4f, SNR %.1f dB", sig.name, e, c, corr, snr)
				if c != 0 {
					continue
				}
				if corr < 0.9 {
					t.Errorf("%s through %s encoding: correlation %.3f, want ≥ 0.9", sig.name, e, corr)
				}
				if e == LowDelayEncoding && snr < 15 {
					t.Errorf("%s through %s encoding: SNR %.1f dB, want ≥ 15", sig.name, e, snr)
				}
			}
		}
	}
}

// TestIdleSlotsCostNothing: a slot that has had no packet for idleAfter ticks is not played
// (its playout's Next is not called: its frame count stands still) while the others play on;
// every tick still makes exactly one event, comfort noise when nobody plays; a slot that
// speaks again after a pause (its timestamps moved on with the wall clock, as the service's
// rewriter sends them) is heard within a few frames, with its source among the active speakers.
func TestIdleSlotsCostNothing(t *testing.T) {
	var now time.Duration
	var events []AudioReceivedEvent
	keep := func(e AudioReceivedEvent) {
		for _, u := range e.Unmixed {
			u.Release()
		}
		events = append(events, e)
	}
	s := offlineAudioSocketClock(t, 3, Recvonly, keep, func() time.Duration { return now })
	packets := encodedSignal(t, 50)
	var seq [3]uint16
	push := func(slot, tick int) {
		sl := s.slots[slot]
		sl.source.Store(uint32(10 + slot))
		sl.push(seq[slot], uint32(tick*960), packets[tick%len(packets)])
		seq[slot]++
	}
	frames := func(slot int) uint64 { return s.slots[slot].play.Load().Stats().Frames }
	tick := 0
	run := func(until int, speaking func(slot, tick int) bool) {
		for ; tick < until; tick++ {
			for slot := range s.slots {
				if speaking(slot, tick) {
					push(slot, tick)
				}
			}
			s.tick(time.Duration(tick) * 20 * time.Millisecond)
			s.events.drain(s.deliver)
			now += 20 * time.Millisecond
		}
	}
	release := func() {
		for _, e := range events {
			e.Buffer.Release()
		}
		events = events[:0]
	}
	defer release()

	// Slots 0 and 1 speak, slot 2 never does.
	run(40, func(slot, _ int) bool { return slot < 2 })
	if f := frames(2); f > idleAfter+1 {
		t.Errorf("slot 2, never spoken on, played %d frames in 40 ticks, want at most %d", f, idleAfter+1)
	}
	// Slot 1 pauses for 60 ticks (1.2 s).
	run(100, func(slot, _ int) bool { return slot == 0 })
	f0, f1, f2 := frames(0), frames(1), frames(2)
	run(140, func(slot, _ int) bool { return slot == 0 })
	if d := frames(0) - f0; d != 40 {
		t.Errorf("slot 0, speaking, played %d frames in 40 ticks, want 40", d)
	}
	if d1, d2 := frames(1)-f1, frames(2)-f2; d1 != 0 || d2 != 0 {
		t.Errorf("idle slots played %d and %d frames in 40 ticks, want 0", d1, d2)
	}
	if len(events) != 140 {
		t.Fatalf("%d events in 140 ticks, want 140", len(events))
	}
	for i, e := range events[100:] {
		if e.Buffer.Silence || !slices.Equal(e.Buffer.ActiveSpeakers(), []uint32{10}) {
			t.Fatalf("tick %d: silence %v, active speakers %v; want slot 0's speaker alone", 100+i, e.Buffer.Silence, e.Buffer.ActiveSpeakers())
		}
	}
	release()

	// Slot 1 speaks again, its timestamps 1.2 s further on.
	run(150, func(slot, _ int) bool { return slot < 2 })
	heard := -1
	for i, e := range events {
		if slices.Contains(e.Buffer.ActiveSpeakers(), 11) {
			heard = i
			break
		}
	}
	t.Logf("slot 1 heard again %d ticks after its first packet", heard)
	if heard < 0 || heard > 3 {
		t.Errorf("slot 1 speaking again: first heard %d ticks later, want within 3", heard)
	}
	for i, e := range events[5:] {
		if !slices.Equal(e.Buffer.ActiveSpeakers(), []uint32{10, 11}) && !slices.Equal(e.Buffer.ActiveSpeakers(), []uint32{11, 10}) {
			t.Errorf("tick %d: active speakers %v, want 10 and 11", 145+i, e.Buffer.ActiveSpeakers())
		}
	}
	release()

	// Everybody stops: once every slot idles, each tick is comfort noise made once for the mix.
	run(250, func(int, int) bool { return false })
	for i, e := range events {
		if !e.Buffer.Silence && i >= 10 {
			t.Fatalf("tick %d: not silence with nobody speaking", 150+i)
		}
	}
	f0, f1, f2 = frames(0), frames(1), frames(2)
	run(260, func(int, int) bool { return false })
	if frames(0) != f0 || frames(1) != f1 || frames(2) != f2 {
		t.Errorf("slots idle for 100 ticks still played")
	}
	if len(events) != 110 {
		t.Fatalf("%d events in 110 ticks, want 110", len(events))
	}
	last := events[len(events)-1].Buffer
	if l := meanAbs(last.Samples()); l == 0 || l >= speakerThreshold {
		t.Errorf("comfort noise level %d, want quiet but not digital silence", l)
	}
	if len(last.ActiveSpeakers()) != 0 {
		t.Errorf("active speakers %v in comfort noise", last.ActiveSpeakers())
	}
}
