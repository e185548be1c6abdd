// Package jitter is the receive buffer of one Opus RTP stream: it puts
// packets back in sequence order, drops duplicates and packets that arrive
// after their turn, follows sequence number and timestamp wraparound,
// resynchronises when the sender restarts or jumps far away, and hands out
// exactly what to play for each 20 ms slot (a packet, a known loss with the
// next packet for forward error correction, an underrun, or silence left by
// the sender). Its delay adapts to the measured interarrival jitter between
// a minimum and a maximum depth.
//
// The buffer never reads the clock: arrival and playout times are given by
// the caller on one monotonic timeline (any origin), so tests can use virtual
// time. Payloads are copied into storage allocated once by New; Push and Pop
// allocate nothing. A Buffer is not safe for concurrent use; internal/playout
// wraps it with a mutex and the Opus decoder.
package jitter

import (
	"errors"
	"time"
)

const (
	// ClockRate is the RTP clock rate of Opus (RFC 7587), whatever the
	// sampling rate of the audio.
	ClockRate = 48000
	// FrameTicks is one 20 ms playout slot in RTP ticks.
	FrameTicks = 960
	// MaxPayload is the largest Opus packet (RFC 6716, section 3.4); a
	// larger payload is rejected.
	MaxPayload = 1275
	// DefaultCapacity is the number of packet slots of a Buffer when
	// Config.Capacity is 0: 1.28 s of 20 ms packets.
	DefaultCapacity = 64
	// DefaultMinDepth and DefaultMaxDepth bound the adaptive target depth
	// when Config leaves them 0.
	DefaultMinDepth = 20 * time.Millisecond
	DefaultMaxDepth = 200 * time.Millisecond

	maxPacketTicks  = 5760 // 120 ms, the longest Opus packet
	halfFrame       = FrameTicks / 2
	historySize     = 1024                   // sequence numbers remembered for duplicate detection
	maxSeqJump      = 1000                   // a larger jump is a restart or a stray packet
	maxEarly        = time.Second            // a packet this much earlier than the stream's timing is an outlier
	maxLate         = 2 * time.Second        // and this much later
	lateHeadroom    = 10 * time.Millisecond  // added to the delay a late packet would have needed
	baseHeadroom    = 10 * time.Millisecond  // added to the jitter-derived depth
	stretchAt       = halfFrame              // stretch when the playout runs this far ahead of its target
	skipAt          = 2 * FrameTicks         // shrink when this far behind its target
	skipEvery       = 50                     // slots between two shrinking skips of audible packets
	transitForget   = 10                     // the minimum transit creeps up by 1/2^transitForget of the excess per packet
	targetShrink    = 256                    // the target moves 1/targetShrink of the way down per packet
	boostDecay      = 9                      // late-packet headroom decays by 1/2^boostDecay per packet
	jitterGain      = 16                     // RFC 3550 jitter filter gain
	jitterFactor    = 3                      // target covers jitterFactor times the RFC 3550 jitter
	lossHoldPackets = 500                    // after a loss, keep room for the next packet's FEC this long
	nsPerTickNum    = int64(time.Second) / 8 // ticks→ns is t*nsPerTickNum/(ClockRate/8), exact
)

// Sentinel errors returned by Push. Every one of them means the packet was
// not buffered; callers may ignore them (the statistics count them too).
var (
	// ErrTooLarge rejects a payload longer than MaxPayload.
	ErrTooLarge = errors.New("jitter: payload larger than the largest Opus packet")
	// ErrDuplicate rejects a sequence number already received.
	ErrDuplicate = errors.New("jitter: duplicate packet")
	// ErrLate rejects a packet whose playout slot has already passed.
	ErrLate = errors.New("jitter: packet arrived after its turn")
	// ErrOutlier rejects a packet far outside the stream's sequence or
	// timing. Two consecutive outliers that follow each other restart the
	// buffer on the new stream (a resync).
	ErrOutlier = errors.New("jitter: packet far outside the stream")
)

