package sdk

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-rtc/switchboard/internal/opus"
	"github.com/switchboard-rtc/switchboard/internal/playout"
	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/media"
)

// StreamDirection says whether a socket sends, receives or both. The zero value is Sendrecv.
type StreamDirection uint8

// Stream directions.
const (
	Sendrecv StreamDirection = iota
	Sendonly
	Recvonly
)

func (d StreamDirection) String() string {
	switch d {
	case Sendrecv:
		return "sendrecv"
	case Sendonly:
		return "sendonly"
	case Recvonly:
		return "recvonly"
	}
	return fmt.Sprintf("StreamDirection(%d)", uint8(d))
}

func (d StreamDirection) sends() bool    { return d == Sendrecv || d == Sendonly }
func (d StreamDirection) receives() bool { return d == Sendrecv || d == Recvonly }

// lineDir is the direction on the socket's own (first) m-line.
func (d StreamDirection) lineDir() lineDir {
	switch d {
	case Sendonly:
		return dirSendonly
	case Recvonly:
		return dirRecvonly
	}
	return dirSendrecv
}

// onLine is the direction a socket with direction d answers an m-line with: its own direction on
// the line it sends on, receive-only on the others it receives (more speakers, more slots), and
// inactive where it does not receive.
func (d StreamDirection) onLine(ownLine bool) lineDir {
	if ownLine {
		return d.lineDir()
	}
	if d.receives() {
		return dirRecvonly
	}
	return dirInactive
}

// MediaSendStatus says whether a socket may send: Active once the call's media transport is
// connected (and the socket and the offer allow sending), Inactive otherwise.
type MediaSendStatus uint8

// Send statuses.
const (
	Inactive MediaSendStatus = iota
	Active
)

func (s MediaSendStatus) String() string {
	if s == Active {
		return "active"
	}
	return "inactive"
}

// AudioFormat is the PCM format a socket exchanges with the bot.
type AudioFormat uint8

// Audio formats. Pcm16K is the only one: signed 16-bit, 16 kHz, mono, 20 ms frames.
const (
	Pcm16K AudioFormat = iota
)

// AudioReceivedEvent is one 20 ms frame of the call's audio.
type AudioReceivedEvent struct {
	// Buffer is the mix of the call's loudest speakers (or comfort noise, with Buffer.Silence,
	// when nobody's audio arrived). Its ActiveSpeakers are the source ids of the speakers whose
	// audio is audible in it, loudest first. The buffer is yours: Release it when done (you may
	// keep it past the callback).
	Buffer *media.AudioBuffer
	// Unmixed holds, with AudioSocketSettings.ReceiveUnmixed, one buffer per active speaker
	// (SourceID set), loudest first; each is yours to Release. The slice itself is valid only
	// during the callback.
	Unmixed []*media.AudioBuffer
	// Dropped counts the frames dropped so far because earlier callbacks returned too late.
	Dropped uint64
}

