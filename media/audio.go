package media

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"
)

// MaxActiveSpeakers is the number of active speaker ids an AudioBuffer holds without allocating.
const MaxActiveSpeakers = 16

// AudioBuffer is one 20 ms frame of 16 kHz mono 16-bit audio (FrameSamples samples) with what the
// platform knows about it.
//
// Ownership: a buffer handed to you (by an event, or by AudioPool.Get) is yours until you call
// Release, exactly once, when you are done with it and with every slice you took from it
// (Samples, ActiveSpeakers). After Release it belongs to its pool again and may be handed to
// someone else at any moment, so keep no slice of it: copy what you want to keep. A buffer you
// send is the platform's until the platform reports it done.
//
// Breaking the rule is a programming error, treated like unlocking an unlocked mutex:
//
//   - Releasing a buffer twice panics, in every build, naming the buffer.
//   - In builds with the race detector (go test -race) or the switchboard_debug build tag
//     (DebugChecks is true), Samples and ActiveSpeakers panic on a released buffer, Release
//     overwrites the contents with a poison pattern, and the pool holds released buffers back for
//     a while and checks that the poison is intact before reusing one, so a write through a slice
//     kept after Release panics there, naming the buffer. Normal builds leave these checks out:
//     they cost a pass over the buffer per use.
//
// A second Release is only seen while the pool has not reused the buffer; after that a stale
// Release would release the new owner's buffer (the checking builds' quarantine widens the window).
//
// The zero AudioBuffer is a usable frame of silence that belongs to no pool; its Release only
// marks it released. The exported fields are plain data; the samples and speaker ids are behind
// methods so that the checking builds can catch their use after Release.
type AudioBuffer struct {
	// Timestamp is the media time of the frame's first sample: its position on the media clock of
	// its stream, counted from an origin fixed per stream (not wall-clock time). Consecutive
	// frames of a stream are FrameDuration milliseconds apart.
	Timestamp time.Duration
	// SourceID is the participant whose audio this is for an unmixed, per-speaker buffer, or 0
	// for the mix of all the call's audio.
	SourceID uint32
	// Silence is true when the frame carries no received audio: the platform made it locally
	// (comfort noise or silence) because no speaker's audio arrived for it.
	Silence bool

	samples  [FrameSamples]int16
	speakers []uint32
	store    [MaxActiveSpeakers]uint32 // backing array of speakers until more are set

	state atomic.Uint32
	pool  *AudioPool
	id    uint64
}

// Samples returns the frame's FrameSamples samples. The slice is the buffer's own memory: write
// into it to fill a buffer you send; keep it no longer than the buffer.
func (b *AudioBuffer) Samples() []int16 {
	checkHeld(&b.state, b, "Samples")
	return b.samples[:]
}

// ActiveSpeakers returns the source ids of the participants whose audio is in the frame, loudest
// first. The slice is the buffer's own memory; keep it no longer than the buffer.
func (b *AudioBuffer) ActiveSpeakers() []uint32 {
	checkHeld(&b.state, b, "ActiveSpeakers")
	return b.speakers
}

// SetActiveSpeakers copies ids into the buffer's active speakers. Up to MaxActiveSpeakers ids
// need no allocation.
func (b *AudioBuffer) SetActiveSpeakers(ids []uint32) {
	checkHeld(&b.state, b, "SetActiveSpeakers")
	if b.speakers == nil {
		b.speakers = b.store[:0]
	}
	b.speakers = append(b.speakers[:0], ids...)
}

// Release gives the buffer back to its pool; see AudioBuffer for the rules. Releasing it twice
// panics.
func (b *AudioBuffer) Release() {
	release(&b.state, b)
	if debugChecks {
		b.poison()
	}
	if b.pool != nil {
		b.pool.put(b)
	}
}

// String names the buffer, as panic messages do.
func (b *AudioBuffer) String() string {
	var pool string
	if b.pool != nil {
		pool = b.pool.name
	}
	return bufferName("AudioBuffer", b.id, pool, b)
}

// sampleBytes is the buffer's samples as bytes.
func (b *AudioBuffer) sampleBytes() []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&b.samples[0])), len(b.samples)*2)
}

// poison overwrites a released buffer's contents.
func (b *AudioBuffer) poison() {
	poison(b.sampleBytes())
	b.speakers = b.speakers[:cap(b.speakers)]
	for i := range b.speakers {
		b.speakers[i] = poisonSpeaker
	}
}

// intact reports whether a released buffer's poison is untouched.
func (b *AudioBuffer) intact() bool {
	if !poisoned(b.sampleBytes()) {
		return false
	}
	for _, id := range b.speakers[:cap(b.speakers)] {
		if id != poisonSpeaker {
			return false
		}
	}
	return true
}

// AudioPool hands out AudioBuffers and takes them back on Release. Get and Release may be called
// from any goroutine. Once the pool holds as many buffers as are in use at once, Get and Release
// allocate nothing.
type AudioPool struct {
	pool[AudioBuffer]
}

// NewAudioPool returns an empty pool; name identifies it in panic messages (for example the call
// and socket it serves).
func NewAudioPool(name string) *AudioPool {
	return &AudioPool{newPool[AudioBuffer](name, maxIdleAudio, audioQuarantine)}
}

// Get returns a buffer that is now the caller's, until Release: samples zero (silence), no active
// speakers, zero Timestamp and SourceID, Silence false.
func (p *AudioPool) Get() *AudioBuffer {
	p.mu.Lock()
	p.out++
	var b *AudioBuffer
	if n := len(p.idle); n > 0 {
		b = p.idle[n-1]
		p.idle = p.idle[:n-1]
	} else {
		p.made++
		b = &AudioBuffer{pool: p, id: p.made}
		b.speakers = b.store[:0]
	}
	p.mu.Unlock()
	if b.state.Load() == stateReleased {
		if debugChecks && !b.intact() {
			panic(fmt.Sprintf("media: %v was written after Release (through a slice kept by its previous owner)", b))
		}
		b.samples = [FrameSamples]int16{}
		b.speakers = b.speakers[:0]
		b.Timestamp, b.SourceID, b.Silence = 0, 0, false
		b.state.Store(stateHeld)
	}
	return b
}
