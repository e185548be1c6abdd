package jitter

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

const tick = 20 * time.Millisecond

// TOC bytes (RFC 6716): SILK wideband of 10, 20, 40 and 60 ms, one frame.
const (
	toc10 = 8 << 3
	toc20 = 9 << 3
	toc40 = 10 << 3
	toc60 = 11 << 3
)

// pkt builds a packet whose payload names its sequence number.
func pkt(seq uint16, ts uint32, arrival time.Duration, toc byte) Packet {
	return Packet{Seq: seq, Timestamp: ts, Arrival: arrival, Payload: []byte{toc, byte(seq), byte(seq >> 8), 0xAA}}
}

// stream returns n 20 ms packets from seq0/ts0, sent at i*20ms (the media
// time), arriving at send time + base delay + jitter(i).
func stream(n int, seq0 uint16, ts0 uint32, start time.Duration, delay func(i int) time.Duration) []Packet {
	out := make([]Packet, n)
	for i := range out {
		out[i] = pkt(seq0+uint16(i), ts0+uint32(i*FrameTicks), start+time.Duration(i)*tick+delay(i), toc20)
	}
	return out
}

func constDelay(d time.Duration) func(int) time.Duration {
	return func(int) time.Duration { return d }
}

func uniformDelay(r *rand.Rand, base, spread time.Duration) func(int) time.Duration {
	return func(int) time.Duration { return base + time.Duration(r.Int64N(int64(spread)+1)) }
}

// run delivers pkts in arrival order and pops once per 20 ms tick from
// time 0 until `until`, returning the frames (payloads copied).
func run(t testing.TB, b *Buffer, pkts []Packet, until time.Duration) []Frame {
	t.Helper()
	pkts = slices.Clone(pkts)
	slices.SortStableFunc(pkts, func(x, y Packet) int { return int(x.Arrival - y.Arrival) })
	var frames []Frame
	i := 0
	for now := time.Duration(0); now < until; now += tick {
		for i < len(pkts) && pkts[i].Arrival <= now {
			_ = b.Push(pkts[i])
			i++
		}
		f := b.Pop(now)
		f.Payload = bytes.Clone(f.Payload)
		frames = append(frames, f)
		checkInvariants(t, b)
	}
	return frames
}

func checkInvariants(t testing.TB, b *Buffer) {
	t.Helper()
	s := b.Stats()
	accounted := s.Invalid + s.Duplicate + s.Outliers + s.Late + s.Dropped + s.Played + uint64(s.Buffered)
	if s.Received != accounted {
		t.Fatalf("received %d packets but accounted for %d: %+v", s.Received, accounted, s)
	}
	if s.TargetDepth < b.minDepth || s.TargetDepth > b.maxDepth {
		t.Fatalf("target depth %v outside [%v, %v]", s.TargetDepth, b.minDepth, b.maxDepth)
	}
	if s.Depth < 0 || s.Jitter < 0 {
		t.Fatalf("negative depth or jitter: %+v", s)
	}
}

// kinds counts the kinds of frames up to the last packet played (the
// underruns after the end of a stream are not interesting).
func kinds(frames []Frame) map[Kind]int {
	last := len(frames) - 1
	for last >= 0 && frames[last].Kind != Play {
		last--
	}
	frames = frames[:last+1]
	m := map[Kind]int{}
	for _, f := range frames {
		m[f.Kind]++
	}
	return m
}

// played returns the sequence numbers of the Play frames.
func played(frames []Frame) []uint16 {
	var out []uint16
	for _, f := range frames {
		if f.Kind == Play {
			out = append(out, f.Seq)
		}
	}
	return out
}

