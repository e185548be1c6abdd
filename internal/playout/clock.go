package playout

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxBurst is how many overdue ticks a Clock runs back to back after
// its goroutine was delayed; older ones are skipped.
const DefaultMaxBurst = 5

// Tick is one call of a Clock's callback.
type Tick struct {
	// N is the tick's index since the start; skipped ticks count too, so
	// the tick was due at N intervals after the start.
	N int64
	// Due is when the tick was due, since the start.
	Due time.Duration
	// Late is how much later than due the callback was called.
	Late time.Duration
}

// ClockStats counts a clock's ticks.
type ClockStats struct {
	Ticks   uint64        // callbacks made
	Late    uint64        // callbacks made a whole interval or more after their time (catching up)
	Skipped uint64        // ticks dropped because more than the burst was overdue
	MaxLate time.Duration // the latest a callback ran
}

// plan is the clock's schedule, a pure function of time: tick n is due at
// n*interval after the start. At elapsed time since the start, with done
// ticks run or skipped so far, it returns how many ticks to skip (all but
// the newest maxBurst overdue ones), how many to run now, and how long to
// wait after running them, assuming they take no time. The schedule is
// absolute, so lateness never accumulates into drift.
func plan(elapsed, interval time.Duration, done int64, maxBurst int) (skip, run int64, wait time.Duration) {
	due := int64(elapsed/interval) + 1 // ticks 0..elapsed/interval are due
	if elapsed < 0 {
		due = 0
	}
	if behind := due - done; behind > 0 {
		run = min(behind, int64(maxBurst))
		skip = behind - run
	}
	wait = time.Duration(done+skip+run)*interval - elapsed
	return skip, run, max(wait, 0)
}

// Run calls fn once per interval on an absolute schedule (tick n at start +
// n*interval; a start in the future is waited for, the zero time means now)
// until ctx is done, and returns ctx's error. When the goroutine was delayed,
// the overdue ticks are run back to back, at most maxBurst of them (0 means
// DefaultMaxBurst); older ones are skipped. stats, when not nil, is updated as
// it goes.
func Run(ctx context.Context, start time.Time, interval time.Duration, maxBurst int, fn func(Tick), stats *ClockCounters) error {
	if interval <= 0 {
		interval = FrameDuration
	}
	if maxBurst <= 0 {
		maxBurst = DefaultMaxBurst
	}
	if stats == nil {
		stats = new(ClockCounters)
	}
	if start.IsZero() {
		start = time.Now()
	}
	timer := time.NewTimer(max(time.Until(start), 0))
	defer timer.Stop()
	var done int64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		elapsed := time.Since(start)
		skip, run, _ := plan(elapsed, interval, done, maxBurst)
		done += skip
		stats.skipped.Add(uint64(skip))
		for range run {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			due := time.Duration(done) * interval
			late := max(time.Since(start)-due, 0)
			fn(Tick{N: done, Due: due, Late: late})
			done++
			stats.note(late, interval)
		}
		_, _, wait := plan(time.Since(start), interval, done, maxBurst)
		timer.Reset(wait)
	}
}

// ClockCounters are the live counters of a running clock, safe to read
// while it runs.
type ClockCounters struct {
	ticks, late, skipped atomic.Uint64
	maxLate              atomic.Int64
}

func (c *ClockCounters) note(late, interval time.Duration) {
	c.ticks.Add(1)
	if late >= interval {
		c.late.Add(1)
	}
	for {
		m := c.maxLate.Load()
		if int64(late) <= m || c.maxLate.CompareAndSwap(m, int64(late)) {
			return
		}
	}
}

// Stats returns a snapshot of the counters.
func (c *ClockCounters) Stats() ClockStats {
	return ClockStats{
		Ticks:   c.ticks.Load(),
		Late:    c.late.Load(),
		Skipped: c.skipped.Load(),
		MaxLate: time.Duration(c.maxLate.Load()),
	}
}

// Clock runs Run on its own goroutine until Close.
type Clock struct {
	cancel   context.CancelFunc
	done     chan struct{}
	once     sync.Once
	counters ClockCounters
}

// StartClock starts calling fn once per interval (0 means FrameDuration) on
// a new goroutine, with DefaultMaxBurst. The goroutine stops when ctx is
// done or Close is called. fn runs on the clock's goroutine and should
// return well within the interval.
func StartClock(ctx context.Context, interval time.Duration, fn func(Tick)) *Clock {
	ctx, cancel := context.WithCancel(ctx)
	c := &Clock{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		_ = Run(ctx, time.Time{}, interval, 0, fn, &c.counters)
	}()
	return c
}

// Close stops the clock and waits for its goroutine (and a callback in
// progress) to finish. It is idempotent; it must not be called from the
// callback.
func (c *Clock) Close() {
	c.once.Do(c.cancel)
	<-c.done
}

// Stats returns the clock's counters.
func (c *Clock) Stats() ClockStats { return c.counters.Stats() }
