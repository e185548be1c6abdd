// Package y4m reads and writes YUV4MPEG2 (".y4m") video: a text header, then raw 8-bit 4:2:0
// frames, each after a "FRAME" line. It is the simplest file format that ffplay, mpv, ffmpeg
// and vpxenc play or take as they are, so a bot can record the NV12 frames it receives without
// an encoder, and play a raw clip into a call.
//
// The package speaks the media package's buffers: a Writer takes NV12 or I420 VideoBuffers
// (and writes I420, as the format wants), a Reader fills them. A Y4M file needs no trailer or
// index: a file whose writer died holds every whole frame written before, and a Reader returns
// them and then reports the cut-off frame with ErrTruncated.
package y4m

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/switchboard-rtc/switchboard/media"
)

// Limits on what a Reader accepts.
const (
	// MaxDimension is the largest width or height a Reader accepts.
	MaxDimension = 8192
	// maxLine is the longest header or frame line, parameters included.
	maxLine = 4096
)

const (
	magic      = "YUV4MPEG2"
	frameMagic = "FRAME"
)

// Errors that callers may branch on; returned errors wrap one of them.
var (
	// ErrNotY4M reports input that does not start with a YUV4MPEG2 header.
	ErrNotY4M = errors.New("not a YUV4MPEG2 stream")
	// ErrUnsupported reports a stream other than 8-bit 4:2:0 progressive, or of a size out of
	// bounds.
	ErrUnsupported = errors.New("unsupported YUV4MPEG2 stream")
	// ErrMalformed reports a header or frame line that does not parse.
	ErrMalformed = errors.New("malformed YUV4MPEG2 stream")
	// ErrTruncated reports a frame cut short at the end of the input.
	ErrTruncated = errors.New("YUV4MPEG2 frame cut short")
	// ErrFormat reports a buffer whose pixel format or size does not fit the stream.
	ErrFormat = errors.New("buffer does not fit the YUV4MPEG2 stream")
)

// Header is what a stream's header says.
type Header struct {
	Width, Height int
	// FrameRateNum and FrameRateDen are the frame rate as a fraction (30:1, 30000:1001).
	FrameRateNum, FrameRateDen int
	// Interlace is 'p' (progressive), the only kind a Reader accepts, or '?' when unknown.
	Interlace byte
	// AspectNum and AspectDen are the pixel aspect ratio; 0:0 means unknown.
	AspectNum, AspectDen int
	// ColorSpace is the C parameter: "420jpeg" (the default), "420", "420mpeg2" or "420paldv",
	// all 8-bit 4:2:0 that differ only in where chroma samples sit.
	ColorSpace string
}

// FrameRate is the frame rate in frames a second (0 when unknown).
func (h Header) FrameRate() float64 {
	if h.FrameRateNum <= 0 || h.FrameRateDen <= 0 {
		return 0
	}
	return float64(h.FrameRateNum) / float64(h.FrameRateDen)
}

// Format is the stream as a media.VideoFormat in I420.
func (h Header) Format() media.VideoFormat {
	return media.VideoFormat{PixelFormat: media.I420, Width: h.Width, Height: h.Height, FrameRate: h.FrameRate()}
}

// Reader reads the frames of a YUV4MPEG2 stream.
type Reader struct {
	r      *bufio.Reader
	header Header
	frames int
	urow   []byte // one row of U, while a frame is interleaved into NV12
	vrow   []byte // one row of V
}