// AudioSocketSettings configure an AudioSocket. The zero value sends and receives Pcm16K and
// calls nothing back.
//
// OnAudioReceived, OnSendStatusChanged and OnDominantSpeakerChanged run on the socket's one
// event goroutine, one at a time, in order; OnSendDone runs on its 20 ms clock goroutine. None
// runs after Close returns (for a call's sockets: before the call's OnCleanup). A callback
// should return quickly (queue slow work elsewhere): while it runs, received frames wait in a
// short queue, and when that is full the oldest is dropped. The network and the socket's 20 ms
// clock never wait for an event callback. Do not call Close, or the handler's methods that end
// the call's media, from a callback: they wait for it to return.
type AudioSocketSettings struct {
	Direction StreamDirection
	Format    AudioFormat
	// ReceiveUnmixed asks for one buffer per active speaker in each event, beside the mix.
	ReceiveUnmixed bool

	// OnAudioReceived is called 50 times a second while the call's media runs (comfort noise
	// when nothing arrives), for receiving sockets. It runs on the socket's event goroutine and
	// should return within a few milliseconds: while it runs, later frames wait in a queue of
	// QueueFrames, and the oldest is dropped when it is full. The event's buffers are the bot's
	// to Release (now or later, from any goroutine); it may Send them.
	OnAudioReceived func(AudioReceivedEvent)
	// OnSendStatusChanged is called when sending becomes possible (Active) or stops (Inactive).
	// Send only while Active. It runs on the socket's event goroutine, before any audio frame
	// that waits; it may block briefly (frames wait meanwhile).
	OnSendStatusChanged func(MediaSendStatus)
	// OnDominantSpeakerChanged is called when the service announces a new dominant speaker
	// (its source id; 0 when nobody speaks; Roster.BySource names it). It runs on the socket's
	// event goroutine, like OnAudioReceived.
	OnDominantSpeakerChanged func(sourceID uint32)
	// OnSendDone is called with each buffer given to Send once the platform is done with it
	// (encoded and sent, or discarded). It runs on the socket's 20 ms clock goroutine (or, for
	// buffers still queued when the socket closes, on the goroutine that closes it: the call's
	// event goroutine at cleanup), so it must not block: take the buffer back (Release it, or
	// put it in a free list) and return. Nil means the platform Releases the buffer, which
	// returns it to the pool it came from.
	OnSendDone func(*media.AudioBuffer)

	// QueueFrames is the depth of the event queue in frames; 0 means 10 (200 ms).
	QueueFrames int
	// SendQueueFrames is how many frames Send may queue ahead of the clock; 0 means 50 (1 s).
	SendQueueFrames int
	// Bitrate of the sent Opus stream in bits a second; 0 means 32000.
	Bitrate int
	// Encoding chooses how the sent audio is encoded: LowDelayEncoding (the zero value) or
	// VoiceEncoding. See AudioEncoding.
	Encoding AudioEncoding
	// Complexity of the Opus encoder, 0..10; 0, the default, is the cheapest. Encoding is most
	// of a sending call's CPU. With LowDelayEncoding a 20 ms frame costs about 12 µs at 0 and
	// 20 µs at 1 on a 2-core development machine, and the waveform survives encode and decode
	// better than with VoiceEncoding at any complexity (speech-like audio: SNR 18 dB at 0, 20 dB
	// at 5). With VoiceEncoding about 50–60 µs at 0 or 1 and 130–170 at 5. Higher complexities
	// mainly buy perceptual refinements that matter for music or low bitrates
	// (TestOpusEncodingQuality logs the figures).
	Complexity int
}

// AudioEncoding is how an audio socket encodes what the bot sends. Both are Opus at the
// Bitrate; any receiver decodes either.
type AudioEncoding uint8

const (
	// LowDelayEncoding is Opus's transform mode (CELT, OPUS_APPLICATION_RESTRICTED_LOWDELAY):
	// the least delay and CPU, and the most faithful waveform, which suits synthesised voices,
	// prompts, music and audio that software listens to. It carries no in-band redundancy: a
	// receiver conceals a lost packet (PLC) instead of recovering it.
	LowDelayEncoding AudioEncoding = iota
	// VoiceEncoding is Opus's speech mode (SILK, OPUS_APPLICATION_VOIP) with in-band forward
	// error correction for 5 % loss: a receiver recovers a lost packet from the next one. It
	// costs about four times the CPU of LowDelayEncoding; choose it for people listening over
	// lossy networks.
	VoiceEncoding
)

// String returns the encoding's name.
func (e AudioEncoding) String() string {
	switch e {
	case LowDelayEncoding:
		return "low-delay"
	case VoiceEncoding:
		return "voice"
	}
	return fmt.Sprintf("AudioEncoding(%d)", uint8(e))
}

// encoderConfig is the Opus encoder configuration of an encoding (without the complexity,
// which the caller sets, since opus.EncoderConfig reads 0 as its own default).
func (e AudioEncoding) encoderConfig(bitrate int) opus.EncoderConfig {
	if e == VoiceEncoding {
		return opus.EncoderConfig{Bitrate: bitrate, FEC: true, PacketLossPercent: 5}
	}
	return opus.EncoderConfig{Bitrate: bitrate, Application: opus.AppRestrictedLowDelay}
}

// idleAfter is how many ticks without a packet make a slot idle once its playout plays
// comfort noise: 500 ms, longer than the jitter buffer's deepest delay (200 ms) plus the
// decoder's concealment (100 ms), so an idle slot has nothing left to play.
const idleAfter = 25

// speakerThreshold is the mean absolute sample value above which a slot's frame counts as an
// active speaker (about -50 dBFS).
const speakerThreshold = 100

