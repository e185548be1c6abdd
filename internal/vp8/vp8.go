// Package vp8 is the VP8 video codec of the platform: a thin cgo binding of libvpx for realtime
// encoding and decoding of packed I420 pictures (the layout of media.I420), and the RTP side of
// VP8 (RFC 7741): an Assembler that turns a stream of RTP packets into complete frames and says
// when a key frame is needed, and a Packetizer that splits encoded frames into RTP payloads.
//
// Nothing here allocates per frame or per packet once warmed up. Encoders, decoders, assemblers
// and packetizers are not safe for concurrent use, except that Close may be called from any
// goroutine.
package vp8

import "errors"

// Sentinel errors that callers branch on. Returned errors wrap them with the details.
var (
	// ErrInvalidConfig reports an encoder configuration libvpx cannot run with.
	ErrInvalidConfig = errors.New("vp8: invalid configuration")
	// ErrFrameSize reports an input picture whose length is not that of a packed I420 picture
	// of the encoder's size.
	ErrFrameSize = errors.New("vp8: picture size mismatch")
	// ErrTimestamp reports a presentation timestamp that does not increase.
	ErrTimestamp = errors.New("vp8: timestamp does not increase")
	// ErrShortBuffer reports a destination too small for the decoded picture; the Decode call
	// that returns it also returns the picture's width and height, so the caller can size the
	// buffer with media.I420.FrameSize(width, height).
	ErrShortBuffer = errors.New("vp8: destination buffer too small")
	// ErrNeedKeyFrame reports that the decoder has no valid reference picture (nothing decoded
	// yet, or an earlier frame failed) and drops delta frames until a key frame arrives.
	ErrNeedKeyFrame = errors.New("vp8: key frame needed")
	// ErrCorrupt reports a frame that is empty, truncated or that libvpx rejected. The decoder
	// then needs a key frame.
	ErrCorrupt = errors.New("vp8: corrupt frame")
	// ErrCodec reports a libvpx failure that is not about the input data.
	ErrCodec = errors.New("vp8: codec failure")
	// ErrClosed reports use of a closed encoder or decoder.
	ErrClosed = errors.New("vp8: closed")
)

// MaxDimension is the largest width or height a VP8 frame header can carry.
const MaxDimension = 1<<14 - 1

// IsKeyFrame reports whether frame starts with the header of a VP8 key frame (RFC 6386 §9.1:
// frame tag with the key bit clear, then the start code 9d 01 2a).
func IsKeyFrame(frame []byte) bool {
	return len(frame) >= 10 && frame[0]&1 == 0 && frame[3] == 0x9d && frame[4] == 0x01 && frame[5] == 0x2a
}

// ParseKeyFrameSize reads the picture size from a key frame's header. ok is false when frame
// is not a key frame or carries a zero size. The two scaling bits of each dimension are ignored:
// they ask the renderer to upscale and do not change the decoded size.
func ParseKeyFrameSize(frame []byte) (width, height int, ok bool) {
	if !IsKeyFrame(frame) {
		return 0, 0, false
	}
	width = int(frame[6]) | int(frame[7]&0x3f)<<8
	height = int(frame[8]) | int(frame[9]&0x3f)<<8
	if width == 0 || height == 0 {
		return 0, 0, false
	}
	return width, height, true
}
