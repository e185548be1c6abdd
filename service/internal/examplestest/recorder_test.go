package examplestest

import (
	"errors"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/media/wav"
	"github.com/switchboard-rtc/switchboard/media/y4m"
	"github.com/switchboard-rtc/switchboard/service/internal/testpeer"
)

// TestRecorder: a participant who sends a 500 Hz tone and a camera calls the recorder, talks
// for a few seconds and hangs up; the call's WAV holds the tone for about as long as the call
// lasted, the speaker's own WAV too, the Y4M file has frames and the snapshots decode. Then a
// second call is cut by SIGTERM to the recorder: its files are complete and parse.
func TestRecorder(t *testing.T) {
	e := newEnv(t, "recorder")
	out := t.TempDir()
	rec := e.start(t, "recorder", "-out", out, "-per-speaker", "-snapshot-every", "1s")

	ann := e.dial(t, testpeer.Config{Name: "Ann", Audio: sine(500, 8000), Video: true})
	j, err := ann.CallBot(t.Context(), "recorder")
	if err != nil {
		t.Fatal(err)
	}
	started := rec.waitLog(t, "recording", nil)
	begin := time.Now()
	dir := started["dir"].(string)
	rec.waitLog(t, "video file", func(l map[string]any) bool { return strings.HasPrefix(l["path"].(string), dir) })
	time.Sleep(3 * time.Second)
	if err := ann.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	rec.waitLog(t, "recording closed", func(l map[string]any) bool { return l["dir"] == dir })
	callLength := time.Since(begin)

	mix := readWAV(t, filepath.Join(dir, "mix.wav"))
	dur := time.Duration(len(mix)) * time.Second / media.SampleRate
	t.Logf("call of %v: mix.wav holds %v", callLength.Round(time.Millisecond), dur.Round(time.Millisecond))
	if dur < 2*time.Second || dur > callLength+2*time.Second {
		t.Errorf("mix.wav holds %v of a call that lasted %v", dur, callLength)
	}
	checkTone(t, "mix.wav", mix, 500)
	speaker := readWAV(t, filepath.Join(dir, "speaker-"+itoa(j.Sources.Audio)+".wav"))
	checkTone(t, "the speaker's WAV", speaker, 500)
	frames := checkVideo(t, dir, j.Sources.Video)
	t.Logf("video: %d frames; snapshots decode", frames)

	// A call cut short by SIGTERM.
	bob := e.dial(t, testpeer.Config{Name: "Bob", Audio: sine(500, 8000), Video: true})
	jb, err := bob.CallBot(t.Context(), "recorder")
	if err != nil {
		t.Fatal(err)
	}
	started = rec.waitLog(t, "recording", func(l map[string]any) bool { return l["dir"] != dir })
	dir = started["dir"].(string)
	rec.waitLog(t, "video file", func(l map[string]any) bool { return strings.HasPrefix(l["path"].(string), dir) })
	time.Sleep(2 * time.Second)
	if err := rec.stop(t); err != nil {
		t.Fatalf("recorder after SIGTERM: %v", err)
	}
	rec.waitLog(t, "recording closed", func(l map[string]any) bool { return l["dir"] == dir })
	checkTone(t, "mix.wav after SIGTERM", readWAV(t, filepath.Join(dir, "mix.wav")), 500)
	frames = checkVideo(t, dir, jb.Sources.Video)
	t.Logf("after SIGTERM: %d video frames, files complete", frames)
}

// TestRecorderMoreSocketsThanSlots: asked for more video sockets than the service's offer has
// video slots, the recorder makes one per slot (IncomingCall.MediaSlots) and records, instead of
// failing the answer.
func TestRecorderMoreSocketsThanSlots(t *testing.T) {
	e := newEnv(t, "recorder")
	out := t.TempDir()
	rec := e.start(t, "recorder", "-out", out, "-video", "all", "-video-sockets", "9", "-snapshot-every", "0")
	ann := e.dial(t, testpeer.Config{Name: "Ann", Audio: sine(500, 8000), Video: true})
	if _, err := ann.CallBot(t.Context(), "recorder"); err != nil {
		t.Fatal(err)
	}
	capped := rec.waitLog(t, "fewer video slots than -video-sockets; recording fewer videos", nil)
	started := rec.waitLog(t, "recording", nil)
	dir := started["dir"].(string)
	rec.waitLog(t, "video file", func(l map[string]any) bool { return strings.HasPrefix(l["path"].(string), dir) })
	t.Logf("recording with %v sockets of the %v asked for", capped["slots"], capped["video_sockets"])
	if err := ann.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	rec.waitLog(t, "recording closed", func(l map[string]any) bool { return l["dir"] == dir })
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// readWAV reads a whole WAV file, checking that it is complete: 16 kHz mono, the header's size
// that of the file.
func readWAV(t *testing.T, path string) []int16 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := wav.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if got := r.Format(); got.SampleRate != media.SampleRate || got.Channels != 1 {
		t.Fatalf("%s: format %+v", path, got)
	}
	var pcm []int16
	buf := make([]int16, 4096)
	for {
		n, err := r.Read(buf)
		pcm = append(pcm, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if r.Truncated() {
		t.Errorf("%s: shorter than its header says", path)
	}
	st, _ := f.Stat()
	if want := int64(44 + 2*len(pcm)); st.Size() != want {
		t.Errorf("%s: %d bytes, the header accounts for %d", path, st.Size(), want)
	}
	return pcm
}

// checkTone finds the loudest second of pcm and checks that it is a tone at hz.
func checkTone(t *testing.T, what string, pcm []int16, hz float64) {
	t.Helper()
	const win = media.SampleRate
	if len(pcm) < win {
		t.Fatalf("%s: %d samples, less than a second", what, len(pcm))
	}
	best, at := 0.0, 0
	for i := 0; i+win <= len(pcm); i += win / 4 {
		if p := power(pcm[i:i+win], hz); p > best {
			best, at = p, i
		}
	}
	seg := pcm[at : at+win]
	other := max(power(seg, hz*0.7), power(seg, hz*1.4), power(seg, hz*2.3))
	t.Logf("%s: power at %.0f Hz %.0f, elsewhere at most %.1f", what, hz, best, other)
	if best < 1000 || best < 50*other {
		t.Errorf("%s does not hold the %.0f Hz tone: power %.1f there, %.1f elsewhere", what, hz, best, other)
	}
}

// checkVideo parses every Y4M file of source in dir to its end and decodes every snapshot;
// it returns the frames found.
func checkVideo(t *testing.T, dir string, source uint32) int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "video0-source"+itoa(source)+"-*.y4m"))
	if len(files) == 0 {
		t.Fatalf("no Y4M file of source %d in %s", source, dir)
	}
	frames := 0
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r, err := y4m.NewReader(f)
		if err != nil {
			f.Close()
			t.Fatalf("%s: %v", path, err)
		}
		buf := media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.NV12, Width: r.Header().Width, Height: r.Header().Height})
		for {
			err := r.ReadFrame(buf)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("%s frame %d: %v", path, r.Frames(), err)
				break
			}
		}
		frames += r.Frames()
		f.Close()
	}
	if frames < 10 {
		t.Errorf("%d frames in %v", frames, files)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "video0-*.png"))
	if len(snaps) == 0 {
		t.Errorf("no snapshot in %s", dir)
	}
	for _, path := range snaps {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", path, err)
		} else if img.Bounds().Dx() < 16 {
			t.Errorf("%s: %v", path, img.Bounds())
		}
	}
	return frames
}