func TestInOrderStream(t *testing.T) {
	b := New(Config{})
	pkts := stream(500, 1000, 5000, 0, constDelay(5*time.Millisecond))
	frames := run(t, b, pkts, 520*tick)
	k := kinds(frames)
	if k[Play] != 500 || k[Lost]+k[Underrun]+k[Stretch] != 0 || k[Waiting] < 1 || k[Waiting] > 3 {
		t.Fatalf("kinds %v, want 500 played after 1-3 waiting slots and nothing lost", k)
	}
	seqs := played(frames)
	for i, s := range seqs {
		if s != uint16(1000+i) {
			t.Fatalf("played[%d] = %d, want %d", i, s, 1000+i)
		}
	}
	for _, f := range frames {
		if f.Kind == Play && (f.Payload[1] != byte(f.Seq) || f.Ticks != FrameTicks) {
			t.Fatalf("frame %+v carries the wrong payload", f)
		}
	}
	s := b.Stats()
	if s.Received != 500 || s.Lost != 0 || s.Late != 0 || s.Reordered != 0 || s.Played != 500 {
		t.Fatalf("stats %+v", s)
	}
	if s.TargetDepth != DefaultMinDepth {
		t.Fatalf("target depth %v with no jitter, want %v", s.TargetDepth, DefaultMinDepth)
	}
}

func TestLossGivesNextForFEC(t *testing.T) {
	b := New(Config{})
	var pkts []Packet
	for _, p := range stream(300, 7, 0, 0, constDelay(3*time.Millisecond)) {
		if p.Seq == 107 || p.Seq == 207 || p.Seq == 208 {
			continue
		}
		pkts = append(pkts, p)
	}
	frames := run(t, b, pkts, 320*tick)
	// 107 and 208 are recovered from the next packet; 207 is concealed
	// (reported lost, or an underrun when nothing after it had arrived yet).
	slotOf := func(seq uint16) Frame {
		for _, f := range frames {
			if f.Kind != Play && f.Kind != Waiting && f.Timestamp == uint32(seq-7)*FrameTicks {
				return f
			}
		}
		t.Fatalf("no slot for %d", seq)
		return Frame{}
	}
	for _, w := range []struct{ seq, next uint16 }{{107, 108}, {208, 209}} {
		f := slotOf(w.seq)
		if f.Kind != Lost || f.Seq != w.seq || len(f.Payload) != 4 || f.Payload[1] != byte(w.next) {
			t.Fatalf("slot of %d: %+v, want lost with packet %d", w.seq, f, w.next)
		}
	}
	if f := slotOf(207); (f.Kind != Lost && f.Kind != Underrun) || f.Payload != nil {
		t.Fatalf("slot of 207: %+v", f)
	}
	if k := kinds(frames); k[Lost]+k[Underrun] != 3 || k[Stretch] != 0 {
		t.Fatalf("kinds %v", k)
	}
	s := b.Stats()
	if s.Lost != 3 || s.Played != 297 || s.Late != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestReorderDuplicateLate(t *testing.T) {
	b := New(Config{})
	pkts := stream(400, 0, 0, 0, constDelay(10*time.Millisecond))
	// Swap the arrival of every 10th packet with its successor (in time: 10
	// ms apart), duplicate every 25th, and hold packet 300 back by 300 ms.
	reordered := 0
	for i := 10; i < 390; i += 10 {
		pkts[i].Arrival, pkts[i+1].Arrival = pkts[i+1].Arrival+time.Millisecond, pkts[i].Arrival
		reordered++
	}
	for i := 5; i < 400; i += 25 {
		d := pkts[i]
		d.Arrival += 7 * time.Millisecond
		pkts = append(pkts, d)
	}
	pkts[307].Arrival += 300 * time.Millisecond
	reordered++ // it arrives after 308..
	frames := run(t, b, pkts, 440*tick)
	s := b.Stats()
	if s.Duplicate != 16 {
		t.Errorf("duplicates %d, want 16", s.Duplicate)
	}
	if s.Reordered != uint64(reordered) {
		t.Errorf("reordered %d, want %d", s.Reordered, reordered)
	}
	if s.Late != 1 || s.Lost != 0 {
		t.Errorf("late %d lost %d, want 1 late (packet 307) and none lost", s.Late, s.Lost)
	}
	if s.TargetDepth < 150*time.Millisecond {
		t.Errorf("target %v after a packet 300 ms late, want near the maximum", s.TargetDepth)
	}
	seqs := played(frames)
	if len(seqs) != 399 || slices.Contains(seqs, 307) {
		t.Errorf("played %d packets (307 among them: %v), want 399 without 307", len(seqs), slices.Contains(seqs, 307))
	}
	if !slices.IsSortedFunc(seqs, func(x, y uint16) int { return int(x) - int(y) }) {
		t.Errorf("played out of order")
	}
}

func TestWraparound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b := New(Config{})
	const n = 600
	seq0, ts0 := uint16(65500), uint32(1<<32-FrameTicks*200)
	pkts := stream(n, seq0, ts0, 0, uniformDelay(r, 5*time.Millisecond, 30*time.Millisecond))
	frames := run(t, b, pkts, (n+30)*tick)
	var prev *Frame
	count := 0
	for i := range frames {
		f := &frames[i]
		if f.Kind != Play {
			continue
		}
		count++
		if prev != nil && (f.Seq != prev.Seq+1 || f.Timestamp != prev.Timestamp+FrameTicks) {
			t.Fatalf("after seq %d ts %d came seq %d ts %d", prev.Seq, prev.Timestamp, f.Seq, f.Timestamp)
		}
		prev = f
	}
	s := b.Stats()
	if s.Resyncs != 0 || s.Outliers != 0 || s.Lost != 0 {
		t.Fatalf("wraparound disturbed the stream: %+v", s)
	}
	if uint64(count)+s.Late+s.Dropped != n {
		t.Fatalf("played %d + late %d + dropped %d != %d", count, s.Late, s.Dropped, n)
	}
}

