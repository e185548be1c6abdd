package sfu

import (
	"sort"
	"time"
)

// SpeakerConfig tunes the dominant-speaker detector and the choice of the loudest speakers sent
// to bots. The zero value means the defaults.
type SpeakerConfig struct {
	// Silence is the audio level (RFC 6464, dBov below full scale, 0..127) at or beyond which a
	// stream counts as silent. Default 60.
	Silence int
	// Smoothing is the time constant of the moving average of each stream's loudness. Default
	// 300 ms.
	Smoothing time.Duration
	// SwitchAfter is how long a challenger must stay the loudest before it takes over. Default
	// 500 ms.
	SwitchAfter time.Duration
	// Hold is the least time a dominant speaker keeps the floor once it has it. Default 1 s.
	Hold time.Duration
	// Margin is how much louder (in loudness units, 1 = 1 dB) a challenger must be than the
	// dominant speaker, or than the quietest of the loudest, to displace it. Default 3.
	Margin float64
}

func (c SpeakerConfig) withDefaults() SpeakerConfig {
	if c.Silence <= 0 {
		c.Silence = 60
	}
	if c.Smoothing <= 0 {
		c.Smoothing = 300 * time.Millisecond
	}
	if c.SwitchAfter <= 0 {
		c.SwitchAfter = 500 * time.Millisecond
	}
	if c.Hold <= 0 {
		c.Hold = time.Second
	}
	if c.Margin <= 0 {
		c.Margin = 3
	}
	return c
}

// Loudness is one audio stream's measurement over the last interval: the mean of (127 - level)
// over its packets, so that louder is larger and digital silence is 0. A negative Value means no
// packet came in the interval: the stream keeps its smoothed loudness for up to Smoothing × 3,
// then decays as silence (so that jitter in packet arrival does not read as silence, and a stream
// that stopped sending without leaving still fades).
type Loudness struct {
	Source uint32
	Value  float64
}

// Detector finds the dominant speaker among audio streams from their RFC 6464 audio levels. It
// is a pure function of the measurements and the times it is given, so it runs in virtual time in
// tests; the conference feeds it from its tick.
//
// A stream takes the floor when it has been the loudest speaking stream for SwitchAfter, is
// Margin louder than the current dominant speaker, and the dominant speaker has held the floor
// for Hold. A dominant stream that disappears (left, muted) hands over at once.
type Detector struct {
	cfg        SpeakerConfig
	smooth     map[uint32]float64
	heard      map[uint32]time.Duration // when each source last had packets
	last       time.Duration
	started    bool
	dominant   uint32 // 0: none
	since      time.Duration
	challenger uint32
	challenged time.Duration
}

// NewDetector returns a detector with cfg (zero fields take their defaults).
func NewDetector(cfg SpeakerConfig) *Detector {
	return &Detector{cfg: cfg.withDefaults(), smooth: make(map[uint32]float64), heard: make(map[uint32]time.Duration)}
}

// Dominant returns the dominant speaker's source id, 0 for none.
func (d *Detector) Dominant() uint32 { return d.dominant }

// Level returns the smoothed loudness of a source (0 for an unknown one).
func (d *Detector) Level(source uint32) float64 { return d.smooth[source] }

// Update feeds the measurements of the interval ending at now (any monotonic clock). Streams
// not listed are gone. It returns the dominant speaker and whether it changed.
func (d *Detector) Update(now time.Duration, levels []Loudness) (dominant uint32, changed bool) {
	dt := now - d.last
	if !d.started || dt < 0 {
		dt = 0
	}
	d.started, d.last = true, now
	alpha := float64(dt) / float64(d.cfg.Smoothing)
	if alpha > 1 || dt == 0 {
		alpha = 1
	}
	for id := range d.smooth {
		if !hasSource(levels, id) {
			delete(d.smooth, id)
			delete(d.heard, id)
		}
	}
	for _, l := range levels {
		v := l.Value
		if v < 0 {
			if now-d.heard[l.Source] <= 3*d.cfg.Smoothing {
				if _, ok := d.smooth[l.Source]; ok {
					continue
				}
			}
			v = 0
		} else {
			d.heard[l.Source] = now
		}
		s, ok := d.smooth[l.Source]
		if !ok {
			s = v
		}
		d.smooth[l.Source] = s + (v-s)*alpha
	}
	threshold := float64(127 - d.cfg.Silence)
	var loudest uint32
	best := threshold
	for _, l := range levels { // in the caller's order, so that ties are deterministic
		if v := d.smooth[l.Source]; v > best {
			loudest, best = l.Source, v
		}
	}
	prev := d.dominant
	if _, present := d.smooth[d.dominant]; d.dominant != 0 && !present {
		d.dominant = 0
	}
	switch {
	case loudest == 0 || loudest == d.dominant:
		d.challenger = 0
	case d.dominant == 0:
		d.dominant, d.since, d.challenger = loudest, now, 0
	default:
		if d.challenger != loudest {
			d.challenger, d.challenged = loudest, now
		}
		if now-d.challenged >= d.cfg.SwitchAfter && now-d.since >= d.cfg.Hold &&
			best >= d.smooth[d.dominant]+d.cfg.Margin {
			d.dominant, d.since, d.challenger = loudest, now, 0
		}
	}
	return d.dominant, d.dominant != prev
}

func hasSource(levels []Loudness, id uint32) bool {
	for _, l := range levels {
		if l.Source == id {
			return true
		}
	}
	return false
}

// AssignSlots keeps the loudest speakers on a bot's audio slots with as few moves as possible.
// slots holds the source on each slot (0 = empty) and is updated in place; candidates are the
// sources that may be forwarded, levels their smoothed loudness. Empty slots take the loudest
// unplaced candidates; a placed source that is no longer a candidate frees its slot; an unplaced
// candidate displaces the quietest placed one only when it is margin louder. It reports whether
// anything moved.
func AssignSlots(slots []uint32, candidates []uint32, level func(uint32) float64, margin float64) bool {
	moved := false
	for i, s := range slots {
		if s != 0 && !containsSource(candidates, s) {
			slots[i], moved = 0, true
		}
	}
	var free []uint32
	for _, c := range candidates {
		if !containsSource(slots, c) {
			free = append(free, c)
		}
	}
	sort.SliceStable(free, func(i, j int) bool { return level(free[i]) > level(free[j]) })
	for _, c := range free {
		placed := false
		for i, s := range slots {
			if s == 0 {
				slots[i], placed, moved = c, true, true
				break
			}
		}
		if placed {
			continue
		}
		q := -1
		for i, s := range slots {
			if q < 0 || level(s) < level(slots[q]) {
				q = i
			}
		}
		if q >= 0 && level(c) >= level(slots[q])+margin {
			slots[q], moved = c, true
		}
	}
	return moved
}

func containsSource(list []uint32, id uint32) bool {
	for _, s := range list {
		if s == id {
			return true
		}
	}
	return false
}