// Packet is one RTP packet of an Opus stream as Push sees it.
type Packet struct {
	// Seq is the RTP sequence number.
	Seq uint16
	// Timestamp is the RTP timestamp in 48 kHz ticks.
	Timestamp uint32
	// Payload is the Opus packet. Push copies it; the caller may reuse it.
	Payload []byte
	// Arrival is when the packet arrived, on the caller's timeline (the
	// same one as Pop's now).
	Arrival time.Duration
}

// Kind says what Pop returned for a slot.
type Kind uint8

// The kinds of slot Pop returns.
const (
	// Waiting: playout has not started (no packet yet, or less than the
	// target depth buffered). Play comfort noise.
	Waiting Kind = iota
	// Play: Frame.Payload is the packet to decode.
	Play
	// Lost: the packet for this slot is missing (a later one is buffered).
	// Frame.Payload, when not nil, is the packet that directly follows the
	// lost one: its forward error correction can recover the slot.
	Lost
	// Underrun: nothing is buffered for this slot: the packet is late or
	// lost, or the sender stopped. Conceal, then play comfort noise.
	Underrun
	// Silence: the sender sent nothing for this slot on purpose (a
	// timestamp gap between consecutive sequence numbers, as with DTX).
	Silence
	// Stretch: the buffer is growing its delay and consumed no media for
	// this slot; conceal one frame (nothing is lost).
	Stretch
)

var kindNames = [...]string{"waiting", "play", "lost", "underrun", "silence", "stretch"}

// String returns the kind's name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(?)"
}

// Frame is what Pop returns for one slot.
type Frame struct {
	// Kind says what the slot holds.
	Kind Kind
	// Seq is the sequence number of the packet played (Play) or missing (Lost).
	Seq uint16
	// Timestamp is the RTP timestamp where the slot starts.
	Timestamp uint32
	// Ticks is the media duration the slot consumed in 48 kHz ticks:
	// the packet's duration for Play, FrameTicks for Lost, Underrun and
	// Silence, 0 for Waiting and Stretch.
	Ticks int
	// Payload is the packet to decode (Play) or the next packet (Lost).
	// It points into the buffer's storage and is valid only until the
	// next call to Push or Pop: copy it or decode it before then.
	Payload []byte
}

// Config tunes a Buffer. The zero value is the default.
type Config struct {
	// Capacity is the number of packets the buffer can hold, rounded up to
	// a power of two (16..4096); 0 means DefaultCapacity. Each slot takes
	// MaxPayload bytes.
	Capacity int
	// MinDepth and MaxDepth bound the adaptive target depth; 0 means
	// DefaultMinDepth and DefaultMaxDepth.
	MinDepth, MaxDepth time.Duration
}

// Stats are a Buffer's counters since New (they survive resyncs) and its
// current depths.
type Stats struct {
	Received    uint64 // packets given to Push
	Lost        uint64 // sequence numbers that never arrived (RFC 3550 cumulative loss)
	Late        uint64 // packets that arrived after their slot and were dropped
	Duplicate   uint64 // packets whose sequence number was already received
	Reordered   uint64 // packets that arrived after one with a higher sequence number (in time or late)
	Outliers    uint64 // packets far outside the stream, discarded (or kept to start a resync)
	Invalid     uint64 // payloads larger than MaxPayload
	Dropped     uint64 // buffered packets never played: skipped to shrink the delay, pushed out, cleared by a resync
	Played      uint64 // packets returned by Pop as Play
	LostSlots   uint64 // slots returned as Lost
	Underruns   uint64 // slots returned as Underrun
	Stretched   uint64 // slots returned as Stretch (delay grown by 20 ms each)
	Skipped     uint64 // 20 ms of media skipped to shrink the delay
	OddDuration uint64 // packets whose duration is not 20 ms (or unreadable)
	Resyncs     uint64 // restarts on a new stream after consecutive outliers

	Jitter      time.Duration // RFC 3550 interarrival jitter estimate
	Depth       time.Duration // media buffered ahead of the playout point
	TargetDepth time.Duration // the adaptive target depth
	Buffered    int           // packets held
}

