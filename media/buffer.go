package media

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
)

// DebugChecks reports whether this build checks buffer use after Release (race detector or the
// switchboard_debug build tag); double Release is detected in every build.
const DebugChecks = debugChecks

// Buffer states.
const (
	stateHeld     uint32 = iota // owned by someone outside the pool (the zero value)
	stateReleased               // back in its pool (or, without a pool, finished with)
)

// Quarantine lengths of the checking builds: released buffers wait this many later releases
// before they can be reused.
const (
	audioQuarantine = 16
	videoQuarantine = 4
)

// Idle buffers a pool keeps for reuse; buffers released beyond these are left to the garbage
// collector.
const (
	maxIdleAudio = 64
	maxIdleVideo = 8
)

// poisonBlock is the pattern written over released contents in the checking builds.
var poisonBlock = func() []byte {
	b := make([]byte, 4096)
	for i := range b {
		b[i] = [4]byte{0xDE, 0xAD, 0xBE, 0xEF}[i%4]
	}
	return b
}()

// poisonSpeaker is the source id written over a released buffer's active speakers.
const poisonSpeaker uint32 = 0xDEADBEEF

// poison fills b with the poison pattern.
func poison(b []byte) {
	for i := 0; i < len(b); i += len(poisonBlock) {
		copy(b[i:], poisonBlock)
	}
}

// poisoned reports whether b still holds the poison pattern everywhere.
func poisoned(b []byte) bool {
	for i := 0; i < len(b); i += len(poisonBlock) {
		n := min(len(poisonBlock), len(b)-i)
		if !bytes.Equal(b[i:i+n], poisonBlock[:n]) {
			return false
		}
	}
	return true
}

// release moves a buffer's state from held to released, panicking on a second Release.
func release(state *atomic.Uint32, name fmt.Stringer) {
	if !state.CompareAndSwap(stateHeld, stateReleased) {
		panic(fmt.Sprintf("media: %v released twice (Release called on a buffer that was already released)", name))
	}
}

// checkHeld panics in the checking builds when a released buffer is used.
func checkHeld(state *atomic.Uint32, name fmt.Stringer, use string) {
	if debugChecks && state.Load() != stateHeld {
		panic(fmt.Sprintf("media: %v used after Release (%s)", name, use))
	}
}

// bufferName is the name of a buffer in panic messages.
func bufferName(kind string, id uint64, pool string, b any) string {
	if id == 0 {
		return fmt.Sprintf("%s %p (not from a pool)", kind, b)
	}
	return fmt.Sprintf("%s #%d of pool %q", kind, id, pool)
}

// PoolStats counts a pool's buffers.
type PoolStats struct {
	Allocated   int // buffers the pool has made, those it has since let go included
	Outstanding int // buffers handed out and not yet released
	Idle        int // buffers ready for reuse, quarantined ones included
}

// pool is the bookkeeping both buffer pools share: the idle buffers, the quarantine of the
// checking builds, and the counts. Its fields are guarded by mu.
type pool[T any] struct {
	name string

	mu         sync.Mutex
	idle       []*T
	quarantine []*T // checking builds: released, not yet reusable
	qnext      int
	made       uint64
	out        int
}

func newPool[T any](name string, maxIdle, quarantine int) pool[T] {
	return pool[T]{name: name, idle: make([]*T, 0, maxIdle), quarantine: make([]*T, quarantine)}
}

// put takes back a released buffer.
func (p *pool[T]) put(b *T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out--
	if debugChecks {
		b, p.quarantine[p.qnext] = p.quarantine[p.qnext], b
		p.qnext = (p.qnext + 1) % len(p.quarantine)
		if b == nil {
			return
		}
	}
	if len(p.idle) < cap(p.idle) {
		p.idle = append(p.idle, b)
	}
}

// Stats counts the pool's buffers.
func (p *pool[T]) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := PoolStats{Allocated: int(p.made), Outstanding: p.out, Idle: len(p.idle)}
	for _, b := range p.quarantine {
		if b != nil {
			s.Idle++
		}
	}
	return s
}
