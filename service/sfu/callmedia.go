package sfu

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/service/calls"
)

// CallMedia is the SFU seen from the call layer (it implements calls.Media): each bot call is a
// bot leg in the SFU conference whose id is the call's conference id, with the bot's roster id
// as its participant id.
type CallMedia struct {
	sfu    *SFU
	layout BotOptions
	mu     sync.Mutex
	legs   map[string]*Participant // by call id
}

var _ calls.Media = (*CallMedia)(nil)

// CallMedia returns the call layer's view of the SFU. opts.Layout sets the offer's layout (zero:
// the default); its OnClosed is ignored.
func (s *SFU) CallMedia(opts BotOptions) *CallMedia {
	return &CallMedia{sfu: s, layout: opts, legs: make(map[string]*Participant)}
}

func (m *CallMedia) leg(call calls.CallRef) (*Participant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.legs[call.ID]; p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("media of call %q: %w", call.ID, ErrParticipantNotFound)
}

// Offer adds the bot leg and returns its complete SDP offer.
func (m *CallMedia) Offer(ctx context.Context, call calls.CallRef) (string, error) {
	var p *Participant
	var err error
	name := call.DisplayName
	if name == "" {
		name = call.AppID
	}
	for range 2 { // a conference that just emptied closes; the second try gets a new one
		var conf *Conference
		if conf, err = m.sfu.Conference(call.ConferenceID); err != nil {
			return "", fmt.Errorf("media offer for call %q: %w", call.ID, err)
		}
		p, err = conf.AddBot(call.ParticipantID, BotOptions{DisplayName: name, Identity: call.AppID, Layout: m.layout.Layout})
		if !errors.Is(err, ErrClosed) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("media offer for call %q: %w", call.ID, err)
	}
	m.mu.Lock()
	m.legs[call.ID] = p
	m.mu.Unlock()
	return p.Offer(ctx)
}

// Connect applies the bot's answer and returns once the connection is up (or failed, or ctx
// ended).
func (m *CallMedia) Connect(ctx context.Context, call calls.CallRef, answerSDP string) error {
	p, err := m.leg(call)
	if err != nil {
		return err
	}
	if err := p.Connect(ctx, answerSDP); err != nil {
		return err
	}
	return p.WaitConnected(ctx)
}

// Subscribe puts a participant's video onto one of the bot's video slots.
func (m *CallMedia) Subscribe(_ context.Context, call calls.CallRef, req protocol.SubscribeRequest) error {
	p, err := m.leg(call)
	if err != nil {
		return err
	}
	return p.SubscribeVideo(req.SocketID, req.SourceID, req.Width, req.Height)
}

// Unsubscribe empties one of the bot's video slots.
func (m *CallMedia) Unsubscribe(_ context.Context, call calls.CallRef, socketID int) error {
	p, err := m.leg(call)
	if err != nil {
		return err
	}
	return p.UnsubscribeVideo(socketID)
}

// Close removes the bot leg.
func (m *CallMedia) Close(call calls.CallRef) {
	m.mu.Lock()
	p := m.legs[call.ID]
	delete(m.legs, call.ID)
	m.mu.Unlock()
	if p != nil {
		_ = p.Close()
	}
}

// WaitConnected returns when the participant's (first) connection is connected, an error when it
// failed or closed first, or ctx's error.
func (p *Participant) WaitConnected(ctx context.Context) error {
	if p.bot {
		return p.leg.waitConnected(ctx)
	}
	for {
		switch s := p.pub.ConnectionState(); s {
		case webrtc.PeerConnectionStateConnected:
			return nil
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			return fmt.Errorf("connection of %q %s: %w", p.id, s, ErrTransportFailed)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connection of %q: %w", p.id, ctx.Err())
		case <-p.done:
			return fmt.Errorf("connection of %q: %w", p.id, ErrClosed)
		case <-p.stateChanged():
		}
	}
}

// stateChanged returns a channel closed at the next connection state change.
func (p *Participant) stateChanged() <-chan struct{} {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	if p.stateCh == nil {
		p.stateCh = make(chan struct{})
	}
	return p.stateCh
}

func (p *Participant) signalState() {
	p.stateMu.Lock()
	if p.stateCh != nil {
		close(p.stateCh)
		p.stateCh = nil
	}
	p.stateMu.Unlock()
}

// Reporter is what the call layer learns from the media: who sends what, and who speaks.
// *calls.Manager implements it.
type Reporter interface {
	SetStreams(confID, participantID string, streams []protocol.Stream) error
	SetDominantSpeaker(confID string, sourceID uint32) error
}

// ReportTo tells r about every conference's streams (each participant's, when they change) and
// dominant speaker, from now on. Errors from r (a participant it does not know yet) are ignored:
// the next change reports again.
func (s *SFU) ReportTo(r Reporter) (cancel func()) {
	var mu sync.Mutex
	last := make(map[[2]string]string) // (conference, participant) → streams as reported
	return s.WatchAll(func(confID string, e Event) {
		switch e.Kind {
		case EventDominantSpeaker:
			_ = r.SetDominantSpeaker(confID, e.DominantSource)
		case EventRoster:
			mu.Lock()
			defer mu.Unlock()
			seen := make(map[[2]string]bool)
			for _, p := range e.Roster {
				streams := make([]protocol.Stream, 0, len(p.Streams))
				key := ""
				for _, st := range p.Streams {
					dir := protocol.DirectionSendRecv
					if st.Muted {
						dir = protocol.DirectionRecvOnly
					}
					ps := protocol.Stream{Kind: protocol.StreamKind(st.Kind.String()), Direction: dir, SourceID: st.SourceID}
					if st.Kind != StreamAudio && st.Width > 0 && st.Height > 0 {
						ps.Width, ps.Height = st.Width, st.Height
					}
					streams = append(streams, ps)
					key += fmt.Sprintf("%s/%s/%d/%dx%d;", st.Kind, dir, st.SourceID, ps.Width, ps.Height)
				}
				k := [2]string{confID, p.ID}
				seen[k] = true
				if prev, ok := last[k]; ok && prev == key {
					continue
				}
				if r.SetStreams(confID, p.ID, streams) == nil {
					last[k] = key
				}
			}
			for k := range last {
				if k[0] == confID && !seen[k] {
					delete(last, k)
				}
			}
		}
	})
}
