package main

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/media/nv12"
	"github.com/switchboard-rtc/switchboard/media/wav"
	"github.com/switchboard-rtc/switchboard/media/y4m"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// memFile is an in-memory io.WriteSeeker for the WAV writer.
type memFile struct {
	data []byte
	pos  int
}

func (f *memFile) Write(p []byte) (int, error) {
	if need := f.pos + len(p); need > len(f.data) {
		f.data = append(f.data, make([]byte, need-len(f.data))...)
	}
	copy(f.data[f.pos:], p)
	f.pos += len(p)
	return len(p), nil
}

func (f *memFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		f.pos = int(off)
	case io.SeekCurrent:
		f.pos += int(off)
	case io.SeekEnd:
		f.pos = len(f.data) + int(off)
	}
	return int64(f.pos), nil
}

// wavOf is a WAV file of a 400 Hz tone, seconds long, at rate with channels (every channel
// the same).
func wavOf(t testing.TB, rate, channels int, seconds float64) []byte {
	t.Helper()
	var f memFile
	w, err := wav.NewWriter(&f, rate, channels)
	if err != nil {
		t.Fatal(err)
	}
	n := int(seconds * float64(rate))
	buf := make([]int16, 0, n*channels)
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*400*float64(i)/float64(rate)))
		for range channels {
			buf = append(buf, v)
		}
	}
	if err := w.Write(buf); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return f.data
}

