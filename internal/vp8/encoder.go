package vp8

/*
#cgo pkg-config: vpx
#include <stdlib.h>
#include "vpxbind.h"
*/
import "C"

import (
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/switchboard-rtc/switchboard/media"
)

// ClockRate is the RTP clock of VP8 (RFC 7741) and the unit of the encoder's timestamps.
const ClockRate = 90000

// EncoderConfig configures an Encoder. Zero values of the optional fields take their defaults.
type EncoderConfig struct {
	Width, Height    int     // picture size, 1..MaxDimension
	FrameRate        float64 // nominal frames a second, > 0; sets each frame's duration
	BitrateKbps      int     // target bitrate in kbit/s, > 0
	CPUUsed          int     // libvpx cpu-used, -16..16; 0 means 8 (fastest realtime)
	Threads          int     // encoder threads; 0 means 1
	KeyFrameInterval int     // most frames between automatic key frames; 0 means 3000
}

func (c *EncoderConfig) setDefaults() error {
	if c.CPUUsed == 0 {
		c.CPUUsed = 8
	}
	if c.Threads == 0 {
		c.Threads = 1
	}
	if c.KeyFrameInterval == 0 {
		c.KeyFrameInterval = 3000
	}
	switch {
	case c.Width < 1 || c.Width > MaxDimension || c.Height < 1 || c.Height > MaxDimension:
		return fmt.Errorf("%w: size %dx%d", ErrInvalidConfig, c.Width, c.Height)
	case !(c.FrameRate > 0 && c.FrameRate <= 1000):
		return fmt.Errorf("%w: frame rate %g", ErrInvalidConfig, c.FrameRate)
	case c.BitrateKbps <= 0 || c.BitrateKbps > 1_000_000:
		return fmt.Errorf("%w: bitrate %d kbit/s", ErrInvalidConfig, c.BitrateKbps)
	case c.CPUUsed < -16 || c.CPUUsed > 16:
		return fmt.Errorf("%w: cpu-used %d", ErrInvalidConfig, c.CPUUsed)
	case c.Threads < 1 || c.Threads > 64:
		return fmt.Errorf("%w: %d threads", ErrInvalidConfig, c.Threads)
	case c.KeyFrameInterval < 1:
		return fmt.Errorf("%w: key frame interval %d", ErrInvalidConfig, c.KeyFrameInterval)
	}
	return nil
}

// Encoder is a realtime VP8 encoder (libvpx, one pass CBR, no lag, error resilient) of packed
// I420 pictures of one size.
type Encoder struct {
	mu       sync.Mutex // serialises Close against the codec calls
	c        *C.sb_vp8_enc
	cfg      EncoderConfig
	size     int   // bytes of one input picture
	duration int64 // ticks of one frame at the nominal rate
	lastPTS  int64
	started  bool
	out      []byte // the last encoded frame, reused
}

// NewEncoder starts an encoder. Close it when done: it holds C memory.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	e := &Encoder{
		c:        (*C.sb_vp8_enc)(C.calloc(1, C.sizeof_sb_vp8_enc)),
		cfg:      cfg,
		size:     media.I420.FrameSize(cfg.Width, cfg.Height),
		duration: max(1, int64(math.Round(ClockRate/cfg.FrameRate))),
	}
	if e.c == nil {
		return nil, fmt.Errorf("%w: out of memory for a %dx%d encoder", ErrCodec, cfg.Width, cfg.Height)
	}
	fpsDen := 1000
	fpsNum := int(math.Round(cfg.FrameRate * float64(fpsDen)))
	rc := C.sb_vp8_enc_init(e.c, C.int(cfg.Width), C.int(cfg.Height), C.int(fpsNum), C.int(fpsDen),
		C.int(cfg.BitrateKbps), C.int(cfg.CPUUsed), C.int(cfg.Threads), C.int(cfg.KeyFrameInterval))
	if rc != C.VPX_CODEC_OK {
		err := e.codecError(rc)
		e.Close()
		return nil, fmt.Errorf("vp8: start encoder %dx%d at %d kbit/s: %w", cfg.Width, cfg.Height, cfg.BitrateKbps, err)
	}
	// Room for a generous key frame so that steady-state encoding never grows the buffer.
	e.out = make([]byte, 0, max(64<<10, e.size/4))
	return e, nil
}