// AudioSocket sends and receives a call's audio, frame by frame. Make one per call with
// NewAudioSocket and give it to MediaPlatform.CreateMediaConfiguration. Receiving: one frame
// every 20 ms through OnAudioReceived, mixed from the loudest speakers the service forwards.
// Sending: Send queues 20 ms frames, which the socket encodes and sends on its clock.
type AudioSocket struct {
	settings AudioSocketSettings
	pool     *media.AudioPool
	events   *eventQueue[audioEvent]

	socketLife[*media.AudioBuffer] // mu also guards slots
	slots                          []*audioSlot

	clockStats playout.ClockCounters
	stopClock  context.CancelFunc

	// Owned by the clock goroutine.
	enc          *opus.Encoder
	opusOut      []byte
	pkt          rtp.Packet
	sending      bool   // sent a packet in the previous tick (marker after gaps)
	encodeErrors uint64 // frames the encoder refused (logged once, not per frame)
	order        []int
	ids          []uint32

	noise comfortNoise // of the mix when no slot plays

	// Owned by the event goroutine.
	unmixed [rtc.MaxAudioLines]*media.AudioBuffer

	// playoutNow is the clock of the slots' playouts (Config.Now); nil: their own. Tests set it.
	playoutNow func() time.Duration
}

type audioEventKind uint8

const (
	audioFrame audioEventKind = iota
	audioSendStatus
	audioDominant
)

type audioEvent struct {
	kind    audioEventKind
	buf     *media.AudioBuffer
	unmixed [rtc.MaxAudioLines]*media.AudioBuffer
	n       int
	status  MediaSendStatus
	source  uint32
}

// audioSlot is one audio m-line: the loudest-speaker stream the service forwards on it.
//
// Most of a call's slots are idle most of the time (the service forwards up to three speakers,
// and a call often has one). A slot that has had no packet for idleAfter ticks and whose
// playout has played out (comfort noise) is skipped by the clock: nothing is decoded or
// generated for it. Its playout is then replaced by a fresh one, so that the next talk spurt
// starts a new stream in the jitter buffer (a skipped playout's timeline would be stale).
type audioSlot struct {
	index  int
	play   atomic.Pointer[playout.Playout] // replaced by the clock goroutine when the slot idles
	pushes atomic.Uint64                   // packets pushed so far
	source atomic.Uint32                   // CSRC[0] of the latest packet

	// Owned by the clock goroutine.
	seen  uint64            // pushes at the previous tick
	quiet int               // consecutive ticks without a packet, up to idleAfter
	used  bool              // the current playout has been given packets
	kind  playout.FrameKind // of the latest frame; 0 before the first and while idle
	pcm   [media.FrameSamples]int16
	level int
	heard bool
}

// push gives a packet to the slot's playout (the platform's reader goroutine; tests).
func (sl *audioSlot) push(seq uint16, ts uint32, payload []byte) {
	_ = sl.play.Load().Push(seq, ts, payload) // rejects are counted in its stats
	sl.pushes.Add(1)
}

// idle says, once a tick on the clock goroutine, whether the slot is to be skipped.
func (sl *audioSlot) idle() bool {
	if n := sl.pushes.Load(); n != sl.seen {
		sl.seen, sl.quiet, sl.used = n, 0, true
		return false
	}
	if sl.quiet < idleAfter {
		sl.quiet++
	}
	return sl.quiet >= idleAfter && (sl.kind == playout.ComfortNoise || sl.kind == 0)
}

