package sdk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/rtc/leg"
	"github.com/switchboard-rtc/switchboard/internal/vp8"
	"github.com/switchboard-rtc/switchboard/internal/yuv"
	"github.com/switchboard-rtc/switchboard/media"
)

// VideoReceivedEvent is one decoded video frame.
type VideoReceivedEvent struct {
	// Buffer is the frame in the socket's ReceiveColorFormat (NV12), with the sender's source
	// id, its media timestamp, its Format and OriginalFormat. It is yours: Release it when done.
	Buffer *media.VideoBuffer
	// Dropped counts the frames dropped so far because earlier callbacks returned too late.
	Dropped uint64
}

// VideoSendStatusEvent says whether the socket may send, and in which format it prefers to get
// frames.
type VideoSendStatusEvent struct {
	Status MediaSendStatus
	// PreferredFormat is the SupportedSendFormats entry the socket encodes at now. Frames in
	// another format or size are converted and scaled to it, at a cost in CPU. It is chosen
	// from:
	//   - the bandwidth estimate (REMB from the service): the largest format whose need, about
	//     0.04 bit per pixel and frame, fits it (the smallest when none does);
	//   - the size of the frames the bot has been sending: never a format wider or taller than
	//     them, so frames are not scaled up (a 640×360 source stays 640×360 at any bandwidth).
	//     A larger frame raises that size at once; 15 smaller frames in a row lower it. Frames
	//     of the size the socket asked for (the preferred format, unless it was chosen for the
	//     frames' size; or one preferred just before, still in flight) leave it as it is, so a
	//     bot that renders at PreferredFormat follows the bandwidth up and down;
	//   - the orientation of the latest frame, when SupportedSendFormats has both portrait and
	//     landscape formats.
	// Key frame requests (PLI, FIR) do not change it: they make the next frame a key frame.
	PreferredFormat media.VideoFormat
	// BitrateKbps is the bitrate the encoder now aims at.
	BitrateKbps int
}

// VideoSocketSettings configure a VideoSocket. The zero value sends and receives; a sending
// socket needs SupportedSendFormats.
//
// OnVideoReceived and OnSendStatusChanged run on the socket's one event goroutine, one at a
// time, in order, as for AudioSocketSettings; a slow callback makes the socket drop the oldest
// waiting frames, never stall the network. OnSendDone runs on the encode goroutine. None runs
// after the socket is closed (for a call's sockets: before the call's OnCleanup). Do not call
// Close from a callback: it waits for the callback to return.
type VideoSocketSettings struct {
	Direction StreamDirection
	// ReceiveColorFormat is the pixel format of received frames; only NV12 (the zero value
	// means NV12).
	ReceiveColorFormat media.PixelFormat
	// SupportedSendFormats are the formats the socket may encode at (NV12, RGB24, YUY2 or I420
	// at any size, with a frame rate), from which it picks the preferred one (see
	// VideoSendStatusEvent.PreferredFormat). Send is not limited to them: it takes frames of
	// any size, and scales each to the preferred format.
	SupportedSendFormats []media.VideoFormat
	// ScreenShare binds the socket to the call's screen-share m-line (receive only) instead of
	// a video slot.
	ScreenShare bool

	// OnVideoReceived is called for every decoded frame, on the socket's event goroutine. It
	// should return within a frame's time: while it runs, later frames wait in a queue of
	// QueueFrames, and the oldest is dropped when it is full. The buffer is the bot's to
	// Release (now or later, from any goroutine); it may Send it.
	OnVideoReceived func(VideoReceivedEvent)
	// OnSendStatusChanged is called when sending starts or stops and when the preferred format
	// or bitrate changes, on the socket's event goroutine, before any frame that waits; it may
	// block briefly (frames wait meanwhile).
	OnSendStatusChanged func(VideoSendStatusEvent)
	// OnSendDone is called with each buffer given to Send once the platform is done with it
	// (converted for the encoder, or discarded). It runs on the socket's encode goroutine (or,
	// for buffers still queued when the socket closes, on the goroutine that closes it: the
	// call's event goroutine at cleanup), so it must not block: take the buffer back and
	// return. Nil means the platform Releases it.
	OnSendDone func(*media.VideoBuffer)

	// QueueFrames is the depth of the receive event queue; 0 means 4.
	QueueFrames int
	// SendQueueFrames is how many frames Send may queue ahead of the encoder; 0 means 3.
	SendQueueFrames int
	// MaxBitrateKbps caps the sent video's bitrate; 0 means 2000.
	MaxBitrateKbps int
}