func TestSenderRestart(t *testing.T) {
	b := New(Config{})
	a := stream(200, 100, 777, 0, constDelay(5*time.Millisecond))
	c := stream(200, 40000, 3_000_000_000, 200*tick, constDelay(5*time.Millisecond))
	frames := run(t, b, append(a, c...), 420*tick)
	s := b.Stats()
	if s.Resyncs != 1 {
		t.Fatalf("resyncs %d, want 1: %+v", s.Resyncs, s)
	}
	if s.Outliers != 0 {
		t.Fatalf("outliers %d: the restart's first packet must be kept", s.Outliers)
	}
	seqs := played(frames)
	first := slices.Index(seqs, 40000)
	if first < 0 || len(seqs)-first != 200 {
		t.Fatalf("the new stream was not played from its first packet: %d played after it", len(seqs)-first)
	}
	if s.Lost != 0 {
		t.Fatalf("lost %d across a restart", s.Lost)
	}
}

func TestStrayPacketIgnored(t *testing.T) {
	b := New(Config{})
	pkts := stream(300, 10, 0, 0, constDelay(5*time.Millisecond))
	stray := pkt(30000, 99, 100*tick+time.Millisecond, toc20)
	frames := run(t, b, append(pkts, stray), 320*tick)
	s := b.Stats()
	if s.Outliers != 1 || s.Resyncs != 0 || len(played(frames)) != 300 {
		t.Fatalf("a stray packet disturbed the stream: %+v", s)
	}
}

func TestDTXGapIsSilence(t *testing.T) {
	b := New(Config{})
	var pkts []Packet
	// 100 packets, then the sender is silent for 400 ms and resumes with
	// the next sequence number (timestamp and time advanced).
	pkts = append(pkts, stream(100, 0, 0, 0, constDelay(4*time.Millisecond))...)
	pkts = append(pkts, stream(100, 100, 120*FrameTicks, 120*tick, constDelay(4*time.Millisecond))...)
	frames := run(t, b, pkts, 240*tick)
	k := kinds(frames)
	// Until the next packet arrives the gap is an underrun; once it is
	// there, the rest of the gap is known to be silence.
	if k[Silence]+k[Underrun] != 20 || k[Silence] < 1 || k[Lost] != 0 || k[Play] != 200 {
		t.Fatalf("kinds %v, want 20 silent or underrun slots, 200 played", k)
	}
}

