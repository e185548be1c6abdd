// Package testpeer is a browser stand-in for tests of the calling service. A Peer speaks the
// service's WebSocket signalling (docs/signalling.md) exactly as the web page does: it joins a
// room or calls a bot, offers its publisher connection, answers the service's subscriber offers
// and trickles ICE candidates both ways, over pion peer connections on loopback. It publishes real
// Opus (libopus, 16 kHz mono in 20 ms frames, with the RFC 6464 audio level) and, optionally, real
// VP8 (libvpx) in three simulcast layers (rids q, h, f), and it decodes what it receives per
// source id.
package testpeer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/opus"
	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/vp8"
	"github.com/switchboard-rtc/switchboard/service/signal"
)

// FrameSamples is one 20 ms frame of the 16 kHz mono audio a Peer sends and decodes.
const FrameSamples = 320

// DefaultLayers are the simulcast sizes (q, h, f) a Peer publishes with Config.Video.
var DefaultLayers = [3][2]int{{320, 180}, {640, 360}, {1280, 720}}

// maxPCM bounds the decoded audio kept per source (60 s).
const maxPCM = 60 * 16000

// Config configures a Peer.
type Config struct {
	// URL is the service's signalling WebSocket, ws://host:port/ws.
	URL string
	// Name is the display name.
	Name string
	// Audio fills frame n of what the microphone sends (FrameSamples samples); nil sends
	// silence. SetAudio changes it later.
	Audio func(n int, pcm []int16)
	// Video publishes a camera in three simulcast layers of Layers' sizes (DefaultLayers when
	// zero), at FrameRate frames a second (default 10).
	Video     bool
	Layers    [3][2]int
	FrameRate int
	// Loop encodes Audio's first second once and sends it over and over (load tests: no Opus
	// encoding per frame). SetAudio does not apply then.
	Loop bool
	// CountOnly counts received audio packets without decoding them (load tests).
	CountOnly bool
	// Stamps, shared by the peers of a test, measures the forwarding delay of audio: senders
	// note when they sent each payload, receivers look the payload up (the SFU forwards
	// payloads unchanged).
	Stamps *Stamps
}

// Stamps maps audio payloads to the time they were last sent. It is safe for concurrent use.
type Stamps struct {
	mu   sync.Mutex
	sent map[uint64]int64
}

// NewStamps makes an empty Stamps.
func NewStamps() *Stamps { return &Stamps{sent: map[uint64]int64{}} }

