package main

import (
	"errors"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/media/nv12"
	"github.com/switchboard-rtc/switchboard/media/wav"
	"github.com/switchboard-rtc/switchboard/media/y4m"
	"github.com/switchboard-rtc/switchboard/sdk"
)

func readAll(t *testing.T, path string) []int16 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := wav.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []int16
	buf := make([]int16, 1024)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestAudioTrackTimeline: frames land at their index; missing ones are silence; late ones are
// skipped.
func TestAudioTrackTimeline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.wav")
	tr, err := newAudioTrack(path)
	if err != nil {
		t.Fatal(err)
	}
	frame := func(v int16) []int16 {
		f := make([]int16, media.FrameSamples)
		for i := range f {
			f[i] = v
		}
		return f
	}
	for _, step := range []struct {
		index int64
		v     int16
	}{{2, 1}, {3, 2}, {3, 9}, {1, 9}, {6, 3}} {
		if err := tr.write(step.index, frame(step.v)); err != nil {
			t.Fatal(err)
		}
	}
	// Readable mid-recording: the header is never more than SetUpdateEvery writes behind.
	if err := tr.close(); err != nil {
		t.Fatal(err)
	}
	pcm := readAll(t, path)
	want := []int16{0, 0, 1, 2, 0, 0, 3}
	if len(pcm) != len(want)*media.FrameSamples {
		t.Fatalf("%d samples, want %d frames", len(pcm), len(want))
	}
	for i, v := range want {
		if pcm[i*media.FrameSamples] != v || pcm[(i+1)*media.FrameSamples-1] != v {
			t.Fatalf("frame %d is %d, want %d", i, pcm[i*media.FrameSamples], v)
		}
	}
}

