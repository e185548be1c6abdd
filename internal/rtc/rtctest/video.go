package rtctest

import "github.com/pion/webrtc/v4"

type videoSender struct{}

func (v *videoSender) close() {}

type videoReceiver struct{}

func (v *videoReceiver) close() {}

func (p *Peer) readVideo(track *webrtc.TrackRemote, mid string) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := track.Read(buf); err != nil {
			return
		}
	}
}
