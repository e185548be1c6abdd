package sdk

import "errors"

// MediaConfiguration binds a call's sockets to the call's media session. A bot makes one with
// MediaPlatform.CreateMediaConfiguration from the sockets it created for the call and puts it in
// its Answer action; the handler then answers the service's media offer with it.
//
// (Placeholder until the media platform lands: the calling handler uses only the unexported
// methods below.)
type MediaConfiguration struct{}

var errNoMedia = errors.New("sdk: media platform not implemented")

// answer answers the service's SDP offer for callID and starts the call's media. It returns the
// SDP answer to put in the workflow.
func (m *MediaConfiguration) answer(callID, offerSDP string) (string, error) { return "", errNoMedia }

// dominantSpeakerChanged delivers the service's announcement to the audio socket.
func (m *MediaConfiguration) dominantSpeakerChanged(sourceID uint32) {}

// close releases every socket and the media session. It is idempotent and waits for the
// goroutines to end.
func (m *MediaConfiguration) close() {}

// VideoSocket sends and receives one video stream of a call. (Placeholder.)
type VideoSocket struct{ id int }

// ID is the socket's index among the call's video sockets, as the protocol names it.
func (s *VideoSocket) ID() int { return s.id }
