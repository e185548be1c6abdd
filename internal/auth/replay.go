package auth

import (
	"container/heap"
	"sync"
	"time"
)

// DefaultReplayCacheSize is the number of jti a replay cache remembers by default.
const DefaultReplayCacheSize = 1 << 16

// replayCache remembers the jti of accepted tokens until they expire. It is bounded: when full
// after dropping the expired entries, it forgets the entry that expires soonest (the one closest
// to being refused for expiry anyway).
type replayCache struct {
	mu    sync.Mutex
	max   int
	seen  map[string]time.Time
	order expiryHeap
}

func newReplayCache(max int) *replayCache {
	if max <= 0 {
		max = DefaultReplayCacheSize
	}
	return &replayCache{max: max, seen: make(map[string]time.Time)}
}

// add records jti, valid until until, and reports false if it was already recorded (and not yet
// expired at now).
func (c *replayCache) add(jti string, until, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.order) > 0 && !c.order[0].until.After(now) {
		delete(c.seen, heap.Pop(&c.order).(expiry).jti)
	}
	if _, ok := c.seen[jti]; ok {
		return false
	}
	for len(c.order) >= c.max {
		delete(c.seen, heap.Pop(&c.order).(expiry).jti)
	}
	c.seen[jti] = until
	heap.Push(&c.order, expiry{jti: jti, until: until})
	return true
}

func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

type expiry struct {
	jti   string
	until time.Time
}

type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