type slot struct {
	seq, ts, ticks int64 // extended sequence number and timestamp, duration in ticks
	n              int32
	used           bool
}

// Buffer is the jitter buffer of one stream. Create it with New.
type Buffer struct {
	minDepth, maxDepth time.Duration
	mask               int64
	data               []byte // len(slots)*MaxPayload bytes
	slots              []slot
	count              int

	// The current epoch: from the first packet, or from the last resync.
	active     bool
	started    bool
	nextSeq    int64 // extended sequence number of the next packet to play; before start, the lowest buffered
	highSeq    int64 // highest extended sequence number received
	highTs     int64 // its extended timestamp, the reference for unwrapping timestamps
	highTicks  int64
	baseSeq    int64  // lowest extended sequence number received
	unique     uint64 // distinct sequence numbers received
	playTs     int64  // extended timestamp where the next slot starts
	history    [historySize / 64]uint64
	lastNow    time.Duration
	sinceSkip  int
	haveLast   bool
	lastArr    time.Duration
	lastTs     int64
	minTransit time.Duration // arrival minus media time of the fastest packets (with slow forgetting)

	jitter   float64 // ns
	boost    time.Duration
	lossHold int // packets to go with one more frame of depth, so that FEC finds the next packet
	target   time.Duration
	lostPrev uint64

	cand struct {
		valid   bool
		seq     uint16
		ts      uint32
		arrival time.Duration
		n       int
		data    [MaxPayload]byte
	}
	stats Stats
}

// New returns an empty buffer configured by cfg. A Capacity outside 16..4096
// is clamped, and a MaxDepth below MinDepth is raised to it.
func New(cfg Config) *Buffer {
	c := cfg.Capacity
	if c == 0 {
		c = DefaultCapacity
	}
	c = max(16, min(4096, c))
	n := 16
	for n < c {
		n <<= 1
	}
	if cfg.MinDepth <= 0 {
		cfg.MinDepth = DefaultMinDepth
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = DefaultMaxDepth
	}
	cfg.MaxDepth = max(cfg.MaxDepth, cfg.MinDepth)
	return &Buffer{
		minDepth: cfg.MinDepth,
		maxDepth: cfg.MaxDepth,
		mask:     int64(n - 1),
		data:     make([]byte, n*MaxPayload),
		slots:    make([]slot, n),
		target:   cfg.MinDepth,
	}
}

// TargetDepth returns the delay the buffer currently aims for: the
// interarrival jitter it covers plus headroom for recently late packets,
// between the configured minimum and maximum.
func (b *Buffer) TargetDepth() time.Duration { return b.target }

// Stats returns the counters and current depths.
func (b *Buffer) Stats() Stats {
	s := b.stats
	s.Lost = b.lostPrev + b.epochLost()
	s.Jitter = time.Duration(b.jitter)
	s.TargetDepth = b.target
	s.Buffered = b.count
	if b.count > 0 {
		from := b.playTs
		if !b.started {
			if h := b.head(); h != nil {
				from = h.ts
			}
		}
		if d := b.highTs + b.highTicks - from; d > 0 {
			s.Depth = ticksDur(d)
		}
	}
	return s
}

func (b *Buffer) epochLost() uint64 {
	if !b.active {
		return 0
	}
	expected := uint64(b.highSeq - b.baseSeq + 1)
	if expected <= b.unique {
		return 0
	}
	return expected - b.unique
}

// ticksDur converts 48 kHz ticks to a duration.
func ticksDur(t int64) time.Duration { return time.Duration(t * nsPerTickNum / (ClockRate / 8)) }

// durTicks converts a duration to 48 kHz ticks, rounding toward zero.
func durTicks(d time.Duration) int64 { return int64(d) * (ClockRate / 8) / nsPerTickNum }

