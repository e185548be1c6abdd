package sdk

import (
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/media"
)

// VideoSocketSettings configure a VideoSocket.
type VideoSocketSettings struct {
	Direction            StreamDirection
	ReceiveColorFormat   media.PixelFormat
	SupportedSendFormats []media.VideoFormat
	ScreenShare          bool
}

// VideoSocket sends and receives one video stream of a call.
type VideoSocket struct {
	settings VideoSocketSettings
	id       int
}

// ID is the socket's index among the call's video sockets, as the protocol names it.
func (s *VideoSocket) ID() int { return s.id }

func (s *VideoSocket) claim(m *MediaConfiguration) socketClaim { return nil }
func (s *VideoSocket) lineKind() rtc.Kind                      { return rtc.KindVideo }
func (s *VideoSocket) want(line rtc.Line) webrtc.RTPTransceiverDirection {
	return webrtc.RTPTransceiverDirectionInactive
}
func (s *VideoSocket) start(call *callMedia) error { return nil }
func (s *VideoSocket) remoteTrack(line rtc.Line, t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
}
func (s *VideoSocket) localTrack(line rtc.Line, sn *webrtc.RTPSender, t *webrtc.TrackLocalStaticRTP) {
}
func (s *VideoSocket) connected(up bool) {}
func (s *VideoSocket) close()            {}