// pliInterval is the least time between two key frame requests of one stream.
const pliInterval = 300 * time.Millisecond

// VideoSocket sends and receives one video stream of a call: a video slot (several sockets per
// call take the slots in order) or, with ScreenShare, the conference's screen share.
type VideoSocket struct {
	settings VideoSocketSettings
	id       int
	pool     *media.VideoPool
	events   *eventQueue[videoEvent]

	socketLife[*media.VideoBuffer]
	in *packetRing // received packets for the receive goroutine; nil when not receiving

	estimate  atomic.Int64 // bits a second, from REMB
	forceKey  atomic.Bool
	keyReqs   atomic.Uint64
	preferred atomic.Int32 // index into formats: pref's choice, read without the lock
	prefMu    sync.Mutex   // guards pref, and orders the preferred format's announcements
	pref      *sendPreference

	formats []media.VideoFormat // SupportedSendFormats, largest first
}

type videoEvent struct {
	buf    *media.VideoBuffer
	status *VideoSendStatusEvent
}

// NewVideoSocket makes a video socket. It starts nothing until the call's media is answered.
func NewVideoSocket(s VideoSocketSettings) (*VideoSocket, error) {
	if s.ReceiveColorFormat == media.PixelFormatUnknown {
		s.ReceiveColorFormat = media.NV12
	}
	if s.ReceiveColorFormat != media.NV12 {
		return nil, fmt.Errorf("sdk: video receive format %v not supported (only NV12)", s.ReceiveColorFormat)
	}
	if s.Direction > Recvonly {
		return nil, fmt.Errorf("sdk: video socket direction %v not supported", s.Direction)
	}
	if s.ScreenShare && s.Direction != Recvonly {
		return nil, errors.New("sdk: a screen-share video socket only receives (Direction Recvonly)")
	}
	if s.Direction.sends() && len(s.SupportedSendFormats) == 0 {
		return nil, errors.New("sdk: a sending video socket needs SupportedSendFormats")
	}
	formats := slices.Clone(s.SupportedSendFormats)
	for _, f := range formats {
		switch f.PixelFormat {
		case media.NV12, media.RGB24, media.YUY2, media.I420:
		default:
			return nil, fmt.Errorf("sdk: video send format %v not supported (NV12, RGB24, YUY2, I420)", f)
		}
		if f.Width < 2 || f.Height < 2 || f.Width > vp8.MaxDimension || f.Height > vp8.MaxDimension || !(f.FrameRate > 0 && f.FrameRate <= 120) {
			return nil, fmt.Errorf("sdk: video send format %v: bad size or frame rate", f)
		}
	}
	slices.SortStableFunc(formats, func(a, b media.VideoFormat) int { return b.Width*b.Height - a.Width*a.Height })
	if s.QueueFrames <= 0 {
		s.QueueFrames = 4
	}
	if s.SendQueueFrames <= 0 {
		s.SendQueueFrames = 3
	}
	if s.MaxBitrateKbps <= 0 {
		s.MaxBitrateKbps = 2000
	}
	v := &VideoSocket{
		settings: s,
		pool:     media.NewVideoPool("video socket"),
		events:   newEventQueue[videoEvent](s.QueueFrames),
		formats:  formats,

		socketLife: newSocketLife(s.SendQueueFrames, s.OnSendDone),
	}
	v.estimate.Store(int64(s.MaxBitrateKbps) * 1000)
	v.pref = newSendPreference(formats, v.estimate.Load(), s.SendQueueFrames)
	v.preferred.Store(int32(v.pref.current()))
	return v, nil
}

// ID is the socket's index among the call's video sockets, as the protocol names it (the video
// slot it is bound to). A screen-share socket's ID is 0.
func (s *VideoSocket) ID() int { return s.id }

func (s *VideoSocket) lineKind() rtc.Kind {
	if s.settings.ScreenShare {
		return rtc.KindScreenShare
	}
	return rtc.KindVideo
}

func (s *VideoSocket) want(line rtc.Line) lineDir {
	return s.settings.Direction.onLine(line.Index == 0 && line.Kind == rtc.KindVideo)
}

