package main

import (
	"math"
	"testing"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/media/nv12"
)

func TestRotation(t *testing.T) {
	pair := func(r rotation, u, v byte) (byte, byte) {
		uv := []byte{u, v}
		r.rotate(uv)
		return uv[0], uv[1]
	}
	for _, tc := range []struct {
		deg          float64
		u, v, wu, wv byte
	}{
		{0, 64, 192, 64, 192},
		{360, 64, 192, 64, 192},
		{180, 64, 192, 192, 64},
		{180, 128, 128, 128, 128}, // grey stays grey
		{90, 192, 128, 128, 192},  // +U turns to +V
		{-90, 192, 128, 128, 64},
		{180, 0, 0, 255, 255}, // clamped: 128+128 does not fit a byte
		{45, 255, 255, 128, 255},
	} {
		u, v := pair(newRotation(tc.deg), tc.u, tc.v)
		if u != tc.wu || v != tc.wv {
			t.Errorf("%v° of (%d,%d) = (%d,%d), want (%d,%d)", tc.deg, tc.u, tc.v, u, v, tc.wu, tc.wv)
		}
	}
	// Two turns of 90° are one of 180°, within rounding; the vector's length is kept.
	for u := 0; u < 256; u += 17 {
		for v := 0; v < 256; v += 13 {
			a1, a2 := pair(newRotation(90), byte(u), byte(v))
			a1, a2 = pair(newRotation(90), a1, a2)
			b1, b2 := pair(newRotation(180), byte(u), byte(v))
			if d1, d2 := int(a1)-int(b1), int(a2)-int(b2); d1 < -1 || d1 > 1 || d2 < -1 || d2 > 1 {
				t.Fatalf("(%d,%d): 90°+90° = (%d,%d), 180° = (%d,%d)", u, v, a1, a2, b1, b2)
			}
			c1, c2 := pair(newRotation(33), byte(u), byte(v))
			before := math.Hypot(float64(u-128), float64(v-128))
			after := math.Hypot(float64(int(c1)-128), float64(int(c2)-128))
			if before <= 127 && math.Abs(before-after) > 1.5 {
				t.Fatalf("(%d,%d): length %.1f became %.1f", u, v, before, after)
			}
		}
	}
	// An odd trailing byte is left alone, not a panic.
	odd := []byte{64, 192, 7}
	newRotation(180).rotate(odd)
	if odd[2] != 7 {
		t.Fatal("touched the odd byte")
	}
}

func TestApplyLeavesLuma(t *testing.T) {
	b := media.NewVideoBuffer(media.NV12_320x180_15)
	_ = nv12.FillRect(b, 0, 0, 320, 180, nv12.Color{Y: 77, U: 64, V: 192})
	newRotation(180).apply(b)
	p, _ := b.Planes()
	if p[0][1000] != 77 || p[1][10] != 192 || p[1][11] != 64 {
		t.Fatalf("Y %d U %d V %d", p[0][1000], p[1][10], p[1][11])
	}
}

func TestLabelPlacement(t *testing.T) {
	for _, h := range []int{180, 360, 720, 1280} {
		s := labelScale(h)
		x, y := labelOrigin(h)
		if s%2 != 0 || x%2 != 0 || y%2 != 0 || y+(nv12.GlyphHeight+1)*s > h {
			t.Errorf("height %d: scale %d at (%d,%d)", h, s, x, y)
		}
	}
	b := media.NewVideoBuffer(media.NV12_640x360_30)
	_ = nv12.FillRect(b, 0, 0, 640, 360, nv12.Gray)
	drawLabel(b, "Ann")
	drawLabel(b, "") // nothing, no panic
	p, _ := b.Planes()
	x, y := labelOrigin(360)
	if p[0][(y-2)*640+x-2] != nv12.Black.Y || p[0][10*640+300] != nv12.Gray.Y {
		t.Fatal("label box not where expected")
	}
}

func TestRotationAllocs(t *testing.T) {
	if media.DebugChecks {
		t.Skip("the checking builds' buffer checks are not what is measured")
	}
	b := media.NewVideoBuffer(media.NV12_640x360_30)
	r := newRotation(120)
	if n := testing.AllocsPerRun(20, func() { r.apply(b); drawLabel(b, "Someone Speaking") }); n != 0 {
		t.Fatalf("%v allocations per frame", n)
	}
}

// BenchmarkFrame is the bot's per-frame work at 640×360: the turn and the label.
func BenchmarkFrame(b *testing.B) {
	buf := media.NewVideoBuffer(media.NV12_640x360_30)
	r := newRotation(120)
	b.ReportAllocs()
	for b.Loop() {
		r.apply(buf)
		drawLabel(buf, "Someone Speaking")
	}
}
