package playout

import (
	"errors"
	"runtime"
	"slices"
	"sync"
	"time"
)

// ErrClockClosed is returned by SharedClock.Join after Close.
var ErrClockClosed = errors.New("playout: shared clock closed")

// SharedClockConfig configures a SharedClock. The zero value ticks every FrameDuration on
// GOMAXPROCS shards with DefaultMaxBurst.
type SharedClockConfig struct {
	// Interval is the tick period; 0 means FrameDuration.
	Interval time.Duration
	// MaxBurst is how many overdue ticks a shard runs back to back after a delay; 0 means
	// DefaultMaxBurst.
	MaxBurst int
	// Shards is the number of goroutines the members are spread over; 0 means GOMAXPROCS at
	// NewSharedClock.
	Shards int
}

// SharedClock gives many members (a process's audio sockets) the schedule of Run without a
// goroutine and a timer each: the members are spread over a few shards, the least loaded first,
// and each shard is one goroutine that ticks on its own absolute schedule and calls its
// members' callbacks one after the other. A shard's goroutine starts with its first member and
// stops when its last member leaves, or at Close.
//
// A member sees what Run's callback sees: tick N of a member is the N-th tick of its shard
// since the member joined (skipped ticks count too), due at N intervals; after a stall its
// shard runs at most MaxBurst overdue ticks back to back and skips older ones (counted in the
// member's ClockCounters when its next tick runs). Its first tick is the shard's next one: at
// once for a new shard, within an interval otherwise.
//
// The callbacks of one shard run in turn on its goroutine, so each must return well within the
// interval (hand slow work to another goroutine): a callback that blocks delays its shard's
// other members. Ticking allocates nothing in the steady state. Its methods are safe for
// concurrent use.
type SharedClock struct {
	interval time.Duration
	maxBurst int

	mu     sync.Mutex
	shards []*shard // nil: no member, no goroutine
	closed bool

	// manual (tests) starts no goroutines: the test calls the shards' round itself.
	manual bool
}

// NewSharedClock makes a shared clock. It starts no goroutine until the first Join.
func NewSharedClock(cfg SharedClockConfig) *SharedClock {
	if cfg.Interval <= 0 {
		cfg.Interval = FrameDuration
	}
	if cfg.MaxBurst <= 0 {
		cfg.MaxBurst = DefaultMaxBurst
	}
	if cfg.Shards <= 0 {
		cfg.Shards = runtime.GOMAXPROCS(0)
	}
	return &SharedClock{
		interval: cfg.Interval,
		maxBurst: cfg.MaxBurst,
		shards:   make([]*shard, cfg.Shards),
	}
}

// Member is one participant of a SharedClock, from Join until Leave.
type Member struct {
	clock *SharedClock
	shard *shard
	fn    func(Tick)
	stats *ClockCounters
	once  sync.Once

	mu    sync.Mutex // held while fn runs; Leave takes it to wait for a tick in progress
	gone  bool       // left: no more ticks
	first int64      // the shard's index of the member's tick 0
	next  int64      // the shard's index of the member's next tick; a later one means skips
}

// shard is one goroutine's share of the members.
type shard struct {
	index int
	load  int // members; guarded by SharedClock.mu

	mu      sync.Mutex
	members []*Member // in join order
	version uint64    // bumped when members change
	next    int64     // the index of the next tick to run: where a joining member starts

	stop chan struct{}
	done chan struct{}

	// Owned by the shard's goroutine.
	now    func() time.Duration // time since the shard's start
	ticked int64                // ticks run or skipped so far
	local  []*Member            // the members, copied when version changes
	seen   uint64               // version of local
}

// Join adds a member whose fn is called once per tick, from its shard's next tick on, until
// Leave. stats, when not nil, is updated as it goes (several members may share one). It fails
// with ErrClockClosed after Close.
func (c *SharedClock) Join(fn func(Tick), stats *ClockCounters) (*Member, error) {
	if stats == nil {
		stats = new(ClockCounters)
	}
	m := &Member{clock: c, fn: fn, stats: stats}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClockClosed
	}
	best := 0
	for i, sh := range c.shards {
		if sh == nil || sh.load < loadOf(c.shards[best]) {
			best = i
			if sh == nil {
				break
			}
		}
	}
	sh := c.shards[best]
	if sh == nil {
		sh = c.newShard(best)
		c.shards[best] = sh
		if !c.manual {
			go sh.run(c.interval, c.maxBurst)
		}
	}
	sh.load++
	m.shard = sh
	sh.mu.Lock()
	m.first, m.next = sh.next, sh.next
	sh.members = append(sh.members, m)
	sh.version++
	sh.mu.Unlock()
	return m, nil
}

