package sfu

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
)

// Role names one of a browser participant's two peer connections.
type Role uint8

// Roles.
const (
	RolePublisher  Role = iota + 1 // the participant offers, the SFU answers; carries what it sends
	RoleSubscriber                 // the SFU offers, the participant answers; carries what it receives
)

func (r Role) String() string {
	switch r {
	case RolePublisher:
		return "publisher"
	case RoleSubscriber:
		return "subscriber"
	}
	return "unknown"
}

// ParticipantOptions describe a browser participant and how the SFU reaches its signalling.
type ParticipantOptions struct {
	DisplayName string
	Identity    string
	// OnOffer receives each offer of the subscriber connection (when someone publishes or
	// leaves) with what each of its m-lines carries; the participant answers with
	// Participant.Answer. Required. Called from the participant's negotiation goroutine, one at
	// a time.
	OnOffer func(sdp string, tracks []TrackInfo)
	// OnCandidate, when set, receives the SFU's ICE candidates as they are found (trickle ICE), and
	// offers and answers are handed out before gathering ends. Without it, they carry every
	// candidate.
	OnCandidate func(role Role, c webrtc.ICECandidateInit)
	// OnClosed is called once when the participant is removed: err is nil after Remove, or says
	// why (its transport failed, the conference closed). Called on a goroutine of the SFU.
	OnClosed func(err error)
}

// BotOptions describe a bot leg.
type BotOptions struct {
	DisplayName string
	Identity    string
	// Layout of the offer; the zero value is internal/rtc's default (with the SFU's
	// BotAudioSlots audio lines).
	Layout rtc.Layout
	// OnClosed as in ParticipantOptions.
	OnClosed func(err error)
}

// ErrTransportFailed is what OnClosed receives when a peer connection or a bot leg failed.
var ErrTransportFailed = errors.New("sfu: peer connection failed")

// down is what a browser receives of one published stream.
type down struct {
	pub    *published
	track  *downTrack
	sender *webrtc.RTPSender
	sink   sink
	video  *videoSink // nil for audio
}

// Participant is one member of a conference: a browser (publisher and subscriber connections)
// or a bot (one connection in the internal/rtc layout).
type Participant struct {
	conf        *Conference
	id          string
	displayName string
	identity    string
	bot         bool
	audioSrc    uint32
	videoSrc    uint32
	screenSrc   uint32
	onOffer     func(string, []TrackInfo)
	onCandidate func(Role, webrtc.ICECandidateInit)
	onClosed    func(error)

	pub *webrtc.PeerConnection // a browser's
	sub *webrtc.PeerConnection
	leg *botLeg // a bot's connection

	// Guarded by conf.mu.
	screenIDs   map[string]bool
	muted       map[StreamKind]bool
	downs       map[uint32]*down
	slotSources []uint32 // bot: source on each audio slot
	audioSlots  []*slotSink
	videoSlots  []*videoSink
	screenSlot  *videoSink
	layout      rtc.Layout

	negMu    sync.Mutex
	awaiting bool
	pending  bool
	negCh    chan struct{}

	stateMu sync.Mutex
	stateCh chan struct{} // closed at the next connection state change (WaitConnected)

	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup
}

func (p *Participant) sourceOf(kind StreamKind) uint32 {
	switch kind {
	case StreamAudio:
		return p.audioSrc
	case StreamVideo:
		return p.videoSrc
	}
	return p.screenSrc
}

// ID is the participant's id in its conference.
func (p *Participant) ID() string { return p.id }

// Conference is the participant's conference.
func (p *Participant) Conference() *Conference { return p.conf }

// SourceID is the source id of the participant's stream of the given kind (assigned at join,
// whether or not it publishes one).
func (p *Participant) SourceID(kind StreamKind) uint32 { return p.sourceOf(kind) }

// IsBot reports whether the participant is a bot leg.
func (p *Participant) IsBot() bool { return p.bot }

func (c *Conference) newParticipant(id, display, identity string, bot bool) *Participant {
	first := c.sfu.newSourceIDs(3)
	return &Participant{
		conf: c, id: id, displayName: display, identity: identity, bot: bot,
		audioSrc: first, videoSrc: first + 1, screenSrc: first + 2,
		screenIDs: make(map[string]bool), muted: make(map[StreamKind]bool), downs: make(map[uint32]*down),
		negCh: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

func (c *Conference) admit(p *Participant) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("join conference %q: %w", c.id, ErrClosed)
	}
	if c.findLocked(p.id) != nil {
		return fmt.Errorf("join %q to conference %q: %w", p.id, c.id, ErrParticipantExists)
	}
	c.parts = append(c.parts, p)
	c.sfu.metrics.participants.Inc()
	for _, pub := range c.pubs {
		p.addDownLocked(pub)
	}
	c.rewireLocked()
	c.emitRosterLocked()
	return nil
}

