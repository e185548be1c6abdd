// Package nv12 draws on and converts NV12 frames, the pixel format a bot receives video in, in
// plain Go: text in a small built-in bitmap font (captions, names, clocks), filled boxes,
// nearest-neighbour scaling, and conversion to RGBA for snapshots.
//
// It is meant for overlays and occasional conversions. What a bot sends need not be scaled by
// hand: a VideoSocket converts and scales every frame to its preferred format itself. Every
// function works in place on the caller's buffers and allocates nothing.
package nv12

import (
	"errors"
	"fmt"
	"image"
	"unicode/utf8"

	"github.com/switchboard-rtc/switchboard/media"
)

// Size of a glyph of the built-in font at scale 1, in pixels, and the advance from one
// character to the next.
const (
	GlyphWidth  = 5
	GlyphHeight = 7
	Advance     = GlyphWidth + 1
)

// ErrFormat reports a buffer that is not NV12 (or, for Scale, an empty one).
var ErrFormat = errors.New("nv12: buffer is not an NV12 frame")

// Color is a colour in limited-range BT.601 YUV, as NV12 stores it.
type Color struct{ Y, U, V uint8 }

// Colours for text and boxes.
var (
	White = Color{235, 128, 128}
	Black = Color{16, 128, 128}
	Gray  = Color{126, 128, 128}
)

// TextStyle says how DrawText draws.
type TextStyle struct {
	// Scale multiplies the glyphs' size; 0 means 1. Even scales at even positions cover whole
	// chroma samples, so the text's colour is exact.
	Scale int
	// Color is the ink.
	Color Color
	// Background, when set, is the colour of a box behind the text, Pad pixels wider on each
	// side.
	Background *Color
	// Pad is the box's margin in pixels.
	Pad int
}

func check(b *media.VideoBuffer) (media.VideoFormat, error) {
	f := b.Format()
	if f.PixelFormat != media.NV12 || f.Width <= 0 || f.Height <= 0 {
		return f, fmt.Errorf("%w: %v", ErrFormat, f)
	}
	return f, nil
}

// TextSize is the size DrawText covers for text at scale (box padding not included).
func TextSize(text string, scale int) (w, h int) {
	scale = max(scale, 1)
	n := utf8.RuneCountInString(text)
	if n == 0 {
		return 0, 0
	}
	return (n*Advance - 1) * scale, GlyphHeight * scale
}

// DrawText draws text with its top-left corner at (x, y), clipped to the frame. Lower-case
// letters are drawn as upper-case, characters the font lacks as '?'.
func DrawText(b *media.VideoBuffer, x, y int, text string, s TextStyle) error {
	f, err := check(b)
	if err != nil {
		return err
	}
	scale := max(s.Scale, 1)
	planes, _ := b.Planes()
	if s.Background != nil {
		w, h := TextSize(text, scale)
		fillRect(planes, f, x-s.Pad, y-s.Pad, w+2*s.Pad, h+2*s.Pad, *s.Background)
	}
	cx := x
	for _, r := range text {
		g := glyph(r)
		for gy := range GlyphHeight {
			bits := g[gy]
			if bits == 0 {
				continue
			}
			for gx := range GlyphWidth {
				if bits&(1<<(GlyphWidth-1-gx)) != 0 {
					fillRect(planes, f, cx+gx*scale, y+gy*scale, scale, scale, s.Color)
				}
			}
		}
		cx += Advance * scale
	}
	return nil
}

// FillRect fills the w×h rectangle at (x, y), clipped to the frame.
func FillRect(b *media.VideoBuffer, x, y, w, h int, c Color) error {
	f, err := check(b)
	if err != nil {
		return err
	}
	planes, _ := b.Planes()
	fillRect(planes, f, x, y, w, h, c)
	return nil
}

func fillRect(planes [3][]byte, f media.VideoFormat, x, y, w, h int, c Color) {
	x0, y0 := max(x, 0), max(y, 0)
	x1, y1 := min(x+w, f.Width), min(y+h, f.Height)
	if x0 >= x1 || y0 >= y1 {
		return
	}
	luma := planes[0]
	for row := y0; row < y1; row++ {
		line := luma[row*f.Width+x0 : row*f.Width+x1]
		for i := range line {
			line[i] = c.Y
		}
	}
	cw := (f.Width + 1) / 2
	uv := planes[1]
	for row := y0 / 2; row <= (y1-1)/2; row++ {
		for col := x0 / 2; col <= (x1-1)/2; col++ {
			uv[2*(row*cw+col)], uv[2*(row*cw+col)+1] = c.U, c.V
		}
	}
}

// Scale fills dst with src scaled to dst's size (nearest neighbour), both NV12.
func Scale(dst, src *media.VideoBuffer) error {
	df, err := check(dst)
	if err != nil {
		return err
	}
	sf, err := check(src)
	if err != nil {
		return err
	}
	dp, _ := dst.Planes()
	sp, _ := src.Planes()
	for y := range df.Height {
		sy := y * sf.Height / df.Height
		drow := dp[0][y*df.Width : (y+1)*df.Width]
		srow := sp[0][sy*sf.Width : (sy+1)*sf.Width]
		for x := range drow {
			drow[x] = srow[x*sf.Width/df.Width]
		}
	}
	dcw, dch := (df.Width+1)/2, (df.Height+1)/2
	scw, sch := (sf.Width+1)/2, (sf.Height+1)/2
	for y := range dch {
		sy := y * sch / dch
		drow := dp[1][2*y*dcw : 2*(y+1)*dcw]
		srow := sp[1][2*sy*scw : 2*(sy+1)*scw]
		for x := range dcw {
			sx := x * scw / dcw
			drow[2*x], drow[2*x+1] = srow[2*sx], srow[2*sx+1]
		}
	}
	return nil
}

// ToRGBA converts src into dst (BT.601, limited range, as cameras and VP8 use). dst must have
// src's size.
func ToRGBA(dst *image.RGBA, src *media.VideoBuffer) error {
	f, err := check(src)
	if err != nil {
		return err
	}
	if dst.Rect.Dx() != f.Width || dst.Rect.Dy() != f.Height {
		return fmt.Errorf("nv12: convert %v into a %v image: %w", f, dst.Rect.Size(), ErrFormat)
	}
	p, _ := src.Planes()
	cw := (f.Width + 1) / 2
	for y := range f.Height {
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*f.Width]
		luma := p[0][y*f.Width : (y+1)*f.Width]
		chroma := p[1][2*(y/2)*cw:]
		for x := range f.Width {
			c := 298 * (int32(luma[x]) - 16)
			d := int32(chroma[2*(x/2)]) - 128
			e := int32(chroma[2*(x/2)+1]) - 128
			o := out[4*x : 4*x+4 : 4*x+4]
			o[0] = clamp((c + 409*e + 128) >> 8)
			o[1] = clamp((c - 100*d - 208*e + 128) >> 8)
			o[2] = clamp((c + 516*d + 128) >> 8)
			o[3] = 255
		}
	}
	return nil
}

func clamp(v int32) uint8 {
	return uint8(min(max(v, 0), 255))
}

// FromRGB is the limited-range BT.601 colour of an RGB triple.
func FromRGB(r, g, b uint8) Color {
	R, G, B := int32(r), int32(g), int32(b)
	return Color{
		Y: uint8((66*R+129*G+25*B+128)>>8 + 16),
		U: uint8((-38*R-74*G+112*B+128)>>8 + 128),
		V: uint8((112*R-94*G-18*B+128)>>8 + 128),
	}
}