func loadOf(sh *shard) int {
	if sh == nil {
		return 0
	}
	return sh.load
}

func (c *SharedClock) newShard(index int) *shard {
	start := time.Now()
	return &shard{
		index: index,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		now:   func() time.Duration { return time.Since(start) },
	}
}

// Leave removes the member: when it returns, no tick of the member runs or will run. When it
// was its shard's last member, the shard's goroutine has ended too. It is idempotent; it must
// not be called from the member's own callback (it waits for it), and it may be called after
// the clock's Close.
func (m *Member) Leave() {
	m.once.Do(func() {
		c, sh := m.clock, m.shard
		var stop *shard
		c.mu.Lock()
		sh.mu.Lock()
		if i := slices.Index(sh.members, m); i >= 0 {
			sh.members = slices.Delete(sh.members, i, i+1)
			sh.version++
		}
		sh.mu.Unlock()
		if c.shards[sh.index] == sh {
			if sh.load--; sh.load == 0 {
				c.shards[sh.index] = nil
				stop = sh
			}
		}
		c.mu.Unlock()
		m.mu.Lock() // waits for a tick in progress
		m.gone = true
		m.mu.Unlock()
		if stop != nil {
			stop.halt(c.manual)
		}
	})
}

// Stats returns the member's counters (shared with other members when Join was given shared
// ones).
func (m *Member) Stats() ClockStats { return m.stats.Stats() }

// Close stops every shard and waits for their goroutines (and the callbacks in progress) to
// end; later Joins fail with ErrClockClosed. Members may still Leave. It is idempotent; it must
// not be called from a callback.
func (c *SharedClock) Close() {
	c.mu.Lock()
	c.closed = true
	var stop []*shard
	for i, sh := range c.shards {
		if sh != nil {
			stop = append(stop, sh)
			c.shards[i] = nil
		}
	}
	c.mu.Unlock()
	for _, sh := range stop {
		sh.halt(c.manual)
	}
}

// Shards returns the number of members on each shard (tests, metrics).
func (c *SharedClock) Shards() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := make([]int, len(c.shards))
	for i, sh := range c.shards {
		n[i] = loadOf(sh)
	}
	return n
}

// halt stops the shard's goroutine and waits for it; called once, by whoever took the shard
// out of the clock.
func (sh *shard) halt(manual bool) {
	close(sh.stop)
	if !manual {
		<-sh.done
	}
}

// run is the shard's goroutine.
func (sh *shard) run(interval time.Duration, maxBurst int) {
	defer close(sh.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-sh.stop:
			return
		case <-timer.C:
		}
		timer.Reset(sh.round(interval, maxBurst))
	}
}

// round runs or skips the ticks that are due now and returns how long to wait for the next.
func (sh *shard) round(interval time.Duration, maxBurst int) time.Duration {
	skip, run, _ := plan(sh.now(), interval, sh.ticked, maxBurst)
	sh.ticked += skip
	for range run {
		select {
		case <-sh.stop:
			return interval
		default:
		}
		sh.tick(sh.ticked, interval)
		sh.ticked++
	}
	_, _, wait := plan(sh.now(), interval, sh.ticked, maxBurst)
	return wait
}

// tick runs the shard's tick k for every member.
func (sh *shard) tick(k int64, interval time.Duration) {
	sh.mu.Lock()
	if sh.version != sh.seen {
		n := len(sh.local)
		sh.local = append(sh.local[:0], sh.members...)
		if n > len(sh.local) {
			clear(sh.local[len(sh.local):n]) // no stale references to members that left
		}
		sh.seen = sh.version
	}
	sh.next = k + 1
	sh.mu.Unlock()
	due := time.Duration(k) * interval
	for _, m := range sh.local {
		m.mu.Lock()
		if !m.gone {
			if k > m.next {
				m.stats.skipped.Add(uint64(k - m.next))
			}
			m.next = k + 1
			n := k - m.first
			late := max(sh.now()-due, 0)
			m.fn(Tick{N: n, Due: time.Duration(n) * interval, Late: late})
			m.stats.note(late, interval)
		}
		m.mu.Unlock()
	}
}
