// Package playout is the clocked audio output of one Opus stream: packets
// from the network go into a jitter.Buffer, and every 20 ms the clock asks
// for exactly one frame of 16 kHz PCM, which is decoded, recovered from the
// next packet's forward error correction, concealed by the decoder (a few
// frames, fading out) or, when nothing arrives at all, low-level comfort
// noise. The Frame says which, and the media timestamp it stands for.
//
// Push is called by the network goroutine and Next by the clock goroutine;
// they share the jitter buffer under a mutex held for a few hundred
// nanoseconds, and neither allocates in the steady state. Clock (clock.go)
// is the real-time driver that calls Next on an absolute 20 ms schedule.
package playout

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/jitter"
	"github.com/switchboard-rtc/switchboard/internal/opus"
)

const (
	// FrameSamples is the length of every frame Next produces: 20 ms at 16 kHz.
	FrameSamples = opus.FrameSamples
	// FrameDuration is the duration of a frame, the clock's period.
	FrameDuration = 20 * time.Millisecond
	// DefaultComfortNoise is the comfort noise level (RMS, dBFS) when
	// Config.ComfortNoise is 0.
	DefaultComfortNoise = -60.0
	// DefaultMaxConcealed is the number of frames concealed by the decoder
	// before comfort noise takes over, when Config.MaxConcealed is 0.
	DefaultMaxConcealed = 5

	// MaxClockSkew is how far Next's frame times may run from the clock
	// before they are reset to it: the burst of overdue ticks a Clock
	// runs after a delay.
	MaxClockSkew = DefaultMaxBurst * FrameDuration

	ticksPerFrame = jitter.FrameTicks
)

// FrameKind says how a frame was made.
type FrameKind uint8

// The kinds of frame Next returns.
const (
	// Decoded: decoded from the packet for this slot.
	Decoded FrameKind = iota + 1
	// FEC: the packet was lost; recovered from the next packet's in-band
	// forward error correction.
	FEC
	// PLC: concealed by the decoder (packet lost, late or undecodable),
	// fading towards comfort noise.
	PLC
	// ComfortNoise: nothing to play (not started, sender silent, or
	// concealed for too long).
	ComfortNoise
)

var frameKindNames = [...]string{"invalid", "decoded", "fec", "plc", "comfort-noise"}

// String returns the kind's name.
func (k FrameKind) String() string {
	if int(k) < len(frameKindNames) {
		return frameKindNames[k]
	}
	return fmt.Sprintf("FrameKind(%d)", uint8(k))
}

// Frame describes one frame produced by NextAt.
type Frame struct {
	// Kind says how the frame was made. A frame assembled from several
	// pieces (packets shorter than 20 ms) has the kind of its worst piece.
	Kind FrameKind
	// Timestamp is the RTP timestamp (48 kHz) of the frame's first sample:
	// the media time it plays or stands in for.
	Timestamp uint32
	// Slot is what the jitter buffer returned for the frame's first piece.
	Slot jitter.Kind
}

// Config tunes a Playout. The zero value is the default.
type Config struct {
	// Jitter configures the jitter buffer.
	Jitter jitter.Config
	// ComfortNoise is the RMS level of the comfort noise in dBFS (negative);
	// 0 means DefaultComfortNoise and math.Inf(-1) digital silence.
	ComfortNoise float64
	// MaxConcealed is how many consecutive frames the decoder conceals
	// before comfort noise takes over; 0 means DefaultMaxConcealed.
	MaxConcealed int
	// Now is the clock used by Push and Next, on the timeline of the
	// arrival times (any origin, monotonic). nil means the time elapsed
	// since New. Tests pass a virtual clock.
	Now func() time.Duration
	// Seed seeds the comfort noise generator (any value; 0 works).
	Seed uint32
}

// Stats are the jitter buffer's statistics and the playout's own counters.
type Stats struct {
	jitter.Stats
	Frames       uint64 // frames produced by Next
	Decoded      uint64 // frames (or pieces of frames) decoded from their packet
	FEC          uint64 // lost frames recovered from the next packet's FEC
	Concealed    uint64 // frames concealed by the decoder (PLC)
	ComfortNoise uint64 // frames of comfort noise
	DecodeErrors uint64 // packets the decoder rejected (concealed instead)
}

