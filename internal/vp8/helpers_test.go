package vp8

import (
	"math"
	"testing"

	"github.com/switchboard-rtc/switchboard/media"
)

// drawPattern draws frame n of a moving test pattern into dst (packed I420 w×h): a diagonal
// luma gradient that drifts, colour gradients, a textured box that moves, and a row of bars
// that encode the frame counter in binary.
func drawPattern(dst []byte, w, h, n int) {
	planes, _, err := media.I420.Planes(dst, w, h)
	if err != nil {
		panic(err)
	}
	y, u, v := planes[0], planes[1], planes[2]
	cw, ch := (w+1)/2, (h+1)/2
	for r := range h {
		row := y[r*w : (r+1)*w]
		for c := range row {
			row[c] = byte(16 + (c+r+3*n)%440/2)
		}
	}
	for r := range ch {
		for c := range cw {
			u[r*cw+c] = byte(64 + (c*128)/cw)
			v[r*cw+c] = byte(64 + ((r+n)%ch*128)/ch)
		}
	}
	// Moving box with a checkerboard texture.
	bs := max(8, h/5)
	if bs >= w || bs >= h {
		bs = min(w, h) / 2
	}
	bx := (n * 7) % max(1, w-bs)
	by := (n * 4) % max(1, h-bs)
	for r := by; r < by+bs; r++ {
		for c := bx; c < bx+bs; c++ {
			if ((r-by)/8+(c-bx)/8)%2 == 0 {
				y[r*w+c] = 235
			} else {
				y[r*w+c] = 40
			}
		}
	}
	for r := by / 2; r < (by+bs)/2 && r < ch; r++ {
		for c := bx / 2; c < (bx+bs)/2 && c < cw; c++ {
			u[r*cw+c], v[r*cw+c] = 200, 60
		}
	}
	// Frame counter: 12 bars, bright for a set bit.
	barW, barH := max(2, w/32), max(2, h/24)
	for bit := range 12 {
		val := byte(16)
		if n>>bit&1 != 0 {
			val = 235
		}
		for r := range min(barH, h) {
			for c := bit * barW; c < (bit+1)*barW && c < w; c++ {
				y[r*w+c] = val
			}
		}
	}
}

// psnrY is the PSNR of the luma planes of two packed I420 pictures of width w and height h.
func psnrY(a, b []byte, w, h int) float64 {
	var sum float64
	for i := range w * h {
		d := float64(a[i]) - float64(b[i])
		sum += d * d
	}
	mse := sum / float64(w*h)
	if mse == 0 {
		return 100
	}
	return 10 * math.Log10(255*255/mse)
}

type encodedFrame struct {
	data []byte
	key  bool
	pts  int64
	n    int // picture number
}

// encodeSequence encodes count pictures of the moving pattern and returns copies of the frames
// (dropped pictures are left out). keyAt lists picture numbers to force as key frames.
func encodeSequence(t testing.TB, cfg EncoderConfig, count int, keyAt ...int) []encodedFrame {
	t.Helper()
	enc, err := NewEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	pic := make([]byte, media.I420.FrameSize(cfg.Width, cfg.Height))
	var out []encodedFrame
	for n := range count {
		drawPattern(pic, cfg.Width, cfg.Height, n)
		force := false
		for _, k := range keyAt {
			force = force || k == n
		}
		pts := int64(n) * 3000
		frame, key, err := enc.Encode(pic, pts, force)
		if err != nil {
			t.Fatalf("encode picture %d: %v", n, err)
		}
		if force && !key {
			t.Fatalf("picture %d: forced key frame came out as a delta frame", n)
		}
		if frame != nil {
			out = append(out, encodedFrame{data: append([]byte(nil), frame...), key: key, pts: pts, n: n})
		}
	}
	return out
}
