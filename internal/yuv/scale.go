package yuv

/*
#include <libyuv.h>
*/
import "C"

import (
	"fmt"

	"github.com/switchboard-rtc/switchboard/media"
)

// filter is the filter of every scale: libyuv's box filter averages when shrinking and falls back
// to bilinear interpolation when enlarging (and on NV12's interleaved chroma).
const filter = C.kFilterBox

// scalesDirectly reports whether libyuv scales format in place without an intermediate picture.
// libyuv's RGBScale allocates two ARGB pictures per call, so RGB24 goes through an RGBA picture
// held by the Converter instead.
func scalesDirectly(f media.PixelFormat) bool {
	return f == media.I420 || f == media.NV12 || f == media.RGBA
}

// Scale scales the srcW×srcH picture src into the dstW×dstH picture dst, both in format, with a
// box filter when shrinking and a bilinear one when enlarging. YUY2 goes through I420 and RGB24
// through RGBA, in pictures kept in c. dst must not overlap src.
func (c *Converter) Scale(dst []byte, dstW, dstH int, src []byte, srcW, srcH int, format media.PixelFormat) error {
	if err := checkScale(dst, dstW, dstH, src, srcW, srcH, format); err != nil {
		return err
	}
	if scalesDirectly(format) {
		return scale(dst, dstW, dstH, src, srcW, srcH, format)
	}
	via := media.I420
	if format == media.RGB24 {
		via = media.RGBA
	}
	a := grow(&c.stage, via.FrameSize(srcW, srcH))
	b := grow(&c.stage2, via.FrameSize(dstW, dstH))
	if err := convert(a, via, src, format, srcW, srcH); err != nil {
		return err
	}
	if err := scale(b, dstW, dstH, a, srcW, srcH, via); err != nil {
		return err
	}
	return convert(dst, format, b, via, dstW, dstH)
}

// checkScale validates the arguments of a scale.
func checkScale(dst []byte, dstW, dstH int, src []byte, srcW, srcH int, format media.PixelFormat) error {
	if err := checkPicture("source", format, src, srcW, srcH); err != nil {
		return fmt.Errorf("yuv: scale %v %dx%d to %dx%d: %w", format, srcW, srcH, dstW, dstH, err)
	}
	if err := checkPicture("destination", format, dst, dstW, dstH); err != nil {
		return fmt.Errorf("yuv: scale %v %dx%d to %dx%d: %w", format, srcW, srcH, dstW, dstH, err)
	}
	if overlap(dst[:format.FrameSize(dstW, dstH)], src[:format.FrameSize(srcW, srcH)]) {
		return fmt.Errorf("yuv: scale %v %dx%d to %dx%d: %w", format, srcW, srcH, dstW, dstH, ErrOverlap)
	}
	return nil
}

// ConvertScale converts and scales the picture src described by srcFormat into dst described by
// dstFormat in one call (frame rates are ignored), e.g. RGB24 1280×720 into I420 640×360 for a
// video sender. It does the scaling in whichever of the two pixel formats is cheaper to scale,
// and on the smaller picture where it can, using pictures kept in c. dst must not overlap src.
func (c *Converter) ConvertScale(dst []byte, dstFormat media.VideoFormat, src []byte, srcFormat media.VideoFormat) error {
	sf, sw, sh := srcFormat.PixelFormat, srcFormat.Width, srcFormat.Height
	df, dw, dh := dstFormat.PixelFormat, dstFormat.Width, dstFormat.Height
	if err := checkPicture("source", sf, src, sw, sh); err != nil {
		return fmt.Errorf("yuv: convert and scale %v to %v: %w", srcFormat, dstFormat, err)
	}
	if err := checkPicture("destination", df, dst, dw, dh); err != nil {
		return fmt.Errorf("yuv: convert and scale %v to %v: %w", srcFormat, dstFormat, err)
	}
	if sw == dw && sh == dh {
		return c.Convert(dst, df, src, sf, sw, sh)
	}
	if sf == df {
		return c.Scale(dst, dw, dh, src, sw, sh, sf)
	}
	if overlap(dst[:df.FrameSize(dw, dh)], src[:sf.FrameSize(sw, sh)]) {
		return fmt.Errorf("yuv: convert and scale %v to %v: %w", srcFormat, dstFormat, ErrOverlap)
	}
	shrink := dw*dh <= sw*sh
	switch {
	case shrink && scalesDirectly(sf):
		// Scale first, then convert the smaller picture.
		a := grow(&c.stage, sf.FrameSize(dw, dh))
		if err := scale(a, dw, dh, src, sw, sh, sf); err != nil {
			return err
		}
		return c.Convert(dst, df, a, sf, dw, dh)
	case !shrink && scalesDirectly(df):
		// Convert the smaller picture first, then scale it into dst.
		a := grow(&c.stage, df.FrameSize(sw, sh))
		if err := c.Convert(a, df, src, sf, sw, sh); err != nil {
			return err
		}
		return scale(dst, dw, dh, a, sw, sh, df)
	}
	// Neither side scales directly where it should: convert to I420, scale, convert.
	a := grow(&c.stage, media.I420.FrameSize(sw, sh))
	if err := c.Convert(a, media.I420, src, sf, sw, sh); err != nil {
		return err
	}
	if df == media.I420 {
		return scale(dst, dw, dh, a, sw, sh, media.I420)
	}
	b := grow(&c.stage2, media.I420.FrameSize(dw, dh))
	if err := scale(b, dw, dh, a, sw, sh, media.I420); err != nil {
		return err
	}
	return c.Convert(dst, df, b, media.I420, dw, dh)
}

// scale runs one direct libyuv scale; the pictures have been checked.
func scale(dst []byte, dstW, dstH int, src []byte, srcW, srcH int, format media.PixelFormat) error {
	sp, ss, _ := format.Planes(src, srcW, srcH)
	dp, ds, _ := format.Planes(dst, dstW, dstH)
	sw, sh, dw, dh := C.int(srcW), C.int(srcH), C.int(dstW), C.int(dstH)
	var rc C.int
	var name string
	switch format {
	case media.I420:
		name = "I420Scale"
		rc = C.I420Scale(ptr(sp[0]), C.int(ss[0]), ptr(sp[1]), C.int(ss[1]), ptr(sp[2]), C.int(ss[2]), sw, sh,
			ptr(dp[0]), C.int(ds[0]), ptr(dp[1]), C.int(ds[1]), ptr(dp[2]), C.int(ds[2]), dw, dh, filter)
	case media.NV12:
		name = "NV12Scale"
		rc = C.NV12Scale(ptr(sp[0]), C.int(ss[0]), ptr(sp[1]), C.int(ss[1]), sw, sh,
			ptr(dp[0]), C.int(ds[0]), ptr(dp[1]), C.int(ds[1]), dw, dh, filter)
	case media.RGBA:
		// ARGBScale treats the four bytes of a pixel alike, whatever their order.
		name = "ARGBScale"
		rc = C.ARGBScale(ptr(sp[0]), C.int(ss[0]), sw, sh, ptr(dp[0]), C.int(ds[0]), dw, dh, filter)
	default:
		return fmt.Errorf("yuv: no direct scale of %v: %w", format, ErrFormat)
	}
	if rc != 0 {
		return fmt.Errorf("yuv: libyuv %s %dx%d to %dx%d returned %d: %w", name, srcW, srcH, dstW, dstH, int(rc), ErrLibyuv)
	}
	return nil
}