func TestDecodeWAV(t *testing.T) {
	ref, err := decodeWAV(bytes.NewReader(wavOf(t, 16000, 1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rate, channels int
	}{{16000, 2}, {48000, 1}, {32000, 2}, {8000, 1}, {96000, 6}} {
		pcm, err := decodeWAV(bytes.NewReader(wavOf(t, tc.rate, tc.channels, 1)))
		if err != nil {
			t.Fatalf("%d Hz × %d: %v", tc.rate, tc.channels, err)
		}
		if d := len(pcm) - media.SampleRate; d < -2 || d > 2 {
			t.Fatalf("%d Hz × %d: %d samples for a second", tc.rate, tc.channels, len(pcm))
		}
		// The same tone as the 16 kHz mono original, give or take the simple filters.
		var diff, sum float64
		for i := 100; i < len(pcm)-100; i++ {
			diff += math.Abs(float64(pcm[i]) - float64(ref[i]))
			sum += math.Abs(float64(ref[i]))
		}
		if diff/sum > 0.15 {
			t.Errorf("%d Hz × %d: differs from the original by %.0f %%", tc.rate, tc.channels, 100*diff/sum)
		}
	}
}

func TestDecodeWAVRefuses(t *testing.T) {
	for _, rate := range []int{44100, 22050, 11025, 24000, 12000} {
		_, err := decodeWAV(bytes.NewReader(wavOf(t, rate, 1, 0.1)))
		if !errors.Is(err, errRate) {
			t.Errorf("%d Hz: %v, want a clear refusal", rate, err)
		}
	}
	for name, data := range map[string][]byte{
		"empty":     nil,
		"not a WAV": []byte("hello, this is not a RIFF file at all"),
		"no audio":  wavOf(t, 16000, 1, 0),
		"cut short": wavOf(t, 16000, 1, 1)[:30],
	} {
		if _, err := decodeWAV(bytes.NewReader(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := loadWAV(filepath.Join(t.TempDir(), "missing.wav")); err == nil {
		t.Error("a missing file was accepted")
	}
}

// fakeAudio is a socket that records what is sent and hands buffers back when told to.
type fakeAudio struct {
	mu      sync.Mutex
	active  bool
	queued  []*media.AudioBuffer
	samples []int16
}

func (f *fakeAudio) Send(b *media.AudioBuffer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.active {
		return sdk.ErrNotSending
	}
	f.queued = append(f.queued, b)
	f.samples = append(f.samples, b.Samples()...)
	return nil
}

// tick is the socket's clock: it is done with the oldest queued frame.
func (f *fakeAudio) tick(p *audioPump) bool {
	f.mu.Lock()
	if len(f.queued) == 0 {
		f.mu.Unlock()
		return false
	}
	b := f.queued[0]
	f.queued = f.queued[1:]
	f.mu.Unlock()
	p.done(b)
	return true
}

func (f *fakeAudio) sent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.samples) / media.FrameSamples
}

func TestAudioPumpSendsOnlyWhileActive(t *testing.T) {
	clip := make([]int16, 20*media.FrameSamples+100) // 20 frames and a bit
	for i := range clip {
		clip[i] = int16(i % 1000)
	}
	sock := &fakeAudio{}
	p := newAudioPump(sock, clip, false)

	// Inactive: nothing is sent, whatever wakes the pump.
	if p.fill() || sock.sent() != 0 {
		t.Fatal("sent while inactive")
	}
	p.status(false)
	p.fill()
	if sock.sent() != 0 {
		t.Fatal("sent while inactive")
	}
	// Active: audioLead frames, then one per frame the socket is done with.
	sock.active = true
	p.status(true)
	p.fill()
	if sock.sent() != audioLead {
		t.Fatalf("%d frames queued, want %d", sock.sent(), audioLead)
	}
	sock.tick(p)
	p.fill()
	if sock.sent() != audioLead+1 {
		t.Fatalf("%d frames after one was played", sock.sent())
	}
	// Inactive again: the socket discards what it held (done), nothing new is sent, and the
	// clip resumes where it was.
	sock.mu.Lock()
	sock.active = false
	sock.mu.Unlock()
	p.status(false)
	for sock.tick(p) {
	}
	p.fill()
	if sock.sent() != audioLead+1 {
		t.Fatalf("sent %d frames while inactive", sock.sent()-audioLead-1)
	}
	sock.mu.Lock()
	sock.active = true
	sock.mu.Unlock()
	p.status(true)
	for range 100 {
		if p.fill() {
			break
		}
		sock.tick(p)
	}
	if !p.fill() {
		t.Fatal("not finished after the clip")
	}
	if sock.sent() != 21 {
		t.Fatalf("sent %d frames of a 21-frame clip", sock.sent())
	}
	if !slicesEqual(sock.samples[:len(clip)], clip) {
		t.Fatal("the clip was not sent in order, whole")
	}
	for _, v := range sock.samples[len(clip):] {
		if v != 0 {
			t.Fatal("the last frame's tail is not silence")
		}
	}
	if s := p.pool.Stats(); s.Outstanding != 0 {
		t.Fatalf("%d buffers not back in the pool", s.Outstanding)
	}
}

func slicesEqual(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAudioPumpLoops(t *testing.T) {
	sock := &fakeAudio{active: true}
	p := newAudioPump(sock, make([]int16, 3*media.FrameSamples), true)
	p.status(true)
	for range 20 {
		if p.fill() {
			t.Fatal("a looping clip finished")
		}
		sock.tick(p)
	}
	if sock.sent() < 20 {
		t.Fatalf("%d frames sent", sock.sent())
	}
}

// fakeVideo records the formats of the frames sent.
type fakeVideo struct {
	formats []media.VideoFormat
}

func (f *fakeVideo) Send(b *media.VideoBuffer) error {
	f.formats = append(f.formats, b.Format())
	b.Release()
	return nil
}

func TestVideoPumpHonoursStatusAndFormat(t *testing.T) {
	sock := &fakeVideo{}
	p := newVideoPump(sock, &pattern{})
	if _, end := p.tick(); end || len(sock.formats) != 0 {
		t.Fatal("sent before any send status")
	}
	p.status(sdk.VideoSendStatusEvent{Status: sdk.Inactive, PreferredFormat: media.NV12_640x360_30})
	p.tick()
	if len(sock.formats) != 0 {
		t.Fatal("sent while inactive")
	}
	p.status(sdk.VideoSendStatusEvent{Status: sdk.Active, PreferredFormat: media.NV12_640x360_30})
	period, _ := p.tick()
	p.status(sdk.VideoSendStatusEvent{Status: sdk.Active, PreferredFormat: media.NV12_320x180_15})
	period2, _ := p.tick()
	if len(sock.formats) != 2 || sock.formats[0] != media.NV12_640x360_30 || sock.formats[1] != media.NV12_320x180_15 {
		t.Fatalf("sent %v", sock.formats)
	}
	if period2 != 2*period {
		t.Fatalf("frame periods %v and %v for 30 and 15 fps", period, period2)
	}
}

func TestPatternBars(t *testing.T) {
	for _, f := range (&pattern{}).formats() {
		b := media.NewVideoBuffer(f)
		drawPattern(b, 7, 1234567890)
		p, _ := b.Planes()
		for i, c := range bars {
			x := (2*i + 1) * f.Width / (2 * len(bars))
			if got := p[0][f.Height/3*f.Width+x]; got != c.Y {
				t.Fatalf("%v: bar %d luma %d, want %d", f, i, got, c.Y)
			}
		}
	}
	// Tiny frames: no panic.
	drawPattern(media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.NV12, Width: 2, Height: 2}), 3, 0)
}

func TestY4MClip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clip.y4m")
	f, _ := os.Create(path)
	src := media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.NV12, Width: 64, Height: 36, FrameRate: 25})
	w, err := y4m.NewWriter(f, src.Format())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_ = nv12.FillRect(src, 0, 0, 64, 36, nv12.Color{Y: byte(50 + 50*i), U: 128, V: 128})
		_ = w.WriteFrame(src)
	}
	f.Close()

	clip, err := openY4M(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer clip.close()
	if fs := clip.formats(); len(fs) != 2 || fs[0].Width != 64 || fs[0].FrameRate != 25 || fs[1].Width != 32 || fs[1].Height != 18 {
		t.Fatalf("formats %v", fs)
	}
	dst := media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.NV12, Width: 32, Height: 18})
	for i := range 3 {
		if err := clip.next(dst); err != nil {
			t.Fatal(err)
		}
		if y := dst.Data()[5]; y != byte(50+50*i) {
			t.Fatalf("frame %d: luma %d", i, y)
		}
	}
	if err := clip.next(dst); err != io.EOF {
		t.Fatalf("after the clip: %v", err)
	}
	looping, _ := openY4M(path, true)
	defer looping.close()
	for i := range 7 {
		if err := looping.next(dst); err != nil {
			t.Fatalf("looping frame %d: %v", i, err)
		}
	}
	if _, err := openY4M(filepath.Join(t.TempDir(), "none.y4m"), false); err == nil {
		t.Fatal("opened a missing file")
	}
}

