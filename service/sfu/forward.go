package sfu

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// StreamKind is what a published stream carries.
type StreamKind uint8

// Stream kinds.
const (
	StreamAudio  StreamKind = iota + 1 // microphone (Opus)
	StreamVideo                        // camera (VP8, up to three simulcast layers)
	StreamScreen                       // screen share (VP8)
)

func (k StreamKind) String() string {
	switch k {
	case StreamAudio:
		return "audio"
	case StreamVideo:
		return "video"
	case StreamScreen:
		return "screenShare"
	}
	return "unknown"
}

// Simulcast layers, by the rids the browser client and the SDK use.
const (
	LayerLow  = 0 // rid "q": quarter resolution
	LayerMid  = 1 // rid "h": half resolution
	LayerHigh = 2 // rid "f": full resolution
	maxLayers = 3
)

// layerOfRID maps a simulcast rid to its layer; a stream without simulcast is layer 0.
func layerOfRID(rid string) (int, bool) {
	switch rid {
	case "", "q":
		return LayerLow, true
	case "h":
		return LayerMid, true
	case "f":
		return LayerHigh, true
	}
	return 0, false
}

// ParseLayer maps "q", "h", "f" (or "low", "mid", "high") to a layer.
func ParseLayer(s string) (int, error) {
	switch strings.ToLower(s) {
	case "q", "low":
		return LayerLow, nil
	case "h", "mid":
		return LayerMid, nil
	case "f", "high":
		return LayerHigh, nil
	}
	return 0, fmt.Errorf("%w: %q (want q, h or f)", ErrBadLayer, s)
}

// ErrBadLayer is returned for a layer name that is not q, h or f.
var ErrBadLayer = errors.New("sfu: unknown simulcast layer")

// audioLevelURI is the RFC 6464 header extension's URI.
const audioLevelURI = sdp.AudioLevelURI

func nowNanos() int64 { return time.Now().UnixNano() }

// pliFor is a picture loss indication for one publisher stream.
func pliFor(ssrc uint32) []rtcp.Packet {
	return []rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}
}

// keyframeInterval is the least time between two key frame requests sent to one stream.
const keyframeInterval = 500 * time.Millisecond

// sink is one destination of an upstream's packets. forward is called on the upstream's read
// goroutine with the upstream's current packet (u.pkt) and VP8 descriptor (u.vp8).
type sink interface {
	forward(u *upstream, now int64)
}

// upstream is one incoming RTP stream: a participant's audio, one simulcast layer of its camera,
// or its screen share. One goroutine forwards each of its packets to the current sinks: a
// browser's track's own reader (run), or a bot leg's Mux reader (handlePacket).
type upstream struct {
	pub      *published
	layer    int
	ssrc     uint32
	track    *webrtc.TrackRemote // a browser's; nil on a bot leg
	keyframe func(ssrc uint32)   // sends a PLI to the publisher
	levelExt uint8               // audio level extension id, 0 when not negotiated
	m        *streamMetrics

	sinks   atomic.Pointer[[]sink]
	meter   atomic.Uint64 // loudness sum << 24 | packet count, since the last tick
	bytes   atomic.Uint64 // payload bytes since the last tick (video bitrate)
	bitrate atomic.Int64  // bits per second over the last tick interval
	lastPLI atomic.Int64
	width   atomic.Int32 // picture size from the last key frame
	height  atomic.Int32

	// Owned by the read goroutine. On a bot leg pkt is a copy of the leg's packet, whose
	// payload and extensions are the leg's and valid only while handlePacket runs.
	pkt rtp.Packet
	vp8 vp8Descriptor
	buf [1500]byte
}

// run reads the track until it ends.
func (u *upstream) run() {
	for {
		n, _, err := u.track.Read(u.buf[:])
		if err != nil {
			return
		}
		u.handle(u.buf[:n], time.Now().UnixNano())
	}
}