// Join adds a browser participant. It publishes with Publish and receives through the
// subscriber offers handed to opts.OnOffer.
func (c *Conference) Join(id string, opts ParticipantOptions) (*Participant, error) {
	if opts.OnOffer == nil {
		return nil, fmt.Errorf("join %q to conference %q: ParticipantOptions.OnOffer is required", id, c.id)
	}
	p := c.newParticipant(id, opts.DisplayName, opts.Identity, false)
	p.onOffer, p.onCandidate, p.onClosed = opts.OnOffer, opts.OnCandidate, opts.OnClosed
	var err error
	if p.pub, err = p.newPC(RolePublisher); err != nil {
		return nil, err
	}
	if p.sub, err = p.newPC(RoleSubscriber); err != nil {
		_ = p.pub.Close()
		return nil, err
	}
	p.wg.Add(1)
	go p.negotiateLoop()
	if err := c.admit(p); err != nil {
		p.shutdown(err)
		return nil, err
	}
	return p, nil
}

// AddBot adds a bot leg. The call layer then gets the offer with Offer and completes the
// connection with Connect.
func (c *Conference) AddBot(id string, opts BotOptions) (*Participant, error) {
	layout := opts.Layout
	if layout == (rtc.Layout{}) {
		layout = rtc.DefaultLayout()
		layout.Audio = c.sfu.cfg.BotAudioSlots
	}
	layout = layout.Normalize()
	if err := layout.Validate(); err != nil {
		return nil, fmt.Errorf("add bot %q: %w", id, err)
	}
	p := c.newParticipant(id, opts.DisplayName, opts.Identity, true)
	p.onClosed = opts.OnClosed
	p.layout = layout
	if err := p.addBotLines(); err != nil {
		p.shutdown(err)
		return nil, err
	}
	if err := c.admit(p); err != nil {
		p.shutdown(err)
		return nil, err
	}
	return p, nil
}

func (p *Participant) newPC(role Role) (*webrtc.PeerConnection, error) {
	pc, err := p.conf.sfu.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("sfu: %s connection of %q: %w", role, p.id, err)
	}
	if p.onCandidate != nil {
		pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if c != nil {
				p.onCandidate(role, c.ToJSON())
			}
		})
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.signalState()
		switch s {
		case webrtc.PeerConnectionStateFailed:
			p.fail(fmt.Errorf("%s connection of %q: %w", role, p.id, ErrTransportFailed))
		case webrtc.PeerConnectionStateClosed: // the remote closed DTLS (we closing it is a no-op here)
			p.fail(fmt.Errorf("%s connection of %q closed by the remote: %w", role, p.id, ErrTransportFailed))
		}
	})
	if role == RolePublisher {
		pc.OnTrack(p.onTrack)
	}
	return pc, nil
}

// fail removes the participant from a pion callback or a bot leg's watcher (on a goroutine of
// the conference, since closing a connection from its own callback would deadlock).
func (p *Participant) fail(err error) {
	c := p.conf
	c.mu.Lock()
	if c.closed || c.findLocked(p.id) != p {
		c.mu.Unlock()
		return
	}
	c.removeLocked(p)
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		p.shutdown(err)
	}()
}

// shutdown closes the connections and waits for the participant's goroutines; idempotent.
func (p *Participant) shutdown(reason error) {
	p.closeOnce.Do(func() {
		close(p.done)
		if p.pub != nil {
			_ = p.pub.Close()
		}
		if p.sub != nil {
			_ = p.sub.Close()
		}
		if p.leg != nil {
			p.leg.close()
		}
		p.wg.Wait()
		if p.onClosed != nil {
			p.onClosed(reason)
		}
	})
}

// Close removes the participant from its conference (as Conference.Remove) and waits for its
// goroutines. Closing a participant that was already removed does nothing (whoever removed it
// closes it), so Close may be called from OnClosed.
func (p *Participant) Close() error {
	if err := p.conf.Remove(p.id); err != nil && !errors.Is(err, ErrParticipantNotFound) {
		return err
	}
	return nil
}

