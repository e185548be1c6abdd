package nv12

import (
	"errors"
	"image"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/media"
)

func frame(w, h int, c Color) *media.VideoBuffer {
	b := media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.NV12, Width: w, Height: h, FrameRate: 30})
	_ = FillRect(b, 0, 0, w, h, c)
	return b
}

// render returns the luma of (x, y) as '#' (ink) or '.'.
func render(b *media.VideoBuffer, x, y, w, h int) string {
	f := b.Format()
	var sb strings.Builder
	for row := y; row < y+h; row++ {
		for col := x; col < x+w; col++ {
			if b.Data()[row*f.Width+col] > 128 {
				sb.WriteByte('#')
			} else {
				sb.WriteByte('.')
			}
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

func TestDrawTextGlyphs(t *testing.T) {
	b := frame(40, 10, Black)
	if err := DrawText(b, 1, 1, "Hi", TextStyle{Color: White}); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"#...#..###.\n" +
		"#...#...#..\n" +
		"#...#...#..\n" +
		"#####...#..\n" +
		"#...#...#..\n" +
		"#...#...#..\n" +
		"#...#..###.\n"
	if got := render(b, 1, 1, 11, 7); got != want {
		t.Fatalf("got\n%swant\n%s", got, want)
	}
	// Lower case is upper case; unknown runes are '?'.
	a, q := frame(12, 8, Black), frame(12, 8, Black)
	_ = DrawText(a, 0, 0, "é", TextStyle{Color: White})
	_ = DrawText(q, 0, 0, "?", TextStyle{Color: White})
	if render(a, 0, 0, 12, 8) != render(q, 0, 0, 12, 8) {
		t.Fatal("an unknown rune is not drawn as '?'")
	}
}

func TestEveryGlyphHasFiveColumns(t *testing.T) {
	for r, rows := range glyphRows {
		for _, row := range rows {
			if len(row) != GlyphWidth || strings.Trim(row, ".#") != "" {
				t.Fatalf("glyph %q row %q", r, row)
			}
		}
	}
}

func TestDrawTextScaledWithBoxAndClipped(t *testing.T) {
	b := frame(64, 32, Gray)
	bg := Black
	if err := DrawText(b, 4, 4, "I", TextStyle{Scale: 2, Color: White, Background: &bg, Pad: 2}); err != nil {
		t.Fatal(err)
	}
	p, _ := b.Planes()
	at := func(x, y int) byte { return p[0][y*64+x] }
	if at(2, 2) != Black.Y || at(6, 4) != White.Y || at(7, 5) != White.Y || at(4, 4) != Black.Y {
		t.Fatalf("box or scaled ink wrong:\n%s", render(b, 0, 0, 20, 20))
	}
	if at(20, 20) != Gray.Y {
		t.Fatal("drew outside the box")
	}
	// Chroma under an even-aligned scale-2 stroke is the ink's.
	if p[1][2*(2*32+3)] != 128 {
		t.Fatal("chroma under the text")
	}
	// Text running off every edge is clipped, not a panic.
	for _, pos := range [][2]int{{-20, -20}, {60, 30}, {-3, 10}, {1 << 30, 1 << 30}} {
		if err := DrawText(b, pos[0], pos[1], "CLIPPED TEXT", TextStyle{Scale: 3, Color: White, Background: &bg, Pad: 4}); err != nil {
			t.Fatal(err)
		}
	}
	if w, h := TextSize("ab", 2); w != 22 || h != 14 {
		t.Fatalf("TextSize %dx%d", w, h)
	}
}

func TestWrongFormat(t *testing.T) {
	rgb := media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.RGB24, Width: 4, Height: 4})
	if err := DrawText(rgb, 0, 0, "x", TextStyle{}); !errors.Is(err, ErrFormat) {
		t.Fatal(err)
	}
	if err := Scale(frame(4, 4, Black), rgb); !errors.Is(err, ErrFormat) {
		t.Fatal(err)
	}
	if err := ToRGBA(image.NewRGBA(image.Rect(0, 0, 3, 4)), frame(4, 4, Black)); !errors.Is(err, ErrFormat) {
		t.Fatal(err)
	}
}

func TestScale(t *testing.T) {
	src := frame(8, 8, Black)
	_ = FillRect(src, 4, 0, 4, 8, White) // right half white
	_ = FillRect(src, 0, 4, 4, 4, FromRGB(255, 0, 0))
	for _, size := range [][2]int{{4, 4}, {16, 10}, {7, 3}, {2, 2}} {
		dst := media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.NV12, Width: size[0], Height: size[1]})
		if err := Scale(dst, src); err != nil {
			t.Fatal(err)
		}
		p, _ := dst.Planes()
		w := size[0]
		if p[0][0] != Black.Y || p[0][w-1] != White.Y {
			t.Fatalf("%v: top row %v", size, p[0][:w])
		}
	}
}

func TestToRGBA(t *testing.T) {
	for _, c := range [][3]uint8{{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}, {0, 0, 0}, {200, 120, 40}} {
		b := frame(4, 2, FromRGB(c[0], c[1], c[2]))
		img := image.NewRGBA(image.Rect(0, 0, 4, 2))
		if err := ToRGBA(img, b); err != nil {
			t.Fatal(err)
		}
		got := img.RGBAAt(3, 1)
		for i, v := range []uint8{got.R, got.G, got.B} {
			if d := int(v) - int(c[i]); d < -6 || d > 6 {
				t.Fatalf("RGB %v → YUV %v → RGB %v", c, FromRGB(c[0], c[1], c[2]), got)
			}
		}
	}
}

func TestNoAllocs(t *testing.T) {
	if media.DebugChecks {
		t.Skip("the checking builds' buffer checks are not what is measured")
	}
	b := frame(640, 360, Gray)
	small := frame(320, 180, Gray)
	img := image.NewRGBA(image.Rect(0, 0, 320, 180))
	bg := Black
	for name, f := range map[string]func(){
		"DrawText": func() {
			_ = DrawText(b, 10, 300, "Alice Example 12:34", TextStyle{Scale: 2, Color: White, Background: &bg, Pad: 4})
		},
		"Scale":  func() { _ = Scale(small, b) },
		"ToRGBA": func() { _ = ToRGBA(img, small) },
	} {
		if n := testing.AllocsPerRun(20, f); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
}

func BenchmarkDrawText(b *testing.B) {
	buf := frame(640, 360, Gray)
	bg := Black
	b.ReportAllocs()
	for b.Loop() {
		_ = DrawText(buf, 10, 300, "Alice Example 12:34", TextStyle{Scale: 2, Color: White, Background: &bg, Pad: 4})
	}
}

func BenchmarkScale640x360To320x180(b *testing.B) {
	src, dst := frame(640, 360, Gray), frame(320, 180, Gray)
	b.ReportAllocs()
	for b.Loop() {
		_ = Scale(dst, src)
	}
}

func BenchmarkToRGBA640x360(b *testing.B) {
	src := frame(640, 360, Gray)
	img := image.NewRGBA(image.Rect(0, 0, 640, 360))
	b.ReportAllocs()
	for b.Loop() {
		_ = ToRGBA(img, src)
	}
}
