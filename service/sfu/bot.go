package sfu

import (
	"context"
	"fmt"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
)

// addBotLines creates the bot leg's m-lines in internal/rtc's layout, each with a down track and
// its sink: audio slots (loudest speakers), video slots (subscriptions) and the screen-share
// slot (follows the conference's screen share); then the leg's socket and offer.
func (p *Participant) addBotLines() error {
	m := p.conf.sfu.metrics
	var tracks []*downTrack
	var fbs []feedback
	for _, line := range p.layout.Lines() {
		codec := rtc.OpusCodec().RTPCodecCapability
		if line.Kind != rtc.KindAudio {
			codec = rtc.VP8Codec().RTPCodecCapability
		}
		t := newDownTrack(line.MID, p.id, codec)
		var fb feedback
		switch line.Kind {
		case rtc.KindAudio:
			s := &slotSink{out: t, m: m.kinds[StreamAudio]}
			s.rw.clock = 48000
			p.audioSlots = append(p.audioSlots, s)
			p.slotSources = append(p.slotSources, 0)
			fb = s
		case rtc.KindVideo:
			v := newVideoSink(t, nil, LayerHigh, true, m.kinds[StreamVideo])
			p.videoSlots = append(p.videoSlots, v)
			fb = v
		case rtc.KindScreenShare:
			v := newVideoSink(t, nil, LayerHigh, true, m.kinds[StreamScreen])
			p.screenSlot = v
			fb = v
		}
		tracks = append(tracks, t)
		fbs = append(fbs, fb)
	}
	b, err := p.newBotLeg(tracks, fbs)
	if err != nil {
		return err
	}
	p.leg = b
	return nil
}

// Offer returns the SFU's complete SDP offer for a bot leg (its one candidate included), to
// send in the incoming-call request.
func (p *Participant) Offer(ctx context.Context) (string, error) {
	if !p.bot {
		return "", fmt.Errorf("offer for %q: %w", p.id, ErrNotBot)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("sfu: offer for bot %q: %w", p.id, err)
	}
	return p.leg.offer, nil
}

// Connect applies the bot's SDP answer; media flows once ICE and DTLS complete (WaitConnected).
func (p *Participant) Connect(ctx context.Context, answer string) error {
	if !p.bot {
		return fmt.Errorf("connect %q: %w", p.id, ErrNotBot)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sfu: connect bot %q: %w", p.id, err)
	}
	return p.leg.connect(answer)
}

// AudioSlots returns the audio source id on each of a bot's audio slots (0: empty).
func (p *Participant) AudioSlots() []uint32 {
	p.conf.mu.Lock()
	defer p.conf.mu.Unlock()
	return append([]uint32(nil), p.slotSources...)
}

// SubscribeVideo puts a video or screen-share source on one of a bot's video slots, at the
// simulcast layer nearest to width×height (0×0: the highest).
func (p *Participant) SubscribeVideo(slot int, source uint32, width, height int) error {
	if !p.bot {
		return fmt.Errorf("subscribe %q: %w", p.id, ErrNotBot)
	}
	c := p.conf
	c.mu.Lock()
	defer c.mu.Unlock()
	if slot < 0 || slot >= len(p.videoSlots) {
		return fmt.Errorf("subscribe bot %q video slot %d of %d: %w", p.id, slot, len(p.videoSlots), ErrBadSlot)
	}
	pub := c.pubs[source]
	if pub == nil || pub.kind == StreamAudio || pub.owner == p {
		return fmt.Errorf("subscribe bot %q to source %d: %w", p.id, source, ErrSourceNotFound)
	}
	p.videoSlots[slot].setSource(pub, nearestLayer(pub, width, height))
	c.rewireLocked()
	return nil
}

// UnsubscribeVideo empties one of a bot's video slots.
func (p *Participant) UnsubscribeVideo(slot int) error {
	if !p.bot {
		return fmt.Errorf("unsubscribe %q: %w", p.id, ErrNotBot)
	}
	c := p.conf
	c.mu.Lock()
	defer c.mu.Unlock()
	if slot < 0 || slot >= len(p.videoSlots) {
		return fmt.Errorf("unsubscribe bot %q video slot %d of %d: %w", p.id, slot, len(p.videoSlots), ErrBadSlot)
	}
	p.videoSlots[slot].setSource(nil, 0)
	c.rewireLocked()
	return nil
}

// Subscribe sets the simulcast layer a browser participant receives of a video or screen-share
// source; a negative layer pauses it.
func (p *Participant) Subscribe(source uint32, layer int) error {
	if p.bot {
		return fmt.Errorf("subscribe %q: %w (use SubscribeVideo)", p.id, ErrIsBot)
	}
	if layer >= maxLayers {
		return fmt.Errorf("subscribe %q to source %d layer %d: %w", p.id, source, layer, ErrBadLayer)
	}
	c := p.conf
	c.mu.Lock()
	d := p.downs[source]
	c.mu.Unlock()
	if d == nil || d.video == nil {
		return fmt.Errorf("subscribe %q to source %d: %w", p.id, source, ErrSourceNotFound)
	}
	d.video.setWant(layer)
	return nil
}

// SubscribeSize sets the layer nearest to width×height.
func (p *Participant) SubscribeSize(source uint32, width, height int) error {
	c := p.conf
	c.mu.Lock()
	pub := c.pubs[source]
	c.mu.Unlock()
	if pub == nil {
		return fmt.Errorf("subscribe %q to source %d: %w", p.id, source, ErrSourceNotFound)
	}
	return p.Subscribe(source, nearestLayer(pub, width, height))
}

// VideoLayer returns the layer a browser participant is switching to (target) and the one it
// receives now (current, -1 before the first key frame) of a source.
func (p *Participant) VideoLayer(source uint32) (target, current int, err error) {
	c := p.conf
	c.mu.Lock()
	d := p.downs[source]
	c.mu.Unlock()
	if d == nil || d.video == nil {
		return 0, 0, fmt.Errorf("layer of source %d for %q: %w", source, p.id, ErrSourceNotFound)
	}
	target, current = d.video.layers()
	return target, current, nil
}

// nearestLayer picks the layer whose known height is nearest to the wanted one; before sizes are
// known it assumes the usual quarter/half/full ladder under a 720p top layer.
func nearestLayer(pub *published, width, height int) int {
	if width <= 0 && height <= 0 {
		return LayerHigh
	}
	want := height
	if want <= 0 {
		want = width * 9 / 16
	}
	best, bestDiff := LayerHigh, -1
	for l := 0; l < maxLayers; l++ {
		h := [maxLayers]int{180, 360, 720}[l]
		if u := pub.layers[l].Load(); u != nil {
			if kh := int(u.height.Load()); kh > 0 {
				h = kh
			}
		} else {
			continue
		}
		d := h - want
		if d < 0 {
			d = -d
		}
		if bestDiff < 0 || d < bestDiff {
			best, bestDiff = l, d
		}
	}
	return best
}