// newEncoder makes the socket's Opus encoder: its encoding, bitrate and complexity.
func (s *AudioSocket) newEncoder() (*opus.Encoder, error) {
	enc, err := opus.NewEncoder(s.settings.Encoding.encoderConfig(s.settings.Bitrate))
	if err == nil {
		if err = enc.SetComplexity(s.settings.Complexity); err != nil {
			enc.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("sdk: audio socket encoder (%s, %d bit/s, complexity %d): %w",
			s.settings.Encoding, s.settings.Bitrate, s.settings.Complexity, err)
	}
	return enc, nil
}

func (s *AudioSocket) newPlayout() (*playout.Playout, error) {
	return playout.New(playout.Config{Now: s.playoutNow})
}

func (s *AudioSocket) newSlot(index int) (*audioSlot, error) {
	p, err := s.newPlayout()
	if err != nil {
		return nil, fmt.Errorf("sdk: audio slot %d playout: %w", index, err)
	}
	sl := &audioSlot{index: index}
	sl.play.Store(p)
	return sl, nil
}

// renew gives an idle slot that has played packets a fresh playout (clock goroutine). A packet
// the read goroutine pushes into the old one meanwhile is lost; the next ones go to the new.
func (s *AudioSocket) renew(sl *audioSlot) {
	sl.used = false
	p, err := s.newPlayout()
	if err != nil {
		s.log.Warn("renew audio slot playout", "slot", sl.index, "err", err)
		return
	}
	sl.play.Swap(p).Close() // Push does not use the decoder that Close frees
}

// NewAudioSocket makes an audio socket. It starts nothing until the call's media is answered.
func NewAudioSocket(s AudioSocketSettings) (*AudioSocket, error) {
	if s.Format != Pcm16K {
		return nil, fmt.Errorf("sdk: audio format %d not supported (only Pcm16K)", s.Format)
	}
	if s.Direction > Recvonly {
		return nil, fmt.Errorf("sdk: audio socket direction %v not supported", s.Direction)
	}
	if s.QueueFrames <= 0 {
		s.QueueFrames = 10
	}
	if s.SendQueueFrames <= 0 {
		s.SendQueueFrames = 50
	}
	if s.Bitrate <= 0 {
		s.Bitrate = 32000
	}
	if s.Complexity < 0 || s.Complexity > 10 {
		return nil, fmt.Errorf("sdk: Opus complexity %d out of 0..10", s.Complexity)
	}
	if s.Encoding > VoiceEncoding {
		return nil, fmt.Errorf("sdk: audio socket: unknown encoding %v", s.Encoding)
	}
	return &AudioSocket{
		settings: s,
		pool:     media.NewAudioPool("audio socket"),
		events:   newEventQueue[audioEvent](s.QueueFrames),

		socketLife: newSocketLife(s.SendQueueFrames, s.OnSendDone),
	}, nil
}

func (s *AudioSocket) lineKind() rtc.Kind { return rtc.KindAudio }

func (s *AudioSocket) want(line rtc.Line) lineDir {
	return s.settings.Direction.onLine(line.Index == 0)
}

func (s *AudioSocket) start(call *callMedia) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.attach(call, call.log.With("socket", "audio")); err != nil {
		return err
	}
	if call.audio != nil {
		s.settings.OnAudioReceived = call.audio.Wrap(s.settings.OnAudioReceived)
	}
	if s.settings.Direction.receives() {
		for _, line := range call.lines {
			sl, err := s.newSlot(line.Index)
			if err != nil {
				return err
			}
			s.slots = append(s.slots, sl)
		}
	}
	if s.settings.Direction.sends() {
		enc, err := s.newEncoder()
		if err != nil {
			return err
		}
		s.enc = enc
		s.opusOut = make([]byte, opus.MaxPacketSize)
	}
	s.order = make([]int, 0, len(s.slots))
	s.ids = make([]uint32, 0, len(s.slots))
	ctx, cancel := context.WithCancel(call.ctx)
	s.stopClock = cancel
	s.wg.Add(2)
	go s.clock(ctx, call.clock())
	go func() {
		defer s.wg.Done()
		s.events.run(s.stop, s.deliver, s.discard)
	}()
	return nil
}

func (s *AudioSocket) sendOn(_ rtc.Line, w rtpWriter, ssrc uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setSender(w, ssrc)
	s.pkt.Header = rtp.Header{Version: 2, PayloadType: uint8(rtc.PayloadTypeOpus), SSRC: ssrc}
}

// onRTP pushes a packet of one of the socket's audio m-lines into its slot's jitter buffer (the
// platform's reader goroutine; the push copies the payload and takes a short lock).
func (s *AudioSocket) onRTP(line rtc.Line, pkt *rtp.Packet) {
	for _, sl := range s.slots { // written by start, before the reader hands packets over
		if sl.index != line.Index {
			continue
		}
		if len(pkt.Payload) == 0 {
			return
		}
		if len(pkt.CSRC) > 0 {
			sl.source.Store(pkt.CSRC[0])
		} else {
			sl.source.Store(0)
		}
		sl.push(pkt.SequenceNumber, pkt.Timestamp, pkt.Payload)
		return
	}
}

// onKeyFrameRequest and onEstimate: audio has no use for them.
func (s *AudioSocket) onKeyFrameRequest() {}
func (s *AudioSocket) onEstimate(int64)   {}

func (s *AudioSocket) connected(up bool) {
	if status, changed := s.connect(up, s.settings.Direction.sends()); changed {
		s.events.pushControl(audioEvent{kind: audioSendStatus, status: status})
	}
}

