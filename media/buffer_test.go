package media

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// mustPanic runs f and returns the message it panicked with, failing the test if it did not.
func mustPanic(t *testing.T, f func()) (msg string) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("no panic")
		}
		msg = fmt.Sprint(r)
	}()
	f()
	return ""
}

func TestAudioBufferLifecycle(t *testing.T) {
	p := NewAudioPool("call-1 audio")
	b := p.Get()
	if got := len(b.Samples()); got != FrameSamples {
		t.Fatalf("len(Samples()) = %d, want %d", got, FrameSamples)
	}
	for i, s := range b.Samples() {
		if s != 0 {
			t.Fatalf("fresh sample %d = %d", i, s)
		}
	}
	b.Samples()[5] = 1234
	b.Timestamp, b.SourceID, b.Silence = 40*time.Millisecond, 7, true
	b.SetActiveSpeakers([]uint32{3, 1, 2})
	if got := b.ActiveSpeakers(); len(got) != 3 || got[0] != 3 || got[2] != 2 {
		t.Fatalf("ActiveSpeakers() = %v", got)
	}
	if s := p.Stats(); s.Outstanding != 1 || s.Allocated != 1 {
		t.Fatalf("stats while held: %+v", s)
	}
	b.Release()
	if s := p.Stats(); s.Outstanding != 0 || s.Idle != 1 {
		t.Fatalf("stats after release: %+v", s)
	}
	// Whichever buffer comes next, reused or not, it comes clean.
	for range 2 * audioQuarantine {
		c := p.Get()
		if c.Samples()[5] != 0 || c.Timestamp != 0 || c.SourceID != 0 || c.Silence || len(c.ActiveSpeakers()) != 0 {
			t.Fatalf("Get returned a dirty buffer: %v %v %v %v %v", c.Samples()[5], c.Timestamp, c.SourceID, c.Silence, c.ActiveSpeakers())
		}
		c.Samples()[5] = 99
		c.SetActiveSpeakers([]uint32{1})
		c.Release()
	}
	if s := p.Stats(); s.Allocated > audioQuarantine+1 {
		t.Errorf("pool made %d buffers for one in use at a time", s.Allocated)
	}
}

func TestAudioBufferManySpeakers(t *testing.T) {
	p := NewAudioPool("speakers")
	b := p.Get()
	ids := make([]uint32, MaxActiveSpeakers+5)
	for i := range ids {
		ids[i] = uint32(i + 1)
	}
	b.SetActiveSpeakers(ids)
	if got := b.ActiveSpeakers(); len(got) != len(ids) || got[len(ids)-1] != ids[len(ids)-1] {
		t.Fatalf("ActiveSpeakers() = %v", got)
	}
	b.Release()
}

func TestZeroAudioBuffer(t *testing.T) {
	var b AudioBuffer
	b.Samples()[0] = 1
	b.SetActiveSpeakers([]uint32{9})
	b.Release()
	msg := mustPanic(t, b.Release)
	if !strings.Contains(msg, "not from a pool") || !strings.Contains(msg, "released twice") {
		t.Errorf("panic message %q", msg)
	}
}

func TestDoubleRelease(t *testing.T) {
	ap := NewAudioPool("call-9 audio")
	a := ap.Get()
	a.Release()
	msg := mustPanic(t, a.Release)
	if want := `AudioBuffer #1 of pool "call-9 audio" released twice`; !strings.Contains(msg, want) {
		t.Errorf("panic message %q does not contain %q", msg, want)
	}

	vp := NewVideoPool("call-9 video")
	v := vp.Get(NV12_320x180_15)
	v.Release()
	msg = mustPanic(t, v.Release)
	if want := `VideoBuffer #1 of pool "call-9 video" released twice`; !strings.Contains(msg, want) {
		t.Errorf("panic message %q does not contain %q", msg, want)
	}

	n := NewVideoBuffer(NV12_320x180_15)
	n.Release()
	mustPanic(t, n.Release)
}