func TestSenderStopsAndResumes(t *testing.T) {
	b := New(Config{})
	var pkts []Packet
	pkts = append(pkts, stream(100, 0, 0, 0, constDelay(4*time.Millisecond))...)
	// Nothing for 3 s; then the stream goes on in sequence.
	pkts = append(pkts, stream(100, 100, 250*FrameTicks, 250*tick, constDelay(4*time.Millisecond))...)
	frames := run(t, b, pkts, 370*tick)
	k := kinds(frames)
	if k[Play] != 200 || k[Lost] != 0 || k[Underrun] < 145 {
		t.Fatalf("kinds %v", k)
	}
	if s := b.Stats(); s.Resyncs != 0 || s.Lost != 0 || s.Late != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestAdaptiveDepth(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spread   time.Duration
		min, max time.Duration
		maxLate  float64 // fraction of packets
	}{
		{"low jitter", 2 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 0.01},
		{"40 ms jitter", 40 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond, 0.03},
		{"1 s jitter", time.Second, 200 * time.Millisecond, 200 * time.Millisecond, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			b := New(Config{})
			const n = 1500 // 30 s
			pkts := stream(n, 0, 0, 0, uniformDelay(r, 10*time.Millisecond, tc.spread))
			frames := run(t, b, pkts, n*tick+2*time.Second)
			s := b.Stats()
			if s.TargetDepth < tc.min || s.TargetDepth > tc.max {
				t.Errorf("target depth %v (jitter %v), want %v..%v", s.TargetDepth, s.Jitter, tc.min, tc.max)
			}
			if late := float64(s.Late) / n; late > tc.maxLate {
				t.Errorf("%.1f %% late with target %v", 100*late, s.TargetDepth)
			}
			// Once the depth covers the jitter, late packets stop.
			if tc.spread <= 40*time.Millisecond {
				tail := frames[len(frames)/2:]
				if k := kinds(tail); k[Underrun] > 5 {
					t.Errorf("second half: %v", k)
				}
			}
			t.Logf("target %v jitter %v stats %+v", s.TargetDepth, s.Jitter, s)
		})
	}
}

func TestDepthShrinksAfterJitterStops(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	b := New(Config{})
	noisy := uniformDelay(r, 10*time.Millisecond, 150*time.Millisecond)
	pkts := stream(3000, 0, 0, 0, func(i int) time.Duration {
		if i < 500 {
			return noisy(i)
		}
		return 10 * time.Millisecond
	})
	var peak time.Duration
	sorted := slices.Clone(pkts)
	slices.SortStableFunc(sorted, func(x, y Packet) int { return int(x.Arrival - y.Arrival) })
	i := 0
	for now := time.Duration(0); now < 3000*tick; now += tick {
		for i < len(sorted) && sorted[i].Arrival <= now {
			_ = b.Push(sorted[i])
			i++
		}
		b.Pop(now)
		if now == 500*tick {
			peak = b.Stats().Depth
		}
	}
	s := b.Stats()
	if s.TargetDepth > 40*time.Millisecond || s.Depth > 80*time.Millisecond || peak < 100*time.Millisecond {
		t.Fatalf("depth %v target %v at the end, %v at the peak", s.Depth, s.TargetDepth, peak)
	}
}

func TestOddDurations(t *testing.T) {
	for _, tc := range []struct {
		toc   byte
		ticks int
	}{{toc10, 480}, {toc40, 1920}, {toc60, 2880}} {
		b := New(Config{})
		n := 10 * ClockRate / tc.ticks // 10 s
		var pkts []Packet
		for i := range n {
			media := time.Duration(i*tc.ticks) * time.Second / ClockRate
			pkts = append(pkts, pkt(uint16(i), uint32(i*tc.ticks), media+3*time.Millisecond, tc.toc))
		}
		i := 0
		have := 0 // ticks of audio decoded and not yet played
		played, other := 0, 0
		for now := time.Duration(0); now < 11*time.Second; now += tick {
			for i < len(pkts) && pkts[i].Arrival <= now {
				_ = b.Push(pkts[i])
				i++
			}
			for have < FrameTicks {
				f := b.Pop(now)
				switch f.Kind {
				case Play:
					played++
					have += f.Ticks
				case Waiting:
					have = FrameTicks
				default:
					other++
					have += FrameTicks
				}
			}
			have -= FrameTicks
		}
		s := b.Stats()
		if played != n || s.OddDuration != uint64(n) || s.Lost != 0 || s.Late != 0 {
			t.Errorf("%d-tick packets: played %d of %d, %d other slots, stats %+v", tc.ticks, played, n, other, s)
		}
		if other > 60 { // the silence after the end: 1 s
			t.Errorf("%d-tick packets: %d slots not played", tc.ticks, other)
		}
	}
}