func (s *AudioSocket) dominantSpeakerChanged(sourceID uint32) {
	s.events.pushControl(audioEvent{kind: audioDominant, source: sourceID})
}

// SendStatus is the socket's current send status (Inactive once the socket is closed).
func (s *AudioSocket) SendStatus() MediaSendStatus { return MediaSendStatus(s.status.Load()) }

// Send queues one 20 ms frame (media.FrameSamples samples of 16 kHz PCM) to send. The buffer is
// the platform's from now on until OnSendDone (or, without it, until the platform Releases it);
// the socket's clock encodes one queued frame every 20 ms. Send fails with ErrNotSending while
// the send status is Inactive, with ErrSocketClosed once the socket is closed (from the call's
// cleanup on) and with ErrSendQueueFull when the bot is more than SendQueueFrames ahead; the
// buffer then stays the bot's. Send may be called from any goroutine.
func (s *AudioSocket) Send(buf *media.AudioBuffer) error {
	if buf == nil {
		return errors.New("sdk: send nil audio buffer")
	}
	return s.enqueue(buf, nil)
}

// Dropped returns how many received frames were dropped because the bot's callbacks were slow.
func (s *AudioSocket) Dropped() uint64 { return s.events.droppedCount() }

// clock is the socket's 20 ms clock goroutine: each tick it mixes one received frame for the
// bot and encodes one frame the bot sent. playout.Run keeps ticks on an absolute schedule, so
// they do not drift; after a stall it runs a short burst of overdue ticks and skips older ones.
func (s *AudioSocket) clock(ctx context.Context, start time.Time) {
	defer s.wg.Done()
	_ = playout.Run(ctx, start, playout.FrameDuration, 0, func(t playout.Tick) {
		s.tick(time.Duration(t.N) * playout.FrameDuration)
	}, &s.clockStats)
}

// tick does one 20 ms step at media time ts.
func (s *AudioSocket) tick(ts time.Duration) {
	if s.settings.Direction.receives() {
		s.mix(ts)
	}
	if s.sender != nil {
		s.send()
	}
}

// mix takes one frame from every slot that is not idle, mixes them and queues the event.
func (s *AudioSocket) mix(ts time.Duration) {
	s.order = s.order[:0]
	noise := -1 // a slot that played comfort noise this tick
	for i, sl := range s.slots {
		sl.heard, sl.level = false, 0
		if sl.idle() {
			if sl.used {
				s.renew(sl)
			}
			sl.kind = 0
			continue
		}
		sl.kind = sl.play.Load().Next(sl.pcm[:])
		if sl.kind == playout.ComfortNoise && noise < 0 {
			noise = i
		}
		sl.heard = sl.kind == playout.Decoded || sl.kind == playout.FEC || sl.kind == playout.PLC
		if sl.heard {
			sl.level = meanAbs(sl.pcm[:])
			if sl.level >= speakerThreshold {
				s.order = append(s.order, i)
			}
		}
	}
	slices.SortFunc(s.order, func(a, b int) int { return s.slots[b].level - s.slots[a].level })
	buf := s.pool.Get()
	buf.Timestamp = ts
	out := buf.Samples()
	heard := false
	for _, sl := range s.slots {
		if sl.heard {
			heard = true
			mixInto(out, sl.pcm[:])
		}
	}
	if !heard {
		if noise >= 0 {
			copy(out, s.slots[noise].pcm[:]) // made this tick already
		} else {
			s.noise.fill(out)
		}
	}
	buf.Silence = !heard
	s.ids = s.ids[:0]
	for _, i := range s.order {
		if id := s.slots[i].source.Load(); id != 0 {
			s.ids = append(s.ids, id)
		}
	}
	buf.SetActiveSpeakers(s.ids)
	ev := audioEvent{kind: audioFrame, buf: buf}
	if s.settings.ReceiveUnmixed {
		for _, i := range s.order {
			sl := s.slots[i]
			u := s.pool.Get()
			u.Timestamp = ts
			u.SourceID = sl.source.Load()
			copy(u.Samples(), sl.pcm[:])
			ev.unmixed[ev.n] = u
			ev.n++
		}
	}
	if old, dropped := s.events.pushMedia(ev); dropped {
		s.discard(old)
	}
}

