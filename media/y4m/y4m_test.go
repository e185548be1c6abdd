package y4m

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/media"
)

// pattern fills an NV12 buffer with a picture that depends on n.
func pattern(b *media.VideoBuffer, n int) {
	planes, strides := b.Planes()
	f := b.Format()
	for y := range f.Height {
		for x := range f.Width {
			planes[0][y*strides[0]+x] = byte(x + 3*y + 7*n)
		}
	}
	for i := range planes[1] {
		planes[1][i] = byte(i*5 + n)
	}
	if f.PixelFormat == media.I420 {
		for i := range planes[2] {
			planes[2][i] = byte(i*11 + n)
		}
	}
}

func writeStream(t testing.TB, pf media.PixelFormat, w, h, frames int) ([]byte, []*media.VideoBuffer) {
	t.Helper()
	var out bytes.Buffer
	wr, err := NewWriter(&out, media.VideoFormat{PixelFormat: pf, Width: w, Height: h, FrameRate: 30})
	if err != nil {
		t.Fatal(err)
	}
	var bufs []*media.VideoBuffer
	for i := range frames {
		b := media.NewVideoBuffer(media.VideoFormat{PixelFormat: pf, Width: w, Height: h, FrameRate: 30})
		pattern(b, i)
		if err := wr.WriteFrame(b); err != nil {
			t.Fatal(err)
		}
		bufs = append(bufs, b)
	}
	return out.Bytes(), bufs
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		write     media.PixelFormat
		read      media.PixelFormat
		w, h      int
		sameBytes bool
	}{
		{"NV12 to NV12", media.NV12, media.NV12, 64, 36, true},
		{"I420 to I420", media.I420, media.I420, 64, 36, true},
		{"odd size NV12", media.NV12, media.NV12, 33, 17, true},
		{"NV12 to I420", media.NV12, media.I420, 16, 8, false},
		{"I420 to NV12", media.I420, media.NV12, 2, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, bufs := writeStream(t, tc.write, tc.w, tc.h, 3)
			if !bytes.HasPrefix(data, []byte("YUV4MPEG2 W")) {
				t.Fatalf("header %q", data[:20])
			}
			r, err := NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if h := r.Header(); h.Width != tc.w || h.Height != tc.h || h.FrameRate() != 30 || h.Interlace != 'p' {
				t.Fatalf("header %+v", h)
			}
			dst := media.NewVideoBuffer(media.VideoFormat{PixelFormat: tc.read, Width: tc.w, Height: tc.h})
			for i := range bufs {
				if err := r.ReadFrame(dst); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				want := bufs[i]
				if !tc.sameBytes {
					want = media.NewVideoBuffer(dst.Format())
					pattern(want, i) // same luma; compare luma only
					n := tc.w * tc.h
					if !bytes.Equal(dst.Data()[:n], bufs[i].Data()[:n]) {
						t.Fatalf("frame %d: luma differs", i)
					}
					continue
				}
				if !bytes.Equal(dst.Data(), want.Data()) {
					t.Fatalf("frame %d differs", i)
				}
			}
			if err := r.ReadFrame(dst); err != io.EOF {
				t.Fatalf("after the last frame: %v", err)
			}
		})
	}
}

// TestChromaRoundTrip: NV12 written and read back as I420 has its U and V planes de-interleaved.
func TestChromaRoundTrip(t *testing.T) {
	const w, h = 6, 4
	src := media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.NV12, Width: w, Height: h})
	p, _ := src.Planes()
	for i := range p[1] {
		p[1][i] = byte(i) // U0 V0 U1 V1 ... = 0 1 2 3 ...
	}
	var out bytes.Buffer
	wr, _ := NewWriter(&out, src.Format())
	if err := wr.WriteFrame(src); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	dst := media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.I420, Width: w, Height: h})
	if err := r.ReadFrame(dst); err != nil {
		t.Fatal(err)
	}
	q, _ := dst.Planes()
	for i := range q[1] {
		if q[1][i] != byte(2*i) || q[2][i] != byte(2*i+1) {
			t.Fatalf("U %v V %v", q[1], q[2])
		}
	}
}