func TestUseAfterRelease(t *testing.T) {
	if !DebugChecks {
		t.Skip("use after Release is checked only with -race or -tags switchboard_debug")
	}
	ap := NewAudioPool("uar audio")
	a := ap.Get()
	a.Release()
	for name, use := range map[string]func(){
		"Samples":           func() { _ = a.Samples() },
		"ActiveSpeakers":    func() { _ = a.ActiveSpeakers() },
		"SetActiveSpeakers": func() { a.SetActiveSpeakers(nil) },
	} {
		msg := mustPanic(t, use)
		if !strings.Contains(msg, "used after Release ("+name+")") || !strings.Contains(msg, `"uar audio"`) {
			t.Errorf("%s: panic message %q", name, msg)
		}
	}

	vp := NewVideoPool("uar video")
	v := vp.Get(NV12_320x180_15)
	v.Release()
	for name, use := range map[string]func(){
		"Data":   func() { _ = v.Data() },
		"Planes": func() { _, _ = v.Planes() },
		"Format": func() { _ = v.Format() },
	} {
		msg := mustPanic(t, use)
		if !strings.Contains(msg, "used after Release ("+name+")") {
			t.Errorf("%s: panic message %q", name, msg)
		}
	}
}

func TestWriteAfterRelease(t *testing.T) {
	if !DebugChecks {
		t.Skip("writes after Release are caught only with -race or -tags switchboard_debug")
	}
	t.Run("audio", func(t *testing.T) {
		p := NewAudioPool("war audio")
		b := p.Get()
		kept := b.Samples()
		b.Release()
		kept[100] = 42 // the bug: a write through a slice kept after Release
		msg := mustPanic(t, func() {
			for range 4 * audioQuarantine {
				p.Get().Release()
			}
		})
		if want := `AudioBuffer #1 of pool "war audio" was written after Release`; !strings.Contains(msg, want) {
			t.Errorf("panic message %q does not contain %q", msg, want)
		}
	})
	t.Run("speakers", func(t *testing.T) {
		p := NewAudioPool("war speakers")
		b := p.Get()
		b.SetActiveSpeakers([]uint32{1, 2})
		kept := b.ActiveSpeakers()
		b.Release()
		kept[0] = 5
		mustPanic(t, func() {
			for range 4 * audioQuarantine {
				p.Get().Release()
			}
		})
	})
	t.Run("video", func(t *testing.T) {
		p := NewVideoPool("war video")
		b := p.Get(NV12_640x360_30)
		kept := b.Data()
		b.Release()
		kept[len(kept)-1] = 0
		msg := mustPanic(t, func() {
			for range 4 * videoQuarantine {
				p.Get(NV12_640x360_30).Release()
			}
		})
		if want := `VideoBuffer #1 of pool "war video" was written after Release`; !strings.Contains(msg, want) {
			t.Errorf("panic message %q does not contain %q", msg, want)
		}
	})
}

func TestVideoPoolReuse(t *testing.T) {
	p := NewVideoPool("reuse")
	cycle := func(f VideoFormat, n int) {
		for range n {
			b := p.Get(f)
			if len(b.Data()) != f.FrameSize() || b.Format() != f || b.OriginalFormat != f {
				t.Fatalf("Get(%v): %d bytes, format %v, original %v", f, len(b.Data()), b.Format(), b.OriginalFormat)
			}
			b.Data()[0] = 1
			b.Timestamp = time.Second
			b.Release()
		}
	}
	const n = 3 * videoQuarantine
	cycle(NV12_1280x720_30, n)
	made := p.Stats().Allocated
	if made > videoQuarantine+1 {
		t.Errorf("%d buffers made for one in use at a time", made)
	}
	// Smaller frames fit in the buffers already made.
	cycle(NV12_640x360_30, n)
	cycle(NV12_320x180_15, n)
	if got := p.Stats().Allocated; got != made {
		t.Errorf("smaller formats made %d new buffers", got-made)
	}
	// A larger format cannot reuse them; the small ones are let go as the large ones are made.
	p2 := NewVideoPool("grow")
	for range maxIdleVideo {
		defer p2.Get(NV12_320x180_15).Release()
	}
	b := p2.Get(NV12_1280x720_30)
	if len(b.Data()) != NV12_1280x720_30.FrameSize() {
		t.Fatalf("Get after growth: %d bytes", len(b.Data()))
	}
	b.Release()

	planes, strides := p.Get(NV12_640x360_30).Planes()
	if len(planes[0]) != 640*360 || strides[1] != 640 || planes[2] != nil {
		t.Errorf("Planes: %d, %v", len(planes[0]), strides)
	}
	if got := p.Get(VideoFormat{}); len(got.Data()) != 0 {
		t.Errorf("Get of a format without a size: %d bytes", len(got.Data()))
	}
}