// handle parses one packet and forwards it. Malformed packets are counted and dropped.
func (u *upstream) handle(b []byte, now int64) {
	if err := u.pkt.Unmarshal(b); err != nil {
		u.m.malformed.Inc()
		return
	}
	u.route(now)
}

// handlePacket forwards one packet a bot leg's reader has parsed (p and what it points to
// are the leg's, valid during the call).
func (u *upstream) handlePacket(p *rtp.Packet, now int64) {
	u.pkt = *p
	u.route(now)
}

// route forwards u.pkt to the sinks, after the loudness (audio) or the VP8 descriptor (video).
func (u *upstream) route(now int64) {
	p := &u.pkt
	if len(p.Payload) == 0 { // padding only (bandwidth probes): nothing to forward
		return
	}
	switch u.pub.kind {
	case StreamAudio:
		if u.levelExt != 0 {
			if ext := p.GetExtension(u.levelExt); len(ext) > 0 {
				u.meter.Add(uint64(127-ext[0]&0x7f)<<24 | 1)
			}
		}
	default:
		d, ok := parseVP8(p.Payload)
		if !ok {
			u.m.malformed.Inc()
			return
		}
		u.vp8 = d
		if d.keyFrame {
			if w, h, ok := vp8KeyFrameSize(p.Payload, d); ok {
				u.width.Store(int32(w))
				u.height.Store(int32(h))
			}
		}
		u.bytes.Add(uint64(len(p.Payload)))
	}
	u.m.in.Inc()
	if s := u.sinks.Load(); s != nil {
		for _, k := range *s {
			k.forward(u, now)
		}
	}
}

// requestKeyframe asks the publisher for a key frame on this layer, at most once per
// keyframeInterval.
func (u *upstream) requestKeyframe(now int64) {
	last := u.lastPLI.Load()
	if now-last < int64(keyframeInterval) || !u.lastPLI.CompareAndSwap(last, now) {
		return
	}
	if u.keyframe != nil {
		u.m.plis.Inc()
		u.keyframe(u.ssrc)
	}
}

// takeLoudness returns the mean loudness since the last call, -1 when no packet came.
func (u *upstream) takeLoudness() float64 {
	v := u.meter.Swap(0)
	n := v & 0xffffff
	if n == 0 {
		return -1
	}
	return float64(v>>24) / float64(n)
}

// published is one stream a participant publishes, with its layers.
type published struct {
	owner  *Participant
	kind   StreamKind
	source uint32
	layers [maxLayers]atomic.Pointer[upstream] // written under the conference's lock
	muted  bool
	// sizeReported is the picture size of the highest layer last put in a roster event (under
	// the conference's lock), so that a new size is announced once.
	sizeReported [2]int32
}

// topSize is the picture size of the highest layer present (0, 0 until a key frame was seen).
func (p *published) topSize() [2]int32 {
	for l := maxLayers - 1; l >= 0; l-- {
		if u := p.layers[l].Load(); u != nil {
			return [2]int32{u.width.Load(), u.height.Load()}
		}
	}
	return [2]int32{}
}

// layer returns the present layer nearest to want, preferring lower ones.
func (p *published) layer(want int) *upstream {
	if want >= maxLayers {
		want = maxLayers - 1
	}
	for l := want; l >= 0; l-- {
		if u := p.layers[l].Load(); u != nil {
			return u
		}
	}
	for l := want + 1; l < maxLayers; l++ {
		if u := p.layers[l].Load(); u != nil {
			return u
		}
	}
	return nil
}

// rtpWriter sends one RTP packet: a pion sender's stream (webrtc.TrackLocalWriter) or a bot
// leg (legWriter).
type rtpWriter interface {
	WriteRTP(h *rtp.Header, payload []byte) (int, error)
}

// binding is a down track's attachment to a peer connection's sender or to a bot leg.
type binding struct {
	ssrc    uint32
	pt      uint8
	levelID uint8
	w       rtpWriter
}

