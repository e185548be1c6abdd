package sfu

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// EventKind tells what an Event reports.
type EventKind uint8

// Event kinds.
const (
	EventRoster          EventKind = iota + 1 // the roster changed; Event.Roster is the whole new roster
	EventDominantSpeaker                      // the dominant speaker changed
)

// Event is something a conference's watchers hear about.
type Event struct {
	Kind EventKind
	// Roster is the full roster after the change (EventRoster).
	Roster []ParticipantInfo
	// DominantSource is the dominant speaker's audio source id and DominantParticipant its
	// participant id; 0 and "" when nobody speaks (EventDominantSpeaker).
	DominantSource      uint32
	DominantParticipant string
}

// ParticipantInfo is one entry of a conference's roster.
type ParticipantInfo struct {
	ID          string
	DisplayName string
	Identity    string
	IsBot       bool
	Streams     []StreamInfo
}

// StreamInfo is one stream a participant publishes.
type StreamInfo struct {
	Kind     StreamKind
	SourceID uint32
	Muted    bool
	// Width and Height are the picture size of the stream's highest layer, from its latest key
	// frame (0 until one was seen); video and screen share only.
	Width, Height int
	// Layers is the number of simulcast layers received.
	Layers int
}

// MarshalText names the kind as the protocols do: "audio", "video", "screenShare".
func (k StreamKind) MarshalText() ([]byte, error) {
	if k < StreamAudio || k > StreamScreen {
		return nil, fmt.Errorf("sfu: stream kind %d has no name", uint8(k))
	}
	return []byte(k.String()), nil
}

// Conference is one set of participants whose media reach each other.
type Conference struct {
	sfu *SFU
	id  string
	log *slog.Logger

	mu       sync.Mutex
	parts    []*Participant // in join order
	pubs     map[uint32]*published
	det      *Detector
	epoch    time.Time
	levels   []Loudness
	lastTick time.Duration
	closed   bool

	evMu     sync.Mutex
	queue    []Event
	watchers map[int]func(Event)
	nextW    int
	wake     chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
}

func newConference(s *SFU, id string) *Conference {
	c := &Conference{
		sfu: s, id: id, log: s.log.With("conference", id),
		pubs: make(map[uint32]*published), det: NewDetector(s.cfg.Speaker), epoch: time.Now(),
		watchers: make(map[int]func(Event)), wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	c.wg.Add(1)
	go c.eventLoop()
	if s.cfg.Tick > 0 {
		c.wg.Add(1)
		go c.tickLoop(s.cfg.Tick)
	}
	return c
}

// ID is the conference's id.
func (c *Conference) ID() string { return c.id }

// Watch calls fn with every later event of the conference, serially, from the conference's
// event goroutine (fn must not block for long; it may call the conference). The returned cancel
// stops the calls.
func (c *Conference) Watch(fn func(Event)) (cancel func()) {
	c.evMu.Lock()
	id := c.nextW
	c.nextW++
	c.watchers[id] = fn
	c.evMu.Unlock()
	return func() {
		c.evMu.Lock()
		delete(c.watchers, id)
		c.evMu.Unlock()
	}
}

func (c *Conference) emit(e Event) {
	c.evMu.Lock()
	c.queue = append(c.queue, e)
	c.evMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Conference) eventLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		}
		for {
			c.evMu.Lock()
			if len(c.queue) == 0 {
				c.evMu.Unlock()
				break
			}
			e := c.queue[0]
			c.queue = c.queue[1:]
			fns := make([]func(Event), 0, len(c.watchers))
			ids := make([]int, 0, len(c.watchers))
			for id := range c.watchers {
				ids = append(ids, id)
			}
			sort.Ints(ids)
			for _, id := range ids {
				fns = append(fns, c.watchers[id])
			}
			c.evMu.Unlock()
			for _, fn := range fns {
				fn(e)
			}
			for _, fn := range c.sfu.globalWatchers() {
				fn(c.id, e)
			}
		}
	}
}

func (c *Conference) tickLoop(d time.Duration) {
	defer c.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.Tick(time.Since(c.epoch))
		}
	}
}