func TestHeaders(t *testing.T) {
	const frame = "FRAME\n" + "\x10\x10\x10\x10" + "\x80" + "\x80"
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"minimal", "YUV4MPEG2 W2 H2\n" + frame, nil},
		{"comments, params and mpeg2 siting", "YUV4MPEG2 W2 H2 F30000:1001 Ip A0:0 C420mpeg2 XYSCSS=420MPEG2 Zfuture\n" + "FRAME Ixyz\n\x10\x10\x10\x10\x80\x80", nil},
		{"double space", "YUV4MPEG2  W2 H2\n" + frame, nil},
		{"empty", "", ErrNotY4M},
		{"other magic", "RIFF1234WAVE\n", ErrNotY4M},
		{"no newline", "YUV4MPEG2 W2 H2", ErrNotY4M},
		{"444", "YUV4MPEG2 W2 H2 C444\n", ErrUnsupported},
		{"10-bit", "YUV4MPEG2 W2 H2 C420p10\n", ErrUnsupported},
		{"mono", "YUV4MPEG2 W2 H2 Cmono\n", ErrUnsupported},
		{"interlaced", "YUV4MPEG2 W2 H2 It\n", ErrUnsupported},
		{"huge", "YUV4MPEG2 W100000 H2\n", ErrUnsupported},
		{"zero width", "YUV4MPEG2 W0 H2\n", ErrMalformed},
		{"negative", "YUV4MPEG2 W-2 H2\n", ErrMalformed},
		{"no height", "YUV4MPEG2 W2\n", ErrMalformed},
		{"bad rate", "YUV4MPEG2 W2 H2 F30\n", ErrMalformed},
		{"long line", "YUV4MPEG2 W2 H2 X" + strings.Repeat("a", 70000) + "\n", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tc.in))
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("err %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			dst := media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.NV12, Width: 2, Height: 2})
			if err := r.ReadFrame(dst); err != nil {
				t.Fatal(err)
			}
			if dst.Data()[0] != 0x10 || dst.Data()[4] != 0x80 {
				t.Fatalf("frame %x", dst.Data())
			}
		})
	}
}

func TestFrameErrors(t *testing.T) {
	data, _ := writeStream(t, media.NV12, 8, 4, 2)
	dst := media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.NV12, Width: 8, Height: 4})

	// Cut inside the second frame: the first reads, the second is truncated.
	r, _ := NewReader(bytes.NewReader(data[:len(data)-5]))
	if err := r.ReadFrame(dst); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadFrame(dst); !errors.Is(err, ErrTruncated) {
		t.Fatalf("cut frame: %v", err)
	}
	// Cut inside a FRAME line.
	hdr := bytes.IndexByte(data, '\n') + 1
	r, _ = NewReader(bytes.NewReader(data[:hdr+3]))
	if err := r.ReadFrame(dst); !errors.Is(err, ErrTruncated) {
		t.Fatalf("cut FRAME line: %v", err)
	}
	// Garbage instead of FRAME.
	bad := append(bytes.Clone(data[:hdr]), "FRAMEX\n"...)
	r, _ = NewReader(bytes.NewReader(bad))
	if err := r.ReadFrame(dst); !errors.Is(err, ErrMalformed) {
		t.Fatalf("FRAMEX: %v", err)
	}
	// A buffer of another size or format.
	r, _ = NewReader(bytes.NewReader(data))
	for _, f := range []media.VideoFormat{{PixelFormat: media.NV12, Width: 4, Height: 4}, {PixelFormat: media.RGB24, Width: 8, Height: 4}} {
		if err := r.ReadFrame(media.NewVideoBuffer(f)); !errors.Is(err, ErrFormat) {
			t.Fatalf("read into %v: %v", f, err)
		}
	}
	w, _ := NewWriter(io.Discard, media.VideoFormat{Width: 8, Height: 4})
	if err := w.WriteFrame(media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.NV12, Width: 8, Height: 2})); !errors.Is(err, ErrFormat) {
		t.Fatalf("write another size: %v", err)
	}
	if _, err := NewWriter(io.Discard, media.VideoFormat{Width: 0, Height: 4}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("writer of width 0: %v", err)
	}
}

