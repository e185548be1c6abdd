package wav

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// memFile is an in-memory io.WriteSeeker.
type memFile struct {
	data []byte
	pos  int64
}

func (f *memFile) Write(p []byte) (int, error) {
	if end := f.pos + int64(len(p)); end > int64(cap(f.data)) {
		f.data = append(f.data, make([]byte, end-int64(len(f.data)))...)
	} else if end > int64(len(f.data)) {
		f.data = f.data[:end]
	}
	copy(f.data[f.pos:], p)
	f.pos += int64(len(p))
	return len(p), nil
}

func (f *memFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += f.pos
	case io.SeekEnd:
		off += int64(len(f.data))
	}
	if off < 0 {
		return 0, errors.New("negative position")
	}
	f.pos = off
	return off, nil
}

// tone is n samples of a 440 Hz sine at 16 kHz, loud enough to use the whole 16-bit range.
func tone(n, offset int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(32767 * math.Sin(2*math.Pi*440*float64(i+offset)/16000))
	}
	s[0] = -32768
	return s
}

// writeFile writes frames of 320 samples with a Writer and closes it.
func writeFile(t testing.TB, frames, channels int) ([]byte, []int16) {
	t.Helper()
	var f memFile
	w, err := NewWriter(&f, 16000, channels)
	if err != nil {
		t.Fatal(err)
	}
	var all []int16
	for i := range frames {
		s := tone(320*channels, i*320*channels)
		all = append(all, s...)
		if err := w.Write(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return f.data, all
}

// readAll reads every sample with reads of n samples.
func readAll(t testing.TB, r *Reader, n int) []int16 {
	t.Helper()
	var out []int16
	buf := make([]int16, n)
	for {
		got, err := r.Read(buf)
		out = append(out, buf[:got]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestHeader(t *testing.T) {
	data, _ := writeFile(t, 2, 1)
	want := []byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00\x00\x7d\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00")
	binary.LittleEndian.PutUint32(want[4:], 36+1280)
	binary.LittleEndian.PutUint32(want[40:], 1280)
	if !bytes.Equal(data[:44], want) {
		t.Errorf("header\n got % x\nwant % x", data[:44], want)
	}
	if len(data) != 44+1280 {
		t.Errorf("file is %d bytes, want %d", len(data), 44+1280)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, channels := range []int{1, 2} {
		data, want := writeFile(t, 50, channels)
		for name, src := range map[string]io.Reader{
			"plain":    bytes.NewReader(data),
			"one byte": iotest.OneByteReader(bytes.NewReader(data)),
			"half":     iotest.HalfReader(bytes.NewReader(data)),
		} {
			r, err := NewReader(src)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if f := r.Format(); f != (Format{SampleRate: 16000, Channels: channels, BitsPerSample: 16}) {
				t.Errorf("%s: format %+v", name, f)
			}
			got := readAll(t, r, 333)
			if !equal(got, want) {
				t.Errorf("%s, %d channels: read %d samples, differing from the %d written", name, channels, len(got), len(want))
			}
			if r.Truncated() {
				t.Errorf("%s: complete file reported truncated", name)
			}
		}
	}
}

func equal(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRealFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tone.wav")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(f, 16000, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := tone(16000, 0)
	for i := 0; i < len(want); i += 320 {
		if err := w.Write(want[i : i+320]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.Write(want[:320]); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r, 320); !equal(got, want) {
		t.Errorf("read %d samples, differing from the %d written", len(got), len(want))
	}
}

// TestCrash stops writing without Close, as a process that dies does, and reads what is on disk.
func TestCrash(t *testing.T) {
	const every, frames = 5, 12
	var f memFile
	w, err := NewWriter(&f, 16000, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.SetUpdateEvery(every)
	var want []int16
	for i := range frames {
		s := tone(320, 320*i)
		want = append(want, s...)
		if err := w.Write(s); err != nil {
			t.Fatal(err)
		}
		// At every moment the bytes so far are a readable file holding all but at most the
		// last every-1 writes.
		r, err := NewReader(bytes.NewReader(f.data))
		if err != nil {
			t.Fatalf("after %d writes: %v", i+1, err)
		}
		got := readAll(t, r, 320)
		if len(got) < 320*(i+1-(every-1)) || len(got) == 0 || !equal(got, want[:len(got)]) {
			t.Fatalf("after %d writes: read %d samples", i+1, len(got))
		}
	}
	// A copy cut in the middle of the data: the declared size is more than is there.
	cut := f.data[:44+320*2*8+1]
	binary.LittleEndian.PutUint32(cut[40:], 320*2*frames)
	r, err := NewReader(bytes.NewReader(cut))
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r, 1000)
	if len(got) != 320*8 || !equal(got, want[:len(got)]) {
		t.Errorf("cut file: read %d samples, want %d", len(got), 320*8)
	}
	if !r.Truncated() {
		t.Error("cut file not reported truncated")
	}
}

// TestRealFileBetweenUpdates: on a real file (sizes rewritten with WriteAt), what is on disk
// between updates is a readable WAV file with every sample up to the last update, and the
// samples after it are not lost by Close.
func TestRealFileBetweenUpdates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "growing.wav")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := NewWriter(f, 16000, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.SetUpdateEvery(5)
	want := tone(320*8, 0)
	for i := range 8 { // updates after the 1st and the 6th Write
		if err := w.Write(want[320*i : 320*(i+1)]); err != nil {
			t.Fatal(err)
		}
	}
	onDisk := func() []int16 {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		return readAll(t, r, 320)
	}
	if got := onDisk(); len(got) != 320*6 || !equal(got, want[:len(got)]) {
		t.Errorf("before Close: %d samples on disk, want the first %d", len(got), 320*6)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := onDisk(); !equal(got, want) {
		t.Errorf("after Close: %d samples on disk, want %d", len(got), len(want))
	}
}

// chunk builds a RIFF chunk, padded to an even size.
func chunk(id string, body []byte) []byte {
	b := append([]byte(id), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(body)))
	b = append(b, body...)
	if len(body)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func fmtBody(tag, channels, rate, blockAlign, bits int) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b[0:], uint16(tag))
	binary.LittleEndian.PutUint16(b[2:], uint16(channels))
	binary.LittleEndian.PutUint32(b[4:], uint32(rate))
	binary.LittleEndian.PutUint32(b[8:], uint32(rate*blockAlign))
	binary.LittleEndian.PutUint16(b[12:], uint16(blockAlign))
	binary.LittleEndian.PutUint16(b[14:], uint16(bits))
	return b
}

func extensible(sub byte) []byte {
	b := append(fmtBody(formatExtensible, 1, 16000, 2, 16), 22, 0, 16, 0, 4, 0, 0, 0)
	guid := pcmSubFormat
	return append(append(b, sub, 0), guid[:]...)
}

func riff(chunks ...[]byte) []byte {
	b := []byte("RIFF\x00\x00\x00\x00WAVE")
	for _, c := range chunks {
		b = append(b, c...)
	}
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	return b
}

var (
	pcmFmt  = chunk("fmt ", fmtBody(formatPCM, 1, 16000, 2, 16))
	samples = []byte{1, 0, 2, 0, 0xff, 0xff, 0, 0x80}
)

func TestReaderHostile(t *testing.T) {
	many := make([][]byte, 0, maxChunks+2)
	many = append(many, pcmFmt)
	for range maxChunks {
		many = append(many, chunk("junk", nil))
	}
	many = append(many, chunk("data", samples))
	dataFirst := riff(chunk("data", samples), pcmFmt)
	cases := []struct {
		name string
		in   []byte
		err  error   // from NewReader
		want []int16 // samples, when NewReader succeeds
	}{
		{"empty", nil, ErrNotWAV, nil},
		{"short", []byte("RIFF\x00\x00"), ErrNotWAV, nil},
		{"RIFX", append([]byte("RIFX\x00\x00\x00\x00WAVE"), pcmFmt...), ErrNotWAV, nil},
		{"AVI", []byte("RIFF\x04\x00\x00\x00AVI "), ErrNotWAV, nil},
		{"no chunks", riff(), ErrMalformed, nil},
		{"no data", riff(pcmFmt), ErrMalformed, nil},
		{"data before fmt", dataFirst, ErrMalformed, nil},
		{"fmt too short", riff(chunk("fmt ", make([]byte, 10)), chunk("data", samples)), ErrMalformed, nil},
		{"fmt cut", riff(pcmFmt)[:30], ErrMalformed, nil},
		{"chunk header cut", riff(pcmFmt, []byte("dat")), ErrMalformed, nil},
		{"float", riff(chunk("fmt ", fmtBody(3, 1, 16000, 4, 32)), chunk("data", samples)), ErrUnsupported, nil},
		{"a-law", riff(chunk("fmt ", fmtBody(6, 1, 8000, 1, 8)), chunk("data", samples)), ErrUnsupported, nil},
		{"8-bit", riff(chunk("fmt ", fmtBody(formatPCM, 1, 16000, 1, 8)), chunk("data", samples)), ErrUnsupported, nil},
		{"24-bit", riff(chunk("fmt ", fmtBody(formatPCM, 1, 16000, 3, 24)), chunk("data", samples)), ErrUnsupported, nil},
		{"no channels", riff(chunk("fmt ", fmtBody(formatPCM, 0, 16000, 0, 16)), chunk("data", samples)), ErrUnsupported, nil},
		{"many channels", riff(chunk("fmt ", fmtBody(formatPCM, 1000, 16000, 2000, 16)), chunk("data", samples)), ErrUnsupported, nil},
		{"rate zero", riff(chunk("fmt ", fmtBody(formatPCM, 1, 0, 2, 16)), chunk("data", samples)), ErrUnsupported, nil},
		{"bad block align", riff(chunk("fmt ", fmtBody(formatPCM, 2, 16000, 2, 16)), chunk("data", samples)), ErrMalformed, nil},
		{"extensible float", riff(chunk("fmt ", extensible(3)), chunk("data", samples)), ErrUnsupported, nil},
		{"extensible short", riff(chunk("fmt ", fmtBody(formatExtensible, 1, 16000, 2, 16)), chunk("data", samples)), ErrUnsupported, nil},
		{"huge unknown chunk", riff(pcmFmt, []byte("LIST\xff\xff\xff\xff"), chunk("data", samples)), ErrMalformed, nil},
		{"endless junk", riff(many...), ErrMalformed, nil},

		{"plain", riff(pcmFmt, chunk("data", samples)), nil, []int16{1, 2, -1, -32768}},
		{"extensible PCM", riff(chunk("fmt ", extensible(1)), chunk("data", samples)), nil, []int16{1, 2, -1, -32768}},
		{"fmt with extra bytes", riff(chunk("fmt ", append(fmtBody(formatPCM, 1, 16000, 2, 16), 0, 0)), chunk("data", samples)), nil, []int16{1, 2, -1, -32768}},
		{"odd fmt size", riff(chunk("fmt ", append(fmtBody(formatPCM, 1, 16000, 2, 16), 7)), chunk("data", samples)), nil, []int16{1, 2, -1, -32768}},
		{"odd unknown chunk", riff(chunk("LIST", []byte("abc")), pcmFmt, chunk("fact", []byte{1, 2, 3, 4, 5}), chunk("data", samples)), nil, []int16{1, 2, -1, -32768}},
		{"chunk after data", riff(pcmFmt, chunk("data", samples[:4]), chunk("LIST", []byte("info"))), nil, []int16{1, 2}},
		{"odd data", riff(pcmFmt, chunk("data", samples[:5])), nil, []int16{1, 2}},
		{"data claims more", append(riff(pcmFmt, []byte("data\x00\x01\x00\x00")), samples...), nil, []int16{1, 2, -1, -32768}},
		{"streaming sizes", append([]byte("RIFF\xff\xff\xff\xffWAVE"), append(pcmFmt, append([]byte("data\xff\xff\xff\xff"), samples[:7]...)...)...), nil, []int16{1, 2, -1}},
		{"empty data", riff(pcmFmt, chunk("data", nil)), nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tc.in))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("NewReader: %v, want %v", err, tc.err)
				}
				t.Logf("%v", err)
				return
			}
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			if got := readAll(t, r, 3); !equal(got, tc.want) {
				t.Errorf("samples %v, want %v", got, tc.want)
			}
		})
	}
}