func (s *VideoSocket) start(call *callMedia) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.attach(call, call.log.With("socket", "video", "id", s.id, "screen_share", s.settings.ScreenShare)); err != nil {
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.events.run(s.stop, s.deliver, s.discard)
	}()
	if call.receives && s.settings.Direction.receives() {
		s.in = newPacketRing()
		s.wg.Add(1)
		go s.read(s.owner)
	}
	if s.sender != nil {
		s.wg.Add(1)
		go s.encodeLoop()
	}
	return nil
}

func (s *VideoSocket) sendOn(_ rtc.Line, w rtpWriter, ssrc uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setSender(w, ssrc)
}

// onRTP copies a received packet into the socket's ring and wakes its receive goroutine (the
// platform's reader goroutine: no decoding here). A full ring drops the packet; the receiver
// then asks for a key frame.
func (s *VideoSocket) onRTP(_ rtc.Line, pkt *rtp.Packet) {
	if s.in != nil { // set by start, before the reader hands packets over
		s.in.push(pkt)
	}
}

// read is the goroutine that assembles, decodes and converts the received stream, from the
// packets the reader put in the ring.
func (s *VideoSocket) read(owner *MediaConfiguration) {
	defer s.wg.Done()
	r, err := newVideoReceiver(s, owner, 0)
	if err != nil {
		s.log.Error("video decoder", "err", err)
		return
	}
	defer r.dec.Close()
	for {
		select {
		case <-s.stop:
			if n := s.in.droppedCount(); n > 0 {
				s.log.Debug("received video packets dropped: the receive goroutine was behind", "packets", n)
			}
			return
		case <-s.in.wake:
		}
		s.receive(r)
	}
}

// receive hands every packet waiting in the ring to r, and sends the key frame requests it
// asks for.
func (s *VideoSocket) receive(r *videoReceiver) {
	for {
		b, ok := s.in.peek()
		if !ok {
			return
		}
		key := r.packet(b)
		s.in.pop()
		if r.nackOut != nil {
			_ = s.call.out.WriteRTCP(r.nackOut)
		}
		if key {
			_ = s.call.out.WriteRTCP(r.keyFrameRequest())
		}
	}
}

// videoRing sizes the ring of received packets a receiving video socket keeps: 128 packets of
// up to 1500 bytes (a key frame of about 150 kB may arrive at once).
const (
	videoRingPackets = 128
	videoPacketMax   = 1500
)

// packetRing is a bounded ring of received RTP packets, preallocated: the reader copies a
// packet in (push) and its socket's goroutine reads the oldest in place (peek) and frees its slot
// (pop). Only one goroutine pushes and one reads.
type packetRing struct {
	mu      sync.Mutex
	data    []byte
	lens    [videoRingPackets]uint16
	head, n int
	dropped uint64
	wake    chan struct{}
}

func newPacketRing() *packetRing {
	return &packetRing{data: make([]byte, videoRingPackets*videoPacketMax), wake: make(chan struct{}, 1)}
}

// push copies pkt into the ring and wakes the reading goroutine. A full ring, or a packet
// larger than a slot, drops it (counted).
func (q *packetRing) push(pkt *rtp.Packet) {
	q.mu.Lock()
	if q.n == videoRingPackets {
		q.dropped++
		q.mu.Unlock()
		return
	}
	i := (q.head + q.n) % videoRingPackets
	n, err := pkt.MarshalTo(q.data[i*videoPacketMax : (i+1)*videoPacketMax])
	if err != nil {
		q.dropped++
		q.mu.Unlock()
		return
	}
	q.lens[i] = uint16(n)
	q.n++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// peek returns the oldest packet, valid until pop.
func (q *packetRing) peek() ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return nil, false
	}
	i := q.head
	return q.data[i*videoPacketMax : i*videoPacketMax+int(q.lens[i])], true
}

// pop frees the oldest packet's slot.
func (q *packetRing) pop() {
	q.mu.Lock()
	q.head = (q.head + 1) % videoRingPackets
	q.n--
	q.mu.Unlock()
}

