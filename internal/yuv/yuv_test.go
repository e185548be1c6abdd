package yuv

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/switchboard-rtc/switchboard/media"
)

var formats = []media.PixelFormat{media.NV12, media.I420, media.YUY2, media.RGB24, media.RGBA}

// The test pictures are built so that a conversion can only lose rounding, never content:
//
//   - Each 2×2 block has one base colour, and its four pixels add a grey offset (the same amount
//     to R, G and B) to it. The BT.601 U and V weights of R, G and B each sum to zero, so a grey
//     offset changes Y only: the chroma of the four pixels is exactly the block's. Subsampling
//     chroma to 4:2:0 or 4:2:2 therefore averages four (or two) equal values and loses nothing.
//   - Every pixel's R, G and B lie well inside 0..255, so its limited-range Y, U and V lie inside
//     16..235 / 16..240 and convert back to RGB without clipping.
//   - Colours are moderately saturated (|U−128| and |V−128| below about 60). libyuv's BT.601
//     YUV→RGB matrix uses 2.0 for the U→B weight where the standard has 2.018 (so that it fits its
//     8-bit SIMD multipliers); that costs up to 0.018·|U−128|, about 2.4 levels of blue for the
//     most saturated colours, which is libyuv's error and not one the test can usefully bound.
//
// What is left is the rounding of each 8-bit step and libyuv's fixed-point matrices: ±2 levels
// for every pair, except the trip RGB → YUV → RGB, which gets ±3. libyuv's SIMD RGB→UV rows
// truncate instead of rounding (U and V come out up to one level low), and the YUV→RGB matrix
// multiplies U by 2 for blue, so blue alone can come back three levels low after a full
// ideal-rounding budget of Y.

// rgbAt is the reference colour of pixel (x, y): a smooth pattern with some noise per block, and a
// grey offset per pixel.
func rgbAt(x, y, w, h int) (r, g, b float64) {
	bx, by := x/2, y/2
	noise := func(i int) float64 { // a cheap hash of the block, in -1..1
		v := uint32(bx*73856093) ^ uint32(by*19349663) ^ uint32(i*83492791)
		v ^= v >> 13
		v *= 0x5bd1e995
		v ^= v >> 15
		return float64(v%2001)/1000 - 1
	}
	grey := 60 + 130*float64(bx+by)/float64((w+h)/2+2)
	r = grey + 30*math.Sin(float64(bx)/5) + 25*noise(1)
	g = grey + 30*math.Cos(float64(by)/4) + 25*noise(2)
	b = grey + 30*math.Sin(float64(bx+2*by)/6) + 25*noise(3)
	clamp := func(v float64) float64 { return math.Max(30, math.Min(225, v)) }
	r, g, b = clamp(r), clamp(g), clamp(b)
	d := float64(((x&1)+2*(y&1))*8 - 12) // -12, -4, 4, 12: grey offset, Y only
	return r + d, g + d, b + d
}

// yuvOf is BT.601 limited range.
func yuvOf(r, g, b float64) (y, u, v float64) {
	y = 16 + (65.481*r+128.553*g+24.966*b)/255
	u = 128 + (-37.797*r-74.203*g+112.0*b)/255
	v = 128 + (112.0*r-93.786*g-18.214*b)/255
	return y, u, v
}

func round8(v float64) byte { return byte(math.Max(0, math.Min(255, math.Round(v)))) }

