package wav

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// WAVE format tags.
const (
	formatPCM        = 1
	formatExtensible = 0xFFFE
)

// pcmSubFormat is the tail of the GUID of PCM in a WAVE_FORMAT_EXTENSIBLE fmt chunk: the GUID's
// first two bytes are the format tag (1), the other fourteen these.
var pcmSubFormat = [14]byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

// Limits on what a Reader accepts.
const (
	maxChannels   = 64
	maxSampleRate = 1 << 20
	maxChunks     = 1 << 12 // chunks before data, so that a file of empty chunks cannot spin long
)

// Format describes the samples of a WAV file.
type Format struct {
	SampleRate    int // frames per second
	Channels      int // samples per frame, interleaved
	BitsPerSample int // always 16 for the files a Reader accepts
}

// Reader reads the samples of a 16-bit PCM WAV file.
type Reader struct {
	r         io.Reader
	format    Format
	remaining int64 // bytes of the data chunk not yet read, as the file declares them
	truncated bool
	odd       bool // a lone byte is pending in buf[0]
	buf       []byte
}

// NewReader reads the header of a WAV file from r, up to the start of its data chunk: RIFF/WAVE,
// a fmt chunk (16-bit PCM, plain or WAVE_FORMAT_EXTENSIBLE), unknown chunks (skipped, with their
// padding byte when their size is odd) and the data chunk's header.
func NewReader(r io.Reader) (*Reader, error) {
	var h [12]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("wav: read RIFF header: %w", eofAsMalformed(err, ErrNotWAV))
	}
	if string(h[0:4]) != "RIFF" || string(h[8:12]) != "WAVE" {
		return nil, fmt.Errorf("wav: header %q...%q: %w", h[0:4], h[8:12], ErrNotWAV)
	}
	// The RIFF size is not trusted: streaming writers leave it 0 or 0xFFFFFFFF, and a file cut
	// short is shorter than it says. The chunks and the end of the input decide.
	var format Format
	haveFormat := false
	for range maxChunks {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("wav: no data chunk: %w", ErrMalformed)
			}
			return nil, fmt.Errorf("wav: read chunk header: %w", eofAsMalformed(err, ErrMalformed))
		}
		id, size := string(ch[0:4]), int64(binary.LittleEndian.Uint32(ch[4:8]))
		switch id {
		case "fmt ":
			f, err := readFormat(r, size)
			if err != nil {
				return nil, err
			}
			format, haveFormat = f, true
		case "data":
			if !haveFormat {
				return nil, fmt.Errorf("wav: data chunk before fmt chunk: %w", ErrMalformed)
			}
			return &Reader{r: r, format: format, remaining: size}, nil
		default:
			if _, err := io.CopyN(io.Discard, r, size+size&1); err != nil {
				return nil, fmt.Errorf("wav: skip %q chunk of %d bytes: %w", ch[0:4], size, eofAsMalformed(err, ErrMalformed))
			}
		}
	}
	return nil, fmt.Errorf("wav: no data chunk in the first %d chunks: %w", maxChunks, ErrMalformed)
}

// readFormat reads a fmt chunk of size bytes (and its padding).
func readFormat(r io.Reader, size int64) (Format, error) {
	if size < 16 {
		return Format{}, fmt.Errorf("wav: fmt chunk of %d bytes: %w", size, ErrMalformed)
	}
	var b [40]byte
	n := min(size, int64(len(b)))
	if _, err := io.ReadFull(r, b[:n]); err != nil {
		return Format{}, fmt.Errorf("wav: read fmt chunk: %w", eofAsMalformed(err, ErrMalformed))
	}
	if rest := size - n + size&1; rest > 0 {
		if _, err := io.CopyN(io.Discard, r, rest); err != nil {
			return Format{}, fmt.Errorf("wav: read fmt chunk: %w", eofAsMalformed(err, ErrMalformed))
		}
	}
	tag := binary.LittleEndian.Uint16(b[0:])
	f := Format{
		Channels:      int(binary.LittleEndian.Uint16(b[2:])),
		SampleRate:    int(binary.LittleEndian.Uint32(b[4:])),
		BitsPerSample: int(binary.LittleEndian.Uint16(b[14:])),
	}
	blockAlign := int(binary.LittleEndian.Uint16(b[12:]))
	switch tag {
	case formatPCM:
	case formatExtensible:
		if n < 40 || binary.LittleEndian.Uint16(b[24:]) != formatPCM || [14]byte(b[26:40]) != pcmSubFormat {
			return Format{}, fmt.Errorf("wav: extensible format that is not PCM: %w", ErrUnsupported)
		}
	default:
		return Format{}, fmt.Errorf("wav: format tag %#x, want 1 (PCM): %w", tag, ErrUnsupported)
	}
	if f.BitsPerSample != 16 {
		return Format{}, fmt.Errorf("wav: %d-bit samples, want 16: %w", f.BitsPerSample, ErrUnsupported)
	}
	if f.Channels < 1 || f.Channels > maxChannels {
		return Format{}, fmt.Errorf("wav: %d channels: %w", f.Channels, ErrUnsupported)
	}
	if f.SampleRate < 1 || f.SampleRate > maxSampleRate {
		return Format{}, fmt.Errorf("wav: sample rate %d: %w", f.SampleRate, ErrUnsupported)
	}
	if blockAlign != 2*f.Channels {
		return Format{}, fmt.Errorf("wav: block align %d for %d 16-bit channels: %w", blockAlign, f.Channels, ErrMalformed)
	}
	return f, nil
}

// eofAsMalformed turns running out of input into the sentinel err: a header cut short.
func eofAsMalformed(err, sentinel error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", sentinel, io.ErrUnexpectedEOF)
	}
	return err
}

// Format describes the file's samples.
func (r *Reader) Format() Format { return r.format }

// Truncated reports whether the input ended before the end of the data chunk it declared (a
// file whose writer died, or a copy cut short). Meaningful once Read has returned io.EOF.
func (r *Reader) Truncated() bool { return r.truncated }

// Read reads up to len(samples) interleaved samples and returns how many it read. At the end of
// the data, declared or (for a truncated file) actual, it returns io.EOF; a final odd byte is
// dropped. Other errors come from the underlying reader. It allocates nothing once its buffer has
// grown to the largest len(samples).
func (r *Reader) Read(samples []int16) (int, error) {
	if len(samples) == 0 {
		return 0, nil
	}
	have := 0 // bytes of the next sample already read
	if r.odd {
		have = 1
	}
	avail := r.remaining + int64(have)
	if avail < 2 {
		return 0, io.EOF
	}
	n := int(2 * min(int64(len(samples)), avail/2))
	if cap(r.buf) < n {
		buf := make([]byte, n)
		if r.odd {
			buf[0] = r.buf[0]
		}
		r.buf = buf
	}
	b := r.buf[:n]
	got, err := io.ReadAtLeast(r.r, b[have:], 2-have)
	have += got
	r.remaining -= int64(got)
	count := have / 2
	for i := range count {
		samples[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	r.odd = have%2 == 1
	if r.odd {
		b[0] = b[have-1]
	}
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			r.truncated, r.remaining = true, 0
			if count > 0 {
				return count, nil
			}
			return 0, io.EOF
		}
		return count, fmt.Errorf("wav: read samples: %w", err)
	}
	return count, nil
}