func payloadKey(b []byte) uint64 {
	h := uint64(14695981039346656037) // FNV-1a
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func (s *Stamps) put(payload []byte, t int64) {
	k := payloadKey(payload)
	s.mu.Lock()
	s.sent[k] = t
	s.mu.Unlock()
}

func (s *Stamps) since(payload []byte, now int64) (time.Duration, bool) {
	k := payloadKey(payload)
	s.mu.Lock()
	t, ok := s.sent[k]
	s.mu.Unlock()
	return time.Duration(now - t), ok
}

// Joined is the service's joined message.
type Joined = signal.Joined

// Participant is a roster entry as the service sends it to browsers.
type Participant = signal.Participant

// Dominant is one dominant-speaker message.
type Dominant struct {
	ParticipantID string
	SourceID      uint32
}

// VideoStats is what a Peer received of one video source.
type VideoStats struct {
	Frames        int
	Width, Height int // of the last decoded frame
}

// Peer is one browser participant. Its methods are safe for concurrent use.
type Peer struct {
	cfg  Config
	conn *websocket.Conn
	api  *webrtc.API

	mu        sync.Mutex
	audioFn   func(n int, pcm []int16)
	joined    *Joined
	joinedCh  chan Joined
	errs      []string
	left      string
	roster    []Participant
	dominant  []Dominant
	pub, sub  *webrtc.PeerConnection
	descSent  map[string]bool
	candWait  map[string][]signal.Candidate
	remote    map[string][]webrtc.ICECandidateInit // candidates that came before their description
	pcm       map[uint32][]int16
	packets   map[uint32]int
	video     map[uint32]*VideoStats
	delays    []time.Duration
	startOnce sync.Once

	audioTrack *webrtc.TrackLocalStaticRTP
	videoTx    *webrtc.RTPTransceiver
	layers     []*webrtc.TrackLocalStaticRTP
	keyWanted  [3]bool

	stop     chan struct{}
	stopOnce sync.Once
	readDone chan struct{}
	wg       sync.WaitGroup
}

// Dial opens the signalling WebSocket.
func Dial(ctx context.Context, cfg Config) (*Peer, error) {
	if cfg.FrameRate <= 0 {
		cfg.FrameRate = 10
	}
	if cfg.Layers == ([3][2]int{}) {
		cfg.Layers = DefaultLayers
	}
	api, err := newAPI()
	if err != nil {
		return nil, err
	}
	conn, _, err := websocket.Dial(ctx, cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("testpeer: dial %s: %w", cfg.URL, err)
	}
	conn.SetReadLimit(1 << 20)
	p := &Peer{
		cfg: cfg, conn: conn, api: api, audioFn: cfg.Audio,
		joinedCh: make(chan Joined, 1), descSent: map[string]bool{}, candWait: map[string][]signal.Candidate{},
		remote: map[string][]webrtc.ICECandidateInit{}, pcm: map[uint32][]int16{}, packets: map[uint32]int{},
		video: map[uint32]*VideoStats{}, stop: make(chan struct{}), readDone: make(chan struct{}),
	}
	go p.readLoop()
	return p, nil
}

// newAPI is a browser's pion API: the service's codecs and interceptors, the simulcast header
// extensions, loopback only.
func newAPI() (*webrtc.API, error) {
	me, err := rtc.NewMediaEngine()
	if err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, fmt.Errorf("testpeer: simulcast extensions: %w", err)
	}
	reg, err := rtc.NewInterceptorRegistry()
	if err != nil {
		return nil, err
	}
	se := rtc.ServiceSettingEngine(true)
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled // interceptors complain about closed pipes at Close
	se.LoggerFactory = quiet
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

// Join joins a room's conference and starts publishing.
func (p *Peer) Join(ctx context.Context, room string) (Joined, error) {
	return p.enter(ctx, signal.Join{Type: signal.TypeJoin, Room: room, DisplayName: p.cfg.Name})
}

// CallBot calls a bot by name and starts publishing.
func (p *Peer) CallBot(ctx context.Context, bot string) (Joined, error) {
	return p.enter(ctx, signal.CallBot{Type: signal.TypeCallBot, Bot: bot, DisplayName: p.cfg.Name})
}

func (p *Peer) enter(ctx context.Context, msg any) (Joined, error) {
	if err := p.send(msg); err != nil {
		return Joined{}, err
	}
	select {
	case j := <-p.joinedCh:
		return j, nil
	case <-p.readDone:
		return Joined{}, fmt.Errorf("testpeer %s: connection closed before joined: %v", p.cfg.Name, p.Errors())
	case <-ctx.Done():
		return Joined{}, fmt.Errorf("testpeer %s: joined never came (errors %v): %w", p.cfg.Name, p.Errors(), ctx.Err())
	}
}

func (p *Peer) send(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.conn.Write(ctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("testpeer %s: write: %w", p.cfg.Name, err)
	}
	return nil
}

// inbound is any message the service sends.
type inbound struct {
	Type          string                  `json:"type"`
	SDP           string                  `json:"sdp"`
	Target        string                  `json:"target"`
	Candidate     webrtc.ICECandidateInit `json:"candidate"`
	ParticipantID string                  `json:"participantId"`
	ConferenceID  string                  `json:"conferenceId"`
	Token         string                  `json:"token"`
	ResumeWithin  int                     `json:"resumeWithinMs"`
	Sources       signal.Sources          `json:"sources"`
	Participants  []signal.Participant    `json:"participants"`
	SourceID      uint32                  `json:"sourceId"`
	Code          string                  `json:"code"`
	Message       string                  `json:"message"`
	Reason        string                  `json:"reason"`
	Tracks        []signal.Track          `json:"tracks"`
}

func (p *Peer) readLoop() {
	defer close(p.readDone)
	for {
		_, data, err := p.conn.Read(context.Background())
		if err != nil {
			return
		}
		var m inbound
		if err := json.Unmarshal(data, &m); err != nil {
			p.fail(fmt.Sprintf("invalid JSON %q", data))
			continue
		}
		p.handle(&m)
	}
}

func (p *Peer) fail(s string) {
	p.mu.Lock()
	p.errs = append(p.errs, s)
	p.mu.Unlock()
}

func (p *Peer) handle(m *inbound) {
	switch m.Type {
	case signal.TypeJoined:
		j := Joined{Type: m.Type, ParticipantID: m.ParticipantID, ConferenceID: m.ConferenceID, Token: m.Token,
			ResumeWithin: m.ResumeWithin, Sources: m.Sources}
		p.mu.Lock()
		first := p.joined == nil
		p.joined = &j
		p.mu.Unlock()
		if first {
			if err := p.startMedia(); err != nil {
				p.fail(err.Error())
			}
			p.joinedCh <- j
		}
	case signal.TypeRoster:
		p.mu.Lock()
		p.roster = m.Participants
		p.mu.Unlock()
	case signal.TypeDominantSpeaker:
		p.mu.Lock()
		p.dominant = append(p.dominant, Dominant{ParticipantID: m.ParticipantID, SourceID: m.SourceID})
		p.mu.Unlock()
	case signal.TypeError:
		p.fail(m.Code + ": " + m.Message)
	case signal.TypeLeft:
		p.mu.Lock()
		p.left = m.Reason
		if p.left == "" {
			p.left = "left"
		}
		p.mu.Unlock()
	case signal.TypeAnswer:
		p.onAnswer(m.SDP)
	case signal.TypeOffer:
		p.onOffer(m.SDP)
	case signal.TypeCandidate:
		p.onCandidate(m.Target, m.Candidate)
	}
}

// startMedia makes both peer connections and sends the publisher's offer.
func (p *Peer) startMedia() error {
	sub, err := p.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	pub, err := p.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		_ = sub.Close()
		return err
	}
	p.mu.Lock()
	p.pub, p.sub = pub, sub
	p.mu.Unlock()
	for role, pc := range map[string]*webrtc.PeerConnection{"publisher": pub, "subscriber": sub} {
		pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if c == nil {
				return
			}
			j := c.ToJSON()
			m := signal.Candidate{Type: signal.TypeCandidate, Target: role, Candidate: signal.CandidateInit{
				Candidate: j.Candidate, SDPMid: j.SDPMid, SDPMLineIndex: j.SDPMLineIndex, UsernameFragment: j.UsernameFragment}}
			p.mu.Lock()
			if !p.descSent[role] {
				p.candWait[role] = append(p.candWait[role], m)
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			_ = p.send(m)
		})
	}
	sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		kind, src, ok := strings.Cut(tr.ID(), "-")
		id, err := strconv.ParseUint(src, 10, 32)
		if !ok || err != nil {
			p.fail("track id " + tr.ID())
			return
		}
		select {
		case <-p.stop:
			return
		default:
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if kind == "audio" {
				p.readAudio(tr, uint32(id))
			} else {
				p.readVideo(tr, uint32(id))
			}
		}()
	})
	if p.audioTrack, err = webrtc.NewTrackLocalStaticRTP(rtc.OpusCodec().RTPCodecCapability, "mic-"+p.cfg.Name, "stream-"+p.cfg.Name); err != nil {
		return err
	}
	if _, err := pub.AddTransceiverFromTrack(p.audioTrack, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		return fmt.Errorf("testpeer: add audio: %w", err)
	}
	if p.cfg.Video {
		for _, rid := range []string{"q", "h", "f"} {
			tr, err := webrtc.NewTrackLocalStaticRTP(rtc.VP8Codec().RTPCodecCapability, "cam-"+p.cfg.Name, "stream-"+p.cfg.Name, webrtc.WithRTPStreamID(rid))
			if err != nil {
				return err
			}
			p.layers = append(p.layers, tr)
		}
		if p.videoTx, err = pub.AddTransceiverFromTrack(p.layers[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			return fmt.Errorf("testpeer: add video: %w", err)
		}
		for _, tr := range p.layers[1:] {
			if err := p.videoTx.Sender().AddEncoding(tr); err != nil {
				return fmt.Errorf("testpeer: add simulcast layer: %w", err)
			}
		}
	}
	offer, err := pub.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("testpeer: publisher offer: %w", err)
	}
	if err := pub.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("testpeer: publisher offer: %w", err)
	}
	return p.sendDescription("publisher", signal.Publish{Type: signal.TypePublish, SDP: offer.SDP})
}