func TestPushErrors(t *testing.T) {
	b := New(Config{})
	if err := b.Push(Packet{Payload: make([]byte, MaxPayload+1)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized payload: %v", err)
	}
	p := pkt(1, 960, 0, toc20)
	if err := b.Push(p); err != nil {
		t.Fatal(err)
	}
	if err := b.Push(p); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := b.Push(pkt(20000, 960, 0, toc20)); !errors.Is(err, ErrOutlier) {
		t.Fatalf("outlier: %v", err)
	}
	for now := time.Duration(0); now < 10*tick; now += tick {
		b.Pop(now)
	}
	if err := b.Push(pkt(0, 0, 10*tick, toc20)); !errors.Is(err, ErrLate) {
		t.Fatalf("late: %v", err)
	}
	checkInvariants(t, b)
}

func TestPacketTicks(t *testing.T) {
	for _, tc := range []struct {
		p    []byte
		want int64
	}{
		{nil, 0},
		{[]byte{toc20}, 960},
		{[]byte{toc10}, 480},
		{[]byte{toc60}, 2880},
		{[]byte{toc20 | 1}, 1920},     // two frames
		{[]byte{toc20 | 3, 3}, 2880},  // code 3, three frames
		{[]byte{toc20 | 3}, 0},        // code 3 without its count
		{[]byte{toc60 | 3, 3}, 0},     // 180 ms: too long
		{[]byte{28<<3 | 3, 48}, 5760}, // 48 CELT frames of 2.5 ms
		{[]byte{16 << 3, 0}, 120},     // CELT 2.5 ms
		{[]byte{13 << 3}, 960},        // hybrid 20 ms
		{[]byte{toc20 | 3, 0x40}, 0},  // zero frames
		{[]byte{toc20 | 3, 0x80 | 2}, 1920},
	} {
		if got := packetTicks(tc.p); got != tc.want {
			t.Errorf("packetTicks(%x) = %d, want %d", tc.p, got, tc.want)
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	b := New(Config{})
	p := pkt(0, 0, 0, toc20)
	now := time.Duration(0)
	step := func() {
		p.Seq++
		p.Timestamp += FrameTicks
		p.Arrival = now + 5*time.Millisecond
		p.Payload[1] = byte(p.Seq)
		_ = b.Push(p)
		b.Pop(now)
		now += tick
	}
	for range 100 {
		step()
	}
	if a := testing.AllocsPerRun(1000, step); a != 0 {
		t.Fatalf("Push+Pop allocates %v times per packet", a)
	}
	if s := b.Stats(); s.Played < 1000 {
		t.Fatalf("steady state not reached: %+v", s)
	}
}

func BenchmarkPushPop(b *testing.B) {
	buf := New(Config{})
	p := pkt(0, 0, 0, toc20)
	p.Payload = append(p.Payload, make([]byte, 60)...) // a typical 64-byte voice packet
	r := rand.New(rand.NewPCG(7, 8))
	now := time.Duration(0)
	b.ReportAllocs()
	for b.Loop() {
		p.Seq++
		p.Timestamp += FrameTicks
		p.Arrival = now + time.Duration(r.Int64N(int64(20*time.Millisecond)))
		_ = buf.Push(p)
		buf.Pop(now)
		now += tick
	}
}

// TestTimestampJump: a sender whose timestamps jump (forward by a minute,
// or back to zero) while its sequence numbers go on is resynchronised
// instead of waiting for the far future or dropping everything as late.
func TestTimestampJump(t *testing.T) {
	for _, jump := range []uint32{60 * ClockRate, 1<<32 - 300*FrameTicks} {
		b := New(Config{})
		a := stream(200, 10, 300*FrameTicks, 0, constDelay(5*time.Millisecond))
		c := stream(200, 210, 300*FrameTicks+200*FrameTicks+jump, 200*tick, constDelay(5*time.Millisecond))
		frames := run(t, b, append(a, c...), 420*tick)
		s := b.Stats()
		if s.Resyncs != 1 || s.Late != 0 || len(played(frames)) < 398 {
			t.Errorf("jump %d: played %d, stats %+v", jump, len(played(frames)), s)
		}
	}
}