// TestHandOver passes buffers between goroutines as the platform does (the clock goroutine gets,
// the bot's goroutine releases); under -race it shows that the pool's bookkeeping is race-free.
func TestHandOver(t *testing.T) {
	ap, vp := NewAudioPool("handover audio"), NewVideoPool("handover video")
	audio, video := make(chan *AudioBuffer, 4), make(chan *VideoBuffer, 4)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for b := range audio {
			if b.Samples()[0] != int16(b.Timestamp/time.Millisecond) {
				t.Errorf("audio sample %d at %v", b.Samples()[0], b.Timestamp)
			}
			b.Release()
		}
	}()
	go func() {
		defer wg.Done()
		for b := range video {
			if b.Data()[0] != byte(b.SourceID) {
				t.Errorf("video byte %d for source %d", b.Data()[0], b.SourceID)
			}
			b.Release()
		}
	}()
	for i := range 500 {
		a := ap.Get()
		a.Timestamp = time.Duration(i) * time.Millisecond
		a.Samples()[0] = int16(i)
		audio <- a
		v := vp.Get(NV12_320x180_15)
		v.SourceID = uint32(i % 256)
		v.Data()[0] = byte(i)
		video <- v
	}
	close(audio)
	close(video)
	wg.Wait()
	if s := ap.Stats(); s.Outstanding != 0 {
		t.Errorf("audio outstanding %d", s.Outstanding)
	}
	if s := vp.Stats(); s.Outstanding != 0 {
		t.Errorf("video outstanding %d", s.Outstanding)
	}
}

func TestPoolsAllocateNothing(t *testing.T) {
	ap := NewAudioPool("allocs audio")
	vp := NewVideoPool("allocs video")
	speakers := []uint32{11, 12, 13}
	audio := func() {
		b := ap.Get()
		b.Samples()[0] = 1
		b.SetActiveSpeakers(speakers)
		b.Release()
	}
	video := func() {
		b := vp.Get(NV12_1280x720_30)
		b.Data()[0] = 1
		b.Release()
	}
	for range 2 * audioQuarantine { // fill the pools (and the quarantine of the checking builds)
		audio()
		video()
	}
	if n := testing.AllocsPerRun(100, audio); n != 0 {
		t.Errorf("audio Get/Release: %v allocations", n)
	}
	if n := testing.AllocsPerRun(20, video); n != 0 {
		t.Errorf("video Get/Release: %v allocations", n)
	}
}

func BenchmarkAudioPoolGetRelease(b *testing.B) {
	p := NewAudioPool("bench")
	speakers := []uint32{11, 12, 13}
	b.ReportAllocs()
	for b.Loop() {
		buf := p.Get()
		buf.SetActiveSpeakers(speakers)
		buf.Release()
	}
}

func BenchmarkVideoPoolGetRelease720p(b *testing.B) {
	p := NewVideoPool("bench")
	b.ReportAllocs()
	for b.Loop() {
		p.Get(NV12_1280x720_30).Release()
	}
}