// picture draws the reference picture in format f.
func picture(f media.PixelFormat, w, h int) []byte {
	buf := make([]byte, f.FrameSize(w, h))
	planes, strides, err := f.Planes(buf, w, h)
	if err != nil {
		panic(err)
	}
	for y := range h {
		for x := range w {
			r, g, b := rgbAt(x, y, w, h)
			yy, u, v := yuvOf(r, g, b)
			switch f {
			case media.RGB24:
				p := planes[0][y*strides[0]+3*x:]
				p[0], p[1], p[2] = round8(b), round8(g), round8(r)
			case media.RGBA:
				p := planes[0][y*strides[0]+4*x:]
				p[0], p[1], p[2], p[3] = round8(r), round8(g), round8(b), 255
			case media.I420:
				planes[0][y*strides[0]+x] = round8(yy)
				planes[1][y/2*strides[1]+x/2] = round8(u)
				planes[2][y/2*strides[2]+x/2] = round8(v)
			case media.NV12:
				planes[0][y*strides[0]+x] = round8(yy)
				planes[1][y/2*strides[1]+x/2*2] = round8(u)
				planes[1][y/2*strides[1]+x/2*2+1] = round8(v)
			case media.YUY2:
				p := planes[0][y*strides[0]+x/2*4:]
				p[(x&1)*2] = round8(yy)
				p[1], p[3] = round8(u), round8(v)
			}
		}
	}
	return buf
}

func isRGB(f media.PixelFormat) bool { return f == media.RGB24 || f == media.RGBA }

// maxDiff is the largest difference between two equally long byte slices, and where it is.
func maxDiff(a, b []byte) (diff, at int) {
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		if d > diff {
			diff, at = d, i
		}
	}
	return diff, at
}

func TestConvertRoundTrip(t *testing.T) {
	const w, h, tolerance = 64, 48, 2
	var c Converter
	for _, a := range formats {
		for _, b := range formats {
			if a == b {
				continue
			}
			t.Run(fmt.Sprintf("%v-%v", a, b), func(t *testing.T) {
				orig := picture(a, w, h)
				mid := make([]byte, b.FrameSize(w, h))
				back := make([]byte, a.FrameSize(w, h))
				if err := c.Convert(mid, b, orig, a, w, h); err != nil {
					t.Fatal(err)
				}
				if err := c.Convert(back, a, mid, b, w, h); err != nil {
					t.Fatal(err)
				}
				tolerance := tolerance
				if isRGB(a) && !isRGB(b) {
					tolerance = 3 // see the comment on rgbAt
				}
				if d, at := maxDiff(orig, back); d > tolerance {
					t.Errorf("%v → %v → %v: byte %d differs by %d (was %d, now %d)", a, b, a, at, d, orig[at], back[at])
				}
			})
		}
	}
}

// TestConvertMatchesReference checks every conversion against the reference picture drawn
// directly in the target format; unlike a round trip, this catches swapped channels or planes.
func TestConvertMatchesReference(t *testing.T) {
	const w, h, tolerance = 64, 48, 2
	for _, a := range formats {
		for _, b := range formats {
			t.Run(fmt.Sprintf("%v-%v", a, b), func(t *testing.T) {
				src, want := picture(a, w, h), picture(b, w, h)
				got := make([]byte, len(want))
				if err := Convert(got, b, src, a, w, h); err != nil {
					t.Fatal(err)
				}
				if d, at := maxDiff(want, got); d > tolerance {
					t.Errorf("%v → %v: byte %d differs by %d from the reference (want %d, got %d)", a, b, at, d, want[at], got[at])
				}
			})
		}
	}
}

// gradient is a smooth I420 picture: each plane a linear ramp in x and y.
func gradient(w, h int) []byte {
	buf := make([]byte, media.I420.FrameSize(w, h))
	planes, strides, _ := media.I420.Planes(buf, w, h)
	for y := range h {
		for x := range w {
			planes[0][y*strides[0]+x] = round8(gradY(float64(x), float64(y), w, h))
		}
	}
	for y := range (h + 1) / 2 {
		for x := range (w + 1) / 2 {
			u, v := gradUV(float64(x), float64(y), (w+1)/2, (h+1)/2)
			planes[1][y*strides[1]+x] = round8(u)
			planes[2][y*strides[2]+x] = round8(v)
		}
	}
	return buf
}

// The ramps stay inside the gamut (Y 60..180, U and V 110..146 give R, G and B within 14..228),
// so that the pictures survive a trip through RGB unclipped.
func gradY(x, y float64, w, h int) float64 { return 60 + 90*x/float64(w) + 30*y/float64(h) }
func gradUV(x, y float64, w, h int) (u, v float64) {
	return 110 + 36*x/float64(w), 146 - 36*y/float64(h)
}

