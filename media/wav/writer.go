// Package wav reads and writes 16-bit PCM WAV files (RIFF/WAVE), the format the platform's
// recordings and playback files use.
//
// A Writer keeps its file playable while it grows, so that a recording cut short by a crash can
// still be read; a Reader accepts what real files contain (unknown chunks, odd chunk padding,
// WAVE_FORMAT_EXTENSIBLE, a data size larger than the file) and rejects anything that is not
// 16-bit PCM with a clear error.
package wav

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// DefaultUpdateEvery is how many Writes a Writer lets pass between rewrites of the header's
// sizes, unless SetUpdateEvery says otherwise.
const DefaultUpdateEvery = 50

// headerSize is the size of the header a Writer writes: RIFF, fmt and data chunk headers.
const headerSize = 44

// maxDataSize is the largest data chunk a 32-bit RIFF size can describe with its header.
const maxDataSize = math.MaxUint32 - (headerSize - 8)

// Errors that callers may branch on; returned errors wrap one of them.
var (
	// ErrNotWAV reports input that is not a RIFF/WAVE file.
	ErrNotWAV = errors.New("not a RIFF/WAVE file")
	// ErrUnsupported reports a WAV file in a format other than 16-bit PCM.
	ErrUnsupported = errors.New("unsupported WAV format")
	// ErrMalformed reports a WAV file whose chunks do not make sense.
	ErrMalformed = errors.New("malformed WAV file")
	// ErrTooLarge reports a write that would take the data past the 4 GiB a WAV file can hold.
	ErrTooLarge = errors.New("WAV data too large")
	// ErrClosed reports a write to a closed Writer.
	ErrClosed = errors.New("WAV writer closed")
)

// Writer writes 16-bit PCM samples to a WAV file.
//
// It writes a complete header before any sample, with the sizes it has at that point. It keeps
// the samples of UpdateEvery Writes in memory and then writes them at once and rewrites the
// RIFF and data sizes (with WriteAt when the file has it, else two seeks): after the first
// Write, then every UpdateEvery Writes, and on Close. If the process dies, the file on disk is a
// valid WAV file holding everything up to the last update: at most UpdateEvery-1 Writes are
// missing. Updating more often narrows that loss at the cost of more system calls;
// DefaultUpdateEvery Writes of 20 ms frames is one second of audio, written with three system
// calls instead of fifty.
//
// A Writer is not safe for concurrent use.
type Writer struct {
	w           io.WriteSeeker
	start       int64 // position of the header in w
	channels    int
	dataSize    int64 // bytes of samples written to w
	writes      int   // Writes since the last size update
	updateEvery int
	pending     []byte  // samples of the Writes since the last update, not yet written to w
	size        [4]byte // a size field being rewritten
	err         error   // sticky: the first error, or ErrClosed after Close
}

// NewWriter writes a WAV header for sampleRate and channels to w, at w's current position, and
// returns a Writer for the samples. Close finalises the sizes; it does not close w.
func NewWriter(w io.WriteSeeker, sampleRate, channels int) (*Writer, error) {
	if sampleRate <= 0 || sampleRate > 1<<24 {
		return nil, fmt.Errorf("wav: new writer: sample rate %d: %w", sampleRate, ErrUnsupported)
	}
	if channels <= 0 || channels > 1<<10 {
		return nil, fmt.Errorf("wav: new writer: %d channels: %w", channels, ErrUnsupported)
	}
	start, err := w.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("wav: new writer: find position: %w", err)
	}
	var h [headerSize]byte
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], headerSize-8)
	copy(h[8:], "WAVE")
	copy(h[12:], "fmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], formatPCM)
	binary.LittleEndian.PutUint16(h[22:], uint16(channels))
	binary.LittleEndian.PutUint32(h[24:], uint32(sampleRate))
	binary.LittleEndian.PutUint32(h[28:], uint32(sampleRate*channels*2))
	binary.LittleEndian.PutUint16(h[32:], uint16(channels*2))
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], 0)
	if _, err := w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("wav: new writer: write header: %w", err)
	}
	return &Writer{w: w, start: start, channels: channels, updateEvery: DefaultUpdateEvery, writes: DefaultUpdateEvery - 1}, nil
}

