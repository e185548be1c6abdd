package loadgen

import (
	"fmt"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/vp8"
	"github.com/switchboard-rtc/switchboard/media"
)

// The optional camera stream: one VP8 layer (no simulcast rid, which the service takes as its
// low layer), a loop of frames encoded once with a key frame first, sent every videoEvery
// frames of the audio clock. A key frame request sends the loop from its start again.
const (
	videoWidth, videoHeight = 320, 180
	videoEvery              = 4 // 80 ms: 12.5 frames a second
	videoLoopFrames         = 25
	videoKbps               = 300
	videoMaxPayload         = 1200
	videoTicks              = vp8.ClockRate / 50 // RTP ticks per 20 ms slot
)

// videoLoop is the pre-encoded camera loop shared by every call.
type videoLoop struct {
	frames [][]byte
}

// newVideoLoop encodes a moving test pattern once.
func newVideoLoop() (*videoLoop, error) {
	enc, err := vp8.NewEncoder(vp8.EncoderConfig{Width: videoWidth, Height: videoHeight, FrameRate: 50.0 / videoEvery,
		BitrateKbps: videoKbps, KeyFrameInterval: 10000})
	if err != nil {
		return nil, fmt.Errorf("loadgen: video encoder: %w", err)
	}
	defer enc.Close()
	pic := make([]byte, media.I420.FrameSize(videoWidth, videoHeight))
	l := &videoLoop{}
	for n := 0; len(l.frames) < videoLoopFrames; n++ {
		if n > 4*videoLoopFrames {
			return nil, fmt.Errorf("loadgen: video encoder dropped %d of %d pictures", n-len(l.frames), n)
		}
		drawPattern(pic, n)
		frame, _, err := enc.Encode(pic, int64(n)*videoEvery*videoTicks, n == 0)
		if err != nil {
			return nil, fmt.Errorf("loadgen: encode video frame %d: %w", n, err)
		}
		if len(frame) > 0 {
			l.frames = append(l.frames, append([]byte(nil), frame...))
		}
	}
	return l, nil
}

// drawPattern paints picture n: diagonal luma stripes that move, and a colour wash.
func drawPattern(pic []byte, n int) {
	ySize := videoWidth * videoHeight
	for y := 0; y < videoHeight; y++ {
		for x := 0; x < videoWidth; x++ {
			pic[y*videoWidth+x] = byte((x + y + 4*n) & 0xff)
		}
	}
	for i := ySize; i < len(pic); i++ {
		pic[i] = byte(128 + 40*((i/97+n)%3-1))
	}
}

// callVideo is one call's camera sender, used by the sender goroutine only (keyRequest aside).
type callVideo struct {
	track    *webrtc.TrackLocalStaticRTP
	pz       *vp8.Packetizer
	buf      []byte
	payloads [][]byte
	frame    int
}

// addVideo adds the camera track to the publisher.
func (c *call) addVideo() error {
	track, err := webrtc.NewTrackLocalStaticRTP(rtc.VP8Codec().RTPCodecCapability, "video", fmt.Sprintf("load-%d", c.id))
	if err != nil {
		return fmt.Errorf("video track: %w", err)
	}
	tr, err := c.pub.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return fmt.Errorf("add video track: %w", err)
	}
	pz, err := vp8.NewPacketizer(videoMaxPayload)
	if err != nil {
		return err
	}
	c.video = &callVideo{track: track, pz: pz}
	c.vpkt.Header.Version = 2
	c.vpkt.Header.PayloadType = uint8(rtc.PayloadTypeVP8)
	c.wg.Add(1)
	go c.keyFrameRequests(tr.Sender())
	return nil
}

// keyFrameRequests reads the video sender's RTCP and notes PLI and FIR.
func (c *call) keyFrameRequests(s *webrtc.RTPSender) {
	defer c.wg.Done()
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				c.keyRequest.Store(true)
			}
		}
	}
}

// sendVideo sends the next frame of the loop (from its key frame after a request) for slot.
func (c *call) sendVideo(l *videoLoop, slot int) {
	v := c.video
	if c.keyRequest.Swap(false) {
		v.frame = 0
	}
	frame := l.frames[v.frame%len(l.frames)]
	v.frame++
	v.buf, v.payloads = v.pz.Packetize(v.buf[:0], v.payloads[:0], frame)
	c.vpkt.Timestamp = c.tsBase + uint32(slot)*videoTicks
	for i, p := range v.payloads {
		c.vpkt.Payload = p
		c.vpkt.Marker = i == len(v.payloads)-1
		_ = v.track.WriteRTP(&c.vpkt)
		c.vpkt.SequenceNumber++
	}
}
