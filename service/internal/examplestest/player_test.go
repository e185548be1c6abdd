package examplestest

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/media/nv12"
	"github.com/switchboard-rtc/switchboard/media/wav"
	"github.com/switchboard-rtc/switchboard/media/y4m"
	"github.com/switchboard-rtc/switchboard/service/internal/servicetest"
	"github.com/switchboard-rtc/switchboard/service/internal/testpeer"
)

// clipFrames is the length of the test clip in 20 ms frames (6 s).
const clipFrames = 300

// voice is frame n of the test clip.
func voice(n int, pcm []int16) { testpeer.Tone(n, pcm, 1, 8000) }

func writeClip(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clip.wav")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := wav.NewWriter(f, media.SampleRate, 1)
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]int16, media.FrameSamples)
	for n := range clipFrames {
		voice(n, frame)
		if err := w.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPlayer: Ann calls the player, which plays a 6 s WAV and its test card. Ann hears the
// WAV (correlation), receives video, an observer bot sees the test card's colour bars, and the
// player ends the call when the WAV has played.
func TestPlayer(t *testing.T) {
	e := newEnv(t, "player", "observer")
	obs := newObserver(t, e, "player")
	player := e.start(t, "player", "-wav", writeClip(t))

	ann := e.dial(t, testpeer.Config{Name: "Ann"})
	j, err := ann.CallBot(t.Context(), "player")
	if err != nil {
		t.Fatal(err)
	}
	audio, video := botSources(t, ann, "player", true, true)
	obs.invite(t, e, j.ConferenceID)

	servicetest.Eventually(t, "3 s of the player's audio", func() bool { return ann.Packets(audio) >= 150 })
	pcm, _ := ann.Audio(audio)
	want := make([]int16, 0, media.SampleRate)
	frame := make([]int16, media.FrameSamples)
	for n := 50; n < 100; n++ { // the clip's second second
		voice(n, frame)
		want = append(want, frame...)
	}
	corr, lag := testpeer.Correlation(want, pcm)
	t.Logf("Ann heard %d samples; the clip's second second correlates %.3f at offset %d", len(pcm), corr, lag)
	if corr < 0.8 {
		t.Errorf("what Ann heard correlates %.3f with the WAV, want ≥ 0.8", corr)
	}

	got := obs.waitFrames(t, 10)
	f := got.Format()
	v := ann.Video(video)
	t.Logf("Ann got %d frames of %dx%d; the observer sees %dx%d", v.Frames, v.Width, v.Height, f.Width, f.Height)
	if v.Frames == 0 {
		t.Error("Ann received no video from the player")
	}
	// The test card's bars, left to right (examples/player: 75 % bars over the top two thirds).
	bars := []nv12.Color{
		nv12.FromRGB(191, 191, 191), nv12.FromRGB(191, 191, 0), nv12.FromRGB(0, 191, 191), nv12.FromRGB(0, 191, 0),
		nv12.FromRGB(191, 0, 191), nv12.FromRGB(191, 0, 0), nv12.FromRGB(0, 0, 191),
	}
	for i, c := range bars {
		x0 := (2*i + 1) * f.Width / (2 * len(bars)) // the bar's middle
		x0, x1 := x0-f.Width/40, x0+f.Width/40
		y0, y1 := f.Height/8, f.Height/2
		l := meanLuma(got, x0, y0, x1, y1)
		u, v := meanChroma(got, x0, y0, x1, y1)
		if math.Abs(l-float64(c.Y)) > 20 || math.Abs(u-float64(c.U)) > 20 || math.Abs(v-float64(c.V)) > 20 {
			t.Errorf("bar %d is YUV %.0f %.0f %.0f, want about %v", i, l, u, v, c)
		}
	}
	if l := meanLuma(got, 0, f.Height*2/3+f.Height/10, f.Width, f.Height); l > 120 {
		t.Errorf("the card's lower band has mean luma %.0f, want mostly black", l)
	}

	player.waitLog(t, "the clip has played; ending the call", nil)
	played := player.waitLog(t, "audio played", nil)
	if n := played["frames"].(float64); int(n) != clipFrames {
		t.Errorf("the player sent %v audio frames of a %d-frame clip", n, clipFrames)
	}
}

// TestPlayerClip: the player plays a Y4M clip (no WAV): an observer bot sees the clip's frames,
// and the player ends the call when the clip has played, every frame sent or dropped once.
func TestPlayerClip(t *testing.T) {
	const frames = 40 // 4 s at 10 fps
	path := filepath.Join(t.TempDir(), "clip.y4m")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	format := media.VideoFormat{PixelFormat: media.NV12, Width: 320, Height: 180, FrameRate: 10}
	w, err := y4m.NewWriter(f, format)
	if err != nil {
		t.Fatal(err)
	}
	b := media.NewVideoBuffer(format)
	for i := range frames {
		_ = nv12.FillRect(b, 0, 0, 320, 180, nv12.Color{Y: byte(40 + 4*i), U: 90, V: 170})
		if err := w.WriteFrame(b); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	e := newEnv(t, "player", "observer")
	obs := newObserver(t, e, "player")
	player := e.start(t, "player", "-video", path)
	ann := e.dial(t, testpeer.Config{Name: "Ann"})
	j, err := ann.CallBot(t.Context(), "player")
	if err != nil {
		t.Fatal(err)
	}
	botSources(t, ann, "player", false, true)
	obs.invite(t, e, j.ConferenceID)
	got := obs.waitFrames(t, 5)
	g := got.Format()
	l := meanLuma(got, 0, 0, g.Width, g.Height)
	u, v := meanChroma(got, 0, 0, g.Width, g.Height)
	t.Logf("observer sees %dx%d, luma %.0f, chroma %.0f %.0f", g.Width, g.Height, l, u, v)
	if l < 30 || l > 40+4*frames+10 || math.Abs(u-90) > 12 || math.Abs(v-170) > 12 {
		t.Errorf("a frame of luma %.0f, chroma %.0f %.0f is not one of the clip's", l, u, v)
	}
	player.waitLog(t, "the clip has played; ending the call", nil)
	played := player.waitLog(t, "video played", nil)
	if n := played["frames"].(float64) + played["dropped"].(float64); int(n) != frames {
		t.Errorf("the player sent %v and dropped %v frames of a %d-frame clip", played["frames"], played["dropped"], frames)
	}
}