func TestScaleGradient(t *testing.T) {
	const sw, sh, dw, dh = 1280, 720, 640, 360
	src := gradient(sw, sh)
	var c Converter
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			in := make([]byte, f.FrameSize(sw, sh))
			if err := c.Convert(in, f, src, media.I420, sw, sh); err != nil {
				t.Fatal(err)
			}
			out := make([]byte, f.FrameSize(dw, dh))
			if err := Scale(out, dw, dh, in, sw, sh, f); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, media.I420.FrameSize(dw, dh))
			if err := c.Convert(got, media.I420, out, f, dw, dh); err != nil {
				t.Fatal(err)
			}
			checkGradient(t, got, sw, sh, dw, dh)
		})
	}
}

// checkGradient compares a scaled gradient with the ramp sampled at the centre of each
// destination pixel's footprint in the source.
func checkGradient(t *testing.T, got []byte, sw, sh, dw, dh int) {
	t.Helper()
	const tolerance = 2.5 // rounding of the source, the filter and for RGB a round trip through RGB
	planes, strides, _ := media.I420.Planes(got, dw, dh)
	fx, fy := float64(sw)/float64(dw), float64(sh)/float64(dh)
	worst := 0.0
	for y := range dh {
		for x := range dw {
			want := gradY((float64(x)+0.5)*fx-0.5, (float64(y)+0.5)*fy-0.5, sw, sh)
			if d := math.Abs(float64(planes[0][y*strides[0]+x]) - want); d > worst {
				worst = d
			}
		}
	}
	cw, ch := (dw+1)/2, (dh+1)/2
	scw, sch := (sw+1)/2, (sh+1)/2
	for y := range ch {
		for x := range cw {
			wu, wv := gradUV((float64(x)+0.5)*fx-0.5, (float64(y)+0.5)*fy-0.5, scw, sch)
			du := math.Abs(float64(planes[1][y*strides[1]+x]) - wu)
			dv := math.Abs(float64(planes[2][y*strides[2]+x]) - wv)
			worst = math.Max(worst, math.Max(du, dv))
		}
	}
	if worst > tolerance {
		t.Errorf("scaled gradient differs from the ramp by up to %.2f (tolerance %.1f)", worst, tolerance)
	}
}

func TestConvertScale(t *testing.T) {
	const sw, sh = 1280, 720
	src := gradient(sw, sh)
	var c Converter
	for _, sf := range formats {
		in := make([]byte, sf.FrameSize(sw, sh))
		if err := c.Convert(in, sf, src, media.I420, sw, sh); err != nil {
			t.Fatal(err)
		}
		for _, df := range formats {
			for _, size := range [][2]int{{640, 360}, {sw, sh}} {
				t.Run(fmt.Sprintf("%v-%v-%dx%d", sf, df, size[0], size[1]), func(t *testing.T) {
					dw, dh := size[0], size[1]
					out := make([]byte, df.FrameSize(dw, dh))
					err := c.ConvertScale(out, media.VideoFormat{PixelFormat: df, Width: dw, Height: dh},
						in, media.VideoFormat{PixelFormat: sf, Width: sw, Height: sh})
					if err != nil {
						t.Fatal(err)
					}
					got := make([]byte, media.I420.FrameSize(dw, dh))
					if err := c.Convert(got, media.I420, out, df, dw, dh); err != nil {
						t.Fatal(err)
					}
					checkGradient(t, got, sw, sh, dw, dh)
				})
			}
		}
	}
	// Enlarging: 320x180 to 640x360 in every pair; the ramp is linear, so bilinear
	// interpolation reproduces it.
	small := gradient(320, 180)
	for _, sf := range formats {
		in := make([]byte, sf.FrameSize(320, 180))
		if err := c.Convert(in, sf, small, media.I420, 320, 180); err != nil {
			t.Fatal(err)
		}
		for _, df := range formats {
			t.Run(fmt.Sprintf("up-%v-%v", sf, df), func(t *testing.T) {
				out := make([]byte, df.FrameSize(640, 360))
				err := c.ConvertScale(out, media.VideoFormat{PixelFormat: df, Width: 640, Height: 360},
					in, media.VideoFormat{PixelFormat: sf, Width: 320, Height: 180})
				if err != nil {
					t.Fatal(err)
				}
				got := make([]byte, media.I420.FrameSize(640, 360))
				if err := c.Convert(got, media.I420, out, df, 640, 360); err != nil {
					t.Fatal(err)
				}
				checkUpscaled(t, got, 320, 180, 640, 360)
			})
		}
	}
}

