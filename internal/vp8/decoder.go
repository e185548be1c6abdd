package vp8

/*
#include <stdlib.h>
#include "vpxbind.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/switchboard-rtc/switchboard/media"
)

// Decoder decodes VP8 frames into packed I420 pictures. It starts needing a key frame, and
// needs one again after any frame that failed: until then it refuses delta frames with
// ErrNeedKeyFrame (the caller asks the sender for a key frame, e.g. with an RTCP PLI).
type Decoder struct {
	mu      sync.Mutex // serialises Close against the codec calls
	c       *C.sb_vp8_dec
	needKey bool
	width   int // size of the current reference pictures, valid when !needKey
	height  int
}

// NewDecoder starts a decoder. Close it when done: it holds C memory.
func NewDecoder() (*Decoder, error) {
	d := &Decoder{c: (*C.sb_vp8_dec)(C.calloc(1, C.sizeof_sb_vp8_dec)), needKey: true}
	if d.c == nil {
		return nil, fmt.Errorf("%w: out of memory for a decoder", ErrCodec)
	}
	if rc := C.sb_vp8_dec_init(d.c); rc != C.VPX_CODEC_OK {
		err := vpxError(rc, &d.c.ctx, ErrCodec)
		d.Close()
		return nil, fmt.Errorf("vp8: start decoder: %w", err)
	}
	return d, nil
}

// NeedKeyFrame reports whether the decoder will refuse delta frames until a key frame decodes.
func (d *Decoder) NeedKeyFrame() bool { return d.needKey }

// Decode decodes one complete VP8 frame into dst as a packed I420 picture and returns its size.
// dst must hold media.I420.FrameSize(width, height) bytes; otherwise Decode decodes nothing and
// returns ErrShortBuffer with the width and height the picture needs. A frame that decodes but
// shows no picture (a hidden frame) returns width and height 0 and a nil error.
//
// Errors: ErrNeedKeyFrame for a delta frame while the decoder has no valid reference,
// ErrCorrupt for an empty, truncated or rejected frame. After any error but ErrShortBuffer the
// decoder needs a key frame.
func (d *Decoder) Decode(frame []byte, dst []byte) (width, height int, err error) {
	if len(frame) == 0 {
		d.needKey = true
		return 0, 0, fmt.Errorf("%w: empty frame", ErrCorrupt)
	}
	key := frame[0]&1 == 0
	if key {
		w, h, ok := ParseKeyFrameSize(frame)
		if !ok {
			d.needKey = true
			return 0, 0, fmt.Errorf("%w: key frame of %d bytes has no valid header", ErrCorrupt, len(frame))
		}
		width, height = w, h
	} else {
		if d.needKey {
			return 0, 0, fmt.Errorf("%w: delta frame of %d bytes", ErrNeedKeyFrame, len(frame))
		}
		width, height = d.width, d.height
	}
	if need := media.I420.FrameSize(width, height); len(dst) < need {
		return width, height, fmt.Errorf("%w: %dx%d picture needs %d bytes, have %d", ErrShortBuffer, width, height, need, len(dst))
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.c == nil {
		return 0, 0, ErrClosed
	}
	rc := C.sb_vp8_dec_decode(d.c, (*C.uint8_t)(unsafe.Pointer(&frame[0])), C.size_t(len(frame)))
	if rc != C.VPX_CODEC_OK {
		d.needKey = true
		return 0, 0, fmt.Errorf("vp8: decode %d-byte %s frame: %w", len(frame), frameKind(key), vpxError(rc, &d.c.ctx, ErrCorrupt))
	}
	if d.c.corrupted != 0 {
		d.needKey = true
		return 0, 0, fmt.Errorf("%w: libvpx marked the %d-byte %s frame corrupted", ErrCorrupt, len(frame), frameKind(key))
	}
	if key {
		d.needKey = false
		d.width, d.height = width, height
	}
	img := d.c.img
	if img == nil {
		return 0, 0, nil
	}
	if int(img.d_w) != width || int(img.d_h) != height {
		// libvpx disagrees with the header we checked: never write past dst.
		d.needKey = true
		return 0, 0, fmt.Errorf("%w: picture %dx%d, header said %dx%d", ErrCorrupt, img.d_w, img.d_h, width, height)
	}
	planes, _, err := media.I420.Planes(dst, width, height)
	if err != nil {
		return width, height, fmt.Errorf("%w: %w", ErrShortBuffer, err)
	}
	C.sb_vp8_dec_copy(d.c, (*C.uint8_t)(unsafe.Pointer(&planes[0][0])),
		(*C.uint8_t)(unsafe.Pointer(&planes[1][0])), (*C.uint8_t)(unsafe.Pointer(&planes[2][0])))
	return width, height, nil
}

func frameKind(key bool) string {
	if key {
		return "key"
	}
	return "delta"
}

// Close releases the decoder. It is idempotent.
func (d *Decoder) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.c == nil {
		return
	}
	C.sb_vp8_dec_destroy(d.c)
	C.free(unsafe.Pointer(d.c))
	d.c = nil
}
