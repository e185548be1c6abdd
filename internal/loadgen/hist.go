package loadgen

import (
	"math"
	"sync/atomic"
	"time"
)

// hist is a histogram of durations in fixed-width buckets with atomic counters: observing
// allocates nothing and takes no lock. The last bucket holds everything beyond the range.
type hist struct {
	width  time.Duration
	counts []atomic.Uint64
}

func newHist(width time.Duration, buckets int) *hist {
	return &hist{width: width, counts: make([]atomic.Uint64, buckets+1)}
}

func (h *hist) observe(d time.Duration) {
	i := int(d / h.width)
	if i < 0 {
		i = 0
	}
	if i >= len(h.counts) {
		i = len(h.counts) - 1
	}
	h.counts[i].Add(1)
}

// snapshot copies the counters.
func (h *hist) snapshot() histSnap {
	s := histSnap{width: h.width, counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		s.counts[i] = h.counts[i].Load()
	}
	return s
}

// histSnap is a copy of a hist's counters; subtracting two gives the window between them.
type histSnap struct {
	width  time.Duration
	counts []uint64
}

func (s histSnap) sub(o histSnap) histSnap {
	r := histSnap{width: s.width, counts: make([]uint64, len(s.counts))}
	for i := range s.counts {
		if i < len(o.counts) && s.counts[i] >= o.counts[i] {
			r.counts[i] = s.counts[i] - o.counts[i]
		} else {
			r.counts[i] = s.counts[i]
		}
	}
	return r
}

func (s histSnap) total() uint64 {
	var n uint64
	for _, c := range s.counts {
		n += c
	}
	return n
}

// quantile returns the q-quantile, interpolated inside its bucket; 0 with no samples.
func (s histSnap) quantile(q float64) time.Duration {
	n := s.total()
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	var cum float64
	for i, c := range s.counts {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= rank {
			frac := (rank - cum) / float64(c)
			return time.Duration((float64(i) + frac) * float64(s.width))
		}
		cum += float64(c)
	}
	return time.Duration(len(s.counts)) * s.width
}

// max returns the upper bound of the highest non-empty bucket.
func (s histSnap) max() time.Duration {
	for i := len(s.counts) - 1; i >= 0; i-- {
		if s.counts[i] > 0 {
			return time.Duration(i+1) * s.width
		}
	}
	return 0
}

// promHist is a Prometheus histogram as scraped: cumulative counts at upper bounds (seconds).
type promHist struct {
	bounds []float64
	cum    []uint64
	count  uint64
}

func (h promHist) sub(o promHist) promHist {
	if len(o.cum) != len(h.cum) {
		return h
	}
	r := promHist{bounds: h.bounds, cum: make([]uint64, len(h.cum)), count: h.count - min(h.count, o.count)}
	for i := range h.cum {
		r.cum[i] = h.cum[i] - min(h.cum[i], o.cum[i])
	}
	return r
}

// quantile interpolates linearly inside the bucket holding the q-quantile, as Prometheus's
// histogram_quantile does. Past the last finite bound it returns that bound.
func (h promHist) quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	rank := q * float64(h.count)
	lower, prev := 0.0, uint64(0)
	for i, b := range h.bounds {
		if float64(h.cum[i]) >= rank {
			in := h.cum[i] - prev
			frac := 1.0
			if in > 0 {
				frac = (rank - float64(prev)) / float64(in)
			}
			return seconds(lower + (b-lower)*frac)
		}
		lower, prev = b, h.cum[i]
	}
	return seconds(lower)
}

// max is the upper bound of the highest non-empty bucket (math.MaxInt64 beyond the last bound).
func (h promHist) max() time.Duration {
	last := len(h.bounds) - 1
	if last < 0 || h.count > h.cum[last] {
		if h.count == 0 {
			return 0
		}
		return time.Duration(math.MaxInt64)
	}
	for i := last; i >= 0; i-- {
		var below uint64
		if i > 0 {
			below = h.cum[i-1]
		}
		if h.cum[i] > below {
			return seconds(h.bounds[i])
		}
	}
	return 0
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
