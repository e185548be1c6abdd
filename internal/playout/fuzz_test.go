package playout

import (
	"slices"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/jitter"
)

// FuzzPush drives a Playout with a sequence of operations of 5 bytes each:
//
//	op&3 == 0: push real packet b1 with seq += int8(b2), ts += int8(b3)*120, arriving int8(b4) ms from now
//	op&3 == 1: push the next b1 bytes of the input as a payload (garbage), seq+1, ts+960
//	op&3 == 2: Next, then advance 20 ms (b1&3 more ticks when b1&0x80)
//	op&3 == 3: jump to seq b1<<8|b2 and ts b3<<24
//
// Whatever the input, no panic, every Next fills its 320 samples, and the
// counters add up.
func FuzzPush(f *testing.F) {
	// Seeds: a clean stream, one with loss, reordering and duplicates, and
	// one with a restart and garbage.
	var clean, rough, restart []byte
	for i := range 60 {
		clean = append(clean, 0, byte(i), 1, 8, 3, 2, 0, 0, 0, 0)
		switch {
		case i%7 == 3: // lost: the next packet skips its number
		case i%5 == 1: // swap with a late arrival
			rough = append(rough, 0, byte(i), 2, 16, 10, 0, byte(i+1), 0xff, 0xf8, 25)
		default:
			rough = append(rough, 0, byte(i), 1, 8, byte(i*7%30))
		}
		rough = append(rough, 2, 0, 0, 0, 0)
		if i == 30 {
			restart = append(restart, 3, 0x80, 0x01, 0x55, 0, 1, 6, 0xff, 0x00, 0x01, 0x02)
		}
		restart = append(restart, 0, byte(i), 1, 8, 2, 2, 0x80, 0, 0, 0)
	}
	f.Add(clean)
	f.Add(rough)
	f.Add(restart)
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 4000 {
			ops = ops[:4000]
		}
		pk := realPackets(t)
		p, err := New(Config{Jitter: jitter.Config{Capacity: 16}})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		var seq uint16
		var ts uint32
		var now time.Duration
		pcm := make([]int16, FrameSamples)
		nexts := uint64(0)
		for len(ops) >= 5 {
			op := ops[:5]
			ops = ops[5:]
			switch op[0] & 3 {
			case 0:
				seq += uint16(int8(op[2]))
				ts += uint32(int32(int8(op[3])) * 120)
				_ = p.PushPacket(jitter.Packet{Seq: seq, Timestamp: ts, Payload: pk[int(op[1])%len(pk)],
					Arrival: now + time.Duration(int8(op[4]))*time.Millisecond})
			case 1:
				n := min(int(op[1]), len(ops))
				seq++
				ts += 960
				_ = p.PushPacket(jitter.Packet{Seq: seq, Timestamp: ts, Payload: ops[:n], Arrival: now})
				ops = ops[n:]
			case 2:
				for i := range pcm {
					pcm[i] = sentinel
				}
				fr := p.NextAt(now, pcm)
				nexts++
				if fr.Kind < Decoded || fr.Kind > ComfortNoise {
					t.Fatalf("invalid frame kind %v", fr.Kind)
				}
				if !slices.ContainsFunc(pcm, func(v int16) bool { return v != sentinel }) {
					t.Fatalf("frame not filled")
				}
				now += tick
				if op[1]&0x80 != 0 {
					now += time.Duration(op[1]&3) * tick
				}
			case 3:
				seq = uint16(op[1])<<8 | uint16(op[2])
				ts = uint32(op[3]) << 24
			}
		}
		s := p.Stats()
		if s.Frames != nexts || s.Decoded+s.FEC+s.Concealed+s.ComfortNoise < s.Frames {
			t.Fatalf("%d frames produced: %+v", nexts, s)
		}
		if acc := s.Invalid + s.Duplicate + s.Outliers + s.Late + s.Dropped + s.Played + uint64(s.Buffered); acc != s.Received {
			t.Fatalf("received %d, accounted %d: %+v", s.Received, acc, s)
		}
		if s.Played < s.Decoded {
			t.Fatalf("decoded %d of %d played: %+v", s.Decoded, s.Played, s)
		}
	})
}