// sendDescription sends an offer or answer, then the candidates that waited for it (a page's
// candidate events come after the description it sent).
func (p *Peer) sendDescription(role string, m any) error {
	if err := p.send(m); err != nil {
		return err
	}
	p.mu.Lock()
	p.descSent[role] = true
	wait := p.candWait[role]
	p.candWait[role] = nil
	p.mu.Unlock()
	for _, c := range wait {
		_ = p.send(c)
	}
	return nil
}

func (p *Peer) onAnswer(sdpText string) {
	p.mu.Lock()
	pub := p.pub
	p.mu.Unlock()
	if pub == nil {
		return
	}
	if err := pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdpText}); err != nil {
		p.fail("publisher answer: " + err.Error())
		return
	}
	p.addRemoteCandidates("publisher", pub)
	p.startOnce.Do(p.startSending)
}

func (p *Peer) onOffer(sdpText string) {
	p.mu.Lock()
	sub := p.sub
	p.mu.Unlock()
	if sub == nil {
		return
	}
	if err := sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdpText}); err != nil {
		if !p.stopping() {
			p.fail("subscriber offer: " + err.Error())
		}
		return
	}
	p.addRemoteCandidates("subscriber", sub)
	answer, err := sub.CreateAnswer(nil)
	if err == nil {
		err = sub.SetLocalDescription(answer)
	}
	if err != nil {
		if !p.stopping() {
			p.fail("subscriber answer: " + err.Error())
		}
		return
	}
	_ = p.sendDescription("subscriber", signal.Answer{Type: signal.TypeAnswer, SDP: answer.SDP})
}