// Push adds a packet. It returns nil when the packet was buffered (or
// completed a resync), or one of the sentinel errors when it was not.
func (b *Buffer) Push(p Packet) error {
	b.stats.Received++
	if len(p.Payload) > MaxPayload {
		b.stats.Invalid++
		return ErrTooLarge
	}
	if !b.active {
		b.begin(p)
		return b.accept(p)
	}
	s := b.highSeq + int64(int16(p.Seq-uint16(b.highSeq)))
	t := b.highTs + int64(int32(p.Timestamp-uint32(b.highTs)))
	dev := p.Arrival - ticksDur(t) - b.minTransit
	if s-b.highSeq > maxSeqJump || b.highSeq-s > maxSeqJump || dev < -maxEarly || dev > maxLate {
		return b.outlier(p)
	}
	b.cand.valid = false
	return b.accept(p)
}

// begin starts an epoch on p (the first packet, or the first of a resync).
func (b *Buffer) begin(p Packet) {
	b.active = true
	b.started = false
	b.highSeq = int64(p.Seq)
	b.highTs = int64(p.Timestamp)
	b.highTicks = FrameTicks
	b.nextSeq = b.highSeq
	b.baseSeq = b.highSeq
	b.unique = 0
	b.history = [historySize / 64]uint64{}
	b.haveLast = false
	b.minTransit = p.Arrival - ticksDur(b.highTs)
	b.sinceSkip = 0
}

// accept files a packet that belongs to the current epoch.
func (b *Buffer) accept(p Packet) error {
	s := b.highSeq + int64(int16(p.Seq-uint16(b.highSeq)))
	t := b.highTs + int64(int32(p.Timestamp-uint32(b.highTs)))
	ticks := packetTicks(p.Payload)
	if ticks != FrameTicks {
		b.stats.OddDuration++
		if ticks == 0 {
			ticks = FrameTicks
		}
	}
	if s > b.highSeq {
		b.advanceHigh(s, t, ticks)
	} else if b.seen(s) {
		b.stats.Duplicate++
		return ErrDuplicate
	}
	b.mark(s)
	b.unique++
	b.baseSeq = min(b.baseSeq, s)
	if s < b.highSeq {
		b.stats.Reordered++
	} else if s == b.highSeq {
		b.highTicks = ticks
	}
	dev := b.timing(p.Arrival, t)

	if b.started {
		if s < b.nextSeq || t+ticks <= b.playTs {
			b.stats.Late++
			b.boost = min(b.maxDepth, max(b.boost, dev+lateHeadroom))
			b.retarget()
			if s >= b.nextSeq {
				// Everything up to it has had its turn too.
				b.nextSeq = s + 1
				b.purge()
			}
			return ErrLate
		}
	} else if s < b.nextSeq {
		if b.highSeq-s > b.mask {
			b.stats.Late++
			return ErrLate
		}
		b.nextSeq = s
	}
	b.retarget()
	if s-b.nextSeq > b.mask {
		// Too far ahead for the ring: the oldest slots give way.
		b.nextSeq = s - b.mask
		b.purge()
	}
	b.store(s, t, ticks, p.Payload)
	return nil
}

// outlier handles a packet far outside the current stream: it is kept as
// a candidate, and when the next packet follows it, both start a new epoch.
func (b *Buffer) outlier(p Packet) error {
	c := &b.cand
	if c.valid && p.Seq == c.seq+1 && p.Timestamp-c.ts <= ClockRate &&
		p.Arrival >= c.arrival && p.Arrival-c.arrival <= time.Second {
		b.resync()
		first := Packet{Seq: c.seq, Timestamp: c.ts, Payload: c.data[:c.n], Arrival: c.arrival}
		c.valid = false
		b.stats.Outliers-- // counted when it became the candidate; now it is kept
		b.begin(first)
		_ = b.accept(first)
		return b.accept(p)
	}
	b.stats.Outliers++
	c.valid = true
	c.seq, c.ts, c.arrival = p.Seq, p.Timestamp, p.Arrival
	c.n = copy(c.data[:], p.Payload)
	return ErrOutlier
}

