package sdk

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/rtc/rtctest"
	"github.com/switchboard-rtc/switchboard/internal/vp8"
	"github.com/switchboard-rtc/switchboard/internal/yuv"
	"github.com/switchboard-rtc/switchboard/media"
)

// videoLog collects a video socket's events.
type videoLog struct {
	mu       sync.Mutex
	frames   int
	sources  map[uint32]int
	last     []byte
	format   media.VideoFormat
	original media.VideoFormat
	statuses []VideoSendStatusEvent
}

func (l *videoLog) settings(s VideoSocketSettings) VideoSocketSettings {
	l.sources = map[uint32]int{}
	s.OnVideoReceived = func(e VideoReceivedEvent) {
		l.mu.Lock()
		l.frames++
		l.sources[e.Buffer.SourceID]++
		l.format = e.Buffer.Format()
		l.original = e.Buffer.OriginalFormat
		l.last = append(l.last[:0], e.Buffer.Data()...)
		l.mu.Unlock()
		e.Buffer.Release()
	}
	s.OnSendStatusChanged = func(e VideoSendStatusEvent) {
		l.mu.Lock()
		l.statuses = append(l.statuses, e)
		l.mu.Unlock()
	}
	return s
}

func (l *videoLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.frames
}

// lumaError is the mean absolute difference of two pictures' luma planes (the first w·h bytes).
func lumaError(a, b []byte, w, h int) float64 {
	var sum int
	for i := 0; i < w*h; i++ {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		sum += d
	}
	return float64(sum) / float64(w*h)
}

