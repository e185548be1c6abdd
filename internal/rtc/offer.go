package rtc

import (
	"context"
	"errors"
	"fmt"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// OfferTracks are the service's side of one bot session, created in layout order by
// AddOfferTransceivers. The service writes forwarded RTP to the tracks; each track's packets
// carry the slot's SSRC (pion sets it) and the source participant's id in CSRC[0] (the writer
// sets it).
type OfferTracks struct {
	Layout       Layout
	Audio        []*webrtc.TrackLocalStaticRTP // one per audio m-line
	Video        []*webrtc.TrackLocalStaticRTP // one per video m-line
	ScreenShare  *webrtc.TrackLocalStaticRTP   // nil without a screen-share line
	Transceivers []*webrtc.RTPTransceiver      // in offer order
}

// Transceiver returns the transceiver of the m-line with the given mid, or nil.
func (o *OfferTracks) Transceiver(mid string) *webrtc.RTPTransceiver {
	for _, t := range o.Transceivers {
		if t.Mid() == mid {
			return t
		}
	}
	return nil
}

// AddOfferTransceivers adds the layout's m-lines to pc, in order, with their mids: the first
// audio and first video lines sendrecv (the bot may send there), all others sendonly. streamID
// names the tracks' media stream (the call id does well). Call it on a fresh peer connection
// before CreateOffer.
func AddOfferTransceivers(pc *webrtc.PeerConnection, l Layout, streamID string) (*OfferTracks, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	o := &OfferTracks{Layout: l}
	for _, line := range l.Lines() {
		codec := OpusCodec().RTPCodecCapability
		if line.Kind != KindAudio {
			codec = VP8Codec().RTPCodecCapability
		}
		track, err := webrtc.NewTrackLocalStaticRTP(codec, line.MID, streamID)
		if err != nil {
			return nil, fmt.Errorf("rtc: track for m-line %s: %w", line.MID, err)
		}
		dir := webrtc.RTPTransceiverDirectionSendonly
		if line.BotSends() {
			dir = webrtc.RTPTransceiverDirectionSendrecv
		}
		tr, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: dir})
		if err != nil {
			return nil, fmt.Errorf("rtc: transceiver for m-line %s: %w", line.MID, err)
		}
		if err := tr.SetMid(line.MID); err != nil {
			return nil, fmt.Errorf("rtc: mid %s: %w", line.MID, err)
		}
		switch line.Kind {
		case KindAudio:
			o.Audio = append(o.Audio, track)
		case KindVideo:
			o.Video = append(o.Video, track)
		case KindScreenShare:
			o.ScreenShare = track
		}
		o.Transceivers = append(o.Transceivers, tr)
	}
	return o, nil
}

// CompleteOffer creates the offer on pc, sets it as the local description, waits for candidate
// gathering to finish (or ctx), and returns the complete SDP.
func CompleteOffer(ctx context.Context, pc *webrtc.PeerConnection) (string, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("rtc: create offer: %w", err)
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", fmt.Errorf("rtc: set local offer: %w", err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return "", fmt.Errorf("rtc: gather offer candidates: %w", ctx.Err())
	}
	return pc.LocalDescription().SDP, nil
}

// CompleteAnswer is CompleteOffer's counterpart on the answering side, after the offer was set as
// the remote description: it creates the answer, sets it locally, waits for gathering (or ctx)
// and returns the complete SDP, rewritten by edit if edit is not nil. pion refuses a local
// description that differs from the answer it created, so edit changes only what the offerer
// reads (for example SetDirections to say sendonly where pion says sendrecv); m-lines that must be
// inactive for pion too are stopped (RTPTransceiver.Stop) before calling CompleteAnswer.
func CompleteAnswer(ctx context.Context, pc *webrtc.PeerConnection, edit func(string) (string, error)) (string, error) {
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("rtc: create answer: %w", err)
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("rtc: set local answer: %w", err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return "", fmt.Errorf("rtc: gather answer candidates: %w", ctx.Err())
	}
	out := pc.LocalDescription().SDP
	if edit != nil {
		if out, err = edit(out); err != nil {
			return "", err
		}
	}
	return out, nil
}

// SetDirections rewrites the direction attribute of the m-lines whose mid is in dirs. The answer
// side uses it to state exactly what each socket does (pion's own answer knows only whether a
// sender exists).
func SetDirections(sdpText string, dirs map[string]webrtc.RTPTransceiverDirection) (string, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(sdpText); err != nil {
		return "", fmt.Errorf("rtc: parse SDP to set directions: %w", err)
	}
	if len(d.MediaDescriptions) == 0 {
		return "", ErrNoMedia
	}
	for _, m := range d.MediaDescriptions {
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		dir, ok := dirs[mid]
		if !ok {
			continue
		}
		kept := m.Attributes[:0]
		for _, a := range m.Attributes {
			switch a.Key {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				continue
			}
			kept = append(kept, a)
		}
		m.Attributes = append(kept, sdp.NewPropertyAttribute(dir.String()))
	}
	out, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("rtc: write SDP with directions: %w", err)
	}
	return string(out), nil
}

// ErrNoMedia reports an SDP without m-lines.
var ErrNoMedia = errors.New("rtc: SDP has no m-lines")

// MIDs lists the mids of an SDP's m-lines in order, with each m-line's direction.
func MIDs(sdpText string) (mids []string, dirs []webrtc.RTPTransceiverDirection, err error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(sdpText); err != nil {
		return nil, nil, fmt.Errorf("rtc: parse SDP: %w", err)
	}
	if len(d.MediaDescriptions) == 0 {
		return nil, nil, ErrNoMedia
	}
	for _, m := range d.MediaDescriptions {
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		dir := webrtc.RTPTransceiverDirectionSendrecv
		for _, a := range m.Attributes {
			if v := webrtc.NewRTPTransceiverDirection(a.Key); v != webrtc.RTPTransceiverDirectionUnknown {
				dir = v
			}
		}
		mids = append(mids, mid)
		dirs = append(dirs, dir)
	}
	return mids, dirs, nil
}