// Playout is the audio output of one Opus stream. Push may be called from
// one goroutine while Next runs on another; Next (and NextAt) must not be
// called concurrently with each other.
type Playout struct {
	mu    sync.Mutex // guards buf and stats
	buf   *jitter.Buffer
	stats Stats

	// Owned by the goroutine calling Next.
	dec          *opus.Decoder
	now          func() time.Duration
	maxConcealed int
	noise        noise
	payload      [jitter.MaxPayload]byte
	pcm          [opus.MaxFrameSamples + FrameSamples]int16 // decoded audio not yet played, from pcm[0]
	have         int                                        // samples in pcm
	headTs       uint32                                     // timestamp of pcm[0]
	concealed    int                                        // consecutive frames concealed
	audible      bool                                       // the decoder has audio to extrapolate from
	lastT        time.Duration
	ticked       bool
	local        Stats // counters of the frame in progress, added to stats under mu
}

// New returns a Playout with its own jitter buffer and Opus decoder.
// Close releases the decoder.
func New(cfg Config) (*Playout, error) {
	if cfg.ComfortNoise > 0 || math.IsNaN(cfg.ComfortNoise) {
		return nil, fmt.Errorf("playout: comfort noise level %v dBFS: must be negative", cfg.ComfortNoise)
	}
	if cfg.MaxConcealed < 0 {
		return nil, fmt.Errorf("playout: %d frames of concealment: must not be negative", cfg.MaxConcealed)
	}
	dec, err := opus.NewDecoder()
	if err != nil {
		return nil, fmt.Errorf("playout: %w", err)
	}
	p := &Playout{
		buf:          jitter.New(cfg.Jitter),
		dec:          dec,
		now:          cfg.Now,
		maxConcealed: cfg.MaxConcealed,
	}
	if p.now == nil {
		start := time.Now()
		p.now = func() time.Duration { return time.Since(start) }
	}
	if p.maxConcealed == 0 {
		p.maxConcealed = DefaultMaxConcealed
	}
	level := cfg.ComfortNoise
	if level == 0 {
		level = DefaultComfortNoise
	}
	p.noise.init(level, cfg.Seed)
	return p, nil
}

// Close releases the decoder. It is idempotent; Next must not run during
// or after Close.
func (p *Playout) Close() { p.dec.Close() }

// Now returns the playout's clock (Config.Now).
func (p *Playout) Now() time.Duration { return p.now() }

// Push adds a packet that arrives now (by the playout's clock). The payload
// is copied. The error, when not nil, is one of jitter's sentinel errors
// saying why the packet was not kept; it is also counted in Stats.
func (p *Playout) Push(seq uint16, timestamp uint32, payload []byte) error {
	return p.PushPacket(jitter.Packet{Seq: seq, Timestamp: timestamp, Payload: payload, Arrival: p.now()})
}

// PushPacket adds a packet with its own arrival time (on the playout's
// clock): for replays and virtual-time tests.
func (p *Playout) PushPacket(pkt jitter.Packet) error {
	p.mu.Lock()
	err := p.buf.Push(pkt)
	p.mu.Unlock()
	return err
}

// Stats returns the statistics so far.
func (p *Playout) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Stats = p.buf.Stats()
	return s
}

// TargetDepth returns the jitter buffer's current target depth.
func (p *Playout) TargetDepth() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.TargetDepth()
}

// Next writes the next 20 ms frame into pcm[:FrameSamples] (pcm should be
// that long; a shorter pcm gets the frame's beginning) and says how it was
// made. Successive calls stand for frames 20 ms apart: the frame time is
// the previous one plus 20 ms, as long as that stays within
// MaxClockSkew of the playout's clock (a caller a little late, or
// catching up after a delay, plays on schedule); beyond it the frame time
// is set to the clock's reading.
func (p *Playout) Next(pcm []int16) FrameKind {
	real := p.now()
	t := p.lastT + FrameDuration
	if !p.ticked || t-real > MaxClockSkew || real-t > MaxClockSkew {
		t = real
	}
	p.ticked, p.lastT = true, t
	return p.NextAt(t, pcm).Kind
}