func (p *Peer) onCandidate(target string, c webrtc.ICECandidateInit) {
	if c.Candidate == "" {
		return
	}
	p.mu.Lock()
	pc := p.pub
	if target == "subscriber" {
		pc = p.sub
	}
	if pc == nil || pc.RemoteDescription() == nil {
		p.remote[target] = append(p.remote[target], c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	if err := pc.AddICECandidate(c); err != nil && !p.stopping() {
		p.fail("candidate: " + err.Error())
	}
}

func (p *Peer) addRemoteCandidates(target string, pc *webrtc.PeerConnection) {
	p.mu.Lock()
	list := p.remote[target]
	p.remote[target] = nil
	p.mu.Unlock()
	for _, c := range list {
		_ = pc.AddICECandidate(c)
	}
}

func (p *Peer) stopping() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// SetAudio changes what the microphone sends from the next frame on (nil: silence).
func (p *Peer) SetAudio(fn func(n int, pcm []int16)) {
	p.mu.Lock()
	p.audioFn = fn
	p.mu.Unlock()
}

// level is the RFC 6464 audio level of a frame: -dBov, 0 (loudest) to 127 (silence).
func level(pcm []int16) byte {
	var sum float64
	for _, v := range pcm {
		sum += float64(v) * float64(v)
	}
	rms := math.Sqrt(sum / float64(len(pcm)))
	if rms < 1 {
		return 127
	}
	db := -20 * math.Log10(rms/32767)
	return byte(min(127, max(0, math.Round(db))))
}

func extID(params webrtc.RTPParameters, uri string) uint8 {
	for _, e := range params.HeaderExtensions {
		if e.URI == uri {
			return uint8(e.ID)
		}
	}
	return 0
}

// startSending starts the microphone (50 Opus packets a second) and, with video, the camera.
func (p *Peer) startSending() {
	p.mu.Lock()
	pub := p.pub
	p.mu.Unlock()
	levelID := uint8(0)
	for _, x := range pub.GetTransceivers() {
		if x.Kind() == webrtc.RTPCodecTypeAudio {
			levelID = extID(x.Sender().GetParameters().RTPParameters, sdp.AudioLevelURI)
		}
	}
	p.wg.Add(1)
	go p.sendAudio(levelID)
	if p.videoTx != nil {
		for l, rid := range []string{"q", "h", "f"} {
			p.wg.Add(1)
			go func() { // key frame requests from the service, per layer
				defer p.wg.Done()
				for {
					pkts, _, err := p.videoTx.Sender().ReadSimulcastRTCP(rid)
					if err != nil {
						return
					}
					if len(pkts) > 0 {
						p.mu.Lock()
						p.keyWanted[l] = true
						p.mu.Unlock()
					}
				}
			}()
		}
		p.wg.Add(1)
		go p.sendVideo()
	}
}

func (p *Peer) sendAudio(levelID uint8) {
	defer p.wg.Done()
	enc, err := opus.NewEncoder(opus.EncoderConfig{Bitrate: 32000})
	if err != nil {
		p.fail(err.Error())
		return
	}
	defer enc.Close()
	pcm := make([]int16, FrameSamples)
	out := make([]byte, opus.MaxPacketSize)
	// encode makes frame n: its Opus payload (in out) and its audio level.
	encode := func(n int, fn func(int, []int16)) ([]byte, byte, error) {
		clear(pcm)
		if fn != nil {
			fn(n, pcm)
		}
		k, err := enc.Encode(pcm, out)
		if err != nil {
			return nil, 0, fmt.Errorf("opus encode: %w", err)
		}
		return out[:k], level(pcm), nil
	}
	type frame struct {
		payload []byte
		level   byte
	}
	var loop []frame
	if p.cfg.Loop {
		for n := 0; n < 50; n++ {
			b, l, err := encode(n, p.cfg.Audio)
			if err != nil {
				p.fail(err.Error())
				return
			}
			loop = append(loop, frame{append([]byte(nil), b...), l})
		}
	}
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2}}
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := 0; ; n++ {
		select {
		case <-p.stop:
			return
		case <-timer.C:
		}
		timer.Reset(time.Until(start.Add(time.Duration(n+1) * 20 * time.Millisecond)))
		var payload []byte
		var lvl byte
		if loop != nil {
			payload, lvl = loop[n%len(loop)].payload, loop[n%len(loop)].level
		} else {
			p.mu.Lock()
			fn := p.audioFn
			p.mu.Unlock()
			if payload, lvl, err = encode(n, fn); err != nil {
				p.fail(err.Error())
				return
			}
		}
		pkt.SequenceNumber = uint16(n)
		pkt.Timestamp = uint32(n) * 960
		pkt.Payload = payload
		pkt.Extensions = pkt.Extensions[:0]
		pkt.Extension = false
		if levelID != 0 {
			_ = pkt.SetExtension(levelID, []byte{lvl})
		}
		if p.cfg.Stamps != nil {
			p.cfg.Stamps.put(payload, time.Now().UnixNano())
		}
		_ = p.audioTrack.WriteRTP(pkt)
	}
}