func (q *packetRing) droppedCount() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// videoReceiver is the state of one received video stream, owned by its read goroutine.
type videoReceiver struct {
	s       *VideoSocket
	owner   *MediaConfiguration // for the senders' original sizes
	asm     *vp8.Assembler
	dec     *vp8.Decoder
	conv    yuv.Converter
	pic     []byte
	pkt     rtp.Packet
	lastPLI time.Time
	firstTS uint32
	haveTS  bool
	lastTS  uint32  // RTP timestamp of the previous frame
	gap     float64 // EWMA of the RTP timestamp step between frames, 0 before two frames
	csrc    uint32
	ssrc    uint32   // the latest packet's: key frame requests name it
	pli     [12]byte // the key frame request's buffer
	haveSeq bool
	maxSeq  uint16                           // the highest sequence number seen
	nack    [12 + 4*((maxNACKed+16)/17)]byte // the generic NACK's buffer
	nackOut []byte                           // a NACK to send, once packet returns; nil: none
}

// maxNACKed is the most lost packets one NACK asks for (the newest of a longer gap).
const maxNACKed = 64

func newVideoReceiver(s *VideoSocket, owner *MediaConfiguration, ssrc uint32) (*videoReceiver, error) {
	dec, err := vp8.NewDecoder()
	if err != nil {
		return nil, err
	}
	return &videoReceiver{
		s:     s,
		owner: owner,
		asm:   vp8.NewAssembler(vp8.AssemblerConfig{}),
		dec:   dec,
		ssrc:  ssrc,
	}, nil
}

// sequence follows the stream's sequence numbers: a packet that skips some makes a NACK for
// the skipped ones (RFC 4585 6.2.1), asked once each (a retransmission that is lost too leaves a
// gap that the assembler gives up on; a key frame request then repairs the stream).
func (r *videoReceiver) sequence(seq uint16) {
	if !r.haveSeq {
		r.haveSeq, r.maxSeq = true, seq
		return
	}
	d := seq - r.maxSeq
	if d == 0 || d >= 0x8000 {
		return // a duplicate, or an older packet (reordered or retransmitted)
	}
	r.maxSeq = seq
	if d == 1 {
		return
	}
	first, lost := seq-d+1, int(d-1)
	if lost > 4*maxNACKed {
		return // a jump (a new sender's numbering), not a loss worth repairing
	}
	if lost > maxNACKed {
		first, lost = seq-maxNACKed, maxNACKed
	}
	b := r.nack[:12]
	for i := 0; i < lost; i += 17 {
		pid := first + uint16(i)
		var blp uint16
		for j := 1; j <= 16 && i+j < lost; j++ {
			blp |= 1 << (j - 1)
		}
		b = append(b, byte(pid>>8), byte(pid), byte(blp>>8), byte(blp))
	}
	b[0], b[1] = 0x80|rtcp.FormatTLN, byte(rtcp.TypeTransportSpecificFeedback)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)/4-1))
	binary.BigEndian.PutUint32(b[4:], r.s.ssrc)
	binary.BigEndian.PutUint32(b[8:], r.ssrc)
	r.nackOut = b
}

// keyFrameRequest is a PLI (RFC 4585 6.3.1) for the stream received last, marshalled into r's
// buffer; its sender SSRC is the socket's own stream (0 when it sends none).
func (r *videoReceiver) keyFrameRequest() []byte {
	return leg.PLI(&r.pli, r.s.ssrc, r.ssrc)
}

// packet takes one RTP packet, hands every frame it completes to the event goroutine, and
// reports whether to send a key frame request now; nackOut is then a NACK to send, or nil.
func (r *videoReceiver) packet(b []byte) (requestKey bool) {
	r.nackOut = nil
	if r.pkt.Unmarshal(b) != nil {
		return false
	}
	r.ssrc = r.pkt.SSRC
	r.sequence(r.pkt.SequenceNumber)
	if len(r.pkt.CSRC) > 0 {
		r.csrc = r.pkt.CSRC[0]
	}
	if err := r.asm.Push(&r.pkt); err != nil {
		return false
	}
	for {
		f, ok := r.asm.Next()
		if !ok {
			break
		}
		r.frame(f)
	}
	if (r.asm.NeedKeyFrame() || r.dec.NeedKeyFrame()) && time.Since(r.lastPLI) >= pliInterval {
		r.lastPLI = time.Now()
		return true
	}
	return false
}