func (p *Participant) onTrack(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	kind := StreamAudio
	layer := 0
	if track.Kind() == webrtc.RTPCodecTypeVideo {
		kind = StreamVideo
		p.conf.mu.Lock()
		screen := p.screenIDs[track.ID()]
		p.conf.mu.Unlock()
		if screen {
			kind = StreamScreen
		}
		if !p.bot {
			l, ok := layerOfRID(track.RID())
			if !ok {
				p.conf.log.Warn("unknown simulcast rid; track ignored", "participant", p.id, "rid", track.RID())
				return
			}
			layer = l
		}
	}
	u := &upstream{layer: layer, ssrc: uint32(track.SSRC()), track: track}
	pc := p.pub
	u.keyframe = func(ssrc uint32) {
		_ = pc.WriteRTCP(pliFor(ssrc))
	}
	for _, e := range recv.GetParameters().HeaderExtensions {
		if e.URI == audioLevelURI && kind == StreamAudio {
			u.levelExt = uint8(e.ID)
		}
	}
	if !p.conf.addUpstream(p, kind, u) {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		u.run()
		p.conf.removeUpstream(u)
	}()
	if kind != StreamAudio {
		u.requestKeyframe(nowNanos())
	}
}

// Publish applies the participant's offer of its publisher connection and returns the SFU's
// answer. screenTrackIDs names the tracks (MediaStreamTrack ids, as in the offer's msid) that are
// a screen share rather than a camera. A later offer (a track added or removed) is applied the
// same way.
func (p *Participant) Publish(ctx context.Context, offer string, screenTrackIDs ...string) (string, error) {
	if p.bot {
		return "", fmt.Errorf("publish for %q: %w", p.id, ErrIsBot)
	}
	p.conf.mu.Lock()
	for _, id := range screenTrackIDs {
		p.screenIDs[id] = true
	}
	p.conf.mu.Unlock()
	if err := p.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("sfu: apply publisher offer of %q: %w", p.id, err)
	}
	if p.onCandidate != nil {
		answer, err := p.pub.CreateAnswer(nil)
		if err != nil {
			return "", fmt.Errorf("sfu: answer publisher offer of %q: %w", p.id, err)
		}
		if err := p.pub.SetLocalDescription(answer); err != nil {
			return "", fmt.Errorf("sfu: set publisher answer of %q: %w", p.id, err)
		}
		return answer.SDP, nil
	}
	sdp, err := rtc.CompleteAnswer(ctx, p.pub, nil)
	if err != nil {
		return "", fmt.Errorf("sfu: publisher answer of %q: %w", p.id, err)
	}
	return sdp, nil
}

// Answer applies the participant's answer to the latest subscriber offer.
func (p *Participant) Answer(answer string) error {
	if p.bot {
		return fmt.Errorf("subscriber answer for %q: %w", p.id, ErrIsBot)
	}
	err := p.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
	p.negMu.Lock()
	p.awaiting = false
	again := p.pending
	p.pending = false
	p.negMu.Unlock()
	if err != nil {
		p.kick() // offer again: the failed answer left the subscriber connection unchanged
		return fmt.Errorf("sfu: apply subscriber answer of %q: %w", p.id, err)
	}
	if again {
		p.kick()
	}
	return nil
}

// AddICECandidate adds a remote candidate to one of a browser participant's connections (a bot
// leg takes the one candidate of its answer).
func (p *Participant) AddICECandidate(role Role, c webrtc.ICECandidateInit) error {
	pc := p.pub
	if role == RoleSubscriber {
		pc = p.sub
	}
	if pc == nil {
		return fmt.Errorf("sfu: candidate for %q: no %s connection", p.id, role)
	}
	if err := pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("sfu: add %s candidate %q of %q: %w", role, c.Candidate, p.id, err)
	}
	return nil
}

func (p *Participant) kick() {
	select {
	case p.negCh <- struct{}{}:
	default:
	}
}

// negotiateLoop makes the subscriber connection's offers, one at a time: a change while an offer
// waits for its answer is offered after the answer.
func (p *Participant) negotiateLoop() {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case <-p.negCh:
		}
		p.negMu.Lock()
		if p.awaiting {
			p.pending = true
			p.negMu.Unlock()
			continue
		}
		p.awaiting = true
		p.negMu.Unlock()
		sdp, tracks, err := p.subscriberOffer()
		if err != nil {
			p.negMu.Lock()
			p.awaiting = false
			p.negMu.Unlock()
			select {
			case <-p.done:
			default:
				if p.sub.ConnectionState() != webrtc.PeerConnectionStateClosed && !errors.Is(err, webrtc.ErrConnectionClosed) {
					p.conf.log.Warn("subscriber offer failed", "participant", p.id, "err", err)
				}
			}
			continue
		}
		p.onOffer(sdp, tracks)
	}
}

// TrackInfo tells a browser what one m-line of its subscriber connection carries. The track's
// id in the SDP (msid) is "<kind>-<sourceId>" and its stream id the publisher's participant id,
// but browsers do not all keep those ids, so the mid is the reliable key.
type TrackInfo struct {
	MID           string
	Kind          StreamKind
	SourceID      uint32
	ParticipantID string
}