func (p *Peer) sendVideo() {
	defer p.wg.Done()
	params := p.videoTx.Sender().GetParameters().RTPParameters
	midID, ridID := extID(params, sdp.SDESMidURI), extID(params, sdp.SDESRTPStreamIDURI)
	mid := p.videoTx.Mid()
	var encs [3]*vp8.Encoder
	var pics [3][]byte
	var pkz [3]*vp8.Packetizer
	for l, sz := range p.cfg.Layers {
		var err error
		encs[l], err = vp8.NewEncoder(vp8.EncoderConfig{Width: sz[0], Height: sz[1], FrameRate: float64(p.cfg.FrameRate),
			BitrateKbps: 150 << l, KeyFrameInterval: 10 * p.cfg.FrameRate})
		if err != nil {
			p.fail(err.Error())
			return
		}
		defer encs[l].Close()
		pics[l] = make([]byte, sz[0]*sz[1]*3/2)
		pkz[l], _ = vp8.NewPacketizer(1100)
	}
	var seq [3]uint16
	var buf []byte
	var payloads [][]byte
	period := time.Second / time.Duration(p.cfg.FrameRate)
	start := time.Now()
	for n := 0; ; n++ {
		select {
		case <-p.stop:
			return
		case <-time.After(time.Until(start.Add(time.Duration(n) * period))):
		}
		ts := uint32(n) * uint32(vp8.ClockRate/p.cfg.FrameRate)
		for l, sz := range p.cfg.Layers {
			p.mu.Lock()
			force := p.keyWanted[l]
			p.keyWanted[l] = false
			p.mu.Unlock()
			DrawPattern(pics[l], sz[0], sz[1], n)
			frame, _, err := encs[l].Encode(pics[l], int64(ts), force)
			if err != nil || len(frame) == 0 {
				continue
			}
			buf, payloads = pkz[l].Packetize(buf[:0], payloads[:0], frame)
			for i, pl := range payloads {
				seq[l]++
				pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq[l], Timestamp: ts, Marker: i == len(payloads)-1}, Payload: pl}
				_ = pkt.SetExtension(midID, []byte(mid))
				_ = pkt.SetExtension(ridID, []byte(p.layers[l].RID()))
				_ = p.layers[l].WriteRTP(pkt)
			}
		}
	}
}