// NextAt is Next for a frame due at now (on the playout's clock).
func (p *Playout) NextAt(now time.Duration, pcm []int16) Frame {
	var fr Frame
	first := true
	for p.have < FrameSamples {
		p.mu.Lock()
		// Counters of the pieces decoded so far go in with this lock.
		p.flushLocked()
		slot := p.buf.Pop(now)
		n := copy(p.payload[:], slot.Payload)
		p.mu.Unlock()
		if p.have == 0 {
			p.headTs = slot.Timestamp
		}
		if first {
			fr.Slot = slot.Kind
			first = false
		}
		kind := p.piece(slot, p.payload[:n])
		fr.Kind = max(fr.Kind, kind)
	}
	if fr.Kind == 0 {
		fr.Kind = Decoded // all from audio decoded for an earlier frame
		fr.Slot = jitter.Play
	}
	fr.Timestamp = p.headTs
	copy(pcm, p.pcm[:FrameSamples])
	p.have = copy(p.pcm[:], p.pcm[FrameSamples:p.have])
	p.headTs += ticksPerFrame
	p.local.Frames++
	p.mu.Lock()
	p.flushLocked()
	p.mu.Unlock()
	return fr
}

// flushLocked adds the local counters to stats; p.mu is held.
func (p *Playout) flushLocked() {
	s, l := &p.stats, &p.local
	s.Frames += l.Frames
	s.Decoded += l.Decoded
	s.FEC += l.FEC
	s.Concealed += l.Concealed
	s.ComfortNoise += l.ComfortNoise
	s.DecodeErrors += l.DecodeErrors
	*l = Stats{}
}

// piece appends the audio for one slot of the jitter buffer to p.pcm.
func (p *Playout) piece(slot jitter.Frame, payload []byte) FrameKind {
	dst := p.pcm[p.have:]
	switch slot.Kind {
	case jitter.Play:
		n, err := p.dec.Decode(payload, dst)
		if err == nil && n > 0 {
			p.have += n
			p.local.Decoded++
			p.concealed = 0
			p.audible = true
			return Decoded
		}
		p.local.DecodeErrors++
	case jitter.Lost:
		if len(payload) > 0 {
			n, err := p.dec.DecodeFEC(payload, dst[:FrameSamples])
			if err == nil && n == FrameSamples {
				p.have += n
				p.local.FEC++
				p.concealed = 0
				p.audible = true
				return FEC
			}
			p.local.DecodeErrors++
		}
	case jitter.Underrun, jitter.Stretch:
	default: // Waiting, Silence
		return p.comfortNoise(dst[:FrameSamples])
	}
	return p.conceal(dst[:FrameSamples])
}

// conceal fills one frame by the decoder's loss concealment, faded out
// over the allowed run and cross-faded into comfort noise; after the run,
// comfort noise alone.
func (p *Playout) conceal(dst []int16) FrameKind {
	if !p.audible || p.concealed >= p.maxConcealed {
		return p.comfortNoise(dst)
	}
	if n, err := p.dec.DecodePLC(dst); err != nil || n != len(dst) {
		p.local.DecodeErrors++
		return p.comfortNoise(dst)
	}
	// Gain falls linearly from (max-k)/max to (max-k-1)/max over the frame,
	// in Q15; the noise fills in what the gain takes away.
	m := int32(p.maxConcealed)
	k := int32(p.concealed)
	from := (m - k) << 15 / m
	to := (m - k - 1) << 15 / m
	n := int32(len(dst))
	for i := range dst {
		g := from + (to-from)*int32(i)/n
		v := (int32(dst[i])*g + p.noise.sample()*(1<<15-g)) >> 15
		dst[i] = int16(max(math.MinInt16, min(math.MaxInt16, v)))
	}
	p.concealed++
	p.have += len(dst)
	p.local.Concealed++
	return PLC
}

func (p *Playout) comfortNoise(dst []int16) FrameKind {
	for i := range dst {
		dst[i] = int16(p.noise.sample())
	}
	p.have += len(dst)
	p.local.ComfortNoise++
	p.audible = false
	return ComfortNoise
}

// noise is a deterministic, allocation-free comfort noise generator: white
// noise from a xorshift generator through a one-pole low-pass filter, which
// sounds softer than white noise.
type noise struct {
	state uint32
	amp   int32 // peak of the white noise, in samples
	y     int32 // filter state
}

func (n *noise) init(dBFS float64, seed uint32) {
	n.state = seed | 1
	// Uniform white noise in [-a, a] has an RMS of a/√3; the filter
	// y += (x-y)/2 divides it by a further √3.
	rms := 32768 * math.Pow(10, dBFS/20)
	n.amp = int32(min(32767, math.Round(3*rms)))
}

func (n *noise) sample() int32 {
	n.state ^= n.state << 13
	n.state ^= n.state >> 17
	n.state ^= n.state << 5
	x := int32(int16(n.state>>16)) * n.amp >> 15
	n.y += (x - n.y) >> 1
	return n.y
}