// SetUpdateEvery sets how many Writes pass between rewrites of the header's sizes (at least 1);
// see Writer for the trade-off.
func (w *Writer) SetUpdateEvery(n int) {
	w.updateEvery = max(n, 1)
	w.writes = min(w.writes, w.updateEvery-1)
}

// Write appends interleaved samples (a whole number of frames: len(samples) a multiple of the
// channel count). It allocates nothing once its buffer has grown to UpdateEvery of the largest
// Write.
func (w *Writer) Write(samples []int16) error {
	if w.err != nil {
		return w.err
	}
	if len(samples)%w.channels != 0 {
		return fmt.Errorf("wav: write %d samples: not a whole number of %d-channel frames: %w", len(samples), w.channels, ErrMalformed)
	}
	n := 2 * len(samples)
	if w.dataSize+int64(len(w.pending)+n) > maxDataSize {
		return fmt.Errorf("wav: write %d samples after %d bytes: %w", len(samples), w.dataSize+int64(len(w.pending)), ErrTooLarge)
	}
	if cap(w.pending)-len(w.pending) < n {
		grown := make([]byte, len(w.pending), len(w.pending)+n*w.updateEvery)
		copy(grown, w.pending)
		w.pending = grown
	}
	b := w.pending[len(w.pending) : len(w.pending)+n]
	for i, s := range samples {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
	}
	w.pending = w.pending[:len(w.pending)+n]
	w.writes++
	if w.writes >= w.updateEvery {
		if err := w.update(); err != nil {
			w.err = err
			return err
		}
	}
	return nil
}

// update writes the pending samples and then the sizes that include them.
func (w *Writer) update() error {
	written, err := w.w.Write(w.pending)
	w.dataSize += int64(written)
	n := len(w.pending)
	w.pending = w.pending[:0]
	if err != nil {
		return fmt.Errorf("wav: write %d bytes of samples: %w", n, err)
	}
	return w.updateSizes()
}

// updateSizes rewrites the RIFF and data sizes and leaves w at the end of the data.
func (w *Writer) updateSizes() error {
	w.writes = 0
	b := w.size[:]
	binary.LittleEndian.PutUint32(b, uint32(headerSize-8+w.dataSize))
	if err := w.writeAt(b, w.start+4); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(b, uint32(w.dataSize))
	if err := w.writeAt(b, w.start+40); err != nil {
		return err
	}
	if _, ok := w.w.(io.WriterAt); ok {
		return nil
	}
	if _, err := w.w.Seek(w.start+headerSize+w.dataSize, io.SeekStart); err != nil {
		return fmt.Errorf("wav: update sizes: seek to the end: %w", err)
	}
	return nil
}

// writeAt writes b at off: with WriteAt, which leaves the position alone, when w has it;
// otherwise by seeking there (updateSizes seeks back).
func (w *Writer) writeAt(b []byte, off int64) error {
	if wa, ok := w.w.(io.WriterAt); ok {
		if _, err := wa.WriteAt(b, off); err != nil {
			return fmt.Errorf("wav: update sizes at %d: %w", off, err)
		}
		return nil
	}
	if _, err := w.w.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("wav: update sizes: seek to %d: %w", off, err)
	}
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("wav: update sizes at %d: %w", off, err)
	}
	return nil
}

// Close writes the final sizes. It does not close the underlying writer. Calling it again
// returns nil; Write after Close returns ErrClosed.
func (w *Writer) Close() error {
	if errors.Is(w.err, ErrClosed) {
		return nil
	}
	if w.err != nil {
		err := w.err
		w.err = fmt.Errorf("wav: %w", ErrClosed)
		return err
	}
	err := w.update()
	w.err = fmt.Errorf("wav: %w", ErrClosed)
	return err
}