// DrawPattern draws frame n of a moving picture as packed I420: a luma ramp with a bright block
// that moves with n, and four chroma quadrants.
func DrawPattern(buf []byte, w, h, n int) {
	y := buf[:w*h]
	for r := 0; r < h; r++ {
		for c := 0; c < w; c++ {
			y[r*w+c] = byte(16 + c*200/max(1, w-1))
		}
	}
	bs := max(8, w/20)
	bx, by := (n*bs/2)%max(1, w-bs), (n*bs/4)%max(1, h-bs)
	for r := by; r < by+bs; r++ {
		for c := bx; c < bx+bs; c++ {
			y[r*w+c] = 235
		}
	}
	cw, ch := w/2, h/2
	u, v := buf[w*h:w*h+cw*ch], buf[w*h+cw*ch:]
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

func (p *Peer) readAudio(tr *webrtc.TrackRemote, src uint32) {
	dec, err := opus.NewDecoder()
	if err != nil {
		p.fail(err.Error())
		return
	}
	defer dec.Close()
	pcm := make([]int16, 5760)
	var last uint16
	have := false
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		k, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:k]) != nil {
			continue
		}
		if st := p.cfg.Stamps; st != nil {
			if d, ok := st.since(pkt.Payload, time.Now().UnixNano()); ok {
				p.mu.Lock()
				if len(p.delays) < 1<<20 {
					p.delays = append(p.delays, d)
				}
				p.mu.Unlock()
			}
		}
		if p.cfg.CountOnly {
			p.mu.Lock()
			p.packets[src]++
			p.mu.Unlock()
			continue
		}
		// Conceal what was lost so that the decoded audio keeps its timing.
		if have {
			for gap := int(pkt.SequenceNumber - last - 1); gap > 0 && gap < 10; gap-- {
				if n, err := dec.DecodePLC(pcm); err == nil {
					p.appendPCM(src, pcm[:n], false)
				}
			}
		}
		last, have = pkt.SequenceNumber, true
		n, err := dec.Decode(pkt.Payload, pcm)
		if err != nil {
			continue
		}
		p.appendPCM(src, pcm[:n], true)
	}
}

func (p *Peer) appendPCM(src uint32, pcm []int16, packet bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if packet {
		p.packets[src]++
	}
	buf := append(p.pcm[src], pcm...)
	if len(buf) > maxPCM {
		buf = append(buf[:0], buf[len(buf)-maxPCM:]...)
	}
	p.pcm[src] = buf
}

