package sfu

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
)

// testPeer is a participant in tests: a pion client with a publisher and a subscriber
// connection, signalled in-process.
type testPeer struct {
	t      *testing.T
	name   string
	tag    byte
	p      *Participant
	pub    *webrtc.PeerConnection
	sub    *webrtc.PeerConnection
	audio  *webrtc.TrackLocalStaticRTP
	video  []*webrtc.TrackLocalStaticRTP // q, h, f when publishing video
	screen *webrtc.TrackLocalStaticRTP

	mu       sync.Mutex
	received map[string]*recvStream // by track id (kind-source)
	readers  sync.WaitGroup
	stopSend chan struct{}
	sending  sync.WaitGroup
	level    byte    // audio level (dBov) the peer sends
	delays   []int64 // send-to-receive delay of audio packets (ns), all senders
	offered  []TrackInfo
}

// recvStream is what a test peer received on one track.
type recvStream struct {
	packets  int
	payloads map[byte]int // first payload byte (sender tag / layer) → packets
	seqs     []uint16
	pics     []uint16
	csrc     uint32
	ssrc     uint32
}

func clientAPI(t *testing.T) *webrtc.API {
	t.Helper()
	se := rtc.ServiceSettingEngine(true)
	me, err := rtc.NewMediaEngine()
	if err != nil {
		t.Fatal(err)
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		t.Fatal(err)
	}
	reg, err := rtc.NewInterceptorRegistry()
	if err != nil {
		t.Fatal(err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
}

func newTestSFU(t *testing.T, cfg Config) *SFU {
	t.Helper()
	cfg.Loopback = true
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// joinPeer joins a test peer that publishes audio (and simulcast video when video is true).
func joinPeer(t *testing.T, api *webrtc.API, c *Conference, name string, video bool) *testPeer {
	t.Helper()
	return joinPeerWith(t, api, c, name, video, false)
}

// joinPeerWith also publishes a screen share (track id "screen-<name>", one layer) when screen
// is true.
func joinPeerWith(t *testing.T, api *webrtc.API, c *Conference, name string, video, screen bool) *testPeer {
	t.Helper()
	tp := &testPeer{t: t, name: name, tag: name[0], received: make(map[string]*recvStream), stopSend: make(chan struct{}), level: 100}
	var err error
	if tp.sub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	tp.sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		tp.readers.Add(1)
		go func() {
			defer tp.readers.Done()
			tp.read(tr)
		}()
	})
	tp.p, err = c.Join(name, ParticipantOptions{DisplayName: "peer " + name, OnOffer: tp.onOffer})
	if err != nil {
		t.Fatal(err)
	}
	if tp.pub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	if tp.audio, err = webrtc.NewTrackLocalStaticRTP(rtc.OpusCodec().RTPCodecCapability, "mic-"+name, name); err != nil {
		t.Fatal(err)
	}
	if _, err = tp.pub.AddTransceiverFromTrack(tp.audio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	var vsender *webrtc.RTPSender
	if video {
		for _, rid := range []string{"q", "h", "f"} {
			tr, err := webrtc.NewTrackLocalStaticRTP(rtc.VP8Codec().RTPCodecCapability, "cam-"+name, name, webrtc.WithRTPStreamID(rid))
			if err != nil {
				t.Fatal(err)
			}
			tp.video = append(tp.video, tr)
		}
		x, err := tp.pub.AddTransceiverFromTrack(tp.video[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		vsender = x.Sender()
		for _, tr := range tp.video[1:] {
			if err := vsender.AddEncoding(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	var screenIDs []string
	if screen {
		if tp.screen, err = webrtc.NewTrackLocalStaticRTP(rtc.VP8Codec().RTPCodecCapability, "screen-"+name, name+"-screen"); err != nil {
			t.Fatal(err)
		}
		if _, err = tp.pub.AddTransceiverFromTrack(tp.screen, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
		screenIDs = append(screenIDs, "screen-"+name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offer, err := rtc.CompleteOffer(ctx, tp.pub)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := tp.p.Publish(ctx, offer, screenIDs...)
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	tp.startSending(vsender)
	return tp
}

func (tp *testPeer) closing() bool {
	select {
	case <-tp.stopSend:
		return true
	default:
		return tp.sub.ConnectionState() == webrtc.PeerConnectionStateClosed
	}
}

func (tp *testPeer) onOffer(offer string, tracks []TrackInfo) {
	tp.mu.Lock()
	tp.offered = tracks
	tp.mu.Unlock()
	select {
	case <-tp.stopSend:
		return // closing: offers made while others leave are moot
	default:
	}
	if err := tp.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		if tp.closing() {
			return
		}
		tp.t.Errorf("%s: subscriber offer: %v", tp.name, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer, err := rtc.CompleteAnswer(ctx, tp.sub, nil)
	if err != nil && tp.closing() {
		return
	}
	if err != nil {
		tp.t.Errorf("%s: subscriber answer: %v", tp.name, err)
		return
	}
	if err := tp.p.Answer(answer); err != nil && !tp.closing() {
		tp.t.Errorf("%s: apply answer: %v", tp.name, err)
	}
}

func (tp *testPeer) read(tr *webrtc.TrackRemote) {
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		tp.mu.Lock()
		rs := tp.received[tr.ID()]
		if rs == nil {
			rs = &recvStream{payloads: make(map[byte]int)}
			tp.received[tr.ID()] = rs
		}
		rs.packets++
		rs.ssrc = uint32(tr.SSRC())
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			if d, ok := parseVP8(p.Payload); ok && len(p.Payload) > d.headerLen+10 && len(rs.pics) < 1<<16 {
				rs.payloads[p.Payload[d.headerLen+10]]++
				rs.pics = append(rs.pics, d.picID)
			}
		} else if len(p.Payload) > 0 {
			rs.payloads[p.Payload[0]]++
			if len(p.Payload) == 12 && p.Payload[3] == 0xfc && len(tp.delays) < 1<<20 {
				tp.delays = append(tp.delays, time.Now().UnixNano()-int64(binary.BigEndian.Uint64(p.Payload[4:])))
			}
		}
		if len(rs.seqs) < 1<<16 {
			rs.seqs = append(rs.seqs, p.SequenceNumber)
		}
		if len(p.CSRC) > 0 {
			rs.csrc = p.CSRC[0]
		}
		tp.mu.Unlock()
	}
}

func (tp *testPeer) stream(id string) (recvStream, bool) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	rs := tp.received[id]
	if rs == nil {
		return recvStream{}, false
	}
	cp := *rs
	cp.seqs = append([]uint16(nil), rs.seqs...)
	cp.pics = append([]uint16(nil), rs.pics...)
	cp.payloads = make(map[byte]int)
	for k, v := range rs.payloads {
		cp.payloads[k] = v
	}
	return cp, true
}

func (tp *testPeer) setLevel(l byte) {
	tp.mu.Lock()
	tp.level = l
	tp.mu.Unlock()
}

func extID(params webrtc.RTPParameters, uri string) uint8 {
	for _, e := range params.HeaderExtensions {
		if e.URI == uri {
			return uint8(e.ID)
		}
	}
	return 0
}

// startSending sends 50 audio packets a second (payload: tag, seq) with the peer's audio level,
// and, with video, 15 frames a second on each layer (a key frame every 10th frame).
func (tp *testPeer) startSending(vsender *webrtc.RTPSender) {
	levelID := uint8(0)
	for _, tr := range tp.pub.GetTransceivers() {
		if tr.Kind() == webrtc.RTPCodecTypeAudio {
			levelID = extID(tr.Sender().GetParameters().RTPParameters, sdp.AudioLevelURI)
		}
	}
	var midID, ridID uint8
	var mid string
	if vsender != nil {
		params := vsender.GetParameters()
		midID, ridID = extID(params.RTPParameters, sdp.SDESMidURI), extID(params.RTPParameters, sdp.SDESRTPStreamIDURI)
		for _, tr := range tp.pub.GetTransceivers() {
			if tr.Sender() == vsender {
				mid = tr.Mid()
			}
		}
		for _, rid := range []string{"q", "h", "f"} {
			tp.sending.Add(1)
			go func() { // drain RTCP so that the interceptors run
				defer tp.sending.Done()
				for {
					if _, _, err := vsender.ReadSimulcastRTCP(rid); err != nil {
						return
					}
				}
			}()
		}
	}
	tp.sending.Add(1)
	go func() {
		defer tp.sending.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var seq uint16
		var vseq [3]uint16
		var pic, sseq uint16
		frame := 0
		for n := 0; ; n++ {
			select {
			case <-tp.stopSend:
				return
			case <-tick.C:
			}
			seq++
			tp.mu.Lock()
			level := tp.level
			tp.mu.Unlock()
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 960, PayloadType: 111},
				Payload: make([]byte, 12)}
			pkt.Payload[0], pkt.Payload[1], pkt.Payload[2], pkt.Payload[3] = tp.tag, byte(seq>>8), byte(seq), 0xfc
			binary.BigEndian.PutUint64(pkt.Payload[4:], uint64(time.Now().UnixNano()))
			if levelID != 0 {
				_ = pkt.Header.SetExtension(levelID, []byte{level})
			}
			_ = tp.audio.WriteRTP(pkt)
			if tp.screen != nil && n%3 == 0 {
				sseq++
				payload := vp8TestPayload(sseq, sseq%10 == 1, 2)
				payload[4+10] = 'S'
				_ = tp.screen.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: sseq, Timestamp: uint32(sseq) * 6000, Marker: true},
					Payload: payload})
			}
			if vsender == nil || n%3 != 0 {
				continue
			}
			pic++
			key := frame%10 == 0
			frame++
			for l, tr := range tp.video {
				vseq[l]++
				payload := vp8TestPayload(pic, key, l)
				vp := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: vseq[l] + uint16(l)*10000, Timestamp: uint32(pic) * 6000,
					PayloadType: 96, Marker: true}, Payload: payload}
				_ = vp.Header.SetExtension(midID, []byte(mid))
				_ = vp.Header.SetExtension(ridID, []byte(tr.RID()))
				_ = tr.WriteRTP(vp)
			}
		}
	}()
}

// vp8TestPayload is a one-packet VP8 frame: descriptor with a 15-bit picture id, a frame header
// (key frames carry the layer's size), then the layer number at byte 10 of the frame.
func vp8TestPayload(pic uint16, key bool, layer int) []byte {
	sizes := [3][2]uint16{{320, 180}, {640, 360}, {1280, 720}}
	b := []byte{0x90, 0x80, 0x80 | byte(pic>>8)&0x7f, byte(pic)}
	frame := make([]byte, 16)
	if key {
		frame[0] = 0x00
		frame[3], frame[4], frame[5] = 0x9d, 0x01, 0x2a
		binary.LittleEndian.PutUint16(frame[6:], sizes[layer][0])
		binary.LittleEndian.PutUint16(frame[8:], sizes[layer][1])
	} else {
		frame[0] = 0x01
	}
	frame[10] = byte('0' + layer)
	return append(b, frame...)
}

// quiet stops the peer's sending.
func (tp *testPeer) quiet() {
	select {
	case <-tp.stopSend:
	default:
		close(tp.stopSend)
	}
}

func (tp *testPeer) close() {
	select {
	case <-tp.stopSend:
	default:
		close(tp.stopSend)
	}
	_ = tp.pub.Close()
	_ = tp.sub.Close()
	tp.sending.Wait()
	tp.readers.Wait()
}

// eventually polls cond until it holds or the (generous, liveness-only) deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLayers waits until c's roster shows the video source src with all three layers.
func waitLayers(t *testing.T, c *Conference, src uint32, what string) {
	t.Helper()
	waitLayersN(t, c, src, 3, what)
}

// waitLayersN waits until the roster shows n layers of the stream src.
func waitLayersN(t *testing.T, c *Conference, src uint32, n int, what string) {
	t.Helper()
	eventually(t, what, func() bool {
		for _, p := range c.Roster() {
			for _, st := range p.Streams {
				if st.SourceID == src && st.Layers == n {
					return true
				}
			}
		}
		return false
	})
}

func trackID(kind StreamKind, src uint32) string {
	return kind.String() + "-" + itoa(src)
}

func itoa(v uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

var _ = strings.HasPrefix