// frame decodes one assembled frame into a pooled NV12 buffer and queues it.
func (r *videoReceiver) frame(f vp8.Frame) {
	w, h, err := r.dec.Decode(f.Data, r.pic)
	if errors.Is(err, vp8.ErrShortBuffer) {
		r.pic = make([]byte, media.I420.FrameSize(w, h))
		w, h, err = r.dec.Decode(f.Data, r.pic)
	}
	if err != nil || w == 0 {
		return
	}
	if !r.haveTS {
		r.firstTS, r.lastTS, r.haveTS = f.Timestamp, f.Timestamp, true
	}
	format := media.VideoFormat{PixelFormat: media.NV12, Width: w, Height: h, FrameRate: r.frameRate(f.Timestamp)}
	vb := r.s.pool.Get(format)
	if err := r.conv.Convert(vb.Data(), media.NV12, r.pic[:media.I420.FrameSize(w, h)], media.I420, w, h); err != nil {
		vb.Release()
		return
	}
	vb.SourceID = r.csrc
	vb.OriginalFormat = format
	if ow, oh, ok := r.owner.originalSize(r.csrc); ok {
		vb.OriginalFormat.Width, vb.OriginalFormat.Height = ow, oh
	}
	vb.Timestamp = time.Duration(f.Timestamp-r.firstTS) * time.Second / vp8.ClockRate
	if old, dropped := r.s.events.pushMedia(videoEvent{buf: vb}); dropped {
		r.s.discard(old)
	}
}

// Frame rate measurement of a received stream.
const (
	// defaultFrameRate is a received stream's frame rate until two frames have been seen.
	defaultFrameRate = 30
	// frameRateWeight is the weight of the newest step in the EWMA of timestamp steps.
	frameRateWeight = 1.0 / 8
	// maxFrameStep is the largest step between frames, in RTP ticks, that counts (1 s): a longer
	// one is a pause or a switch of sender, not the stream's pace.
	maxFrameStep = vp8.ClockRate
)

// frameRate takes the RTP timestamp of a new frame and returns the stream's frame rate: the
// clock rate over an exponentially weighted moving average of the timestamp steps between
// frames (a lost frame counts as a longer step until later frames outweigh it).
func (r *videoReceiver) frameRate(ts uint32) float64 {
	step := ts - r.lastTS // modulo 2^32, as RTP timestamps wrap
	if step >= 1<<31 {
		return r.rate() // an older frame: not a step forward
	}
	r.lastTS = ts
	if step > 0 && step <= maxFrameStep {
		if r.gap == 0 {
			r.gap = float64(step)
		} else {
			r.gap += frameRateWeight * (float64(step) - r.gap)
		}
	}
	return r.rate()
}

func (r *videoReceiver) rate() float64 {
	if r.gap == 0 {
		return defaultFrameRate
	}
	return vp8.ClockRate / r.gap
}

// onKeyFrameRequest takes the far side's PLI or FIR about the sent stream (the platform's
// reader goroutine): the next frame is a key frame.
func (s *VideoSocket) onKeyFrameRequest() {
	s.forceKey.Store(true)
	s.keyReqs.Add(1)
}

// onEstimate takes the far side's bandwidth estimate (REMB, bits a second) for the sent stream
// (the platform's reader goroutine): it may change the preferred format and bitrate.
func (s *VideoSocket) onEstimate(bps int64) {
	s.estimate.Store(bps)
	s.prefMu.Lock()
	s.preferenceChanged(s.pref.estimate(bps))
	s.prefMu.Unlock()
}

func (s *VideoSocket) bitrateKbps() int {
	return int(min(max(s.estimate.Load()/1000, 50), int64(s.settings.MaxBitrateKbps)))
}

// inputSize tells the preference the size of a frame the bot sent (encode goroutine).
func (s *VideoSocket) inputSize(w, h int) {
	s.prefMu.Lock()
	s.preferenceChanged(s.pref.input(w, h))
	s.prefMu.Unlock()
}

// preferenceChanged publishes the preference's choice and, when it changed while Active,
// announces it. s.prefMu is held, so announcements go out in the order of the choices.
func (s *VideoSocket) preferenceChanged(changed bool) {
	if !changed {
		return
	}
	s.preferred.Store(int32(s.pref.current()))
	if s.SendStatus() == Active {
		s.pushStatus(Active)
	}
}