// NewReader reads the stream header from r. It accepts 8-bit 4:2:0 progressive streams up to
// MaxDimension on a side; X (comment) parameters and unknown ones are ignored, as the format
// asks.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	line, err := readLine(br)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("y4m: read header: %w: %w", ErrNotY4M, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("y4m: read header: %w", err)
	}
	fields := bytes.Split(line, []byte{' '})
	if string(fields[0]) != magic {
		return nil, fmt.Errorf("y4m: header starts %q: %w", clip(fields[0]), ErrNotY4M)
	}
	h := Header{Interlace: '?', ColorSpace: "420jpeg"}
	for _, f := range fields[1:] {
		if len(f) == 0 {
			continue // tolerate doubled spaces
		}
		val := string(f[1:])
		switch f[0] {
		case 'W':
			h.Width, err = dimension(val)
		case 'H':
			h.Height, err = dimension(val)
		case 'F':
			h.FrameRateNum, h.FrameRateDen, err = ratio(val)
		case 'A':
			h.AspectNum, h.AspectDen, err = ratio(val)
		case 'I':
			if len(val) != 1 {
				err = fmt.Errorf("y4m: interlace %q: %w", clip(f), ErrMalformed)
			} else {
				h.Interlace = val[0]
			}
		case 'C':
			h.ColorSpace = val
		}
		if err != nil {
			return nil, fmt.Errorf("y4m: header parameter %q: %w", clip(f), err)
		}
	}
	switch {
	case h.Width == 0 || h.Height == 0:
		return nil, fmt.Errorf("y4m: header without width and height: %w", ErrMalformed)
	case h.Interlace != 'p' && h.Interlace != '?':
		return nil, fmt.Errorf("y4m: interlace %q, want progressive: %w", h.Interlace, ErrUnsupported)
	}
	switch h.ColorSpace {
	case "420", "420jpeg", "420mpeg2", "420paldv":
	default:
		return nil, fmt.Errorf("y4m: colour space %q, want 8-bit 4:2:0: %w", clip([]byte(h.ColorSpace)), ErrUnsupported)
	}
	return &Reader{r: br, header: h}, nil
}

// Header is the stream's header.
func (r *Reader) Header() Header { return r.header }

// Frames is the number of frames read so far.
func (r *Reader) Frames() int { return r.frames }

// ReadFrame reads the next frame into dst, an NV12 or I420 buffer of the stream's size. At the
// end of the stream it returns io.EOF; a frame cut short returns an error wrapping
// ErrTruncated. It allocates nothing once it has read one frame.
func (r *Reader) ReadFrame(dst *media.VideoBuffer) error {
	f := dst.Format()
	if f.Width != r.header.Width || f.Height != r.header.Height || (f.PixelFormat != media.NV12 && f.PixelFormat != media.I420) {
		return fmt.Errorf("y4m: read a %dx%d frame into %v: %w", r.header.Width, r.header.Height, f, ErrFormat)
	}
	line, err := readLine(r.r)
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("y4m: frame %d header: %w", r.frames, ErrTruncated)
	}
	if err != nil {
		return fmt.Errorf("y4m: frame %d header: %w", r.frames, err)
	}
	if !bytes.Equal(line, []byte(frameMagic)) && !bytes.HasPrefix(line, []byte(frameMagic+" ")) {
		return fmt.Errorf("y4m: frame %d starts %q: %w", r.frames, clip(line), ErrMalformed)
	}
	planes, _ := dst.Planes()
	w, h := r.header.Width, r.header.Height
	cw, ch := (w+1)/2, (h+1)/2
	if err := r.fill(planes[0]); err != nil {
		return err
	}
	if f.PixelFormat == media.I420 {
		if err := r.fill(planes[1]); err != nil {
			return err
		}
		if err := r.fill(planes[2]); err != nil {
			return err
		}
		r.frames++
		return nil
	}
	// NV12: read the U plane into the second half of the UV plane, then interleave it row by
	// row with the V plane as it is read. Row y's output ends where U's row y+1 starts at the
	// earliest, so no U row is overwritten before it is copied out.
	uv := planes[1]
	u := uv[cw*ch:]
	if err := r.fill(u); err != nil {
		return err
	}
	if cap(r.urow) < cw {
		r.urow, r.vrow = make([]byte, cw), make([]byte, cw)
	}
	urow, vrow := r.urow[:cw], r.vrow[:cw]
	for y := range ch {
		copy(urow, u[y*cw:(y+1)*cw])
		if err := r.fill(vrow); err != nil {
			return err
		}
		out := uv[2*y*cw : 2*(y+1)*cw]
		for x := range cw {
			out[2*x], out[2*x+1] = urow[x], vrow[x]
		}
	}
	r.frames++
	return nil
}

func (r *Reader) fill(b []byte) error {
	if _, err := io.ReadFull(r.r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("y4m: frame %d: %w", r.frames, ErrTruncated)
		}
		return fmt.Errorf("y4m: frame %d: %w", r.frames, err)
	}
	return nil
}

// readLine reads one '\n'-terminated line of at most maxLine bytes, without the '\n'. It
// returns io.EOF when the input ends before the line starts and io.ErrUnexpectedEOF when it
// ends inside it.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxLine+1 {
			return nil, fmt.Errorf("line longer than %d bytes: %w", maxLine, ErrMalformed)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) == 0:
			return nil, io.EOF
		case errors.Is(err, io.EOF):
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