// checkUpscaled compares an enlarged gradient with the ramp away from the borders, where
// interpolation has neighbours on both sides.
func checkUpscaled(t *testing.T, got []byte, sw, sh, dw, dh int) {
	t.Helper()
	planes, strides, _ := media.I420.Planes(got, dw, dh)
	fx, fy := float64(sw)/float64(dw), float64(sh)/float64(dh)
	worst := 0.0
	for y := 4; y < dh-4; y++ {
		for x := 4; x < dw-4; x++ {
			want := gradY((float64(x)+0.5)*fx-0.5, (float64(y)+0.5)*fy-0.5, sw, sh)
			worst = math.Max(worst, math.Abs(float64(planes[0][y*strides[0]+x])-want))
		}
	}
	// Rounding of the small source, interpolation, and for RGB pictures a trip through RGB.
	if worst > 3 {
		t.Errorf("enlarged gradient differs from the ramp by up to %.2f (tolerance 3)", worst)
	}
}

func TestErrors(t *testing.T) {
	ok := make([]byte, media.RGBA.FrameSize(16, 16))
	other := make([]byte, media.RGBA.FrameSize(16, 16))
	var c Converter
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"zero width", Convert(other, media.I420, ok, media.NV12, 0, 16), ErrSize},
		{"negative height", Convert(other, media.I420, ok, media.NV12, 16, -2), ErrSize},
		{"huge", Convert(other, media.I420, ok, media.NV12, MaxDimension+2, 2), ErrSize},
		{"unknown source", Convert(other, media.I420, ok, media.PixelFormatUnknown, 16, 16), ErrFormat},
		{"bad destination", Convert(other, media.PixelFormat(42), ok, media.I420, 16, 16), ErrFormat},
		{"short source", Convert(other, media.I420, ok[:100], media.NV12, 16, 16), ErrShortBuffer},
		{"short destination", Convert(other[:383], media.I420, ok, media.NV12, 16, 16), ErrShortBuffer},
		{"nil destination", c.Convert(nil, media.RGB24, ok, media.YUY2, 16, 16), ErrShortBuffer},
		{"overlap", Convert(ok[50:], media.I420, ok, media.NV12, 8, 8), ErrOverlap},
		{"scale zero", Scale(other, 0, 8, ok, 16, 16, media.I420), ErrSize},
		{"scale short", Scale(other[:10], 8, 8, ok, 16, 16, media.YUY2), ErrShortBuffer},
		{"scale unknown", Scale(other, 8, 8, ok, 16, 16, media.PixelFormatUnknown), ErrFormat},
		{"scale overlap", c.Scale(ok, 8, 8, ok, 16, 16, media.RGB24), ErrOverlap},
		{"convert-scale short", c.ConvertScale(other[:10], media.NV12_320x180_15, ok,
			media.VideoFormat{PixelFormat: media.RGBA, Width: 16, Height: 16}), ErrShortBuffer},
		{"convert-scale bad", c.ConvertScale(other, media.VideoFormat{PixelFormat: media.I420, Width: 8, Height: -8}, ok,
			media.VideoFormat{PixelFormat: media.RGBA, Width: 16, Height: 16}), ErrSize},
	}
	for _, tc := range cases {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		} else {
			t.Logf("%s: %v", tc.name, tc.err)
		}
	}
}