// Tick runs the conference's periodic work for the interval ending at now (time since any fixed
// point): loudness, dominant speaker, bots' loudest-speaker slots, layer bitrates and
// adaptation. The conference's own ticker calls it unless Config.Tick is negative.
func (c *Conference) Tick(now time.Duration) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	dt := now - c.lastTick
	c.lastTick = now
	c.levels = c.levels[:0]
	for _, p := range c.parts {
		if pub := c.pubs[p.audioSrc]; pub != nil && !pub.muted && pub.layers[0].Load() != nil {
			c.levels = append(c.levels, Loudness{Source: pub.source, Value: pub.layers[0].Load().takeLoudness()})
		}
	}
	prev := c.det.Dominant()
	dom, changed := c.det.Update(now, c.levels)
	moved := false
	var cands []uint32
	for _, p := range c.parts {
		if !p.bot || len(p.slotSources) == 0 {
			continue
		}
		cands = cands[:0]
		for _, l := range c.levels {
			if l.Source != p.audioSrc {
				cands = append(cands, l.Source)
			}
		}
		if AssignSlots(p.slotSources, cands, c.det.Level, c.sfu.cfg.Speaker.Margin) {
			moved = true
		}
	}
	var sinks []*videoSink
	var roster []ParticipantInfo
	sized := false
	for _, pub := range c.pubs {
		if pub.kind == StreamAudio {
			continue
		}
		if sz := pub.topSize(); sz != pub.sizeReported {
			pub.sizeReported = sz
			sized = true
		}
		for i := range pub.layers {
			if u := pub.layers[i].Load(); u != nil && dt > 0 {
				u.bitrate.Store(int64(u.bytes.Swap(0)) * 8 * int64(time.Second) / int64(dt))
			}
		}
	}
	for _, p := range c.parts {
		sinks = p.videoSinks(sinks)
	}
	if moved {
		c.rewireLocked()
	}
	if sized {
		// A sender's picture size became known or changed: the roster carries it.
		roster = c.rosterLocked()
	}
	var who string
	if changed {
		if pub := c.pubs[dom]; pub != nil {
			who = pub.owner.id
		}
	}
	c.mu.Unlock()
	wall := time.Now().UnixNano()
	for _, s := range sinks {
		s.retarget(wall)
	}
	if roster != nil {
		c.emit(Event{Kind: EventRoster, Roster: roster})
	}
	if changed && dom != prev {
		c.emit(Event{Kind: EventDominantSpeaker, DominantSource: dom, DominantParticipant: who})
	}
}

// DominantSpeaker returns the current dominant speaker's audio source id (0: none).
func (c *Conference) DominantSpeaker() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.det.Dominant()
}

// Roster returns the conference's participants in join order.
func (c *Conference) Roster() []ParticipantInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rosterLocked()
}

func (c *Conference) rosterLocked() []ParticipantInfo {
	out := make([]ParticipantInfo, 0, len(c.parts))
	for _, p := range c.parts {
		info := ParticipantInfo{ID: p.id, DisplayName: p.displayName, Identity: p.identity, IsBot: p.bot}
		for _, src := range []uint32{p.audioSrc, p.videoSrc, p.screenSrc} {
			pub := c.pubs[src]
			if pub == nil {
				continue
			}
			si := StreamInfo{Kind: pub.kind, SourceID: pub.source, Muted: pub.muted}
			for l := maxLayers - 1; l >= 0; l-- {
				u := pub.layers[l].Load()
				if u == nil {
					continue
				}
				si.Layers++
				if si.Width == 0 && pub.kind != StreamAudio {
					si.Width, si.Height = int(u.width.Load()), int(u.height.Load())
				}
			}
			info.Streams = append(info.Streams, si)
		}
		out = append(out, info)
	}
	return out
}

func (c *Conference) emitRosterLocked() {
	c.emit(Event{Kind: EventRoster, Roster: c.rosterLocked()})
}

// Participant returns a participant by id.
func (c *Conference) Participant(id string) (*Participant, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.findLocked(id); p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("participant %q in conference %q: %w", id, c.id, ErrParticipantNotFound)
}

func (c *Conference) findLocked(id string) *Participant {
	for _, p := range c.parts {
		if p.id == id {
			return p
		}
	}
	return nil
}

// rewireLocked recomputes every upstream's list of sinks from the subscriptions. It allocates
// and runs only when something changes, never per packet.
func (c *Conference) rewireLocked() {
	for _, pub := range c.pubs {
		for l := range pub.layers {
			u := pub.layers[l].Load()
			if u == nil {
				continue
			}
			var list []sink
			if !pub.muted {
				for _, q := range c.parts {
					if q == pub.owner {
						continue
					}
					list = q.sinksFor(pub, l, list)
				}
			}
			u.sinks.Store(&list)
		}
	}
}

