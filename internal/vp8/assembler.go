package vp8

import (
	"errors"
	"time"

	"github.com/pion/rtp"
)

// ErrMalformed reports an RTP payload too short for the VP8 payload descriptor it announces.
// It is returned unwrapped so that a flood of bad packets costs no allocation.
var ErrMalformed = errors.New("vp8: malformed VP8 RTP payload")

// AssemblerConfig tunes an Assembler. The zero value is ready to use.
type AssemblerConfig struct {
	// Slots is how many packets the reorder window holds (a power of two, at most 32768; other
	// values are rounded up). It bounds the largest frame and the reordering tolerated; the
	// assembler keeps Slots × 1500 bytes for payloads. 0 means 256 (about 300 KB of 1200-byte
	// packets: a large key frame plus MaxDelay of a few Mbit/s).
	Slots int
	// MaxDelay is how long, in RTP time, the oldest incomplete frame waits for missing packets
	// (retransmissions) once newer packets have arrived. 0 means 250 ms.
	MaxDelay time.Duration
}

// Frame is a complete VP8 frame assembled from RTP packets.
type Frame struct {
	// Data is the encoded frame. It aliases the assembler's buffer and is valid until the next
	// call to Next or Reset.
	Data      []byte
	Timestamp uint32 // RTP timestamp
	Key       bool   // the frame is a key frame
	PictureID int32  // picture id of the first packet, -1 when absent
}

// AssemblerStats are the assembler's counters since it was made or reset.
type AssemblerStats struct {
	Packets          uint64 // packets accepted into the window
	Late             uint64 // packets that arrived after their frame was emitted or given up
	Duplicates       uint64 // packets already in the window
	Malformed        uint64 // payloads rejected by the descriptor parser
	Frames           uint64 // frames emitted by Next
	KeyFrames        uint64 // key frames among them
	DroppedFrames    uint64 // frames given up: incomplete, or delta frames while a key frame was needed
	KeyFrameRequests uint64 // times NeedKeyFrame turned from false to true
}

// slotBytes is the payload room of a slot: an Ethernet MTU holds any packet we expect.
const slotBytes = 1500

type slot struct {
	data      []byte // VP8 data of the payload, descriptor stripped
	ts        uint32
	pictureID int32
	seq       uint16
	used      bool
	filler    bool // padding-only packet: takes a sequence number, belongs to no frame
	start     bool // S=1, PID=0: first packet of a frame
	marker    bool
}

// Assembler turns the RTP packets of one VP8 stream into complete frames, in order. It holds
// packets in a ring of slots indexed by sequence number, so reordered packets and
// retransmissions within the window fill their places. A frame is complete when its packets,
// from the one that starts it (S=1, PID=0) to the one with the marker bit, all share its
// timestamp and have no sequence gap. When a gap cannot be filled (the frame waited MaxDelay,
// or the window overflowed) the frame is dropped and the assembler needs a key frame: it drops
// delta frames until one is assembled. It starts needing one.
//
// Use: Push each packet, then call Next until it reports no frame; after that, if NeedKeyFrame
// is true, ask the sender for a key frame (RTCP PLI), rate-limited by the caller.
type Assembler struct {
	slots     []slot
	mask      uint16
	maxDelay  int32 // in RTP ticks
	frame     []byte
	stats     AssemblerStats
	head      uint16 // first sequence number not emitted nor given up
	highest   uint16 // highest sequence number accepted
	highestTS uint32 // timestamp of the newest media packet
	stored    int    // used slots
	walked    int    // positions after head already checked to continue head's frame
	farLate   int    // consecutive packets far behind the window
	dropLast  uint32 // timestamp of the last frame counted as dropped
	dropHave  bool
	started   bool // a packet has been accepted
	anchored  bool // something was emitted or given up: packets before head are late
	needKey   bool
}

// NewAssembler makes an assembler.
func NewAssembler(cfg AssemblerConfig) *Assembler {
	n := 256
	if cfg.Slots > 0 {
		n = 1
		for n < cfg.Slots && n < 1<<15 {
			n <<= 1
		}
	}
	delay := cfg.MaxDelay
	if delay <= 0 {
		delay = 250 * time.Millisecond
	}
	ticks := min(delay.Seconds()*ClockRate, 1<<30)
	// One array backs the slots' payloads, so that no packet allocates; a payload larger than
	// slotBytes gets its own array the first time.
	slots := make([]slot, n)
	backing := make([]byte, n*slotBytes)
	for i := range slots {
		slots[i].data = backing[i*slotBytes : i*slotBytes : (i+1)*slotBytes]
	}
	return &Assembler{
		slots:    slots,
		mask:     uint16(n - 1),
		maxDelay: int32(ticks),
		frame:    make([]byte, 0, 64<<10),
		needKey:  true,
	}
}