func TestZeroAllocations(t *testing.T) {
	const w, h = 320, 180
	var c Converter
	srcs := map[media.PixelFormat][]byte{}
	dsts := map[media.PixelFormat][]byte{}
	for _, f := range formats {
		srcs[f] = picture(f, w, h)
		dsts[f] = make([]byte, f.FrameSize(640, 360))
	}
	for _, a := range formats {
		for _, b := range formats {
			src, dst := srcs[a], dsts[b]
			run := func() {
				if err := c.Convert(dst, b, src, a, w, h); err != nil {
					t.Fatal(err)
				}
				if err := c.ConvertScale(dst, media.VideoFormat{PixelFormat: b, Width: 160, Height: 90},
					src, media.VideoFormat{PixelFormat: a, Width: w, Height: h}); err != nil {
					t.Fatal(err)
				}
				if err := c.ConvertScale(dst, media.VideoFormat{PixelFormat: b, Width: 640, Height: 360},
					src, media.VideoFormat{PixelFormat: a, Width: w, Height: h}); err != nil {
					t.Fatal(err)
				}
			}
			run() // grows the scratch pictures once
			if n := testing.AllocsPerRun(20, run); n != 0 {
				t.Errorf("%v → %v: %v allocations per conversion", a, b, n)
			}
			if direct(a, b) {
				if n := testing.AllocsPerRun(20, func() { _ = Convert(dst, b, src, a, w, h) }); n != 0 {
					t.Errorf("Convert %v → %v: %v allocations per conversion", a, b, n)
				}
			}
		}
		if scalesDirectly(a) {
			src, dst := srcs[a], dsts[a]
			if n := testing.AllocsPerRun(20, func() { _ = Scale(dst, 160, 90, src, w, h, a) }); n != 0 {
				t.Errorf("Scale %v: %v allocations per scale", a, n)
			}
		}
	}
}

func benchConvert(b *testing.B, from, to media.PixelFormat) {
	const w, h = 1280, 720
	src := picture(from, w, h)
	dst := make([]byte, to.FrameSize(w, h))
	var c Converter
	if err := c.Convert(dst, to, src, from, w, h); err != nil { // grows the scratch pictures
		b.Fatal(err)
	}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Convert(dst, to, src, from, w, h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConvert720pNV12ToI420(b *testing.B)  { benchConvert(b, media.NV12, media.I420) }
func BenchmarkConvert720pI420ToNV12(b *testing.B)  { benchConvert(b, media.I420, media.NV12) }
func BenchmarkConvert720pI420ToRGB24(b *testing.B) { benchConvert(b, media.I420, media.RGB24) }
func BenchmarkConvert720pRGB24ToI420(b *testing.B) { benchConvert(b, media.RGB24, media.I420) }
func BenchmarkConvert720pYUY2ToI420(b *testing.B)  { benchConvert(b, media.YUY2, media.I420) }
func BenchmarkConvert720pRGB24ToNV12(b *testing.B) { benchConvert(b, media.RGB24, media.NV12) }

func benchScale(b *testing.B, f media.PixelFormat) {
	src := picture(f, 1280, 720)
	dst := make([]byte, f.FrameSize(640, 360))
	var c Converter
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Scale(dst, 640, 360, src, 1280, 720, f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScale720pTo360pI420(b *testing.B) { benchScale(b, media.I420) }
func BenchmarkScale720pTo360pNV12(b *testing.B) { benchScale(b, media.NV12) }

func BenchmarkConvertScale720pRGB24To360pI420(b *testing.B) {
	src := picture(media.RGB24, 1280, 720)
	dst := make([]byte, media.I420.FrameSize(640, 360))
	var c Converter
	run := func() {
		err := c.ConvertScale(dst, media.VideoFormat{PixelFormat: media.I420, Width: 640, Height: 360},
			src, media.VideoFormat{PixelFormat: media.RGB24, Width: 1280, Height: 720})
		if err != nil {
			b.Fatal(err)
		}
	}
	run() // grows the scratch pictures
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
}