// downTrack is a track the SFU sends: on a browser's peer connection, a webrtc.TrackLocal whose
// packets the sinks write already rewritten; on a bot leg, bound to the leg's line directly.
type downTrack struct {
	id, stream string
	codec      webrtc.RTPCodecCapability
	kind       webrtc.RTPCodecType
	b          atomic.Pointer[binding]
}

func newDownTrack(id, stream string, codec webrtc.RTPCodecCapability) *downTrack {
	kind := webrtc.RTPCodecTypeAudio
	if strings.HasPrefix(strings.ToLower(codec.MimeType), "video/") {
		kind = webrtc.RTPCodecTypeVideo
	}
	return &downTrack{id: id, stream: stream, codec: codec, kind: kind}
}

// Bind implements webrtc.TrackLocal.
func (t *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, t.codec.MimeType) {
			b := &binding{ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType), w: ctx.WriteStream()}
			for _, e := range ctx.HeaderExtensions() {
				if e.URI == sdp.AudioLevelURI {
					b.levelID = uint8(e.ID)
				}
			}
			t.b.Store(b)
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, fmt.Errorf("sfu: bind %s track %s: %w", t.codec.MimeType, t.id, webrtc.ErrUnsupportedCodec)
}

// Unbind implements webrtc.TrackLocal.
func (t *downTrack) Unbind(webrtc.TrackLocalContext) error {
	t.b.Store(nil)
	return nil
}

// ID implements webrtc.TrackLocal.
func (t *downTrack) ID() string { return t.id }

