package loadgen

import (
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	line := []byte("1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 1000 300")
	cpu, err := parseStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if cpu != 3*time.Second {
		t.Fatalf("cpu %v, want 3s (300 ticks)", cpu)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Fatal("garbage parsed")
	}
	peak, rss, err := parseStatusMemory([]byte("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"))
	if err != nil || peak != 2<<20 || rss != 1<<20 {
		t.Fatalf("peak %d rss %d err %v", peak, rss, err)
	}
}

func TestHist(t *testing.T) {
	h := newHist(time.Millisecond, 100)
	for i := 0; i < 98; i++ {
		h.observe(20 * time.Millisecond)
	}
	h.observe(30 * time.Millisecond)
	h.observe(time.Second) // beyond the range
	s := h.snapshot()
	if p := s.quantile(0.5); p < 20*time.Millisecond || p > 21*time.Millisecond {
		t.Fatalf("p50 %v", p)
	}
	if p := s.quantile(0.99); p < 30*time.Millisecond || p > 31*time.Millisecond {
		t.Fatalf("p99 %v", p)
	}
	if s.max() != 101*time.Millisecond {
		t.Fatalf("max %v", s.max())
	}
	if n := s.sub(s).total(); n != 0 {
		t.Fatalf("empty window has %d", n)
	}
	if n := testing.AllocsPerRun(100, func() { h.observe(time.Millisecond) }); n != 0 {
		t.Fatalf("observe allocates %v", n)
	}
}

func TestPromHist(t *testing.T) {
	h := promHist{bounds: []float64{0.01, 0.02, 0.03}, cum: []uint64{0, 90, 99}, count: 100}
	if p := h.quantile(0.5); p <= 10*time.Millisecond || p > 20*time.Millisecond {
		t.Fatalf("p50 %v", p)
	}
	if h.max() != time.Duration(1<<63-1) {
		t.Fatalf("max %v, want beyond the last bound", h.max())
	}
	h.count = 99
	if h.max() != 30*time.Millisecond {
		t.Fatalf("max %v", h.max())
	}
}

// TestObserveSeq: expected packets follow the extended highest sequence number across a wrap
// and ignore reordered ones.
func TestObserveSeq(t *testing.T) {
	var c call
	for _, s := range []uint16{65530, 65531, 65533, 65532, 65535, 2, 3} {
		c.observeSeq(s)
	}
	if e := c.expected.Load(); e != 10 {
		t.Fatalf("expected %d, want 10 (65530..3)", e)
	}
}

// TestDetector finds the marker in the signal, at the codec's delay after the frame start.
func TestDetector(t *testing.T) {
	sig, err := GenerateSignal(1)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDetector()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	base := time.Unix(100, 0)
	var onsets []time.Duration
	for i := 0; i < 3*len(sig.Packets); i++ {
		if at, ok := d.Frame(sig.Packets[i%len(sig.Packets)].Payload, base.Add(time.Duration(i)*frameDuration)); ok {
			onsets = append(onsets, at.Sub(base))
		}
	}
	if len(onsets) < 2 {
		t.Fatalf("onsets %v", onsets)
	}
	// The first burst follows no quiet stretch, so the first onset found is the second burst's.
	for i, o := range onsets {
		if want := time.Duration(i+1)*time.Second + sig.CodecDelay; o < want-time.Millisecond || o > want+time.Millisecond {
			t.Errorf("onset %d at %v, want %v", i+1, o, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { d.Frame(sig.Packets[5].Payload, base) }); n != 0 {
		t.Fatalf("Frame allocates %v", n)
	}
}

func TestLoadWAVSignalErrors(t *testing.T) {
	if _, err := LoadWAVSignal("/nonexistent.wav"); err == nil {
		t.Fatal("missing file loaded")
	}
}

func TestVideoLoop(t *testing.T) {
	l, err := newVideoLoop()
	if err != nil {
		t.Fatal(err)
	}
	if len(l.frames) != videoLoopFrames {
		t.Fatalf("%d frames, want %d", len(l.frames), videoLoopFrames)
	}
	// A VP8 key frame has bit 0 of its first byte clear.
	if l.frames[0][0]&1 != 0 {
		t.Fatal("the loop does not start with a key frame")
	}
	for i, f := range l.frames[1:] {
		if f[0]&1 == 0 {
			t.Errorf("frame %d is a key frame too", i+1)
		}
	}
}
