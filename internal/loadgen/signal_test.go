package loadgen

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/media/wav"
)

func TestGenerateSignal(t *testing.T) {
	s, err := GenerateSignal(2)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Packets) != 100 {
		t.Fatalf("%d packets, want 100", len(s.Packets))
	}
	markers := 0
	for i, p := range s.Packets {
		if p.Marker {
			markers++
			if i%50 != 0 {
				t.Errorf("marker at frame %d", i)
			}
			if p.Level > 20 {
				t.Errorf("marker frame level %d, want loud", p.Level)
			}
		}
	}
	if markers != 2 {
		t.Fatalf("%d markers, want 2", markers)
	}
	if s.CodecDelay < 0 || s.CodecDelay > 20*time.Millisecond {
		t.Fatalf("codec delay %v", s.CodecDelay)
	}
	if s.PathCodecDelay < s.CodecDelay || s.PathCodecDelay > s.CodecDelay+20*time.Millisecond {
		t.Fatalf("path codec delay %v with one pass %v", s.PathCodecDelay, s.CodecDelay)
	}
	t.Logf("codec delay %v (path %v), marker packet %d bytes", s.CodecDelay, s.PathCodecDelay, len(s.Packets[0].Payload))
}

func TestLoadWAVSignal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.wav")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := wav.NewWriter(f, 16000, 2)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 2*16000*5/2) // 2.5 s of loud stereo: the loop keeps 2 s
	for i := range pcm {
		pcm[i] = int16(20000 * math.Sin(float64(i/2)*0.07))
	}
	if err := w.Write(pcm); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s, err := LoadWAVSignal(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Packets) != 100 || !s.Packets[0].Marker || !s.Packets[50].Marker {
		t.Fatalf("%d packets, markers at 0 and 50: %v %v", len(s.Packets), s.Packets[0].Marker, s.Packets[50].Marker)
	}
	d, err := NewDetector()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	base := time.Unix(0, 0)
	found := 0
	for i := 0; i < 2*len(s.Packets); i++ {
		if _, ok := d.Frame(s.Packets[i%len(s.Packets)].Payload, base.Add(time.Duration(i)*frameDuration)); ok {
			found++
		}
	}
	if found != 3 { // the bursts at 1, 2 and 3 s (the one at 0 follows no quiet)
		t.Fatalf("found %d markers in 4 s of the scaled file, want 3", found)
	}
	if _, err := GenerateSignal(0); err != nil {
		t.Fatal(err)
	}
	f8 := filepath.Join(t.TempDir(), "8k.wav")
	g, _ := os.Create(f8)
	w8, _ := wav.NewWriter(g, 8000, 1)
	_ = w8.Write(make([]int16, 8000))
	_ = w8.Close()
	g.Close()
	if _, err := LoadWAVSignal(f8); !errors.Is(err, ErrBadWAV) {
		t.Fatalf("8 kHz file: %v, want ErrBadWAV", err)
	}
}
