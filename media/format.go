// Package media holds the buffer and format types that a bot touches: audio and video buffers
// taken from pools and handed back with Release, pixel formats and video formats. The service,
// the SDK and the internal codecs all speak these types; this package imports none of them.
package media

import "fmt"

// Audio constants of the platform: 16 kHz, 16-bit, mono, 20 ms frames.
const (
	SampleRate    = 16000
	FrameSamples  = 320 // samples in one 20 ms frame at 16 kHz
	FrameDuration = 20  // milliseconds
)

// PixelFormat names a raw picture layout. Every layout is tightly packed: planes follow each
// other with no padding, rows have no stride beyond their width.
type PixelFormat uint8

// Pixel formats.
const (
	PixelFormatUnknown PixelFormat = iota
	NV12                           // Y plane, then interleaved U,V at half resolution
	I420                           // Y plane, then U, then V, each at half resolution
	YUY2                           // packed 4:2:2, Y0 U Y1 V
	RGB24                          // packed, 3 bytes a pixel in memory order B, G, R (libyuv "RGB24")
	RGBA                           // packed, 4 bytes a pixel in memory order R, G, B, A (libyuv "ABGR")
)

var pixelFormatNames = [...]string{"unknown", "NV12", "I420", "YUY2", "RGB24", "RGBA"}

func (f PixelFormat) String() string {
	if int(f) < len(pixelFormatNames) {
		return pixelFormatNames[f]
	}
	return fmt.Sprintf("PixelFormat(%d)", uint8(f))
}

// FrameSize is the number of bytes one width×height picture takes in this format, or 0 for an
// unknown format or a non-positive size.
func (f PixelFormat) FrameSize(width, height int) int {
	if width <= 0 || height <= 0 {
		return 0
	}
	cw, ch := (width+1)/2, (height+1)/2
	switch f {
	case NV12, I420:
		return width*height + 2*cw*ch
	case YUY2:
		return 2 * cw * 2 * height
	case RGB24:
		return 3 * width * height
	case RGBA:
		return 4 * width * height
	}
	return 0
}

// Planes splits a tightly packed frame of this format into its planes and their strides (row
// lengths in bytes). Packed formats have one plane. It returns an error when buf is too small.
func (f PixelFormat) Planes(buf []byte, width, height int) (planes [3][]byte, strides [3]int, err error) {
	size := f.FrameSize(width, height)
	if size == 0 {
		return planes, strides, fmt.Errorf("media: no planes for %v at %dx%d", f, width, height)
	}
	if len(buf) < size {
		return planes, strides, fmt.Errorf("media: %v %dx%d needs %d bytes, have %d", f, width, height, size, len(buf))
	}
	cw, ch := (width+1)/2, (height+1)/2
	ySize := width * height
	switch f {
	case NV12:
		planes[0], strides[0] = buf[:ySize:ySize], width
		planes[1], strides[1] = buf[ySize:size:size], 2*cw
	case I420:
		planes[0], strides[0] = buf[:ySize:ySize], width
		planes[1], strides[1] = buf[ySize:ySize+cw*ch:ySize+cw*ch], cw
		planes[2], strides[2] = buf[ySize+cw*ch:size:size], cw
	case YUY2:
		planes[0], strides[0] = buf[:size:size], 4*cw
	case RGB24:
		planes[0], strides[0] = buf[:size:size], 3*width
	case RGBA:
		planes[0], strides[0] = buf[:size:size], 4*width
	}
	return planes, strides, nil
}

// VideoFormat is a pixel format at a size and frame rate, as a bot declares what it sends and as
// a received buffer describes itself.
type VideoFormat struct {
	PixelFormat PixelFormat
	Width       int
	Height      int
	FrameRate   float64
}

func (v VideoFormat) String() string {
	return fmt.Sprintf("%v_%dx%d_%gfps", v.PixelFormat, v.Width, v.Height, v.FrameRate)
}

// FrameSize is the number of bytes one frame of this format takes.
func (v VideoFormat) FrameSize() int { return v.PixelFormat.FrameSize(v.Width, v.Height) }

// Common video formats, landscape and portrait.
var (
	NV12_1280x720_30 = VideoFormat{NV12, 1280, 720, 30}
	NV12_640x360_30  = VideoFormat{NV12, 640, 360, 30}
	NV12_320x180_15  = VideoFormat{NV12, 320, 180, 15}
	NV12_720x1280_30 = VideoFormat{NV12, 720, 1280, 30}
	NV12_360x640_30  = VideoFormat{NV12, 360, 640, 30}
	NV12_180x320_15  = VideoFormat{NV12, 180, 320, 15}
)