func (p *Peer) readVideo(tr *webrtc.TrackRemote, src uint32) {
	asm := vp8.NewAssembler(vp8.AssemblerConfig{})
	dec, err := vp8.NewDecoder()
	if err != nil {
		p.fail(err.Error())
		return
	}
	defer dec.Close()
	var img []byte
	var lastPLI time.Time
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		if asm.Push(pkt) != nil {
			continue
		}
		for {
			f, ok := asm.Next()
			if !ok {
				break
			}
			w, h, err := dec.Decode(f.Data, img)
			if errors.Is(err, vp8.ErrShortBuffer) {
				img = make([]byte, w*h*3/2+w+h+2)
				w, h, err = dec.Decode(f.Data, img)
			}
			if err != nil || w == 0 {
				continue
			}
			p.mu.Lock()
			st := p.video[src]
			if st == nil {
				st = &VideoStats{}
				p.video[src] = st
			}
			st.Frames++
			st.Width, st.Height = w, h
			p.mu.Unlock()
		}
		if (asm.NeedKeyFrame() || dec.NeedKeyFrame()) && time.Since(lastPLI) > 300*time.Millisecond {
			lastPLI = time.Now()
			_ = p.requestKeyFrame(tr)
		}
	}
}

func (p *Peer) requestKeyFrame(tr *webrtc.TrackRemote) error {
	p.mu.Lock()
	sub := p.sub
	p.mu.Unlock()
	return sub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(tr.SSRC())}})
}

// Subscribe asks for a video source at about width×height (what the page does for a tile).
func (p *Peer) Subscribe(source uint32, width, height int) error {
	return p.send(signal.Subscribe{Type: signal.TypeSubscribe, SourceID: source, Width: width, Height: height})
}

// Leave sends leave and waits for the service's left message.
func (p *Peer) Leave(ctx context.Context) error {
	if err := p.send(signal.Leave{Type: signal.TypeLeave}); err != nil {
		return err
	}
	for {
		if p.Left() != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testpeer %s: left never came: %w", p.cfg.Name, ctx.Err())
		case <-p.readDone:
			if p.Left() != "" {
				return nil
			}
			return fmt.Errorf("testpeer %s: connection closed without left", p.cfg.Name)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Joined is the service's joined message, nil before.
func (p *Peer) Joined() *Joined {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.joined
}

// Roster is the latest roster.
func (p *Peer) Roster() []Participant {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Participant(nil), p.roster...)
}

// RosterIDs are the ids of the latest roster, in its order.
func (p *Peer) RosterIDs() []string {
	var ids []string
	for _, e := range p.Roster() {
		ids = append(ids, e.ID)
	}
	return ids
}

// Dominant is every dominant-speaker message so far, in order.
func (p *Peer) Dominant() []Dominant {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Dominant(nil), p.dominant...)
}

// LastDominant is the latest dominant-speaker message (zero before any).
func (p *Peer) LastDominant() Dominant {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.dominant) == 0 {
		return Dominant{}
	}
	return p.dominant[len(p.dominant)-1]
}

// Audio returns the decoded audio received from source so far (at most the last 60 s), and
// how many packets carried it.
func (p *Peer) Audio(source uint32) (pcm []int16, packets int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int16(nil), p.pcm[source]...), p.packets[source]
}

// Packets is how many audio packets arrived from source.
func (p *Peer) Packets(source uint32) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.packets[source]
}

// Video is what arrived of a video source.
func (p *Peer) Video(source uint32) VideoStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.video[source]; st != nil {
		return *st
	}
	return VideoStats{}
}

// Delays returns the forwarding delays measured so far (with Config.Stamps) and forgets them.
func (p *Peer) Delays() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.delays
	p.delays = nil
	return d
}

// Errors are the service's error messages and the peer's own failures so far.
func (p *Peer) Errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

// Left is the reason of the service's left message ("" before).
func (p *Peer) Left() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.left
}

// Close stops sending, closes the connections and waits for the peer's goroutines.
func (p *Peer) Close() {
	p.stopOnce.Do(func() {
		close(p.stop)
		_ = p.conn.CloseNow()
		<-p.readDone
		p.mu.Lock()
		pub, sub := p.pub, p.sub
		p.mu.Unlock()
		if pub != nil {
			_ = pub.Close()
		}
		if sub != nil {
			_ = sub.Close()
		}
		p.wg.Wait()
	})
}
