package rtctest

import (
	"fmt"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/vp8"
	"github.com/switchboard-rtc/switchboard/media"
)

// maxVideoPayload keeps RTP packets within a 1200-byte MTU after headers and SRTP.
const maxVideoPayload = 1100

type videoSender struct {
	track    *webrtc.TrackLocalStaticRTP
	enc      *vp8.Encoder
	w, h     int
	pz       *vp8.Packetizer
	buf      []byte
	payloads [][]byte
	pkt      rtp.Packet
	csrc     [1]uint32
	pts      int64
	plis     int  // key frame requests already answered
	lose     bool // encode the next frame but never send it
}

// LoseNextVideo makes the next frame on mid vanish after encoding: its sequence numbers are used
// but its packets never sent, so no retransmission can repair the gap and the receiver needs a
// key frame.
func (p *Peer) LoseNextVideo(mid string) {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	if v := p.videoTx[mid]; v != nil {
		v.lose = true
	}
}

func (v *videoSender) close() {
	if v.enc != nil {
		v.enc.Close()
	}
}

// SendVideo encodes one packed I420 picture of width×height and sends it on the video m-line
// mid (rtc.VideoMID(i) or rtc.ScreenShareMID) with source in CSRC[0]. Each call advances the
// stream by one frame at 30 frames a second. forceKey asks for a key frame; so does a PLI or FIR
// from the bot since the previous frame.
func (p *Peer) SendVideo(mid string, source uint32, i420 []byte, width, height int, forceKey bool) error {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	v, ok := p.videoTx[mid]
	if !ok || v.w != width || v.h != height {
		var track *webrtc.TrackLocalStaticRTP
		line, known := rtc.ParseMID(mid)
		switch {
		case known && line.Kind == rtc.KindVideo && line.Index < len(p.tracks.Video):
			track = p.tracks.Video[line.Index]
		case known && line.Kind == rtc.KindScreenShare && p.tracks.ScreenShare != nil:
			track = p.tracks.ScreenShare
		default:
			return fmt.Errorf("rtctest: no video m-line %q", mid)
		}
		enc, err := vp8.NewEncoder(vp8.EncoderConfig{Width: width, Height: height, FrameRate: 30, BitrateKbps: 800})
		if err != nil {
			return fmt.Errorf("rtctest: VP8 encoder %dx%d: %w", width, height, err)
		}
		pz, err := vp8.NewPacketizer(maxVideoPayload)
		if err != nil {
			enc.Close()
			return err
		}
		if v != nil {
			v.close()
			v.enc, v.pz, v.w, v.h = enc, pz, width, height
			forceKey = true
		} else {
			v = &videoSender{track: track, enc: enc, pz: pz, w: width, h: height}
			v.pkt.Header = rtp.Header{Version: 2, SequenceNumber: 7000, Timestamp: 90000}
			p.videoTx[mid] = v
		}
	}
	p.mu.Lock()
	if n := p.plis[mid]; n != v.plis { // the bot asked for a key frame
		v.plis, forceKey = n, true
	}
	p.mu.Unlock()
	frame, _, err := v.enc.Encode(i420, v.pts, forceKey)
	v.pts += vp8.ClockRate / 30
	if err != nil {
		return fmt.Errorf("rtctest: encode video for %s: %w", mid, err)
	}
	v.buf, v.payloads = v.pz.Packetize(v.buf[:0], v.payloads[:0], frame)
	v.pkt.CSRC = nil
	if source != 0 {
		v.csrc[0] = source
		v.pkt.CSRC = v.csrc[:]
	}
	lose := v.lose
	v.lose = false
	for i, pl := range v.payloads {
		if lose {
			v.pkt.SequenceNumber++
			continue
		}
		v.pkt.Payload = pl
		v.pkt.Marker = i == len(v.payloads)-1
		if err := v.track.WriteRTP(&v.pkt); err != nil {
			return fmt.Errorf("rtctest: write video RTP: %w", err)
		}
		v.pkt.SequenceNumber++
	}
	v.pkt.Timestamp += vp8.ClockRate / 30
	return nil
}

// VideoFrame is a picture the peer decoded from the bot's video.
type VideoFrame struct {
	Width, Height int
	I420          []byte
}

type videoReceiver struct {
	frames int
	keys   int
	last   VideoFrame
}

func (v *videoReceiver) close() {}

// ReceivedVideo returns how many frames of the bot's video on mid decoded, and the last one.
func (p *Peer) ReceivedVideo(mid string) (frames int, last VideoFrame) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := p.video[mid]
	if v == nil {
		return 0, VideoFrame{}
	}
	return v.frames, VideoFrame{v.last.Width, v.last.Height, append([]byte(nil), v.last.I420...)}
}

func (p *Peer) readVideo(track *webrtc.TrackRemote, mid string) {
	v := &videoReceiver{}
	p.mu.Lock()
	p.video[mid] = v
	p.mu.Unlock()
	asm := vp8.NewAssembler(vp8.AssemblerConfig{})
	dec, err := vp8.NewDecoder()
	if err != nil {
		return
	}
	defer dec.Close()
	buf := make([]byte, 1500)
	var pic []byte
	var pkt rtp.Packet
	var lastPLI time.Time
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		_ = asm.Push(&pkt)
		for {
			f, ok := asm.Next()
			if !ok {
				break
			}
			w, h, err := dec.Decode(f.Data, pic)
			if err != nil && w > 0 {
				pic = make([]byte, media.I420.FrameSize(w, h))
				w, h, err = dec.Decode(f.Data, pic)
			}
			if err != nil || w == 0 {
				continue
			}
			p.mu.Lock()
			v.frames++
			if f.Key {
				v.keys++
			}
			v.last = VideoFrame{w, h, append(v.last.I420[:0], pic[:media.I420.FrameSize(w, h)]...)}
			p.mu.Unlock()
		}
		if asm.NeedKeyFrame() && time.Since(lastPLI) > 200*time.Millisecond {
			lastPLI = time.Now()
			_ = p.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(track.SSRC())}})
		}
	}
}

// TestPattern draws frame n of a moving test pattern as a packed I420 picture: a horizontal
// luma ramp, four chroma quadrants, and a bright 16×16 block that moves with n.
func TestPattern(width, height, n int) []byte {
	buf := make([]byte, media.I420.FrameSize(width, height))
	DrawTestPattern(buf, width, height, n)
	return buf
}

// DrawTestPattern draws TestPattern's frame n into buf (packed I420 of width×height).
func DrawTestPattern(buf []byte, width, height, n int) {
	cw, ch := (width+1)/2, (height+1)/2
	y, u, v := buf[:width*height], buf[width*height:width*height+cw*ch], buf[width*height+cw*ch:]
	for r := 0; r < height; r++ {
		for c := 0; c < width; c++ {
			y[r*width+c] = byte(16 + c*219/max(1, width-1))
		}
	}
	bx, by := (n*4)%max(1, width-16), (n*2)%max(1, height-16)
	for r := by; r < by+16 && r < height; r++ {
		for c := bx; c < bx+16 && c < width; c++ {
			y[r*width+c] = 235
		}
	}
	for r := 0; r < ch; r++ {
		for c := 0; c < cw; c++ {
			q := 0
			if c >= cw/2 {
				q++
			}
			if r >= ch/2 {
				q += 2
			}
			u[r*cw+c] = [4]byte{64, 192, 128, 90}[q]
			v[r*cw+c] = [4]byte{192, 64, 90, 128}[q]
		}
	}
}
