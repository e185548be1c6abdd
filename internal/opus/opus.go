// Package opus is a thin cgo binding of libopus for Switchboard's audio path.
//
// It covers exactly what the platform needs: 16 kHz mono PCM in and out,
// 20 ms frames, packet loss concealment (PLC) and in-band forward error
// correction (FEC, Opus "LBRR"). Bots exchange 16 kHz mono PCM with the SDK;
// on the wire the same audio is Opus in RTP with a 48 kHz clock, so one 20 ms
// frame is FrameSamples PCM samples and RTPFrameTicks RTP ticks.
//
// The hot calls (Encode, Decode, DecodePLC, DecodeFEC, PacketSamples) hand the
// caller's Go slices to libopus for the duration of the call, without copying
// and without allocating.
//
// It links against the system libopus through pkg-config (package "opus").
package opus

/*
#cgo pkg-config: opus
#include <opus.h>

static int sb_enc_set(OpusEncoder *st, int request, opus_int32 value) {
	return opus_encoder_ctl(st, request, value);
}

static int sb_enc_get(OpusEncoder *st, int request, opus_int32 *value) {
	return opus_encoder_ctl(st, request, value);
}

static int sb_dec_reset(OpusDecoder *st) {
	return opus_decoder_ctl(st, OPUS_RESET_STATE);
}

// sb_packet_samples validates the whole packet structure (opus_packet_parse
// checks every frame length against the packet length) before counting its
// samples at rate fs.
static int sb_packet_samples(const unsigned char *data, opus_int32 len, opus_int32 fs) {
	unsigned char toc;
	const unsigned char *frames[48];
	opus_int16 sizes[48];
	int payload_offset;
	int n = opus_packet_parse(data, len, &toc, frames, sizes, &payload_offset);
	if (n < 0) {
		return n;
	}
	return opus_packet_get_nb_samples(data, len, fs);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"unsafe"
)

const (
	// SampleRate is the PCM sample rate of encoder input and decoder output, in Hz.
	SampleRate = 16000
	// FrameSamples is the number of samples of one 20 ms mono frame at SampleRate.
	FrameSamples = 320
	// MaxFrameSamples is the number of samples of the longest Opus packet
	// (120 ms) at SampleRate; a PCM buffer this long holds any packet's audio.
	MaxFrameSamples = 1920
	// RTPClockRate is the RTP clock rate of Opus (RFC 7587), whatever the PCM rate.
	RTPClockRate = 48000
	// RTPFrameTicks is the duration of one 20 ms frame in RTP ticks.
	RTPFrameTicks = 960
	// MaxPacketSize is the largest Opus packet the encoder produces, in bytes;
	// an out buffer this long is always enough for Encode.
	MaxPacketSize = 1275
	// DTXPacketMax is the size at or below which an encoded packet carries no
	// audio: with DTX on, the encoder emits such packets during silence and
	// they need not be sent (the receiver conceals or plays comfort noise).
	DTXPacketMax = 2

	defaultBitrate    = 24000
	defaultComplexity = 5
	samples2ms5       = SampleRate / 400 // 2.5 ms, the Opus frame-size granule
)

// Application is the libopus application mode an encoder is tuned for.
type Application int

const (
	// AppVoIP favours speech intelligibility (the default, zero value).
	AppVoIP Application = iota
	// AppAudio favours faithfulness to non-speech input such as music.
	AppAudio
	// AppRestrictedLowDelay disables speech-optimised modes to minimise delay.
	AppRestrictedLowDelay
)

// String returns the mode's name.
func (a Application) String() string {
	switch a {
	case AppVoIP:
		return "voip"
	case AppAudio:
		return "audio"
	case AppRestrictedLowDelay:
		return "restricted-lowdelay"
	}
	return fmt.Sprintf("Application(%d)", int(a))
}

func (a Application) c() (C.int, bool) {
	switch a {
	case AppVoIP:
		return C.OPUS_APPLICATION_VOIP, true
	case AppAudio:
		return C.OPUS_APPLICATION_AUDIO, true
	case AppRestrictedLowDelay:
		return C.OPUS_APPLICATION_RESTRICTED_LOWDELAY, true
	}
	return 0, false
}

// Error is a libopus error code (one of the negative OPUS_* values).
// The package's sentinels of this type compare equal with errors.Is to any
// error carrying the same code.
type Error int

// Error returns libopus's description of the code, with the code.
func (e Error) Error() string {
	return fmt.Sprintf("%s (libopus error %d)", C.GoString(C.opus_strerror(C.int(e))), int(e))
}

// Sentinel errors. ErrBadPacket is what callers usually branch on: the input
// was not a decodable Opus packet.
var (
	// ErrBadArg reports an argument libopus rejected (OPUS_BAD_ARG).
	ErrBadArg error = Error(C.OPUS_BAD_ARG)
	// ErrBufferTooSmall reports an output buffer too short for the result.
	ErrBufferTooSmall error = Error(C.OPUS_BUFFER_TOO_SMALL)
	// ErrInternal reports an internal libopus failure.
	ErrInternal error = Error(C.OPUS_INTERNAL_ERROR)
	// ErrBadPacket reports a corrupt, truncated or empty packet (OPUS_INVALID_PACKET).
	ErrBadPacket error = Error(C.OPUS_INVALID_PACKET)
	// ErrUnimplemented reports a request libopus does not implement.
	ErrUnimplemented error = Error(C.OPUS_UNIMPLEMENTED)
	// ErrInvalidState reports a corrupted codec state.
	ErrInvalidState error = Error(C.OPUS_INVALID_STATE)
	// ErrAllocFail reports that libopus could not allocate memory.
	ErrAllocFail error = Error(C.OPUS_ALLOC_FAIL)

	// ErrClosed is returned by every method of a closed Encoder or Decoder.
	ErrClosed = errors.New("opus: encoder or decoder is closed")
)

// EncoderConfig configures NewEncoder. The zero value is a usable VoIP
// encoder at 24 kbit/s, complexity 5, without DTX or FEC.
type EncoderConfig struct {
	// Bitrate is the target bit rate in bits per second; 0 means 24000.
	Bitrate int
	// Complexity is the encoder's effort, 1..10; 0 means the default 5
	// (use SetComplexity(0) for the cheapest setting).
	Complexity int
	// DTX enables discontinuous transmission: during silence the encoder
	// emits packets of at most DTXPacketMax bytes, which need not be sent.
	DTX bool
	// FEC enables in-band forward error correction: a packet also carries a
	// low-rate copy of the previous frame, recoverable with Decoder.DecodeFEC.
	// libopus only adds it when PacketLossPercent > 0 and the bit rate allows.
	FEC bool
	// PacketLossPercent is the expected packet loss, 0..100; it decides how
	// much of the bit rate FEC may take.
	PacketLossPercent int
	// Application is the tuning mode; the zero value is AppVoIP.
	Application Application
}

// Encoder encodes 16 kHz mono PCM into Opus packets.
// An Encoder is not safe for concurrent use: one goroutine at a time,
// including Close.
type Encoder struct {
	st      *C.OpusEncoder
	cleanup runtime.Cleanup
}

// NewEncoder returns a 16 kHz mono encoder configured by cfg. Close frees it;
// an Encoder that becomes unreachable without Close is freed by the garbage
// collector.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	app, ok := cfg.Application.c()
	if !ok {
		return nil, fmt.Errorf("opus: new encoder: unknown application %d: %w", int(cfg.Application), ErrBadArg)
	}
	if cfg.Bitrate == 0 {
		cfg.Bitrate = defaultBitrate
	}
	if cfg.Complexity == 0 {
		cfg.Complexity = defaultComplexity
	}
	var cerr C.int
	st := C.opus_encoder_create(SampleRate, 1, app, &cerr)
	if cerr != C.OPUS_OK || st == nil {
		if cerr == C.OPUS_OK {
			cerr = C.OPUS_ALLOC_FAIL
		}
		return nil, fmt.Errorf("opus: new encoder (%d Hz mono, %s): %w", SampleRate, cfg.Application, Error(cerr))
	}
	e := &Encoder{st: st}
	e.cleanup = runtime.AddCleanup(e, func(st *C.OpusEncoder) { C.opus_encoder_destroy(st) }, st)
	for _, set := range []func() error{
		func() error { return e.SetBitrate(cfg.Bitrate) },
		func() error { return e.SetComplexity(cfg.Complexity) },
		func() error { return e.SetDTX(cfg.DTX) },
		func() error { return e.SetFEC(cfg.FEC) },
		func() error { return e.SetPacketLossPercent(cfg.PacketLossPercent) },
	} {
		if err := set(); err != nil {
			e.Close()
			return nil, fmt.Errorf("opus: new encoder: %w", err)
		}
	}
	return e, nil
}

// Encode encodes one frame of pcm into out and returns the packet's length.
// len(pcm) is the frame: FrameSamples for 20 ms, or another Opus frame
// duration (2.5, 5, 10, 20, 40, 60, 80, 100 or 120 ms at 16 kHz). out should
// be MaxPacketSize bytes long: libopus fits the packet to len(out), lowering
// the quality if it must, and into 1 or 2 bytes only the table of contents. With DTX on, a result of at most DTXPacketMax
// bytes means silence that need not be sent.
func (e *Encoder) Encode(pcm []int16, out []byte) (int, error) {
	if e.st == nil {
		return 0, ErrClosed
	}
	if !validFrame(len(pcm)) {
		return 0, fmt.Errorf("opus: encode %d samples: not an Opus frame duration at %d Hz (want %d for 20 ms): %w",
			len(pcm), SampleRate, FrameSamples, ErrBadArg)
	}
	if len(out) == 0 {
		return 0, fmt.Errorf("opus: encode %d samples into an empty buffer: %w", len(pcm), ErrBufferTooSmall)
	}
	n := C.opus_encode(e.st, (*C.opus_int16)(unsafe.Pointer(&pcm[0])), C.int(len(pcm)),
		(*C.uchar)(unsafe.Pointer(&out[0])), C.opus_int32(min(len(out), math.MaxInt32)))
	runtime.KeepAlive(e)
	if n < 0 {
		return 0, fmt.Errorf("opus: encode %d samples into %d bytes: %w", len(pcm), len(out), Error(n))
	}
	return int(n), nil
}

// validFrame reports whether n samples at 16 kHz is a duration opus_encode
// accepts: 2.5, 5, 10, 20, 40, 60, 80, 100 or 120 ms.
func validFrame(n int) bool {
	switch n {
	case samples2ms5, 2 * samples2ms5, 4 * samples2ms5, FrameSamples,
		2 * FrameSamples, 3 * FrameSamples, 4 * FrameSamples, 5 * FrameSamples, 6 * FrameSamples:
		return true
	}
	return false
}

func (e *Encoder) set(name string, request C.int, value int) error {
	if e.st == nil {
		return ErrClosed
	}
	if value < math.MinInt32 || value > math.MaxInt32 {
		return fmt.Errorf("opus: set %s to %d: %w", name, value, ErrBadArg)
	}
	r := C.sb_enc_set(e.st, request, C.opus_int32(value))
	runtime.KeepAlive(e)
	if r != C.OPUS_OK {
		return fmt.Errorf("opus: set %s to %d: %w", name, value, Error(r))
	}
	return nil
}

func (e *Encoder) get(name string, request C.int) (int, error) {
	if e.st == nil {
		return 0, ErrClosed
	}
	var v C.opus_int32
	r := C.sb_enc_get(e.st, request, &v)
	runtime.KeepAlive(e)
	if r != C.OPUS_OK {
		return 0, fmt.Errorf("opus: get %s: %w", name, Error(r))
	}
	return int(v), nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// SetBitrate sets the target bit rate in bits per second (500..512000;
// libopus clamps values in range to what the mode supports).
func (e *Encoder) SetBitrate(bps int) error {
	if bps < 500 || bps > 512000 {
		if e.st == nil {
			return ErrClosed
		}
		return fmt.Errorf("opus: set bitrate to %d bit/s: outside 500..512000: %w", bps, ErrBadArg)
	}
	return e.set("bitrate", C.OPUS_SET_BITRATE_REQUEST, bps)
}

// Bitrate returns the encoder's current target bit rate in bits per second.
func (e *Encoder) Bitrate() (int, error) {
	return e.get("bitrate", C.OPUS_GET_BITRATE_REQUEST)
}

// SetPacketLossPercent tells the encoder the expected packet loss, 0..100.
// With FEC on, it decides how much redundancy to add.
func (e *Encoder) SetPacketLossPercent(p int) error {
	return e.set("packet loss percent", C.OPUS_SET_PACKET_LOSS_PERC_REQUEST, p)
}

// SetFEC turns in-band forward error correction on or off.
func (e *Encoder) SetFEC(on bool) error {
	return e.set("inband FEC", C.OPUS_SET_INBAND_FEC_REQUEST, boolInt(on))
}

// SetDTX turns discontinuous transmission on or off.
func (e *Encoder) SetDTX(on bool) error {
	return e.set("DTX", C.OPUS_SET_DTX_REQUEST, boolInt(on))
}

// SetComplexity sets the encoder's effort, 0 (cheapest) to 10 (best).
func (e *Encoder) SetComplexity(c int) error {
	return e.set("complexity", C.OPUS_SET_COMPLEXITY_REQUEST, c)
}

// Lookahead returns the encoder's algorithmic delay in samples at 16 kHz:
// how far decoded audio lags the input.
func (e *Encoder) Lookahead() (int, error) {
	return e.get("lookahead", C.OPUS_GET_LOOKAHEAD_REQUEST)
}

// Close frees the encoder's C state. It is idempotent; afterwards every
// method returns ErrClosed.
func (e *Encoder) Close() {
	if e.st == nil {
		return
	}
	e.cleanup.Stop()
	C.opus_encoder_destroy(e.st)
	e.st = nil
}

// Decoder decodes Opus packets into 16 kHz mono PCM and conceals lost ones.
// A Decoder is not safe for concurrent use: one goroutine at a time,
// including Close. Use one Decoder per stream: its state carries over from
// packet to packet.
type Decoder struct {
	st      *C.OpusDecoder
	cleanup runtime.Cleanup
}

// NewDecoder returns a 16 kHz mono decoder. Close frees it; a Decoder that
// becomes unreachable without Close is freed by the garbage collector.
func NewDecoder() (*Decoder, error) {
	var cerr C.int
	st := C.opus_decoder_create(SampleRate, 1, &cerr)
	if cerr != C.OPUS_OK || st == nil {
		if cerr == C.OPUS_OK {
			cerr = C.OPUS_ALLOC_FAIL
		}
		return nil, fmt.Errorf("opus: new decoder (%d Hz mono): %w", SampleRate, Error(cerr))
	}
	d := &Decoder{st: st}
	d.cleanup = runtime.AddCleanup(d, func(st *C.OpusDecoder) { C.opus_decoder_destroy(st) }, st)
	return d, nil
}

// Decode decodes packet into pcm and returns the number of samples written.
// pcm must hold the packet's whole duration (FrameSamples for the 20 ms
// packets browsers send, MaxFrameSamples for any packet). An empty, corrupt
// or truncated packet returns an error wrapping ErrBadPacket; pcm too short
// returns one wrapping ErrBufferTooSmall.
func (d *Decoder) Decode(packet []byte, pcm []int16) (int, error) {
	if d.st == nil {
		return 0, ErrClosed
	}
	if len(packet) == 0 {
		return 0, fmt.Errorf("opus: decode empty packet: %w", ErrBadPacket)
	}
	if len(pcm) == 0 {
		return 0, fmt.Errorf("opus: decode %d-byte packet into an empty buffer: %w", len(packet), ErrBufferTooSmall)
	}
	n, err := d.decode(packet, pcm, min(len(pcm), MaxFrameSamples), 0)
	if err != nil {
		return 0, fmt.Errorf("opus: decode %d-byte packet into %d samples: %w", len(packet), len(pcm), err)
	}
	return n, nil
}

// DecodePLC conceals one lost frame: it fills pcm with len(pcm) samples
// extrapolated from the audio decoded so far (fading to silence over
// successive losses) and returns how many it wrote. len(pcm) is the lost
// duration: FrameSamples for one 20 ms packet; it must be a multiple of
// 2.5 ms (40 samples) and at most MaxFrameSamples.
func (d *Decoder) DecodePLC(pcm []int16) (int, error) {
	if d.st == nil {
		return 0, ErrClosed
	}
	if err := checkLost(len(pcm)); err != nil {
		return 0, fmt.Errorf("opus: conceal lost frame: %w", err)
	}
	n, err := d.decode(nil, pcm, len(pcm), 0)
	if err != nil {
		return 0, fmt.Errorf("opus: conceal lost frame of %d samples: %w", len(pcm), err)
	}
	return n, nil
}

// DecodeFEC recovers the lost frame just before next from the forward error
// correction data in next, and returns the number of samples written to pcm.
// len(pcm) is the lost duration, as for DecodePLC (FrameSamples for one
// 20 ms packet). When next carries no FEC data (FEC off at the sender, a
// CELT-only packet, too low a bit rate) libopus conceals the frame as
// DecodePLC does. next itself is not consumed: decode it with Decode
// afterwards. A corrupt next returns an error wrapping ErrBadPacket.
func (d *Decoder) DecodeFEC(next []byte, pcm []int16) (int, error) {
	if d.st == nil {
		return 0, ErrClosed
	}
	if len(next) == 0 {
		return 0, fmt.Errorf("opus: recover lost frame from empty packet: %w", ErrBadPacket)
	}
	if err := checkLost(len(pcm)); err != nil {
		return 0, fmt.Errorf("opus: recover lost frame from %d-byte packet: %w", len(next), err)
	}
	n, err := d.decode(next, pcm, len(pcm), 1)
	if err != nil {
		return 0, fmt.Errorf("opus: recover lost frame of %d samples from %d-byte packet: %w", len(pcm), len(next), err)
	}
	return n, nil
}

// checkLost validates the length of a buffer for a lost frame. libopus
// rejects durations that are not a multiple of 2.5 ms, and the upper bound
// keeps libopus's stack buffer (sized by the duration) small.
func checkLost(n int) error {
	if n <= 0 || n > MaxFrameSamples || n%samples2ms5 != 0 {
		return fmt.Errorf("%d samples is not a multiple of %d in 1..%d: %w", n, samples2ms5, MaxFrameSamples, ErrBadArg)
	}
	return nil
}

func (d *Decoder) decode(packet []byte, pcm []int16, frameSize int, fec C.int) (int, error) {
	if len(packet) > math.MaxInt32 {
		return 0, ErrBadPacket
	}
	var data *C.uchar
	if len(packet) > 0 {
		data = (*C.uchar)(unsafe.Pointer(&packet[0]))
	}
	n := C.opus_decode(d.st, data, C.opus_int32(len(packet)),
		(*C.opus_int16)(unsafe.Pointer(&pcm[0])), C.int(frameSize), fec)
	runtime.KeepAlive(d)
	if n < 0 {
		return 0, Error(n)
	}
	return int(n), nil
}

// Reset returns the decoder to its state just after NewDecoder, forgetting
// the audio decoded so far: use it when a stream restarts (a new RTP
// synchronisation source) so that concealment does not extrapolate from the
// old one.
func (d *Decoder) Reset() error {
	if d.st == nil {
		return ErrClosed
	}
	r := C.sb_dec_reset(d.st)
	runtime.KeepAlive(d)
	if r != C.OPUS_OK {
		return fmt.Errorf("opus: reset decoder: %w", Error(r))
	}
	return nil
}

// Close frees the decoder's C state. It is idempotent; afterwards every
// method returns ErrClosed.
func (d *Decoder) Close() {
	if d.st == nil {
		return
	}
	d.cleanup.Stop()
	C.opus_decoder_destroy(d.st)
	d.st = nil
}

// PacketSamples returns the number of samples packet decodes to at 16 kHz
// (its duration), after checking the packet's structure: the table of
// contents and every frame length. It does not decode the audio, so a packet
// it accepts may still fail in Decode. Malformed packets return an error
// wrapping ErrBadPacket.
func PacketSamples(packet []byte) (int, error) {
	if len(packet) == 0 {
		return 0, fmt.Errorf("opus: samples of empty packet: %w", ErrBadPacket)
	}
	if len(packet) > math.MaxInt32 {
		return 0, fmt.Errorf("opus: samples of %d-byte packet: %w", len(packet), ErrBadPacket)
	}
	n := C.sb_packet_samples((*C.uchar)(unsafe.Pointer(&packet[0])), C.opus_int32(len(packet)), SampleRate)
	if n < 0 {
		return 0, fmt.Errorf("opus: samples of %d-byte packet: %w", len(packet), Error(n))
	}
	return int(n), nil
}
