package playout

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// virtualClock is a SharedClock without goroutines whose shards run on a virtual time the
// test advances.
type virtualClock struct {
	*SharedClock
	now time.Duration
}

func newVirtualClock(shards int) *virtualClock {
	v := &virtualClock{SharedClock: NewSharedClock(SharedClockConfig{Shards: shards})}
	v.manual = true
	return v
}

func (v *virtualClock) join(t testing.TB, fn func(Tick)) *Member {
	t.Helper()
	m, err := v.Join(fn, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.shard.now = func() time.Duration { return v.now } // the shard's start is virtual 0
	return m
}

// advance moves virtual time to at and runs one round of every shard.
func (v *virtualClock) advance(at time.Duration) {
	v.now = at
	for _, sh := range v.shards {
		if sh != nil {
			sh.round(v.interval, v.maxBurst)
		}
	}
}

// tickLog records a member's ticks.
type tickLog struct {
	mu    sync.Mutex
	ticks []Tick
}

func (l *tickLog) fn(t Tick) {
	l.mu.Lock()
	l.ticks = append(l.ticks, t)
	l.mu.Unlock()
}

func (l *tickLog) ns() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := make([]int64, len(l.ticks))
	for i, t := range l.ticks {
		n[i] = t.N
	}
	return n
}

func TestSharedClockSpreadsMembers(t *testing.T) {
	c := newVirtualClock(3)
	var ms []*Member
	for range 7 {
		ms = append(ms, c.join(t, func(Tick) {}))
	}
	if got := c.Shards(); got[0] != 3 || got[1] != 2 || got[2] != 2 {
		t.Fatalf("members per shard %v, want [3 2 2]", got)
	}
	ms[1].Leave()
	ms[3].Leave()
	if got := c.Shards(); got[0]+got[1]+got[2] != 5 || got[1] != 1 {
		t.Fatalf("members per shard after two left: %v", got)
	}
	m := c.join(t, func(Tick) {})
	if m.shard.index != 1 {
		t.Fatalf("new member on shard %d, want the least loaded, 1", m.shard.index)
	}
	for _, m := range ms {
		m.Leave()
	}
	m.Leave()
	if got := c.Shards(); got[0]+got[1]+got[2] != 0 {
		t.Fatalf("members per shard after all left: %v", got)
	}
	c.Close()
}

// TestSharedClockSchedule: on virtual time, every member of a shard gets one tick per interval
// numbered from its own join, a late joiner starts at the shard's next tick, a stall gives a
// bounded burst and skips the rest (counted per member), and a member that left gets nothing.
func TestSharedClockSchedule(t *testing.T) {
	const ms = time.Millisecond
	c := newVirtualClock(1)
	var a, b, late tickLog
	ma := c.join(t, a.fn)
	mb := c.join(t, b.fn)
	c.advance(0)       // tick 0
	c.advance(19 * ms) // nothing due
	c.advance(20 * ms) // tick 1
	c.advance(47 * ms) // tick 2
	ml := c.join(t, late.fn)
	c.advance(60 * ms)  // tick 3: the late joiner's 0
	c.advance(300 * ms) // ticks 4..15 due: 4..10 skipped, 11..15 run
	mb.Leave()
	c.advance(320 * ms) // tick 16
	want := []int64{0, 1, 2, 3, 11, 12, 13, 14, 15, 16}
	if got := a.ns(); !equal(got, want) {
		t.Fatalf("member a ticks %v, want %v", got, want)
	}
	if got := b.ns(); !equal(got, want[:len(want)-1]) {
		t.Fatalf("member b (left before tick 16) ticks %v, want %v", got, want[:len(want)-1])
	}
	if got, want := late.ns(), []int64{0, 8, 9, 10, 11, 12, 13}; !equal(got, want) {
		t.Fatalf("late joiner ticks %v, want %v", got, want)
	}
	for _, tk := range a.ticks {
		if tk.Due != time.Duration(tk.N)*20*ms || tk.Late < 0 {
			t.Errorf("tick %+v", tk)
		}
	}
	if tk := a.ticks[2]; tk.Late != 7*ms {
		t.Errorf("tick 2 run at 47 ms: late %v, want 7ms", tk.Late)
	}
	if s := ma.Stats(); s.Ticks != 10 || s.Skipped != 7 || s.Late != 4 || s.MaxLate != 80*ms {
		t.Errorf("member a stats %+v, want 10 ticks, 7 skipped, 4 late, max 80ms", s)
	}
	if s := ml.Stats(); s.Ticks != 7 || s.Skipped != 7 {
		t.Errorf("late joiner stats %+v, want 7 ticks, 7 skipped", s)
	}
	ma.Leave()
	ml.Leave()
	c.Close()
}