func (s *VideoSocket) pushStatus(st MediaSendStatus) {
	ev := &VideoSendStatusEvent{Status: st, BitrateKbps: s.bitrateKbps()}
	if len(s.formats) > 0 {
		ev.PreferredFormat = s.formats[s.preferred.Load()]
	}
	s.events.pushControl(videoEvent{status: ev})
}

// PreferredFormat is the format the socket encodes at now, one of SupportedSendFormats: the
// largest that the bandwidth estimate allows and that is no larger than the frames the bot has
// been sending (see VideoSendStatusEvent.PreferredFormat).
func (s *VideoSocket) PreferredFormat() media.VideoFormat {
	if len(s.formats) == 0 {
		return media.VideoFormat{}
	}
	return s.formats[s.preferred.Load()]
}

// KeyFrameRequests counts the key frame requests (PLI, FIR) the far side sent.
func (s *VideoSocket) KeyFrameRequests() uint64 { return s.keyReqs.Load() }

func (s *VideoSocket) connected(up bool) {
	if status, changed := s.connect(up, s.settings.Direction.sends()); changed {
		s.pushStatus(status)
	}
}

// SendStatus is the socket's current send status.
func (s *VideoSocket) SendStatus() MediaSendStatus { return MediaSendStatus(s.status.Load()) }

// MaxSendDimension is the largest width and height of a frame Send takes.
const MaxSendDimension = 4096

// checkSendFormat reports whether Send takes frames of format f.
func checkSendFormat(f media.VideoFormat) error {
	switch f.PixelFormat {
	case media.NV12, media.RGB24, media.YUY2, media.I420:
	default:
		return fmt.Errorf("%w: pixel format %v (send NV12, RGB24, YUY2 or I420)", ErrSendFormat, f.PixelFormat)
	}
	if f.Width < 2 || f.Height < 2 || f.Width > MaxSendDimension || f.Height > MaxSendDimension {
		return fmt.Errorf("%w: size %dx%d (from 2x2 to %dx%d)", ErrSendFormat, f.Width, f.Height, MaxSendDimension, MaxSendDimension)
	}
	return nil
}

// Send queues one frame to send: NV12, RGB24, YUY2 or I420, of any size from 2×2 to
// MaxSendDimension×MaxSendDimension. The socket's encode goroutine converts and scales it to the
// preferred format (PreferredFormat), which costs CPU unless the frame is already that size; it
// keeps one converter, so sending allocates nothing in the steady state whatever the sizes.
// Other pixel formats and sizes fail with an error wrapping ErrSendFormat.
//
// The buffer is the platform's until OnSendDone (or, without it, until the platform Releases
// it). Send fails with ErrNotSending while Inactive, with ErrSocketClosed once the socket is
// closed and with ErrSendQueueFull when the encoder is behind; the buffer then stays the bot's.
// Send may be called from any goroutine.
func (s *VideoSocket) Send(buf *media.VideoBuffer) error {
	if buf == nil {
		return errors.New("sdk: send nil video buffer")
	}
	return s.enqueue(buf, checkSendFormat(buf.Format()))
}

// encodeLoop is the goroutine that converts, encodes and sends the bot's frames.
func (s *VideoSocket) encodeLoop() {
	defer s.wg.Done()
	snd, err := newVideoSender(s)
	if err != nil {
		s.log.Error("video packetizer", "err", err)
		return
	}
	defer snd.close()
	for {
		select {
		case <-s.stop:
			return
		case buf := <-s.sendQ:
			snd.frame(buf)
		}
	}
}

// videoSender is the state of the sent stream, owned by the encode goroutine: the encoder at
// the current target format, the converter that scales every frame to it, the packetizer.
type videoSender struct {
	s        *VideoSocket
	enc      *vp8.Encoder
	encFmt   media.VideoFormat // the encoder's format (I420), zero before the first frame
	badFmt   media.VideoFormat // a target the encoder refused, not retried
	kbps     int
	pz       *vp8.Packetizer
	conv     yuv.Converter
	i420     []byte
	payloads [][]byte
	pbuf     []byte
	pkt      rtp.Packet
	start    time.Time
	lastPTS  int64
	warned   bool   // about a frame that could not be converted
	frames   uint64 // frames encoded and written
	packets  uint64 // RTP packets written
}

