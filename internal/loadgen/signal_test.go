package loadgen

import (
	"testing"
	"time"
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
	t.Logf("codec delay %v, marker packet %d bytes", s.CodecDelay, len(s.Packets[0].Payload))
}