// RID implements webrtc.TrackLocal.
func (t *downTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (t *downTrack) StreamID() string { return t.stream }

// Kind implements webrtc.TrackLocal.
func (t *downTrack) Kind() webrtc.RTPCodecType { return t.kind }

// write sends one rewritten packet. level, when not 0xff, is put in the audio level extension
// if the receiver negotiated it.
func (t *downTrack) write(h *rtp.Header, payload []byte, level byte, ext *[1]byte) error {
	b := t.b.Load()
	if b == nil {
		return nil
	}
	h.SSRC, h.PayloadType = b.ssrc, b.pt
	h.Extension, h.Extensions = false, h.Extensions[:0]
	if level != 0xff && b.levelID != 0 {
		ext[0] = level
		_ = h.SetExtension(b.levelID, ext[:])
	}
	_, err := b.w.WriteRTP(h, payload)
	return err
}

// outHeader fills h from the input header with the rewritten sequence number and timestamp.
func outHeader(h *rtp.Header, in *rtp.Header, seq uint16, ts uint32) {
	h.Version = 2
	h.Padding, h.PaddingSize = false, 0
	h.Marker = in.Marker
	h.SequenceNumber = seq
	h.Timestamp = ts
}

// audioLevel returns the input packet's audio level byte, or 0xff.
func audioLevel(u *upstream) byte {
	if u.levelExt == 0 {
		return 0xff
	}
	if ext := u.pkt.GetExtension(u.levelExt); len(ext) > 0 {
		return ext[0]
	}
	return 0xff
}

// audioSink forwards one participant's audio to one receiver. Only the source's read goroutine
// calls forward, so it takes no lock.
type audioSink struct {
	out    *downTrack
	sender *webrtc.RTPSender
	rw     rewriter
	hdr    rtp.Header
	ext    [1]byte
	m      *streamMetrics
}

func (s *audioSink) forward(u *upstream, now int64) {
	in := &u.pkt
	seq, ts, drop := s.rw.rewrite(in.SSRC, in.SequenceNumber, in.Timestamp, now)
	if drop {
		return
	}
	outHeader(&s.hdr, &in.Header, seq, ts)
	s.hdr.CSRC = s.hdr.CSRC[:0]
	if s.out.write(&s.hdr, in.Payload, audioLevel(u), &s.ext) == nil {
		s.m.out.Inc()
		s.m.outBytes.Add(float64(len(in.Payload)))
	}
}

// slotSink forwards whichever source the conference assigns to one of a bot's audio slots, with
// the source id in CSRC[0]. The source changes while packets flow, so forward takes a lock
// (contended only at a switch).
type slotSink struct {
	mu   sync.Mutex
	out  *downTrack
	rw   rewriter
	hdr  rtp.Header
	csrc [1]uint32
	ext  [1]byte
	m    *streamMetrics
}

func (s *slotSink) forward(u *upstream, now int64) {
	in := &u.pkt
	s.mu.Lock()
	seq, ts, drop := s.rw.rewrite(in.SSRC, in.SequenceNumber, in.Timestamp, now)
	if !drop {
		outHeader(&s.hdr, &in.Header, seq, ts)
		s.csrc[0] = u.pub.source
		s.hdr.CSRC = s.csrc[:]
		if s.out.write(&s.hdr, in.Payload, audioLevel(u), &s.ext) == nil {
			s.m.out.Inc()
			s.m.outBytes.Add(float64(len(in.Payload)))
		}
	}
	s.mu.Unlock()
}

// videoSink forwards one published video stream (camera or screen share) to one receiver at one
// simulcast layer at a time. It is attached to every layer of the stream; a layer switch takes
// effect at the next key frame of the target layer, and the rewriter makes it seamless.
type videoSink struct {
	mu      sync.Mutex
	out     *downTrack
	pub     *published
	csrc    bool // put the source id in CSRC[0] (bot slots)
	want    int  // layer the receiver asked for
	capBps  int64
	lossy   bool
	target  int // layer to switch to (after the receiver's limits)
	current int // layer being forwarded, -1 before the first key frame
	rw      rewriter
	hdr     rtp.Header
	csrcBuf [1]uint32
	ext     [1]byte
	payload [1500]byte
	m       *streamMetrics
}

func newVideoSink(out *downTrack, pub *published, layer int, csrc bool, m *streamMetrics) *videoSink {
	s := &videoSink{out: out, pub: pub, csrc: csrc, want: layer, target: layer, current: -1, m: m}
	s.rw.clock = 90000
	return s
}

func (s *videoSink) forward(u *upstream, now int64) {
	in := &u.pkt
	s.mu.Lock()
	if u.pub != s.pub {
		s.mu.Unlock()
		return
	}
	if u.layer == s.target && s.current != s.target {
		if u.vp8.keyFrame {
			s.current = s.target
		} else {
			u.requestKeyframe(now)
		}
	}
	if u.layer != s.current || len(in.Payload) > len(s.payload) {
		s.mu.Unlock()
		return
	}
	seq, ts, drop := s.rw.rewrite(in.SSRC, in.SequenceNumber, in.Timestamp, now)
	if !drop {
		n := copy(s.payload[:], in.Payload)
		s.rw.rewriteVP8(s.payload[:n], u.vp8)
		outHeader(&s.hdr, &in.Header, seq, ts)
		s.hdr.CSRC = s.hdr.CSRC[:0]
		if s.csrc {
			s.csrcBuf[0] = u.pub.source
			s.hdr.CSRC = s.csrcBuf[:]
		}
		if s.out.write(&s.hdr, s.payload[:n], 0xff, &s.ext) == nil {
			s.m.out.Inc()
			s.m.outBytes.Add(float64(n))
		}
	}
	s.mu.Unlock()
}

// retarget picks the layer to forward from the receiver's wish and limits, and asks for a key
// frame on it while the switch is pending. Called from the control path, never per packet.
func (s *videoSink) retarget(now int64) {
	s.mu.Lock()
	pub := s.pub
	if pub == nil || s.want < 0 {
		s.target = -1
		s.mu.Unlock()
		return
	}
	t := s.want
	if s.capBps > 0 {
		for t > LayerLow {
			u := pub.layers[t].Load()
			if u == nil || u.bitrate.Load() <= s.capBps {
				break
			}
			t--
		}
	}
	if s.lossy && t > LayerLow {
		t--
	}
	var up *upstream
	if up = pub.layer(t); up != nil {
		t = up.layer
	}
	s.target = t
	waiting := s.current != s.target
	s.mu.Unlock()
	if waiting && up != nil {
		up.requestKeyframe(now)
	}
}

// setSource points the sink at another published stream (nil: none) at a wanted layer; the
// first key frame of the new source starts it.
func (s *videoSink) setSource(pub *published, layer int) {
	s.mu.Lock()
	s.pub, s.want, s.target, s.current = pub, layer, layer, -1
	s.mu.Unlock()
	s.retarget(nowNanos())
}

// setWant changes the wanted layer (-1 pauses the stream).
func (s *videoSink) setWant(layer int) {
	s.mu.Lock()
	s.want = layer
	if layer < 0 {
		s.current = -1
	}
	s.mu.Unlock()
	s.retarget(nowNanos())
}

// source is the published stream the sink forwards.
func (s *videoSink) source() *published {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pub
}

// layers returns the target and current layer (for tests and stats).
func (s *videoSink) layers() (target, current int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.target, s.current
}

// feedback is what a receiver's RTCP tells a sink.
type feedback interface {
	keyframeRequested(now int64)
	estimate(bps int64, now int64)
	loss(fraction uint8, now int64)
}

func (s *audioSink) keyframeRequested(int64)     {}
func (s *audioSink) estimate(int64, int64)       {}
func (s *audioSink) loss(uint8, int64)           {}
func (s *slotSink) keyframeRequested(int64)      {}
func (s *slotSink) estimate(int64, int64)        {}
func (s *slotSink) loss(uint8, int64)            {}
func (s *videoSink) keyframeRequested(now int64) { s.requestCurrent(now) }

func (s *videoSink) requestCurrent(now int64) {
	s.mu.Lock()
	l, pub := s.current, s.pub
	if l < 0 {
		l = s.target
	}
	s.mu.Unlock()
	if pub == nil || l < 0 {
		return
	}
	if u := pub.layers[l].Load(); u != nil {
		u.requestKeyframe(now)
	}
}

func (s *videoSink) estimate(bps int64, now int64) {
	s.mu.Lock()
	s.capBps = bps
	s.mu.Unlock()
	s.retarget(now)
}

// loss downgrades one layer while the receiver reports more than 10 % loss, and lets it back up
// under 2 %.
func (s *videoSink) loss(fraction uint8, now int64) {
	s.mu.Lock()
	was := s.lossy
	switch {
	case fraction > 25:
		s.lossy = true
	case fraction < 5:
		s.lossy = false
	}
	changed := was != s.lossy
	s.mu.Unlock()
	if changed {
		s.retarget(now)
	}
}

// readFeedback reads a sender's RTCP until it ends (the interceptors answer NACKs on the way)
// and passes what matters to fb. Malformed RTCP is counted and skipped.
func readFeedback(sender *webrtc.RTPSender, fb feedback, m *metrics) {
	buf := make([]byte, 1500)
	for {
		n, _, err := sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			m.malformedRTCP.Inc()
			continue
		}
		handleFeedback(pkts, fb, m, time.Now().UnixNano())
	}
}

// handleFeedback applies parsed RTCP packets to fb.
func handleFeedback(pkts []rtcp.Packet, fb feedback, m *metrics, now int64) {
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			m.keyframeRequests.Inc()
			fb.keyframeRequested(now)
		case *rtcp.TransportLayerNack:
			m.nacks.Add(float64(len(p.Nacks)))
		case *rtcp.ReceiverEstimatedMaximumBitrate:
			if p.Bitrate > 0 {
				fb.estimate(int64(p.Bitrate), now)
			}
		case *rtcp.ReceiverReport:
			for _, r := range p.Reports {
				m.loss.Observe(float64(r.FractionLost) / 256)
				fb.loss(r.FractionLost, now)
			}
		}
	}
}