// NeedKeyFrame reports whether the assembler waits for a key frame (at the start, and after
// dropping a frame) and drops delta frames until then.
func (a *Assembler) NeedKeyFrame() bool { return a.needKey }

// Stats returns the counters.
func (a *Assembler) Stats() AssemblerStats { return a.stats }

// Reset forgets every packet and counter, as if the assembler were new (for example when the
// stream's source changes).
func (a *Assembler) Reset() {
	for i := range a.slots {
		a.slots[i].used = false
	}
	frame := a.frame[:0]
	slots, mask, delay := a.slots, a.mask, a.maxDelay
	*a = Assembler{slots: slots, mask: mask, maxDelay: delay, frame: frame, needKey: true}
}

// Push adds an RTP packet of the stream. The payload is copied; the packet may be reused.
func (a *Assembler) Push(p *rtp.Packet) error {
	return a.PushPayload(p.SequenceNumber, p.Timestamp, p.Marker, p.Payload)
}

// PushPayload adds a packet given by its header fields and its payload (padding removed). An
// empty payload is a padding-only packet: it takes its sequence number and belongs to no frame.
func (a *Assembler) PushPayload(seq uint16, ts uint32, marker bool, payload []byte) error {
	var d Descriptor
	filler := len(payload) == 0
	if !filler {
		var ok bool
		if d, ok = ParseDescriptor(payload); !ok || d.Len >= len(payload) {
			a.stats.Malformed++
			return ErrMalformed
		}
	}
	n := len(a.slots)
	if !a.started {
		a.started = true
		a.head, a.highest, a.highestTS = seq, seq, ts
	}
	if fwd := seq - a.head; fwd >= 0x8000 { // before the window
		back := int(-fwd)
		switch {
		case !a.anchored && back+int(a.highest-a.head) < n:
			// Still waiting for the first frame: a reordered earlier packet extends the window.
			a.setHead(seq)
		case back > n:
			// Far behind: a late straggler, or the stream jumped. Restart on a run of them.
			a.stats.Late++
			if a.farLate++; a.farLate < 32 {
				return nil
			}
			a.restart(seq, ts)
		default:
			a.stats.Late++
			return nil
		}
	} else if int(fwd) >= n { // beyond the window: give up its oldest positions
		a.advanceTo(seq - uint16(n) + 1)
	}
	a.farLate = 0

	s := &a.slots[seq&a.mask]
	if s.used {
		if s.seq == seq {
			a.stats.Duplicates++
			return nil
		}
		a.release(s) // cannot happen while the window invariant holds
	}
	s.used, s.seq, s.ts, s.marker, s.filler = true, seq, ts, marker, filler
	s.start, s.pictureID = d.FrameStart(), d.PictureID
	if filler {
		s.data = s.data[:0]
	} else {
		s.data = append(s.data[:0], payload[d.Len:]...)
	}
	a.stored++
	a.stats.Packets++
	if seq-a.highest < 0x8000 {
		a.highest = seq
	}
	if !filler && int32(ts-a.highestTS) > 0 {
		a.highestTS = ts
	}
	return nil
}

// Next returns the next complete frame in order, if there is one. Call it after each Push until
// it returns false: one packet can complete several frames.
func (a *Assembler) Next() (Frame, bool) {
	for a.stored > 0 {
		s := a.at(a.head)
		switch {
		case s == nil: // hole at the head
			next := a.firstMedia()
			if next == nil {
				return Frame{}, false
			}
			if a.needKey && next.start && next.data[0]&1 == 0 {
				// A key frame starts after the hole: what is missing is older and would be
				// dropped anyway.
				for p := a.head; p != next.seq; p++ {
					if f := a.at(p); f != nil {
						a.release(f) // padding
					}
				}
				a.dropHave = false
				a.stats.DroppedFrames++
				a.setHead(next.seq)
				a.anchored = true
				continue
			}
			if !a.expired(next.ts) {
				return Frame{}, false
			}
			a.skipBroken()
			continue
		case s.filler:
			a.release(s)
			a.setHead(a.head + 1)
			a.anchored = true
			continue
		case !s.start: // the frame's first packets are missing
			if !a.anchored && !a.expired(s.ts) {
				return Frame{}, false // they may still come, reordered
			}
			a.skipBroken()
			continue
		}
		end, st := a.walk(s)
		switch st {
		case walkIncomplete:
			// Wait for the missing packets, unless the frame is a delta frame that would be
			// dropped anyway for want of a key frame.
			if !a.expired(s.ts) && !(a.anchored && a.needKey && s.data[0]&1 != 0) {
				return Frame{}, false
			}
			a.skipBroken()
			continue
		case walkBroken:
			a.skipBroken()
			continue
		}
		if !a.anchored && a.needKey && s.data[0]&1 != 0 && !a.expired(s.ts) {
			// The stream's first complete frame is a delta frame: the key frame may be before
			// it, reordered. Wait for it before giving up the earlier positions.
			return Frame{}, false
		}
		f := a.emit(end)
		if !f.Key && a.needKey {
			a.dropTS(f.Timestamp)
			continue
		}
		a.needKey = false
		a.stats.Frames++
		if f.Key {
			a.stats.KeyFrames++
		}
		return f, true
	}
	return Frame{}, false
}