// addUpstream registers a new incoming track of p.
func (c *Conference) addUpstream(p *Participant, kind StreamKind, u *upstream) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.findLocked(p.id) != p {
		return false
	}
	src := p.sourceOf(kind)
	pub := c.pubs[src]
	fresh := pub == nil
	if fresh {
		pub = &published{owner: p, kind: kind, source: src}
		c.pubs[src] = pub
	}
	u.pub = pub
	u.m = c.sfu.metrics.kinds[kind]
	pub.layers[u.layer].Store(u)
	if fresh {
		for _, q := range c.parts {
			if q != p {
				q.addDownLocked(pub)
			}
		}
	}
	c.rewireLocked()
	c.emitRosterLocked()
	return true
}

// removeUpstream forgets an incoming track that ended.
func (c *Conference) removeUpstream(u *upstream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pub := u.pub
	if pub == nil || c.pubs[pub.source] != pub || pub.layers[u.layer].Load() != u {
		return
	}
	pub.layers[u.layer].Store(nil)
	for i := range pub.layers {
		if pub.layers[i].Load() != nil {
			c.rewireLocked()
			return
		}
	}
	c.dropPublishedLocked(pub)
	c.rewireLocked()
	c.emitRosterLocked()
}

func (c *Conference) dropPublishedLocked(pub *published) {
	delete(c.pubs, pub.source)
	for _, q := range c.parts {
		q.removeDownLocked(pub)
	}
}

// Remove takes a participant out of the conference, closes its peer connections and waits for
// its goroutines. The others' rosters lose it.
func (c *Conference) Remove(id string) error {
	c.mu.Lock()
	p := c.findLocked(id)
	if p == nil {
		c.mu.Unlock()
		return fmt.Errorf("remove %q from conference %q: %w", id, c.id, ErrParticipantNotFound)
	}
	c.removeLocked(p)
	c.mu.Unlock()
	p.shutdown(nil)
	return nil
}

func (c *Conference) removeLocked(p *Participant) {
	for i, q := range c.parts {
		if q == p {
			c.parts = append(c.parts[:i:i], c.parts[i+1:]...)
			break
		}
	}
	for _, src := range []uint32{p.audioSrc, p.videoSrc, p.screenSrc} {
		if pub := c.pubs[src]; pub != nil {
			c.dropPublishedLocked(pub)
		}
	}
	c.sfu.metrics.participants.Dec()
	c.rewireLocked()
	c.emitRosterLocked()
	c.closeIfEmptyLocked()
}

// SetMuted stops (or resumes) forwarding one of a participant's streams and tells the roster.
func (c *Conference) SetMuted(id string, kind StreamKind, muted bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.findLocked(id)
	if p == nil {
		return fmt.Errorf("mute %q in conference %q: %w", id, c.id, ErrParticipantNotFound)
	}
	p.muted[kind] = muted
	if pub := c.pubs[p.sourceOf(kind)]; pub != nil && pub.muted != muted {
		pub.muted = muted
		c.rewireLocked()
	}
	c.emitRosterLocked()
	return nil
}

// Close removes every participant and stops the conference's goroutines. It is idempotent and
// waits.
func (c *Conference) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.wg.Wait()
		return
	}
	c.closed = true
	c.sfu.forget(c) // from now on SFU.Conference(id) makes a new one
	parts := c.parts
	c.parts = nil
	c.pubs = make(map[uint32]*published)
	c.sfu.metrics.participants.Sub(float64(len(parts)))
	c.mu.Unlock()
	for _, p := range parts {
		p.shutdown(ErrClosed)
	}
	close(c.done)
	c.wg.Wait()
}

// closeIfEmptyLocked closes the conference, on a goroutine of the SFU, once its last
// participant has left.
func (c *Conference) closeIfEmptyLocked() {
	if len(c.parts) > 0 || c.closed {
		return
	}
	c.sfu.wg.Add(1)
	go func() {
		defer c.sfu.wg.Done()
		c.mu.Lock()
		empty := len(c.parts) == 0
		c.mu.Unlock()
		if empty {
			c.Close()
		}
	}()
}