// FuzzDecodeWAV feeds hostile files (seeded with real ones) to the player's loader: an error,
// never a panic, and never more than maxAudio samples.
func FuzzDecodeWAV(f *testing.F) {
	for _, seed := range [][2]int{{16000, 1}, {48000, 2}, {8000, 1}, {44100, 1}} {
		f.Add(wavOf(f, seed[0], seed[1], 0.05))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pcm, err := decodeWAV(bytes.NewReader(data))
		if err == nil && (len(pcm) == 0 || len(pcm) > maxAudio) {
			t.Fatalf("%d samples", len(pcm))
		}
	})
}

func TestClockText(t *testing.T) {
	want := media.NewVideoBuffer(media.NV12_320x180_15)
	got := media.NewVideoBuffer(media.NV12_320x180_15)
	_ = nv12.DrawText(want, 4, 150, "01:02.034  #1234", nv12.TextStyle{Scale: 2, Color: nv12.White})
	drawClock(got, 4, 150, 2, time.Minute+2034*time.Millisecond, 1234)
	if !bytes.Equal(want.Data(), got.Data()) {
		t.Fatal("the clock is not drawn as its text")
	}
}

// TestPerFrameAllocs: once warm, a frame of the test card and a frame of audio cost no
// allocation.
func TestPerFrameAllocs(t *testing.T) {
	if media.DebugChecks {
		t.Skip("the checking builds' buffer checks are not what is measured")
	}
	v := newVideoPump(releaser{}, &pattern{})
	v.status(sdk.VideoSendStatusEvent{Status: sdk.Active, PreferredFormat: media.NV12_640x360_30})
	v.tick()
	if n := testing.AllocsPerRun(50, func() { v.tick() }); n != 0 {
		t.Errorf("video: %v allocations per frame", n)
	}
	sock := &fakeAudio{active: true, samples: make([]int16, 0, 1<<20), queued: make([]*media.AudioBuffer, 0, 64)}
	a := newAudioPump(sock, make([]int16, 1000*media.FrameSamples), true)
	a.status(true)
	a.fill()
	if n := testing.AllocsPerRun(50, func() {
		sock.tick(a)
		sock.mu.Lock()
		sock.queued = append(sock.queued[:0], sock.queued...) // keep the backing array
		sock.samples = sock.samples[:0]
		sock.mu.Unlock()
		a.fill()
	}); n != 0 {
		t.Errorf("audio: %v allocations per frame", n)
	}
}

type releaser struct{}

func (releaser) Send(b *media.VideoBuffer) error { b.Release(); return nil }

// BenchmarkPatternFrame is the test card's cost per 640×360 frame.
func BenchmarkPatternFrame(b *testing.B) {
	buf := media.NewVideoBuffer(media.NV12_640x360_30)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		drawPattern(buf, n, time.Duration(n)*33*time.Millisecond)
		n++
	}
}