func dimension(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, ErrMalformed
	}
	if n > MaxDimension {
		return 0, fmt.Errorf("%d is over %d: %w", n, MaxDimension, ErrUnsupported)
	}
	return n, nil
}

func ratio(s string) (num, den int, err error) {
	a, b, ok := bytes.Cut([]byte(s), []byte{':'})
	if !ok {
		return 0, 0, ErrMalformed
	}
	num, err1 := strconv.Atoi(string(a))
	den, err2 := strconv.Atoi(string(b))
	if err1 != nil || err2 != nil || num < 0 || den < 0 || num > math.MaxInt32 || den > math.MaxInt32 {
		return 0, 0, ErrMalformed
	}
	return num, den, nil
}

// clip shortens what goes into an error message.
func clip(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "…"
	}
	return string(b)
}

// Writer writes frames to a YUV4MPEG2 stream. It is not safe for concurrent use.
type Writer struct {
	w      io.Writer
	format media.VideoFormat
	frames int
	buf    []byte // "FRAME\n" and one I420 frame, written with one Write
	err    error
}

// NewWriter writes the header of a stream of format's size and frame rate (its pixel format
// is ignored: frames are stored as I420) to w.
func NewWriter(w io.Writer, format media.VideoFormat) (*Writer, error) {
	if format.Width <= 0 || format.Height <= 0 || format.Width > MaxDimension || format.Height > MaxDimension {
		return nil, fmt.Errorf("y4m: new writer for %v: %w", format, ErrUnsupported)
	}
	num, den := rational(format.FrameRate)
	header := fmt.Sprintf("%s W%d H%d F%d:%d Ip A1:1 C420jpeg\n", magic, format.Width, format.Height, num, den)
	if _, err := io.WriteString(w, header); err != nil {
		return nil, fmt.Errorf("y4m: write header: %w", err)
	}
	format.PixelFormat = media.I420
	buf := make([]byte, len(frameMagic)+1+format.FrameSize())
	copy(buf, frameMagic+"\n")
	return &Writer{w: w, format: format, buf: buf}, nil
}

// rational turns a frame rate into a fraction: n:1 for whole rates, n:1000 reduced otherwise,
// 30:1 for a rate that is not positive.
func rational(fps float64) (num, den int) {
	if !(fps > 0) || fps > 1000 {
		return 30, 1
	}
	if fps == math.Trunc(fps) {
		return int(fps), 1
	}
	num, den = int(math.Round(fps*1000)), 1000
	a, b := num, den
	for b != 0 {
		a, b = b, a%b
	}
	return num / a, den / a
}

// Format is the stream's format (I420).
func (w *Writer) Format() media.VideoFormat { return w.format }

// Frames is the number of frames written.
func (w *Writer) Frames() int { return w.frames }

// WriteFrame appends one frame: an NV12 or I420 buffer of the stream's size. The frame goes out
// in one Write, so a stream cut by a crash ends with whole frames (or one partial one, which a
// Reader reports). It allocates nothing.
func (w *Writer) WriteFrame(buf *media.VideoBuffer) error {
	if w.err != nil {
		return w.err
	}
	f := buf.Format()
	if f.Width != w.format.Width || f.Height != w.format.Height || (f.PixelFormat != media.NV12 && f.PixelFormat != media.I420) {
		return fmt.Errorf("y4m: write %v to a %dx%d stream: %w", f, w.format.Width, w.format.Height, ErrFormat)
	}
	out := w.buf[len(frameMagic)+1:]
	data := buf.Data()
	if f.PixelFormat == media.I420 {
		copy(out, data)
	} else {
		ySize := f.Width * f.Height
		cs := (f.Width + 1) / 2 * ((f.Height + 1) / 2)
		copy(out, data[:ySize])
		u, v := out[ySize:ySize+cs], out[ySize+cs:ySize+2*cs]
		uv := data[ySize : ySize+2*cs]
		for i := range cs {
			u[i], v[i] = uv[2*i], uv[2*i+1]
		}
	}
	if _, err := w.w.Write(w.buf); err != nil {
		w.err = fmt.Errorf("y4m: write frame %d: %w", w.frames, err)
		return w.err
	}
	w.frames++
	return nil
}