// Config is the configuration the encoder runs with, defaults filled in and the current
// bitrate.
func (e *Encoder) Config() EncoderConfig { return e.cfg }

// Encode encodes one packed I420 picture of the encoder's size. pts is the picture's time in
// 90 kHz ticks (ClockRate) and must increase from call to call. forceKey asks for a key frame.
// The returned frame aliases the encoder's buffer and is valid until the next Encode; it is nil
// (and err nil) when the rate control dropped the picture.
func (e *Encoder) Encode(i420 []byte, pts int64, forceKey bool) (frame []byte, key bool, err error) {
	if len(i420) != e.size {
		return nil, false, fmt.Errorf("%w: encoder is %dx%d (%d bytes), picture has %d bytes",
			ErrFrameSize, e.cfg.Width, e.cfg.Height, e.size, len(i420))
	}
	if e.started && pts <= e.lastPTS {
		return nil, false, fmt.Errorf("%w: pts %d after %d", ErrTimestamp, pts, e.lastPTS)
	}
	planes, _, err := media.I420.Planes(i420, e.cfg.Width, e.cfg.Height)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrFrameSize, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c == nil {
		return nil, false, ErrClosed
	}
	force := C.int(0)
	if forceKey {
		force = 1
	}
	rc := C.sb_vp8_enc_encode(e.c, (*C.uint8_t)(unsafe.Pointer(&planes[0][0])),
		(*C.uint8_t)(unsafe.Pointer(&planes[1][0])), (*C.uint8_t)(unsafe.Pointer(&planes[2][0])),
		C.int64_t(pts), C.ulong(e.duration), force)
	if rc != C.VPX_CODEC_OK {
		return nil, false, fmt.Errorf("vp8: encode %dx%d picture at pts %d: %w", e.cfg.Width, e.cfg.Height, pts, e.codecError(rc))
	}
	e.started, e.lastPTS = true, pts
	e.out = e.out[:0]
	for C.sb_vp8_enc_next(e.c) != 0 {
		if e.c.out_len > 0 {
			e.out = append(e.out, unsafe.Slice((*byte)(unsafe.Pointer(e.c.out)), int(e.c.out_len))...)
		}
		key = key || e.c.out_key != 0
	}
	if len(e.out) == 0 {
		return nil, false, nil
	}
	return e.out, key, nil
}

// SetBitrate changes the target bitrate of the running encoder.
func (e *Encoder) SetBitrate(kbps int) error {
	if kbps <= 0 || kbps > 1_000_000 {
		return fmt.Errorf("%w: bitrate %d kbit/s", ErrInvalidConfig, kbps)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c == nil {
		return ErrClosed
	}
	if rc := C.sb_vp8_enc_set_bitrate(e.c, C.int(kbps)); rc != C.VPX_CODEC_OK {
		return fmt.Errorf("vp8: set bitrate %d kbit/s: %w", kbps, e.codecError(rc))
	}
	e.cfg.BitrateKbps = kbps
	return nil
}

// Close releases the encoder. It is idempotent; frames returned earlier stay readable.
func (e *Encoder) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c == nil {
		return
	}
	C.sb_vp8_enc_destroy(e.c)
	C.free(unsafe.Pointer(e.c))
	e.c = nil
}

func (e *Encoder) codecError(rc C.vpx_codec_err_t) error {
	return vpxError(rc, &e.c.ctx, ErrCodec)
}

// vpxError describes a libvpx error code with the context's message, wrapping kind.
func vpxError(rc C.vpx_codec_err_t, ctx *C.vpx_codec_ctx_t, kind error) error {
	msg := C.GoString(C.vpx_codec_err_to_string(rc))
	if ctx != nil {
		if detail := C.vpx_codec_error_detail(ctx); detail != nil {
			msg += ": " + C.GoString(detail)
		}
	}
	return fmt.Errorf("%w: libvpx: %s", kind, msg)
}
