// Package yuv converts and scales raw pictures between the pixel formats of package media (NV12,
// I420, YUY2, RGB24 and RGBA), through a thin cgo binding of libyuv.
//
// Every picture is tightly packed as media.PixelFormat.Planes describes. Sizes and buffer lengths
// are checked in Go before libyuv sees a pointer, so a bad size is an error, never an access
// outside a slice. The YUV ↔ RGB conversions use libyuv's BT.601 limited-range matrix both ways.
//
// Conversions that libyuv does in one routine need no memory of their own. The others go through
// an I420 picture held by a Converter, which keeps its scratch buffers between calls: a video path
// that converts every frame keeps one Converter and allocates nothing in the steady state.
package yuv

/*
#cgo LDFLAGS: -lyuv
#include <libyuv.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/switchboard-rtc/switchboard/media"
)

// MaxDimension is the largest width or height accepted, so that every byte count libyuv computes
// fits in a C int.
const MaxDimension = 16384

// Errors that callers may branch on; returned errors wrap one of them.
var (
	// ErrFormat reports a pixel format that is unknown or not supported by the operation.
	ErrFormat = errors.New("unsupported pixel format")
	// ErrSize reports a width or height that is not positive or is larger than MaxDimension.
	ErrSize = errors.New("bad picture size")
	// ErrShortBuffer reports a source or destination slice shorter than the picture it must hold.
	ErrShortBuffer = errors.New("buffer too short")
	// ErrOverlap reports a destination that shares memory with the source.
	ErrOverlap = errors.New("source and destination overlap")
	// ErrLibyuv reports a non-zero return code from libyuv.
	ErrLibyuv = errors.New("libyuv failed")
)

// Converter converts and scales pictures, keeping the intermediate pictures it needs between
// calls so that steady-state use allocates nothing. The zero value is ready to use. A Converter is
// not safe for concurrent use; give each goroutine its own.
type Converter struct {
	pivot  []byte // I420 intermediate of Convert
	stage  []byte // first intermediate of ConvertScale and Scale
	stage2 []byte // second intermediate of ConvertScale and Scale
}

// converters lends Converters to the package-level functions for the conversions that need an
// intermediate picture.
var converters = sync.Pool{New: func() any { return new(Converter) }}

// Convert converts one width×height picture src in srcFormat into dst in dstFormat. Pairs that
// libyuv converts directly need no scratch memory; the others borrow a Converter from a shared
// pool (no allocation per frame once it is warm; a hot path may keep its own Converter instead).
// dst must not overlap src.
func Convert(dst []byte, dstFormat media.PixelFormat, src []byte, srcFormat media.PixelFormat, width, height int) error {
	if err := checkConvert(dst, dstFormat, src, srcFormat, width, height); err != nil {
		return err
	}
	if direct(srcFormat, dstFormat) {
		return convert(dst, dstFormat, src, srcFormat, width, height)
	}
	c := converters.Get().(*Converter)
	err := c.Convert(dst, dstFormat, src, srcFormat, width, height)
	converters.Put(c)
	return err
}

// Scale scales the srcW×srcH picture src into the dstW×dstH picture dst, both in format, with a
// box filter when shrinking and a bilinear one when enlarging. I420, NV12 and RGBA scale directly;
// YUY2 (through I420) and RGB24 (through RGBA) use a Converter borrowed from a shared pool.
func Scale(dst []byte, dstW, dstH int, src []byte, srcW, srcH int, format media.PixelFormat) error {
	if err := checkScale(dst, dstW, dstH, src, srcW, srcH, format); err != nil {
		return err
	}
	if scalesDirectly(format) {
		return scale(dst, dstW, dstH, src, srcW, srcH, format)
	}
	c := converters.Get().(*Converter)
	err := c.Scale(dst, dstW, dstH, src, srcW, srcH, format)
	converters.Put(c)
	return err
}

// direct reports whether libyuv converts src to dst without an intermediate picture.
func direct(src, dst media.PixelFormat) bool {
	if src == dst {
		return true
	}
	switch src {
	case media.NV12:
		return dst != media.YUY2
	case media.I420:
		return true
	case media.YUY2:
		return dst == media.I420 || dst == media.NV12
	case media.RGB24:
		return dst == media.I420 || dst == media.RGBA
	case media.RGBA:
		return dst != media.YUY2
	}
	return false
}

// Convert converts one width×height picture src in srcFormat into dst in dstFormat, through an
// I420 picture kept in c where libyuv has no direct routine. dst must not overlap src.
func (c *Converter) Convert(dst []byte, dstFormat media.PixelFormat, src []byte, srcFormat media.PixelFormat, width, height int) error {
	if err := checkConvert(dst, dstFormat, src, srcFormat, width, height); err != nil {
		return err
	}
	if direct(srcFormat, dstFormat) {
		return convert(dst, dstFormat, src, srcFormat, width, height)
	}
	pivot := grow(&c.pivot, media.I420.FrameSize(width, height))
	if err := convert(pivot, media.I420, src, srcFormat, width, height); err != nil {
		return err
	}
	return convert(dst, dstFormat, pivot, media.I420, width, height)
}

// checkConvert validates the arguments of a conversion.
func checkConvert(dst []byte, dstFormat media.PixelFormat, src []byte, srcFormat media.PixelFormat, width, height int) error {
	if err := checkPicture("source", srcFormat, src, width, height); err != nil {
		return fmt.Errorf("yuv: convert %v %dx%d to %v: %w", srcFormat, width, height, dstFormat, err)
	}
	if err := checkPicture("destination", dstFormat, dst, width, height); err != nil {
		return fmt.Errorf("yuv: convert %v %dx%d to %v: %w", srcFormat, width, height, dstFormat, err)
	}
	if overlap(dst[:dstFormat.FrameSize(width, height)], src[:srcFormat.FrameSize(width, height)]) {
		return fmt.Errorf("yuv: convert %v %dx%d to %v: %w", srcFormat, width, height, dstFormat, ErrOverlap)
	}
	return nil
}

// checkPicture validates one picture's format, size and buffer length.
func checkPicture(role string, f media.PixelFormat, buf []byte, width, height int) error {
	if f.FrameSize(1, 1) == 0 {
		return fmt.Errorf("%s format %v: %w", role, f, ErrFormat)
	}
	if width <= 0 || height <= 0 || width > MaxDimension || height > MaxDimension {
		return fmt.Errorf("%s size %dx%d: %w", role, width, height, ErrSize)
	}
	if need := f.FrameSize(width, height); len(buf) < need {
		return fmt.Errorf("%s %v %dx%d has %d bytes, needs %d: %w", role, f, width, height, len(buf), need, ErrShortBuffer)
	}
	return nil
}

// overlap reports whether two non-empty slices share memory.
func overlap(a, b []byte) bool {
	pa, pb := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return pa < pb+uintptr(len(b)) && pb < pa+uintptr(len(a))
}

// grow returns (*b)[:n], replacing *b with a larger slice when its capacity is short.
func grow(b *[]byte, n int) []byte {
	if cap(*b) < n {
		*b = make([]byte, n)
	}
	return (*b)[:n]
}

// ptr is the C view of a plane's first byte; planes are never empty once checked.
func ptr(b []byte) *C.uint8_t { return (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(b))) }

// result turns a libyuv return code into an error.
func result(name string, rc C.int, width, height int) error {
	if rc != 0 {
		return fmt.Errorf("yuv: libyuv %s at %dx%d returned %d: %w", name, width, height, int(rc), ErrLibyuv)
	}
	return nil
}

// convert runs one direct conversion; the pictures have been checked.
func convert(dst []byte, dstFormat media.PixelFormat, src []byte, srcFormat media.PixelFormat, width, height int) error {
	sp, ss, _ := srcFormat.Planes(src, width, height)
	dp, ds, _ := dstFormat.Planes(dst, width, height)
	w, h := C.int(width), C.int(height)
	if srcFormat == dstFormat {
		copy(dst, src[:srcFormat.FrameSize(width, height)])
		return nil
	}
	var rc C.int
	var name string
	switch srcFormat {
	case media.NV12:
		switch dstFormat {
		case media.I420:
			name = "NV12ToI420"
			rc = C.NV12ToI420(ptr(sp[0]), C.int(ss[0]), ptr(sp[1]), C.int(ss[1]),
				ptr(dp[0]), C.int(ds[0]), ptr(dp[1]), C.int(ds[1]), ptr(dp[2]), C.int(ds[2]), w, h)
		case media.RGB24:
			name = "NV12ToRGB24"
			rc = C.NV12ToRGB24(ptr(sp[0]), C.int(ss[0]), ptr(sp[1]), C.int(ss[1]), ptr(dp[0]), C.int(ds[0]), w, h)
		case media.RGBA:
			name = "NV12ToABGR"
			rc = C.NV12ToABGR(ptr(sp[0]), C.int(ss[0]), ptr(sp[1]), C.int(ss[1]), ptr(dp[0]), C.int(ds[0]), w, h)
		}
	case media.I420:
		switch dstFormat {
		case media.NV12:
			name = "I420ToNV12"
			rc = C.I420ToNV12(ptr(sp[0]), C.int(ss[0]), ptr(sp[1]), C.int(ss[1]), ptr(sp[2]), C.int(ss[2]),
				ptr(dp[0]), C.int(ds[0]), ptr(dp[1]), C.int(ds[1]), w, h)
		case media.YUY2:
			name = "I420ToYUY2"
			rc = C.I420ToYUY2(ptr(sp[0]), C.int(ss[0]), ptr(sp[1]), C.int(ss[1]), ptr(sp[2]), C.int(ss[2]),
				ptr(dp[0]), C.int(ds[0]), w, h)
		case media.RGB24:
			name = "I420ToRGB24"
			rc = C.I420ToRGB24(ptr(sp[0]), C.int(ss[0]), ptr(sp[1]), C.int(ss[1]), ptr(sp[2]), C.int(ss[2]),
				ptr(dp[0]), C.int(ds[0]), w, h)
		case media.RGBA:
			name = "I420ToABGR"
			rc = C.I420ToABGR(ptr(sp[0]), C.int(ss[0]), ptr(sp[1]), C.int(ss[1]), ptr(sp[2]), C.int(ss[2]),
				ptr(dp[0]), C.int(ds[0]), w, h)
		}
	case media.YUY2:
		switch dstFormat {
		case media.I420:
			name = "YUY2ToI420"
			rc = C.YUY2ToI420(ptr(sp[0]), C.int(ss[0]),
				ptr(dp[0]), C.int(ds[0]), ptr(dp[1]), C.int(ds[1]), ptr(dp[2]), C.int(ds[2]), w, h)
		case media.NV12:
			name = "YUY2ToNV12"
			rc = C.YUY2ToNV12(ptr(sp[0]), C.int(ss[0]), ptr(dp[0]), C.int(ds[0]), ptr(dp[1]), C.int(ds[1]), w, h)
		}
	case media.RGB24:
		switch dstFormat {
		case media.I420:
			name = "RGB24ToI420"
			rc = C.RGB24ToI420(ptr(sp[0]), C.int(ss[0]),
				ptr(dp[0]), C.int(ds[0]), ptr(dp[1]), C.int(ds[1]), ptr(dp[2]), C.int(ds[2]), w, h)
		case media.RGBA:
			// libyuv's RAW is R,G,B in memory and its ARGB is B,G,R,A: read through those names,
			// B,G,R in memory (RGB24) becomes R,G,B,A in memory (our RGBA).
			name = "RAWToARGB"
			rc = C.RAWToARGB(ptr(sp[0]), C.int(ss[0]), ptr(dp[0]), C.int(ds[0]), w, h)
		}
	case media.RGBA:
		switch dstFormat {
		case media.I420:
			name = "ABGRToI420"
			rc = C.ABGRToI420(ptr(sp[0]), C.int(ss[0]),
				ptr(dp[0]), C.int(ds[0]), ptr(dp[1]), C.int(ds[1]), ptr(dp[2]), C.int(ds[2]), w, h)
		case media.NV12:
			name = "ABGRToNV12"
			rc = C.ABGRToNV12(ptr(sp[0]), C.int(ss[0]), ptr(dp[0]), C.int(ds[0]), ptr(dp[1]), C.int(ds[1]), w, h)
		case media.RGB24:
			// The mirror of RAWToARGB above: R,G,B,A in memory becomes B,G,R.
			name = "ARGBToRAW"
			rc = C.ARGBToRAW(ptr(sp[0]), C.int(ss[0]), ptr(dp[0]), C.int(ds[0]), w, h)
		}
	}
	if name == "" {
		return fmt.Errorf("yuv: no direct conversion from %v to %v: %w", srcFormat, dstFormat, ErrFormat)
	}
	return result(name, rc, width, height)
}