// send encodes and sends one queued frame, if the bot queued one.
func (s *AudioSocket) send() {
	var buf *media.AudioBuffer
	select {
	case buf = <-s.sendQ:
	default:
	}
	s.pkt.Timestamp += opus.RTPFrameTicks
	if buf == nil {
		s.sending = false
		return
	}
	defer s.sendDone(buf)
	if s.SendStatus() != Active {
		s.sending = false
		return
	}
	n, err := s.enc.Encode(buf.Samples(), s.opusOut)
	if err != nil {
		if s.encodeErrors++; s.encodeErrors == 1 {
			s.log.Warn("encode audio; dropping frames the encoder refuses (logged once)", "err", err)
		}
		return
	}
	s.pkt.Marker = !s.sending
	s.pkt.SequenceNumber++
	s.pkt.Payload = s.opusOut[:n]
	s.sending = true
	_ = s.sender.WriteRTP(&s.pkt) // fails only before the transport connects or once it ends
}

// deliver runs on the event goroutine.
func (s *AudioSocket) deliver(e audioEvent) {
	switch e.kind {
	case audioFrame:
		if s.settings.OnAudioReceived == nil {
			s.discard(e)
			return
		}
		n := copy(s.unmixed[:], e.unmixed[:e.n])
		ev := AudioReceivedEvent{Buffer: e.buf, Unmixed: s.unmixed[:n:n], Dropped: s.events.droppedCount()}
		callBot(s.log, "OnAudioReceived", func() { s.settings.OnAudioReceived(ev) })
		clear(s.unmixed[:n])
	case audioSendStatus:
		if f := s.settings.OnSendStatusChanged; f != nil {
			callBot(s.log, "OnSendStatusChanged", func() { f(e.status) })
		}
	case audioDominant:
		if f := s.settings.OnDominantSpeakerChanged; f != nil {
			callBot(s.log, "OnDominantSpeakerChanged", func() { f(e.source) })
		}
	}
}

// discard releases an event's buffers that will never reach the bot.
func (s *AudioSocket) discard(e audioEvent) {
	if e.buf != nil {
		e.buf.Release()
	}
	for _, u := range e.unmixed[:e.n] {
		u.Release()
	}
}

// Close ends the media of the call the socket serves (all its sockets) and stops the socket:
// its goroutines end (Close waits for them), queued frames are
// released, and buffers queued by Send go back through OnSendDone. It is idempotent; the call's
// media configuration closes its sockets when the call ends.
func (s *AudioSocket) Close() { s.end(s.close) }

// close stops the clock with the other goroutines; once they have ended it discards what is
// left, hands back what Send queued and frees the decoders and the encoder.
func (s *AudioSocket) close() {
	s.shutdown(func() {
		if s.stopClock != nil {
			s.stopClock()
		}
	}, func() {
		// The clock may have queued a frame after the event goroutine drained the queue on
		// stop (it stops at the same time): nothing queues any more, so discard what is left.
		s.events.drain(s.discard)
		s.drainSends()
		for _, sl := range s.slots {
			sl.play.Load().Close()
		}
		if s.enc != nil {
			s.enc.Close()
		}
	})
}

// comfortNoise is the mix's comfort noise when no slot plays anything: white noise from a
// xorshift generator through a one-pole low-pass filter at about playout.DefaultComfortNoise
// (-60 dBFS RMS), as the slots' playouts make it.
type comfortNoise struct {
	state uint32
	y     int32
}

// comfortNoiseAmp is the peak of the white noise: its RMS is amp/√3, and the filter divides it
// by about √3 again, so amp = 3 × 32768 × 10^(-60/20).
const comfortNoiseAmp = 98

func (n *comfortNoise) fill(pcm []int16) {
	if n.state == 0 {
		n.state = 0x2545f491
	}
	for i := range pcm {
		n.state ^= n.state << 13
		n.state ^= n.state >> 17
		n.state ^= n.state << 5
		x := int32(int16(n.state>>16)) * comfortNoiseAmp >> 15
		n.y += (x - n.y) >> 1
		pcm[i] = int16(n.y)
	}
}

// meanAbs is the mean absolute sample value of a frame.
func meanAbs(pcm []int16) int {
	var sum int
	for _, v := range pcm {
		if v < 0 {
			sum -= int(v)
		} else {
			sum += int(v)
		}
	}
	return sum / len(pcm)
}

// mixInto adds src to dst, saturating at the int16 range.
func mixInto(dst, src []int16) {
	for i := range dst {
		v := int32(dst[i]) + int32(src[i])
		dst[i] = int16(min(max(v, -32768), 32767))
	}
}