// resync ends the current epoch: buffered packets are dropped, the loss of
// the epoch is kept in the totals, the timing estimates are kept.
func (b *Buffer) resync() {
	b.stats.Resyncs++
	b.lostPrev += b.epochLost()
	for i := range b.slots {
		if b.slots[i].used {
			b.slots[i].used = false
			b.stats.Dropped++
		}
	}
	b.count = 0
	b.active = false
	b.started = false
}

func (b *Buffer) advanceHigh(s, t, ticks int64) {
	if s-b.highSeq >= historySize {
		b.history = [historySize / 64]uint64{}
	} else {
		for q := b.highSeq + 1; q <= s; q++ {
			i := q & (historySize - 1)
			b.history[i>>6] &^= 1 << (i & 63)
		}
	}
	b.highSeq, b.highTs, b.highTicks = s, t, ticks
}

func (b *Buffer) seen(s int64) bool {
	i := s & (historySize - 1)
	return b.history[i>>6]&(1<<(i&63)) != 0
}

func (b *Buffer) mark(s int64) {
	i := s & (historySize - 1)
	b.history[i>>6] |= 1 << (i & 63)
}

// timing updates the jitter estimate (RFC 3550, section 6.4.1) and the
// minimum transit time with a packet, and returns how much later than the
// fastest packets it arrived.
func (b *Buffer) timing(arrival time.Duration, t int64) time.Duration {
	transit := arrival - ticksDur(t)
	if b.haveLast {
		d := float64((arrival - b.lastArr) - ticksDur(t-b.lastTs))
		if d < 0 {
			d = -d
		}
		b.jitter += (d - b.jitter) / jitterGain
	}
	b.haveLast, b.lastArr, b.lastTs = true, arrival, t
	if transit < b.minTransit {
		b.minTransit = transit
	} else {
		b.minTransit += (transit - b.minTransit) >> transitForget
	}
	b.boost -= b.boost >> boostDecay
	return transit - b.minTransit
}

// retarget recomputes the target depth: up at once, down slowly.
func (b *Buffer) retarget() {
	want := max(time.Duration(b.jitter*jitterFactor), b.boost) + baseHeadroom
	if b.lossHold > 0 {
		b.lossHold--
		want = max(want, b.minDepth+ticksDur(FrameTicks))
	}
	want = max(b.minDepth, min(b.maxDepth, want))
	if want >= b.target {
		b.target = want
	} else {
		b.target -= (b.target - want + targetShrink - 1) / targetShrink
	}
}

// purge drops buffered packets before nextSeq.
func (b *Buffer) purge() {
	if b.count == 0 {
		return
	}
	for i := range b.slots {
		if sl := &b.slots[i]; sl.used && sl.seq < b.nextSeq {
			sl.used = false
			b.count--
			b.stats.Dropped++
		}
	}
}

func (b *Buffer) store(s, t, ticks int64, payload []byte) {
	i := s & b.mask
	sl := &b.slots[i]
	if sl.used {
		// An older packet that purge did not reach (it cannot be s itself:
		// duplicates were rejected).
		b.stats.Dropped++
		b.count--
	}
	off := int(i) * MaxPayload
	sl.n = int32(copy(b.data[off:off+MaxPayload], payload))
	sl.seq, sl.ts, sl.ticks, sl.used = s, t, ticks, true
	b.count++
}

// head returns the buffered packet with the lowest sequence number at or
// after nextSeq, or nil.
func (b *Buffer) head() *slot {
	if b.count == 0 {
		return nil
	}
	end := min(b.highSeq, b.nextSeq+b.mask)
	for s := b.nextSeq; s <= end; s++ {
		if sl := &b.slots[s&b.mask]; sl.used && sl.seq == s {
			return sl
		}
	}
	return nil
}

