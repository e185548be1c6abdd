package playout

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		elapsed   time.Duration
		done      int64
		burst     int
		skip, run int64
		wait      time.Duration
		name      string
	}{
		{0, 0, 5, 0, 1, 20 * ms, "first tick at once"},
		{19 * ms, 1, 5, 0, 0, 1 * ms, "early wake-up waits"},
		{20 * ms, 1, 5, 0, 1, 20 * ms, "on time"},
		{27 * ms, 1, 5, 0, 1, 13 * ms, "late wake-up keeps the absolute schedule"},
		{45 * ms, 1, 5, 0, 2, 15 * ms, "one overdue tick is caught up"},
		{200 * ms, 1, 5, 5, 5, 20 * ms, "long stall: bounded burst, the rest skipped"},
		{-5 * ms, 0, 5, 0, 0, 5 * ms, "before the start"},
	} {
		skip, run, wait := plan(tc.elapsed, 20*ms, tc.done, tc.burst)
		if skip != tc.skip || run != tc.run || wait != tc.wait {
			t.Errorf("%s: plan(%v, done %d) = skip %d run %d wait %v, want %d %d %v",
				tc.name, tc.elapsed, tc.done, skip, run, wait, tc.skip, tc.run, tc.wait)
		}
	}
}

// TestPlanNoDrift simulates a clock loop in virtual time whose wake-ups are
// up to 7 ms late, with occasional stalls: the ticks run always equal the
// ticks due, so lateness never accumulates.
func TestPlanNoDrift(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	const interval = 20 * time.Millisecond
	var now, last time.Duration
	var done, ran, skipped int64
	for i := range 100000 {
		last = now
		skip, run, wait := plan(now, interval, done, DefaultMaxBurst)
		done += skip + run
		ran += run
		skipped += skip
		if run > DefaultMaxBurst {
			t.Fatalf("burst of %d", run)
		}
		now += wait + time.Duration(r.Int64N(int64(7*time.Millisecond)))
		if i%10000 == 9999 {
			now += 300 * time.Millisecond // a stall
		}
		due := int64(now/interval) + 1
		if behind := due - done; behind > 1+int64(300*time.Millisecond/interval) {
			t.Fatalf("at %v: %d ticks behind", now, behind)
		}
	}
	due := int64(last/interval) + 1
	if d := due - (ran + skipped); d != 0 {
		t.Fatalf("after %v: %d run + %d skipped, %d due: drift", now, ran, skipped, due)
	}
	if skipped == 0 || skipped > 10*int64(300*time.Millisecond/interval) {
		t.Fatalf("%d skipped ticks for 10 stalls", skipped)
	}
}

func TestClockRunsAndStops(t *testing.T) {
	var n atomic.Int64
	var lastN atomic.Int64
	c := StartClock(t.Context(), 5*time.Millisecond, func(tk Tick) {
		if tk.N < lastN.Load() || tk.Due != time.Duration(tk.N)*5*time.Millisecond || tk.Late < 0 {
			t.Errorf("bad tick %+v", tk)
		}
		lastN.Store(tk.N)
		n.Add(1)
	})
	deadline := time.Now().Add(10 * time.Second) // liveness only
	for n.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c.Close()
	c.Close() // idempotent
	got := n.Load()
	if got < 10 {
		t.Fatalf("%d ticks in 10 s", got)
	}
	time.Sleep(20 * time.Millisecond)
	if n.Load() != got {
		t.Fatalf("ticks after Close")
	}
	if s := c.Stats(); s.Ticks != uint64(got) {
		t.Fatalf("stats %+v after %d ticks", s, got)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	err := Run(ctx, time.Time{}, time.Millisecond, 0, func(Tick) {
		calls++
		if calls == 3 {
			cancel()
		}
	}, nil)
	if !errors.Is(err, context.Canceled) || calls != 3 {
		t.Fatalf("Run returned %v after %d calls", err, calls)
	}
}

func TestClockStopsWithParentContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	c := StartClock(ctx, time.Millisecond, func(Tick) {})
	cancel()
	c.Close() // returns once the goroutine has seen the cancellation
}

// TestClockDrivesPlayout is the intended use: the clock calls Next.
func TestClockDrivesPlayout(t *testing.T) {
	p := newPlayout(t, Config{})
	frames := make(chan FrameKind, 1000)
	pcm := make([]int16, FrameSamples)
	c := StartClock(t.Context(), 2*time.Millisecond, func(Tick) { frames <- p.Next(pcm) })
	deadline := time.Now().Add(10 * time.Second)
	for len(frames) < 5 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	c.Close()
	if len(frames) < 5 || <-frames != ComfortNoise {
		t.Fatalf("%d frames", len(frames))
	}
}

// TestRunWaitsForStart: a schedule that starts in the future runs its first tick no earlier.
func TestRunWaitsForStart(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	start := time.Now().Add(30 * time.Millisecond)
	var first time.Time
	err := Run(ctx, start, time.Millisecond, 0, func(tk Tick) {
		if first.IsZero() {
			first = time.Now()
			if tk.N != 0 {
				t.Errorf("first tick is %d, want 0", tk.N)
			}
		}
		cancel()
	}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	if first.Before(start) {
		t.Fatalf("first tick %v before the start", start.Sub(first))
	}
}
