package yuv

import (
	"os"
	"syscall"
	"testing"

	"github.com/switchboard-rtc/switchboard/media"
)

// guarded returns an n-byte slice that touches an inaccessible page: right after its last byte
// (atEnd) or right before its first. A read or write by libyuv outside the slice on that side
// crashes the test instead of passing silently.
func guarded(t *testing.T, n int, atEnd bool) []byte {
	t.Helper()
	page := os.Getpagesize()
	data := (n + page - 1) / page * page
	mem, err := syscall.Mmap(-1, 0, data+page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Munmap(mem) })
	if atEnd {
		if err := syscall.Mprotect(mem[data:], syscall.PROT_NONE); err != nil {
			t.Fatal(err)
		}
		return mem[data-n : data : data]
	}
	if err := syscall.Mprotect(mem[:page], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	return mem[page : page+n : page+n]
}

// TestStaysInBounds runs every conversion and scale at awkward sizes (odd, one pixel, one row,
// one column) on buffers of exactly FrameSize bytes between guard pages.
func TestStaysInBounds(t *testing.T) {
	sizes := [][2]int{{1, 1}, {2, 2}, {3, 3}, {5, 7}, {33, 17}, {64, 1}, {1, 64}, {17, 2}, {2, 17}, {127, 45}}
	var c Converter
	for _, atEnd := range []bool{true, false} {
		for _, size := range sizes {
			w, h := size[0], size[1]
			for _, a := range formats {
				src := guarded(t, a.FrameSize(w, h), atEnd)
				for i := range src {
					src[i] = byte(i*7 + 16)
				}
				for _, b := range formats {
					dst := guarded(t, b.FrameSize(w, h), atEnd)
					if err := c.Convert(dst, b, src, a, w, h); err != nil {
						t.Errorf("%v → %v at %dx%d: %v", a, b, w, h, err)
					}
					if err := Convert(dst, b, src, a, w, h); err != nil {
						t.Errorf("%v → %v at %dx%d: %v", a, b, w, h, err)
					}
					for _, to := range sizes {
						dst := guarded(t, b.FrameSize(to[0], to[1]), atEnd)
						err := c.ConvertScale(dst, media.VideoFormat{PixelFormat: b, Width: to[0], Height: to[1]},
							src, media.VideoFormat{PixelFormat: a, Width: w, Height: h})
						if err != nil {
							t.Errorf("%v %dx%d → %v %dx%d: %v", a, w, h, b, to[0], to[1], err)
						}
					}
				}
			}
		}
	}
	t.Logf("%d sizes, guard pages on both sides: no fault", len(sizes))
}