func TestRational(t *testing.T) {
	for _, tc := range []struct {
		fps      float64
		num, den int
	}{{30, 30, 1}, {15, 15, 1}, {29.97, 2997, 100}, {0, 30, 1}, {-1, 30, 1}, {12.5, 25, 2}} {
		if n, d := rational(tc.fps); n != tc.num || d != tc.den {
			t.Errorf("rational(%v) = %d:%d, want %d:%d", tc.fps, n, d, tc.num, tc.den)
		}
	}
}

// TestNoAllocs: reading and writing frames allocate nothing in the steady state.
func TestNoAllocs(t *testing.T) {
	if media.DebugChecks {
		t.Skip("the checking builds' buffer checks are not what is measured")
	}
	f := media.VideoFormat{PixelFormat: media.NV12, Width: 64, Height: 36, FrameRate: 30}
	b := media.NewVideoBuffer(f)
	w, _ := NewWriter(io.Discard, f)
	if n := testing.AllocsPerRun(100, func() { _ = w.WriteFrame(b) }); n != 0 {
		t.Errorf("WriteFrame: %v allocations", n)
	}
	data, _ := writeStream(t, media.NV12, 64, 36, 201)
	r, _ := NewReader(bytes.NewReader(data))
	_ = r.ReadFrame(b)
	if n := testing.AllocsPerRun(100, func() {
		if err := r.ReadFrame(b); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ReadFrame: %v allocations", n)
	}
}

func BenchmarkWriteNV12_640x360(b *testing.B) {
	f := media.VideoFormat{PixelFormat: media.NV12, Width: 640, Height: 360, FrameRate: 30}
	buf := media.NewVideoBuffer(f)
	w, _ := NewWriter(io.Discard, f)
	b.ReportAllocs()
	b.SetBytes(int64(f.FrameSize()))
	for b.Loop() {
		_ = w.WriteFrame(buf)
	}
}

func BenchmarkReadNV12_640x360(b *testing.B) {
	data, _ := writeStream(b, media.NV12, 640, 360, 4)
	f := media.VideoFormat{PixelFormat: media.NV12, Width: 640, Height: 360}
	buf := media.NewVideoBuffer(f)
	rd := bytes.NewReader(data)
	r, _ := NewReader(rd)
	b.ReportAllocs()
	b.SetBytes(int64(f.FrameSize()))
	for b.Loop() {
		if err := r.ReadFrame(buf); err == io.EOF {
			b.StopTimer() // start the stream again, outside the measurement
			rd.Reset(data)
			r, _ = NewReader(rd)
			_ = r.ReadFrame(buf)
			b.StartTimer()
		}
	}
}

// FuzzReader feeds hostile streams (seeded with real ones) to the reader: errors, never a
// panic, and never a frame buffer larger than the caller's.
func FuzzReader(f *testing.F) {
	nv, _ := writeStream(f, media.NV12, 6, 4, 2)
	f.Add(nv)
	odd, _ := writeStream(f, media.I420, 5, 3, 1)
	f.Add(odd)
	f.Add([]byte("YUV4MPEG2 W2 H2 F30000:1001 Ip A0:0 C420mpeg2 XYSCSS=420MPEG2\nFRAME Ixyz\n\x10\x10\x10\x10\x80\x80"))
	f.Add([]byte("YUV4MPEG2 W8192 H8192\nFRAME\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		h := r.Header()
		if h.Width <= 0 || h.Height <= 0 || h.Width > MaxDimension || h.Height > MaxDimension {
			t.Fatalf("accepted header %+v", h)
		}
		if h.Width*h.Height > 1<<16 {
			return // a real frame that large cannot be in a fuzz input; skip the allocation
		}
		for _, pf := range []media.PixelFormat{media.NV12, media.I420} {
			dst := media.NewVideoBuffer(media.VideoFormat{PixelFormat: pf, Width: h.Width, Height: h.Height})
			for range 4 {
				if err := r.ReadFrame(dst); err != nil {
					break
				}
			}
		}
	})
}