const (
	walkComplete = iota
	walkIncomplete
	walkBroken
)

// walk follows the frame that starts at head: its last position and whether it is complete,
// still missing packets, or can never complete.
func (a *Assembler) walk(first *slot) (end uint16, state int) {
	if first.marker {
		return a.head, walkComplete
	}
	n := len(a.slots)
	for i := a.walked + 1; i < n; i++ {
		p := a.head + uint16(i)
		s := a.at(p)
		switch {
		case s == nil:
			a.walked = i - 1
			return 0, walkIncomplete
		case s.filler || (s.start && s.ts != first.ts):
			return p - 1, walkComplete // the sender left out the marker bit
		case s.start || s.ts != first.ts:
			return 0, walkBroken
		case s.marker:
			return p, walkComplete
		}
	}
	return 0, walkBroken // larger than the window
}

// emit copies the frame from head to end into the frame buffer and frees its slots.
func (a *Assembler) emit(end uint16) Frame {
	first := a.at(a.head)
	f := Frame{Timestamp: first.ts, PictureID: first.pictureID}
	a.frame = a.frame[:0]
	for p := a.head; ; p++ {
		s := a.at(p)
		a.frame = append(a.frame, s.data...)
		a.release(s)
		if p == end {
			break
		}
	}
	a.setHead(end + 1)
	a.anchored = true
	f.Data = a.frame
	f.Key = IsKeyFrame(f.Data)
	return f
}

// skipBroken gives up the frame at head: it frees positions up to the next packet that starts
// a frame (or a padding packet), or up to the newest packet.
func (a *Assembler) skipBroken() {
	counted := false
	for first := true; a.highest-a.head < 0x8000; first = false {
		s := a.at(a.head)
		if s != nil {
			if !first && (s.start || s.filler) {
				break
			}
			if !s.filler {
				a.dropTS(s.ts)
				counted = true
			}
			a.release(s)
		}
		a.head++
	}
	if !counted {
		a.stats.DroppedFrames++
		a.dropHave = false
	}
	a.setHead(a.head)
	a.anchored = true
	a.lose()
}

// advanceTo gives up every position before newHead.
func (a *Assembler) advanceTo(newHead uint16) {
	dist := int(newHead - a.head)
	hole := false
	counted := false
	for i := range min(dist, len(a.slots)) {
		s := a.at(a.head + uint16(i))
		if s == nil {
			hole = true
			continue
		}
		if !s.filler {
			a.dropTS(s.ts)
			counted = true
		}
		a.release(s)
	}
	if hole && !counted {
		a.stats.DroppedFrames++
		a.dropHave = false
	}
	if hole || counted {
		a.lose()
	}
	a.setHead(newHead)
	a.anchored = true
}

// restart forgets the window and starts it again at seq.
func (a *Assembler) restart(seq uint16, ts uint32) {
	for i := range a.slots {
		a.slots[i].used = false
	}
	a.stored = 0
	a.setHead(seq)
	a.highest, a.highestTS = seq, ts
	a.anchored = false
	a.farLate = 0
	a.lose()
}

func (a *Assembler) at(p uint16) *slot {
	if s := &a.slots[p&a.mask]; s.used && s.seq == p {
		return s
	}
	return nil
}

func (a *Assembler) release(s *slot) {
	s.used = false
	a.stored--
}

func (a *Assembler) setHead(h uint16) {
	a.head = h
	a.walked = 0
}

// firstMedia is the first media (not padding) packet at or after head, or nil.
func (a *Assembler) firstMedia() *slot {
	for p := a.head; a.highest-p < 0x8000; p++ {
		if s := a.at(p); s != nil && !s.filler {
			return s
		}
	}
	return nil
}

// expired reports whether a frame with timestamp ts has waited long enough, measured by the
// newest packet's timestamp.
func (a *Assembler) expired(ts uint32) bool {
	return int32(a.highestTS-ts) > a.maxDelay
}

// dropTS counts the frame with timestamp ts as dropped, once.
func (a *Assembler) dropTS(ts uint32) {
	if a.dropHave && a.dropLast == ts {
		return
	}
	a.dropHave, a.dropLast = true, ts
	a.stats.DroppedFrames++
}

func (a *Assembler) lose() {
	if !a.needKey {
		a.needKey = true
		a.stats.KeyFrameRequests++
	}
}