func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestVideoReceive: two video slots and the screen share reach their sockets as NV12 frames that
// show the test pattern, each with its sender's source id.
func TestVideoReceive(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var logs [3]videoLog
	var socks [3]*VideoSocket
	for i := range socks {
		var err error
		socks[i], err = NewVideoSocket(logs[i].settings(VideoSocketSettings{Direction: Recvonly, ScreenShare: i == 2}))
		if err != nil {
			t.Fatal(err)
		}
	}
	tc := newTestCall(t, false, socks[0], socks[1], socks[2])
	if socks[0].ID() != 0 || socks[1].ID() != 1 {
		t.Errorf("socket ids %d, %d", socks[0].ID(), socks[1].ID())
	}
	mids := []string{rtc.VideoMID(0), rtc.VideoMID(1), rtc.ScreenShareMID}
	sizes := [][2]int{{320, 180}, {160, 90}, {640, 360}}
	// The roster tells the sender's original size of source 100 (forwarded as a smaller
	// simulcast layer); the others are unknown and report their decoded size.
	tc.config.rosterUpdated([]protocol.Participant{{ID: "p-1", Identity: "alice", Streams: []protocol.Stream{
		{Kind: protocol.StreamVideo, Direction: protocol.DirectionSendRecv, SourceID: 100, Width: 1280, Height: 720},
	}}})
	originals := [][2]int{{1280, 720}, {160, 90}, {640, 360}}
	const frames = 30
	for n := 0; n < frames; n++ {
		for i, mid := range mids {
			w, h := sizes[i][0], sizes[i][1]
			if err := tc.peer.SendVideo(mid, uint32(100+i), rtctest.TestPattern(w, h, n), w, h, false); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(33 * time.Millisecond)
	}
	for i := range logs {
		waitUntil(t, 5*time.Second, "video frames", func() bool { return logs[i].count() >= frames-5 })
	}
	tc.close()
	for i, s := range socks {
		if st := s.pool.Stats(); st.Outstanding != 0 {
			t.Errorf("socket %d: %d video buffers outlive the call", i, st.Outstanding)
		}
	}
	for i := range logs {
		l := &logs[i]
		w, h := sizes[i][0], sizes[i][1]
		if l.format.PixelFormat != media.NV12 || l.format.Width != w || l.format.Height != h {
			t.Errorf("socket %d: format %v, want NV12 %dx%d", i, l.format, w, h)
		}
		if ow, oh := originals[i][0], originals[i][1]; l.original.Width != ow || l.original.Height != oh {
			t.Errorf("socket %d: original format %v, want %dx%d", i, l.original, ow, oh)
		}
		if l.sources[uint32(100+i)] != l.frames {
			t.Errorf("socket %d: sources %v", i, l.sources)
		}
		// The last frame sent was pattern frames-1; the last received is one of the last few.
		best := 1e9
		for n := frames - 6; n < frames; n++ {
			best = min(best, lumaError(l.last, rtctest.TestPattern(w, h, n), w, h))
		}
		t.Logf("socket %d: %d frames, luma error %.2f", i, l.frames, best)
		if best > 6 {
			t.Errorf("socket %d: received picture differs from the test pattern (mean luma error %.1f)", i, best)
		}
	}
}

// TestVideoSend: the bot's NV12 and RGB24 frames reach the peer as VP8 that decodes to the
// pattern; REMB moves the preferred format, a PLI forces a key frame.
func TestVideoSend(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var log videoLog
	big := media.VideoFormat{PixelFormat: media.NV12, Width: 640, Height: 360, FrameRate: 30}
	small := media.VideoFormat{PixelFormat: media.NV12, Width: 320, Height: 180, FrameRate: 15}
	rgb := media.VideoFormat{PixelFormat: media.RGB24, Width: 640, Height: 360, FrameRate: 30}
	sock, err := NewVideoSocket(log.settings(VideoSocketSettings{Direction: Sendrecv, SupportedSendFormats: []media.VideoFormat{small, big, rgb}}))
	if err != nil {
		t.Fatal(err)
	}
	tc := newTestCall(t, false, sock)
	waitUntil(t, 5*time.Second, "send status Active", func() bool { return sock.SendStatus() == Active })
	if got := sock.PreferredFormat(); got.Width != 640 {
		t.Errorf("preferred format %v at full bandwidth", got)
	}
	pool := media.NewVideoPool("bot video")
	send := func(n int, f media.VideoFormat) {
		pattern := rtctest.TestPattern(f.Width, f.Height, n)
		b := pool.Get(f)
		if err := yuv.Convert(b.Data(), f.PixelFormat, pattern, media.I420, f.Width, f.Height); err != nil {
			t.Fatal(err)
		}
		if err := sock.Send(b); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	for n := 0; n < 20; n++ {
		send(n, big)
		time.Sleep(33 * time.Millisecond)
	}
	for n := 20; n < 40; n++ {
		send(n, rgb)
		time.Sleep(33 * time.Millisecond)
	}
	waitUntil(t, 5*time.Second, "frames at the peer", func() bool {
		n, _ := tc.peer.ReceivedVideo(rtc.VideoMID(0))
		return n >= 30
	})
	frames, last := tc.peer.ReceivedVideo(rtc.VideoMID(0))
	best := 1e9
	for n := 34; n < 40; n++ {
		best = min(best, lumaError(last.I420, rtctest.TestPattern(640, 360, n), 640, 360))
	}
	t.Logf("peer decoded %d frames (%dx%d), luma error %.2f", frames, last.Width, last.Height, best)
	if last.Width != 640 || best > 8 {
		t.Errorf("peer's picture %dx%d differs from the pattern (luma error %.1f)", last.Width, last.Height, best)
	}
	// Frames of a size the socket does not list (YUY2 at 720p) are scaled to the preferred one.
	hd := media.VideoFormat{PixelFormat: media.YUY2, Width: 1280, Height: 720, FrameRate: 30}
	for n := 100; n < 120; n++ {
		if err := sock.Send(patternFrame(t, pool, hd, n)); err != nil {
			t.Fatalf("Send %v: %v", hd, err)
		}
		time.Sleep(33 * time.Millisecond)
	}
	waitUntil(t, 5*time.Second, "scaled frames at the peer", func() bool {
		n, _ := tc.peer.ReceivedVideo(rtc.VideoMID(0))
		return n >= frames+10
	})
	frames, last = tc.peer.ReceivedVideo(rtc.VideoMID(0))
	best = 1e9
	for n := 114; n < 120; n++ {
		best = min(best, lumaError(last.I420, rtctest.TestPattern(640, 360, n), 640, 360))
	}
	t.Logf("peer decoded %d frames (%dx%d) from 720p YUY2, luma error %.2f", frames, last.Width, last.Height, best)
	if last.Width != 640 || last.Height != 360 || best > 8 {
		t.Errorf("peer's picture from 720p YUY2 is %dx%d, luma error %.1f", last.Width, last.Height, best)
	}

	// A low estimate from the far side moves the preferred format down.
	if err := tc.peer.SendREMB(150_000); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "preferred format to follow REMB", func() bool { return sock.PreferredFormat().Width == 320 })
	if err := tc.peer.RequestKeyFrame(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "key frame request", func() bool { return sock.KeyFrameRequests() > 0 })
	for n := 40; n < 50; n++ {
		send(n, small)
		time.Sleep(66 * time.Millisecond)
	}
	waitUntil(t, 5*time.Second, "small frames at the peer", func() bool {
		_, f := tc.peer.ReceivedVideo(rtc.VideoMID(0))
		return f.Width == 320
	})
	tc.close()
	if st := pool.Stats(); st.Outstanding != 0 {
		t.Errorf("bot's pool has %d buffers outstanding", st.Outstanding)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.statuses) < 2 || log.statuses[0].Status != Active || log.statuses[len(log.statuses)-1].PreferredFormat.Width != 320 {
		t.Errorf("send status events %+v", log.statuses)
	}
}

// videoPackets encodes frames of the test pattern at 30 fps and packetizes them as a sender
// would.
func videoPackets(t testing.TB, frames, w, h int) [][][]byte {
	t.Helper()
	return videoPacketsEvery(t, frames, w, h, func(n int) uint32 { return uint32(n * 3000) })
}

// videoPacketsEvery is videoPackets with frame n at RTP timestamp ts(n).
func videoPacketsEvery(t testing.TB, frames, w, h int, ts func(n int) uint32) [][][]byte {
	t.Helper()
	enc, err := vp8.NewEncoder(vp8.EncoderConfig{Width: w, Height: h, FrameRate: 30, BitrateKbps: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	pz, err := vp8.NewPacketizer(1100)
	if err != nil {
		t.Fatal(err)
	}
	var out [][][]byte
	var seq uint16
	for n := 0; n < frames; n++ {
		frame, _, err := enc.Encode(rtctest.TestPattern(w, h, n), int64(n*3000), n == 0)
		stamp := ts(n)
		if err != nil {
			t.Fatal(err)
		}
		_, payloads := pz.Packetize(nil, nil, frame)
		var pkts [][]byte
		for i, pl := range payloads {
			p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: stamp,
				Marker: i == len(payloads)-1, CSRC: []uint32{55}}, Payload: pl}
			seq++
			b, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			pkts = append(pkts, b)
		}
		out = append(out, pkts)
	}
	return out
}

// TestVideoFrameAllocs: receiving a video frame (assemble, decode, NV12 in a pooled buffer,
// delivery) allocates nothing in the steady state.
func TestVideoFrameAllocs(t *testing.T) {
	if media.DebugChecks {
		t.Skip("the checking build's buffer quarantine is not the steady state")
	}
	delivered := 0
	r := newTestReceiver(t, func(e VideoReceivedEvent) {
		delivered++
		e.Buffer.Release()
	})
	s := r.s
	frames := videoPackets(t, 60, 320, 180)
	n := 0
	step := func() {
		for _, b := range frames[n] { // 30 + 26 steps: the stream does not run out
			r.packet(b)
		}
		s.events.drain(s.deliver)
		n++
	}
	for i := 0; i < 30; i++ {
		step()
	}
	if a := testing.AllocsPerRun(25, step); a != 0 {
		t.Errorf("%.2f allocations per received video frame, want 0", a)
	}
	if delivered < 50 || s.pool.Stats().Outstanding != 0 {
		t.Errorf("%d frames delivered, %d buffers outstanding", delivered, s.pool.Stats().Outstanding)
	}
}

// offlineVideoSender is a sending socket with no network, Active, and the state of its encode
// goroutine: the test queues frames with Send and runs the sender by hand.
func offlineVideoSender(t testing.TB, formats ...media.VideoFormat) (*VideoSocket, *videoSender) {
	t.Helper()
	s, err := NewVideoSocket(VideoSocketSettings{Direction: Sendonly, SupportedSendFormats: formats})
	if err != nil {
		t.Fatal(err)
	}
	s.sendOn(rtc.Line{Kind: rtc.KindVideo, MID: rtc.VideoMID(0)}, discardWriter{}, 1)
	s.status.Store(uint32(Active))
	s.log = slog.New(slog.DiscardHandler)
	snd, err := newVideoSender(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(snd.close)
	return s, snd
}

// patternFrame is frame n of the test pattern in a pooled buffer of format f.
func patternFrame(t testing.TB, pool *media.VideoPool, f media.VideoFormat, n int) *media.VideoBuffer {
	t.Helper()
	b := pool.Get(f)
	if err := yuv.Convert(b.Data(), f.PixelFormat, rtctest.TestPattern(f.Width, f.Height, n), media.I420, f.Width, f.Height); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVideoSendAnySize: Send takes NV12, RGB24, YUY2 and I420 frames of any size up to
// MaxSendDimension (odd sizes too), and the encoder gets each scaled to the preferred format;
// other pixel formats and nonsense sizes fail with ErrSendFormat, the buffer still the bot's.
func TestVideoSendAnySize(t *testing.T) {
	target := media.VideoFormat{PixelFormat: media.NV12, Width: 640, Height: 360, FrameRate: 30}
	s, snd := offlineVideoSender(t, target)
	pool := media.NewVideoPool("bot")
	sizes := []media.VideoFormat{
		{PixelFormat: media.NV12, Width: 1280, Height: 720},
		{PixelFormat: media.RGB24, Width: 320, Height: 240},
		{PixelFormat: media.YUY2, Width: 1920, Height: 1080},
		{PixelFormat: media.I420, Width: 641, Height: 361},
		{PixelFormat: media.YUY2, Width: 639, Height: 359},
		{PixelFormat: media.RGB24, Width: 333, Height: 777},
		{PixelFormat: media.NV12, Width: 2, Height: 2},
		{PixelFormat: media.NV12, Width: MaxSendDimension, Height: MaxSendDimension / 2},
		{PixelFormat: media.NV12, Width: 640, Height: 360},
	}
	for i, f := range sizes {
		b := pool.Get(f)
		if err := s.Send(b); err != nil {
			t.Fatalf("Send %v: %v", f, err)
		}
		snd.frame(<-s.sendQ)
		if snd.frames != uint64(i+1) {
			t.Fatalf("%v: not encoded (%d frames encoded)", f, snd.frames)
		}
		if snd.encFmt.Width != 640 || snd.encFmt.Height != 360 {
			t.Fatalf("%v: encoded at %v, want 640x360", f, snd.encFmt)
		}
	}
	if st := pool.Stats(); st.Outstanding != 0 {
		t.Errorf("%d sent buffers not handed back", st.Outstanding)
	}
	for _, f := range []media.VideoFormat{
		{PixelFormat: media.RGBA, Width: 640, Height: 360},
		{PixelFormat: media.PixelFormatUnknown, Width: 640, Height: 360},
		{PixelFormat: media.NV12, Width: MaxSendDimension + 2, Height: 360},
		{PixelFormat: media.NV12, Width: 640, Height: MaxSendDimension + 1},
		{PixelFormat: media.NV12, Width: 1, Height: 360},
	} {
		b := media.NewVideoBuffer(f)
		err := s.Send(b)
		if !errors.Is(err, ErrSendFormat) {
			t.Errorf("Send %v: %v, want ErrSendFormat", f, err)
		}
		t.Logf("Send %v: %v", f, err)
		b.Release() // still ours
	}
	if len(s.sendQ) != 0 {
		t.Errorf("%d refused frames queued", len(s.sendQ))
	}
}

// videoSendStep sends one frame through an offline sender: Send, then the encode goroutine's
// work (convert and scale, encode, packetize, RTP), the buffer back to the pool.
type videoSendStep struct {
	s       *VideoSocket
	snd     *videoSender
	formats []media.VideoFormat
	pool    *media.VideoPool
	n       int
}

func (v *videoSendStep) step() {
	f := v.formats[v.n%len(v.formats)]
	b := v.pool.Get(f)
	if err := v.s.Send(b); err != nil {
		panic(err)
	}
	v.snd.frame(<-v.s.sendQ)
	v.n++
}

// TestVideoSendAllocs: sending frames of sizes other than the target (alternating RGB24 720p and
// YUY2 540p, both scaled to 640×360) allocates nothing in the steady state.
func TestVideoSendAllocs(t *testing.T) {
	if media.DebugChecks {
		t.Skip("the checking build's buffer quarantine is not the steady state")
	}
	s, snd := offlineVideoSender(t, media.VideoFormat{PixelFormat: media.NV12, Width: 640, Height: 360, FrameRate: 30})
	v := &videoSendStep{s: s, snd: snd, pool: media.NewVideoPool("bot"), formats: []media.VideoFormat{
		{PixelFormat: media.RGB24, Width: 1280, Height: 720},
		{PixelFormat: media.YUY2, Width: 960, Height: 540},
	}}
	for i := 0; i < 20; i++ {
		v.step()
	}
	if a := testing.AllocsPerRun(20, v.step); a != 0 {
		t.Errorf("%.2f allocations per sent video frame, want 0", a)
	}
	if snd.frames != uint64(v.n) {
		t.Errorf("%d of %d frames encoded", snd.frames, v.n)
	}
}

// BenchmarkVideoSend measures the send path of one frame to a 640×360 target: a frame already
// at the target size, and frames that are converted and scaled first.
func BenchmarkVideoSend(b *testing.B) {
	for _, f := range []media.VideoFormat{
		{PixelFormat: media.NV12, Width: 640, Height: 360},
		{PixelFormat: media.NV12, Width: 1280, Height: 720},
		{PixelFormat: media.RGB24, Width: 1280, Height: 720},
		{PixelFormat: media.YUY2, Width: 640, Height: 480},
	} {
		b.Run(f.PixelFormat.String()+"_"+strconv.Itoa(f.Width)+"x"+strconv.Itoa(f.Height), func(b *testing.B) {
			s, snd := offlineVideoSender(b, media.VideoFormat{PixelFormat: media.NV12, Width: 640, Height: 360, FrameRate: 30})
			v := &videoSendStep{s: s, snd: snd, pool: media.NewVideoPool("bot"), formats: []media.VideoFormat{f}}
			for i := 0; i < 10; i++ {
				v.step()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				v.step()
			}
		})
	}
}

// TestVideoSendNoUpscale: a socket that may send 720p, given 640×360 frames at full bandwidth,
// encodes them at 640×360 and announces that as its preferred format.
func TestVideoSendNoUpscale(t *testing.T) {
	s, snd := offlineVideoSender(t, media.NV12_1280x720_30, media.NV12_640x360_30, media.NV12_320x180_15)
	if got := s.PreferredFormat(); got != media.NV12_1280x720_30 {
		t.Fatalf("preferred %v before any frame, want 720p", got)
	}
	pool := media.NewVideoPool("bot")
	for n := 0; n < 5; n++ {
		if err := s.Send(patternFrame(t, pool, media.NV12_640x360_30, n)); err != nil {
			t.Fatal(err)
		}
		snd.frame(<-s.sendQ)
	}
	if snd.encFmt.Width != 640 || snd.encFmt.Height != 360 {
		t.Errorf("640x360 frames encoded at %v", snd.encFmt)
	}
	if got := s.PreferredFormat(); got != media.NV12_640x360_30 {
		t.Errorf("preferred %v, want 640x360", got)
	}
	var announced []media.VideoFormat
	for {
		e, ok := s.events.next()
		if !ok {
			break
		}
		if e.status != nil {
			announced = append(announced, e.status.PreferredFormat)
		}
	}
	if len(announced) != 1 || announced[0] != media.NV12_640x360_30 {
		t.Errorf("announced %v, want one change to 640x360", announced)
	}
}

// TestVideoFrameRate: a received frame's FrameRate is the stream's measured rate (15 fps here,
// then 10 fps after a change of pace, with a pause and a timestamp wrap on the way), not a
// constant.
func TestVideoFrameRate(t *testing.T) {
	var rates []float64
	r := newTestReceiver(t, func(e VideoReceivedEvent) {
		rates = append(rates, e.Buffer.Format().FrameRate)
		if e.Buffer.OriginalFormat.FrameRate != e.Buffer.Format().FrameRate {
			t.Errorf("original format %v, format %v", e.Buffer.OriginalFormat, e.Buffer.Format())
		}
		e.Buffer.Release()
	})
	s := r.s
	const start = 1<<32 - 6000*50 // wraps after 50 frames
	frames := videoPacketsEvery(t, 150, 160, 90, func(n int) uint32 {
		switch {
		case n < 80:
			return start + uint32(n*6000) // 15 fps
		default:
			return start + uint32(80*6000+90000*3+(n-80)*9000) // a 3 s pause, then 10 fps
		}
	})
	for _, f := range frames {
		for _, b := range f {
			r.packet(b)
		}
		s.events.drain(s.deliver)
	}
	if len(rates) != 150 {
		t.Fatalf("%d frames delivered", len(rates))
	}
	if rates[0] != defaultFrameRate {
		t.Errorf("first frame's rate %v, want the default %v", rates[0], float64(defaultFrameRate))
	}
	for _, c := range []struct {
		frame int
		want  float64
	}{{1, 15}, {40, 15}, {79, 15}, {80, 15}, {149, 10}} {
		if got := rates[c.frame]; got < c.want-0.2 || got > c.want+0.2 {
			t.Errorf("frame %d: frame rate %.2f, want %v", c.frame, got, c.want)
		}
	}
}

// FuzzVideoReceive feeds packets (seeded with a real VP8 stream, several packets per input) to a
// receiving socket's read path: assembly, decoding, frame rate, delivery. Bad input is dropped,
// never a panic, and every delivered buffer has a sane format.
func FuzzVideoReceive(f *testing.F) {
	for _, frame := range videoPackets(f, 4, 64, 48) {
		var in []byte
		for _, p := range frame {
			in = binary.BigEndian.AppendUint16(in, uint16(len(p)))
			in = append(in, p...)
		}
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := newTestReceiver(t, func(e VideoReceivedEvent) {
			fm := e.Buffer.Format()
			if fm.Width < 1 || fm.Height < 1 || !(fm.FrameRate > 0 && fm.FrameRate <= vp8.ClockRate) {
				t.Errorf("delivered a frame of format %v", fm)
			}
			e.Buffer.Release()
		})
		s := r.s
		for len(in) >= 2 {
			n := int(binary.BigEndian.Uint16(in))
			in = in[2:]
			n = min(n, len(in))
			r.packet(in[:n])
			in = in[n:]
		}
		s.events.drain(s.deliver)
	})
}

// newTestReceiver is a receive-only socket's receiver, fed by the test through packet, whose
// frames go to onVideo on the socket's event goroutine. Its decoder closes with the test.
func newTestReceiver(t testing.TB, onVideo func(VideoReceivedEvent)) *videoReceiver {
	t.Helper()
	s, err := NewVideoSocket(VideoSocketSettings{Direction: Recvonly, OnVideoReceived: onVideo})
	if err != nil {
		t.Fatal(err)
	}
	s.log = slog.New(slog.DiscardHandler)
	r, err := newVideoReceiver(s, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.dec.Close)
	return r
}

// TestVideoNACK: a gap in the received sequence numbers makes one NACK for the missing packets
// (the newest maxNACKed of a long gap; none for a jump or an old packet), and a PLI names the
// received stream.
func TestVideoNACK(t *testing.T) {
	r := newTestReceiver(t, func(e VideoReceivedEvent) { e.Buffer.Release() })
	r.s.ssrc = 7
	nacked := func(seqs ...uint16) []uint16 {
		var got []uint16
		for _, seq := range seqs {
			p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, SSRC: 42}, Payload: []byte{0x10, 0}}
			b, err := p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			r.packet(b)
			if r.nackOut == nil {
				continue
			}
			pkts, err := rtcp.Unmarshal(r.nackOut)
			if err != nil || len(pkts) != 1 {
				t.Fatalf("NACK %x: %v", r.nackOut, err)
			}
			n, ok := pkts[0].(*rtcp.TransportLayerNack)
			if !ok || n.SenderSSRC != 7 || n.MediaSSRC != 42 {
				t.Fatalf("NACK %#v", pkts[0])
			}
			for _, pair := range n.Nacks {
				got = append(got, pair.PacketList()...)
			}
		}
		return got
	}
	if got := nacked(100, 101, 104, 103, 102, 105); !slices.Equal(got, []uint16{102, 103}) {
		t.Errorf("NACKed %v, want [102 103]", got)
	}
	var want []uint16
	for seq := uint16(206 - maxNACKed); seq < 206; seq++ {
		want = append(want, seq)
	}
	if got := nacked(206); !slices.Equal(got, want) { // 100 lost: the newest maxNACKed asked for
		t.Errorf("NACKed %v after a gap of 100, want %v", got, want)
	}
	if got := nacked(30000); len(got) != 0 {
		t.Errorf("NACKed %d packets after a jump", len(got))
	}
	pli, err := rtcp.Unmarshal(r.keyFrameRequest())
	if p, ok := pli[0].(*rtcp.PictureLossIndication); err != nil || !ok || p.MediaSSRC != 42 || p.SenderSSRC != 7 {
		t.Errorf("key frame request %#v (%v)", pli, err)
	}
}
