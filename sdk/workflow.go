package sdk

import "github.com/switchboard-rtc/switchboard/internal/protocol"

// Workflow is a bot's decision about an incoming call, returned from OnIncomingCall. Make one
// with Answer, Reject or Hangup; the zero Workflow rejects the call.
type Workflow struct {
	action protocol.ActionType
	media  mediaSession // nil, or a *MediaConfiguration (tests use fakes)
	reason string
}

// mediaSession is what the calling handler needs from a call's media: the methods of
// *MediaConfiguration it uses.
type mediaSession interface {
	answer(callID, offerSDP string) (string, error)
	dominantSpeakerChanged(sourceID uint32)
	close()
}

// Answer accepts the call. media binds the call's sockets to its media session; nil answers
// without media (a signalling-only bot). The handler answers the service's SDP offer with media
// and owns it from then on: it closes it at the call's cleanup, whatever happens.
func Answer(media *MediaConfiguration) Workflow {
	w := Workflow{action: protocol.ActionAnswer}
	if media != nil {
		w.media = media // never a typed nil in the interface
	}
	return w
}

// Reject declines the call; reason is passed to the service (it may be empty).
func Reject(reason string) Workflow {
	return Workflow{action: protocol.ActionReject, reason: reason}
}

// Hangup ends the call at once.
func Hangup() Workflow {
	return Workflow{action: protocol.ActionHangup}
}
