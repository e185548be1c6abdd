package media

import (
	"fmt"
	"sync/atomic"
	"time"
)

// VideoBuffer is one raw video frame, tightly packed in its format's pixel format.
//
// Ownership and its checks are those of AudioBuffer: a buffer handed to you is yours until you
// call Release, exactly once, after which neither the buffer nor any slice of it (Data, Planes)
// may be used; a second Release panics, and the checking builds (DebugChecks) catch use after
// Release. A buffer you send is the platform's until the platform reports it done.
type VideoBuffer struct {
	// OriginalFormat is the size the sender captured the frame at. A received frame may have been
	// scaled down on the way (Format() is then smaller); scale it back up to OriginalFormat's size
	// to show it as it was meant. It equals Format() unless set otherwise.
	OriginalFormat VideoFormat
	// Timestamp is the media time of the frame: its position on the media clock of its stream,
	// counted from an origin fixed per stream (not wall-clock time).
	Timestamp time.Duration
	// SourceID is the participant whose video this is (0 when unknown or for the bot's own).
	SourceID uint32

	format VideoFormat
	data   []byte // len is format.FrameSize(); cap may be larger
	dirty  int    // checking builds: bytes poisoned by Release

	state atomic.Uint32
	pool  *VideoPool
	id    uint64
}

// NewVideoBuffer returns a buffer of format that belongs to no pool; its Release only marks it
// released.
func NewVideoBuffer(format VideoFormat) *VideoBuffer {
	return &VideoBuffer{format: format, OriginalFormat: format, data: make([]byte, format.FrameSize())}
}

// Format is the pixel format, size and frame rate of the frame in Data.
func (b *VideoBuffer) Format() VideoFormat {
	checkHeld(&b.state, b, "Format")
	return b.format
}

// Data returns the frame, Format().FrameSize() bytes laid out as Format().PixelFormat says. The
// slice is the buffer's own memory: write into it to fill a buffer you send; keep it no longer
// than the buffer. Its contents are undefined when the buffer comes from VideoPool.Get.
func (b *VideoBuffer) Data() []byte {
	checkHeld(&b.state, b, "Data")
	return b.data
}

// Planes returns the frame's planes and their strides, as PixelFormat.Planes does for Data.
// The slices are the buffer's own memory; keep them no longer than the buffer.
func (b *VideoBuffer) Planes() (planes [3][]byte, strides [3]int) {
	checkHeld(&b.state, b, "Planes")
	planes, strides, _ = b.format.PixelFormat.Planes(b.data, b.format.Width, b.format.Height)
	return planes, strides
}

// Release gives the buffer back to its pool; see AudioBuffer for the rules. Releasing it twice
// panics.
func (b *VideoBuffer) Release() {
	release(&b.state, b)
	if debugChecks {
		poison(b.data)
		b.dirty = len(b.data)
	}
	if b.pool != nil {
		b.pool.put(b)
	}
}

// String names the buffer, as panic messages do.
func (b *VideoBuffer) String() string {
	var pool string
	if b.pool != nil {
		pool = b.pool.name
	}
	return bufferName("VideoBuffer", b.id, pool, b)
}

// VideoPool hands out VideoBuffers of any format and takes them back on Release, reusing a buffer
// whose memory is large enough for the format asked for. Get and Release may be called from any
// goroutine. While the formats asked for stay the same, Get and Release allocate nothing once the
// pool holds as many buffers as are in use at once.
type VideoPool struct {
	pool[VideoBuffer]
}

// NewVideoPool returns an empty pool; name identifies it in panic messages.
func NewVideoPool(name string) *VideoPool {
	return &VideoPool{newPool[VideoBuffer](name, maxIdleVideo, videoQuarantine)}
}

// Get returns a buffer of format that is now the caller's, until Release. Data has
// format.FrameSize() bytes (none for a format without a size) of undefined contents;
// OriginalFormat is format; Timestamp and SourceID are zero.
func (p *VideoPool) Get(format VideoFormat) *VideoBuffer {
	need := max(format.FrameSize(), 0)
	p.mu.Lock()
	p.out++
	var b *VideoBuffer
	for i := len(p.idle) - 1; i >= 0; i-- {
		if cap(p.idle[i].data) >= need {
			b = p.idle[i]
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			break
		}
	}
	if b == nil {
		if n := len(p.idle); n > 0 {
			// Every idle buffer is too small for this format: the format has grown, so let the
			// oldest idle buffer go rather than keep memory that no longer fits.
			copy(p.idle, p.idle[1:])
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
		}
		p.made++
		b = &VideoBuffer{pool: p, id: p.made}
	}
	p.mu.Unlock()
	if b.state.Load() == stateReleased {
		if debugChecks && !poisoned(b.data[:b.dirty]) {
			panic(fmt.Sprintf("media: %v was written after Release (through a slice kept by its previous owner)", b))
		}
		b.state.Store(stateHeld)
	}
	if cap(b.data) < need {
		b.data = make([]byte, need)
	}
	b.data = b.data[:need]
	b.format, b.OriginalFormat = format, format
	b.Timestamp, b.SourceID = 0, 0
	return b
}