// tracks lists the subscriber connection's m-lines that carry a stream now.
func (p *Participant) tracks() []TrackInfo {
	xs := p.sub.GetTransceivers()
	p.conf.mu.Lock()
	defer p.conf.mu.Unlock()
	out := make([]TrackInfo, 0, len(p.downs))
	for _, d := range p.downs {
		for _, x := range xs {
			if x.Sender() == d.sender && x.Mid() != "" {
				out = append(out, TrackInfo{MID: x.Mid(), Kind: d.pub.kind, SourceID: d.pub.source, ParticipantID: d.pub.owner.id})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MID < out[j].MID })
	return out
}

func (p *Participant) subscriberOffer() (string, []TrackInfo, error) {
	if p.onCandidate != nil {
		offer, err := p.sub.CreateOffer(nil)
		if err != nil {
			return "", nil, fmt.Errorf("sfu: subscriber offer for %q: %w", p.id, err)
		}
		if err := p.sub.SetLocalDescription(offer); err != nil {
			return "", nil, fmt.Errorf("sfu: set subscriber offer for %q: %w", p.id, err)
		}
		return offer.SDP, p.tracks(), nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	sdp, err := rtc.CompleteOffer(ctx, p.sub)
	return sdp, p.tracks(), err
}

// addDownLocked gives a browser participant a track for a newly published stream.
func (p *Participant) addDownLocked(pub *published) {
	if p.bot {
		if pub.kind == StreamScreen && p.screenSlot != nil && p.screenSlot.source() == nil {
			p.screenSlot.setSource(pub, LayerHigh)
		}
		return
	}
	if p.downs[pub.source] != nil {
		return
	}
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	if pub.kind != StreamAudio {
		codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	}
	id := pub.kind.String() + "-" + strconv.FormatUint(uint64(pub.source), 10)
	t := newDownTrack(id, pub.owner.id, codec)
	sender, err := p.sub.AddTrack(t)
	if err != nil {
		p.conf.log.Warn("add track to subscriber", "participant", p.id, "source", pub.source, "err", err)
		return
	}
	m := p.conf.sfu.metrics.kinds[pub.kind]
	d := &down{pub: pub, track: t, sender: sender}
	var fb feedback
	if pub.kind == StreamAudio {
		a := &audioSink{out: t, sender: sender, m: m}
		a.rw.clock = 48000
		d.sink, fb = a, a
	} else {
		layer := LayerMid
		if pub.kind == StreamScreen {
			layer = LayerHigh
		}
		v := newVideoSink(t, pub, layer, false, m)
		d.sink, d.video, fb = v, v, v
	}
	p.downs[pub.source] = d
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		readFeedback(sender, fb, p.conf.sfu.metrics)
	}()
	p.kick()
}

// removeDownLocked takes away what a participant received of a stream that ended.
func (p *Participant) removeDownLocked(pub *published) {
	if p.bot {
		for i, s := range p.slotSources {
			if s == pub.source {
				p.slotSources[i] = 0
			}
		}
		for _, v := range append(p.videoSlots[:len(p.videoSlots):len(p.videoSlots)], p.screenSlot) {
			if v != nil && v.source() == pub {
				v.setSource(nil, 0)
			}
		}
		return
	}
	d := p.downs[pub.source]
	if d == nil {
		return
	}
	delete(p.downs, pub.source)
	if err := p.sub.RemoveTrack(d.sender); err == nil {
		p.kick()
	}
}

// sinksFor appends the sinks through which p receives layer l of pub.
func (p *Participant) sinksFor(pub *published, l int, list []sink) []sink {
	if !p.bot {
		if d := p.downs[pub.source]; d != nil && (pub.kind != StreamAudio || l == 0) {
			list = append(list, d.sink)
		}
		return list
	}
	if pub.kind == StreamAudio {
		for i, s := range p.slotSources {
			if s == pub.source {
				list = append(list, p.audioSlots[i])
			}
		}
		return list
	}
	for _, v := range p.videoSlots {
		if v.source() == pub {
			list = append(list, v)
		}
	}
	if p.screenSlot != nil && p.screenSlot.source() == pub {
		list = append(list, p.screenSlot)
	}
	return list
}

// videoSinks appends p's video sinks (for the tick's layer adaptation).
func (p *Participant) videoSinks(list []*videoSink) []*videoSink {
	for _, d := range p.downs {
		if d.video != nil {
			list = append(list, d.video)
		}
	}
	for _, v := range p.videoSlots {
		if v.source() != nil {
			list = append(list, v)
		}
	}
	if p.screenSlot != nil && p.screenSlot.source() != nil {
		list = append(list, p.screenSlot)
	}
	return list
}