// TestVideoTrack: a Y4M file per source and size, frames repeated to keep time at the file's
// rate (a gap is filled with the frame that ends it), snapshots that decode.
func TestVideoTrack(t *testing.T) {
	dir := t.TempDir()
	rec := &recording{opts: options{fps: 10, snapshotEvery: time.Second}, dir: dir, log: slog.New(slog.DiscardHandler)}
	v := &videoTrack{rec: rec, slot: 0}
	frame := func(source uint32, f media.VideoFormat, ts time.Duration, y byte) *media.VideoBuffer {
		b := media.NewVideoBuffer(f)
		_ = nv12.FillRect(b, 0, 0, f.Width, f.Height, nv12.Color{Y: y, U: 128, V: 128})
		b.SourceID, b.Timestamp = source, ts
		return b
	}
	small := media.VideoFormat{PixelFormat: media.NV12, Width: 32, Height: 18, FrameRate: 30}
	big := media.VideoFormat{PixelFormat: media.NV12, Width: 64, Height: 36, FrameRate: 30}
	// Source 7: frames at 0, 100, 300 ms (a gap of one frame at 10 fps), 310 ms (too early).
	for _, ts := range []time.Duration{0, 100, 300, 310} {
		v.onVideo(sdk.VideoReceivedEvent{Buffer: frame(7, small, ts*time.Millisecond, byte(ts/10))})
	}
	v.onVideo(sdk.VideoReceivedEvent{Buffer: frame(7, big, 400*time.Millisecond, 200)}) // new size
	v.onVideo(sdk.VideoReceivedEvent{Buffer: frame(9, big, 500*time.Millisecond, 100)}) // new source
	v.onVideo(sdk.VideoReceivedEvent{Buffer: frame(9, big, 1600*time.Millisecond, 50)}) // a second later
	if err := v.close(); err != nil {
		t.Fatal(err)
	}
	rec.snapshots.Wait()

	lumas := func(path string) []byte {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r, err := y4m.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		if r.Header().FrameRate() != 10 {
			t.Fatalf("%s: %v fps", path, r.Header().FrameRate())
		}
		b := media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.NV12, Width: r.Header().Width, Height: r.Header().Height})
		var out []byte
		for {
			err := r.ReadFrame(b)
			if errors.Is(err, io.EOF) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b.Data()[0])
		}
	}
	if got := lumas(filepath.Join(dir, "video0-source7-0.y4m")); !slices.Equal(got, []byte{0, 10, 30, 30}) {
		t.Errorf("first file's frames %v", got)
	}
	if got := lumas(filepath.Join(dir, "video0-source7-1.y4m")); !slices.Equal(got, []byte{200}) {
		t.Errorf("second file's frames %v", got)
	}
	if got := lumas(filepath.Join(dir, "video0-source9-2.y4m")); len(got) != 12 || got[0] != 100 || got[1] != 50 || got[11] != 50 {
		t.Errorf("third file's frames %v", got)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	// One at the start, one a second (of media time) or more later.
	if len(snaps) != 2 {
		t.Fatalf("snapshots %v", snaps)
	}
	for _, p := range snaps {
		f, _ := os.Open(p)
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		f.Close()
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(tmp) != 0 {
		t.Errorf("left over %v", tmp)
	}
}

func TestWanted(t *testing.T) {
	roster := []sdk.Participant{
		{ID: "bot", IsBot: true, Streams: []sdk.Stream{{Kind: sdk.StreamVideo, SourceID: 1}}},
		{ID: "ann", Streams: []sdk.Stream{{Kind: sdk.StreamAudio, SourceID: 10}, {Kind: sdk.StreamVideo, SourceID: 11}}},
		{ID: "bob", Streams: []sdk.Stream{{Kind: sdk.StreamAudio, SourceID: 20}, {Kind: sdk.StreamVideo, SourceID: 21}}},
		{ID: "cat", Streams: []sdk.Stream{{Kind: sdk.StreamAudio, SourceID: 30}}},
	}
	for _, tc := range []struct {
		dominant uint32
		first    bool
		want     []uint32
	}{
		{0, true, []uint32{11, 21}},
		{20, true, []uint32{21, 11}},
		{20, false, []uint32{11, 21}},
		{30, true, []uint32{11, 21}}, // the speaker sends no video
	} {
		if got := wanted(roster, tc.dominant, tc.first); !slices.Equal(got, tc.want) {
			t.Errorf("dominant %d first %v: %v, want %v", tc.dominant, tc.first, got, tc.want)
		}
	}
}

func TestOptions(t *testing.T) {
	good := options{video: "all", width: 640, height: 360, fps: 30}
	if err := good.check(); err != nil || good.sockets != 4 {
		t.Fatalf("%v, %d sockets", err, good.sockets)
	}
	for _, o := range []options{
		{video: "some", width: 640, height: 360, fps: 30},
		{video: "dominant", width: 1, height: 360, fps: 30},
		{video: "dominant", width: 640, height: 360, fps: 0},
		{video: "all", sockets: 99, width: 640, height: 360, fps: 30},
	} {
		if err := o.check(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestPerFrameAllocs: writing a frame of audio or of video to its file allocates nothing.
func TestPerFrameAllocs(t *testing.T) {
	if media.DebugChecks {
		t.Skip("the checking builds' buffer checks are not what is measured")
	}
	dir := t.TempDir()
	a, err := newAudioTrack(filepath.Join(dir, "a.wav"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	pcm := make([]int16, media.FrameSamples)
	i := int64(0)
	if n := testing.AllocsPerRun(100, func() { _ = a.write(i, pcm); i++ }); n != 0 {
		t.Errorf("audio: %v allocations per frame", n)
	}
	rec := &recording{opts: options{fps: 30}, dir: dir, log: slog.New(slog.DiscardHandler)}
	v := &videoTrack{rec: rec}
	defer v.close()
	b := media.NewVideoBuffer(media.NV12_640x360_30)
	ts := time.Duration(0)
	_ = v.record(b)
	if n := testing.AllocsPerRun(30, func() {
		ts += 33333 * time.Microsecond
		b.Timestamp = ts
		_ = v.record(b)
	}); n != 0 {
		t.Errorf("video: %v allocations per frame", n)
	}
}