func (b *Buffer) payload(sl *slot) []byte {
	off := int(sl.seq&b.mask) * MaxPayload
	return b.data[off : off+int(sl.n) : off+int(sl.n)]
}

// desired is the timestamp that should start playing at now to keep the
// target depth above the fastest packets' transit.
func (b *Buffer) desired(now time.Duration) int64 {
	return durTicks(now - b.minTransit - b.target)
}

// Pop returns what to play for the next 20 ms slot at time now (on the
// timeline of the packets' arrival times). Call it once per 20 ms tick; a
// caller that decodes packets shorter than 20 ms may call it again with the
// same now to fill the slot, and one that decoded a longer packet skips the
// calls its audio covers. The delay is adjusted once per distinct now.
func (b *Buffer) Pop(now time.Duration) Frame {
	control := false
	var e int64
	if !b.started {
		h := b.head()
		if h == nil || b.desired(now) < h.ts {
			return Frame{Kind: Waiting, Timestamp: uint32(b.playTs)}
		}
		b.started = true
		b.playTs = h.ts
		b.nextSeq = h.seq
		b.lastNow = now
		b.sinceSkip = 0
	} else if now > b.lastNow {
		b.lastNow = now
		control = true
		b.sinceSkip++
		e = b.desired(now) - b.playTs
		if e < -stretchAt {
			b.stats.Stretched++
			return Frame{Kind: Stretch, Seq: uint16(b.nextSeq), Timestamp: uint32(b.playTs)}
		}
		if e >= skipAt && (b.sinceSkip >= skipEvery || e > durTicks(b.maxDepth)) {
			b.sinceSkip = 0
			b.playTs += FrameTicks
			e -= FrameTicks
			b.stats.Skipped++
		}
	}
	// Packets wholly before the playout point have missed their turn.
	h := b.head()
	for h != nil && h.ts+h.ticks <= b.playTs {
		h.used = false
		b.count--
		b.stats.Dropped++
		b.nextSeq = h.seq + 1
		h = b.head()
	}
	f := Frame{Seq: uint16(b.nextSeq), Timestamp: uint32(b.playTs), Ticks: FrameTicks}
	switch {
	case h == nil:
		f.Kind = Underrun
		b.stats.Underruns++
		b.playTs += FrameTicks
	case h.ts-b.playTs <= halfFrame:
		// Due now: the next in sequence, or one after packets whose slots
		// have passed already.
		f.Kind = Play
		f.Seq, f.Timestamp, f.Ticks = uint16(h.seq), uint32(h.ts), int(h.ticks)
		f.Payload = b.payload(h)
		h.used = false
		b.count--
		b.stats.Played++
		b.nextSeq = h.seq + 1
		b.playTs = h.ts + h.ticks
	case h.seq == b.nextSeq:
		// In sequence but later: the sender left a gap (DTX). Silence is
		// the cheapest place to shrink the delay.
		f.Kind = Silence
		b.playTs += FrameTicks
		if control && e >= FrameTicks && h.ts-b.playTs >= FrameTicks {
			b.playTs += FrameTicks
			b.stats.Skipped++
		}
	default:
		// A gap in the sequence: the slot belongs to a missing packet. Which
		// one follows from the timestamps (slots may have passed as
		// underruns already); only the one just before h can be recovered
		// from h's forward error correction.
		f.Kind = Lost
		b.stats.LostSlots++
		b.lossHold = lossHoldPackets
		k := (h.ts - b.playTs + halfFrame) / FrameTicks
		missing := max(b.nextSeq, h.seq-k)
		f.Seq = uint16(missing)
		if missing == h.seq-1 && h.ticks == FrameTicks {
			if d := h.ts - (b.playTs + FrameTicks); d >= -halfFrame && d <= halfFrame {
				f.Payload = b.payload(h)
			}
		}
		b.nextSeq = missing + 1
		b.playTs += FrameTicks
	}
	return f
}