type failingFile struct {
	memFile
	failAfter int
}

func (f *failingFile) Write(p []byte) (int, error) {
	if f.failAfter--; f.failAfter < 0 {
		return 0, errors.New("disk full")
	}
	return f.memFile.Write(p)
}

func TestWriterErrors(t *testing.T) {
	if _, err := NewWriter(&memFile{}, 0, 1); !errors.Is(err, ErrUnsupported) {
		t.Errorf("rate 0: %v", err)
	}
	if _, err := NewWriter(&memFile{}, 16000, 0); !errors.Is(err, ErrUnsupported) {
		t.Errorf("no channels: %v", err)
	}
	w, err := NewWriter(&memFile{}, 16000, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(make([]int16, 3)); !errors.Is(err, ErrMalformed) {
		t.Errorf("half a frame: %v", err)
	}
	if err := w.Write(make([]int16, 4)); err != nil {
		t.Errorf("after a rejected write: %v", err)
	}

	f := &failingFile{failAfter: 2} // header, first samples, then fail
	w, err = NewWriter(f, 16000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(make([]int16, 320)); err == nil {
		t.Error("write with failing size update succeeded")
	}
	if err := w.Write(make([]int16, 320)); err == nil {
		t.Error("error is not sticky")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a failure succeeded")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestZeroAllocations(t *testing.T) {
	f := memFile{data: make([]byte, 0, 44+200*640)} // room, so that the in-memory file does not grow
	w, err := NewWriter(&f, 16000, 1)
	if err != nil {
		t.Fatal(err)
	}
	frame := tone(320, 0)
	if n := testing.AllocsPerRun(100, func() { _ = w.Write(frame) }); n != 0 {
		t.Errorf("Write: %v allocations", n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(f.data))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]int16, 320)
	if n := testing.AllocsPerRun(100, func() { _, _ = r.Read(buf) }); n != 0 {
		t.Errorf("Read: %v allocations", n)
	}
}

func FuzzReader(f *testing.F) {
	written, _ := writeFile(f, 3, 1)
	f.Add(written)
	stereo, _ := writeFile(f, 1, 2)
	f.Add(stereo)
	f.Add(riff(chunk("LIST", []byte("abc")), chunk("fmt ", extensible(1)), chunk("data", samples)))
	f.Add(append(riff(pcmFmt, []byte("data\x00\x01\x00\x00")), samples...))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrNotWAV) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if f := r.Format(); f.BitsPerSample != 16 || f.Channels < 1 || f.SampleRate < 1 {
			t.Fatalf("accepted format %+v", f)
		}
		buf := make([]int16, 7)
		total := 0
		for {
			n, err := r.Read(buf)
			total += n
			if n < 0 || n > len(buf) || 2*total > len(data) {
				t.Fatalf("Read returned %d, %d in all from %d bytes", n, total, len(data))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

func BenchmarkWrite(b *testing.B) {
	var f memFile
	w, err := NewWriter(&f, 16000, 1)
	if err != nil {
		b.Fatal(err)
	}
	frame := tone(320, 0)
	b.SetBytes(640)
	b.ReportAllocs()
	for b.Loop() {
		f.data, f.pos = f.data[:44], 44 // keep the in-memory file small
		w.dataSize = 0
		if err := w.Write(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	data, _ := writeFile(b, 500, 1)
	buf := make([]int16, 320)
	src := bytes.NewReader(data)
	r, err := NewReader(src)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(640)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Read(buf); err == io.EOF {
			src.Reset(data)
			if r, err = NewReader(src); err != nil {
				b.Fatal(err)
			}
		}
	}
}