func equal(a, b []int64) bool {
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

// TestSharedClockTickAllocs: a round of a shard with many members allocates nothing.
func TestSharedClockTickAllocs(t *testing.T) {
	c := newVirtualClock(1)
	var sum atomic.Int64
	for range 500 {
		c.join(t, func(tk Tick) { sum.Add(tk.N) })
	}
	c.advance(0)
	at := time.Duration(0)
	if n := testing.AllocsPerRun(200, func() {
		at += FrameDuration
		c.advance(at)
	}); n != 0 {
		t.Fatalf("%v allocations a round of 500 members", n)
	}
	if s := c.shards[0].local[0].Stats(); s.Ticks != 202 {
		t.Fatalf("a member ran %d ticks, want 202", s.Ticks)
	}
	c.Close()
}

// TestSharedClockRealTime: members on real shards tick; Leave waits for a tick in progress and
// no tick runs after it returns; the last member's Leave ends the shard's goroutine.
func TestSharedClockRealTime(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := NewSharedClock(SharedClockConfig{Interval: 2 * time.Millisecond, Shards: 2})
	defer c.Close()
	const n = 6
	var counts [n]atomic.Int64
	inTick := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	members := make([]*Member, n)
	for i := range members {
		var err error
		members[i], err = c.Join(func(tk Tick) {
			if counts[i].Add(1) == 5 && i == 0 {
				close(inTick)
				<-release // block in the middle of a tick
				finished.Store(true)
			}
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	<-inTick
	left := make(chan bool)
	go func() {
		members[0].Leave()
		left <- finished.Load()
	}()
	time.Sleep(5 * time.Millisecond) // give Leave a chance to return early if it did not wait
	close(release)
	if !<-left {
		t.Fatal("Leave returned while the member's tick was running")
	}
	after := counts[0].Load()
	deadline := time.Now().Add(10 * time.Second) // liveness only
	for _, i := range []int{1, 2, 3, 4, 5} {
		for counts[i].Load() < 10 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if counts[i].Load() < 10 {
			t.Fatalf("member %d: %d ticks in 10 s", i, counts[i].Load())
		}
	}
	if counts[0].Load() != after {
		t.Fatalf("member 0 ticked after Leave returned")
	}
	for _, m := range members {
		m.Leave()
		m.Leave() // idempotent
	}
	if got := c.Shards(); got[0]+got[1] != 0 {
		t.Fatalf("members per shard after all left: %v", got)
	}
	// goleak: the shards' goroutines have ended with their last members.
}

func TestSharedClockClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := NewSharedClock(SharedClockConfig{Interval: time.Millisecond})
	var ticks atomic.Int64
	m, err := c.Join(func(Tick) { ticks.Add(1) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for ticks.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	c.Close()
	got := ticks.Load()
	if _, err := c.Join(func(Tick) {}, nil); !errors.Is(err, ErrClockClosed) {
		t.Fatalf("Join after Close: %v, want ErrClockClosed", err)
	}
	time.Sleep(5 * time.Millisecond)
	if ticks.Load() != got {
		t.Fatal("ticks after Close")
	}
	m.Leave() // after Close: fine
}

// BenchmarkSharedClockRound is one 20 ms round of a shard with 200 members doing nothing: the
// clock's own cost per member and tick.
func BenchmarkSharedClockRound(b *testing.B) {
	c := newVirtualClock(1)
	for range 200 {
		c.join(b, func(Tick) {})
	}
	b.ReportAllocs()
	at := time.Duration(0)
	for b.Loop() {
		c.advance(at)
		at += FrameDuration
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/200, "ns/member-tick")
	c.Close()
}