func newVideoSender(s *VideoSocket) (*videoSender, error) {
	pz, err := vp8.NewPacketizer(1100)
	if err != nil {
		return nil, err
	}
	return &videoSender{
		s:       s,
		pz:      pz,
		pkt:     rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: uint8(rtc.PayloadTypeVP8), SSRC: s.ssrc}},
		start:   time.Now(),
		lastPTS: -1,
	}, nil
}

func (v *videoSender) close() {
	if v.enc != nil {
		v.enc.Close()
		v.enc = nil
	}
}

// encoder makes sure the encoder runs at target (I420) and the current bitrate, and reports
// whether there is one.
func (v *videoSender) encoder(target media.VideoFormat) bool {
	if v.enc != nil && v.encFmt == target {
		if k := v.s.bitrateKbps(); k != v.kbps && v.enc.SetBitrate(k) == nil {
			v.kbps = k
		}
		return true
	}
	if target == v.badFmt {
		return false
	}
	v.close()
	v.kbps = v.s.bitrateKbps()
	enc, err := vp8.NewEncoder(vp8.EncoderConfig{Width: target.Width, Height: target.Height, FrameRate: target.FrameRate, BitrateKbps: v.kbps})
	if err != nil {
		v.s.log.Error("video encoder", "format", target.String(), "err", err)
		v.badFmt = target
		return false
	}
	v.enc, v.encFmt = enc, target
	if n := target.FrameSize(); cap(v.i420) < n {
		v.i420 = make([]byte, n)
	}
	v.i420 = v.i420[:target.FrameSize()]
	return true
}

// frame converts and scales one of the bot's frames to the target format, hands the buffer
// back to the bot, encodes the picture and writes its RTP packets.
func (v *videoSender) frame(buf *media.VideoBuffer) {
	s := v.s
	if s.SendStatus() != Active {
		s.sendDone(buf)
		return
	}
	src := buf.Format()
	s.inputSize(src.Width, src.Height)
	target := s.PreferredFormat()
	target.PixelFormat = media.I420
	if !v.encoder(target) {
		s.sendDone(buf)
		return
	}
	err := v.conv.ConvertScale(v.i420, target, buf.Data(), src)
	s.sendDone(buf)
	if err != nil {
		if !v.warned {
			v.warned = true
			s.log.Warn("cannot convert a video frame for sending; dropping such frames", "from", src.String(), "to", target.String(), "err", err)
		}
		return
	}
	pts := int64(time.Since(v.start) * vp8.ClockRate / time.Second)
	if pts <= v.lastPTS {
		pts = v.lastPTS + 1
	}
	v.lastPTS = pts
	frame, _, err := v.enc.Encode(v.i420, pts, s.forceKey.Swap(false))
	if err != nil || len(frame) == 0 {
		return
	}
	v.pbuf, v.payloads = v.pz.Packetize(v.pbuf[:0], v.payloads[:0], frame)
	v.pkt.Timestamp = uint32(pts)
	for i, p := range v.payloads {
		v.pkt.Payload = p
		v.pkt.Marker = i == len(v.payloads)-1
		v.pkt.SequenceNumber++
		_ = s.sender.WriteRTP(&v.pkt) // fails only before the transport connects or once it ends
	}
	v.frames++
	v.packets += uint64(len(v.payloads))
}

func (s *VideoSocket) deliver(e videoEvent) {
	if e.status != nil {
		if f := s.settings.OnSendStatusChanged; f != nil {
			callBot(s.log, "OnSendStatusChanged", func() { f(*e.status) })
		}
		return
	}
	if s.settings.OnVideoReceived == nil {
		e.buf.Release()
		return
	}
	ev := VideoReceivedEvent{Buffer: e.buf, Dropped: s.events.droppedCount()}
	callBot(s.log, "OnVideoReceived", func() { s.settings.OnVideoReceived(ev) })
}

func (s *VideoSocket) discard(e videoEvent) {
	if e.buf != nil {
		e.buf.Release()
	}
}

// Dropped returns how many received frames were dropped because the bot's callbacks were slow.
func (s *VideoSocket) Dropped() uint64 { return s.events.droppedCount() }

// Close ends the media of the call the socket serves (all its sockets), as AudioSocket.Close
// does. It is idempotent and waits for the socket's goroutines.
func (s *VideoSocket) Close() { s.end(s.close) }

func (s *VideoSocket) close() { s.shutdown(nil, s.drainSends) }
