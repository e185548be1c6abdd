package examplestest

import (
	"math"
	"testing"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/media/nv12"
	"github.com/switchboard-rtc/switchboard/service/internal/servicetest"
	"github.com/switchboard-rtc/switchboard/service/internal/testpeer"
)

// TestHue: Ann calls the hue bot with a camera (testpeer's pattern: four chroma quadrants) and
// a voice. The frames the bot sends back, seen by an observer bot in the same conference, have
// every quadrant's chroma turned by 180° about neutral grey, and Ann's name drawn at the bottom
// left where the bot puts it.
func TestHue(t *testing.T) {
	e := newEnv(t, "hue", "observer")
	obs := newObserver(t, e, "hue")
	e.start(t, "hue", "-degrees", "180")

	ann := e.dial(t, testpeer.Config{Name: "Ann", Audio: sine(300, 6000), Video: true})
	j, err := ann.CallBot(t.Context(), "hue")
	if err != nil {
		t.Fatal(err)
	}
	_, video := botSources(t, ann, "hue", false, true)
	obs.invite(t, e, j.ConferenceID)
	servicetest.Eventually(t, "hue's video at Ann", func() bool { return ann.Video(video).Frames >= 10 })
	obs.waitFrames(t, 5)
	got := obs.waitFrames(t, 15) // later frames: after the first key frame's settling
	f := got.Format()
	t.Logf("observer sees %dx%d; Ann got %d frames of hue's video", f.Width, f.Height, ann.Video(video).Frames)

	// What Ann sent, quadrant by quadrant (testpeer.DrawPattern), and what a 180° turn makes
	// of it.
	sent := [4][2]float64{{64, 192}, {192, 64}, {128, 90}, {90, 128}}
	w, h := f.Width, f.Height
	regions := [4][4]int{
		{w / 10, h / 10, w * 4 / 10, h * 4 / 10},
		{w * 6 / 10, h / 10, w * 9 / 10, h * 4 / 10},
		{w * 3 / 10, h * 6 / 10, w * 45 / 100, h * 75 / 100}, // clear of the label
		{w * 6 / 10, h * 6 / 10, w * 9 / 10, h * 9 / 10},
	}
	for q, r := range regions {
		u, v := meanChroma(got, r[0], r[1], r[2], r[3])
		wantU, wantV := 256-sent[q][0], 256-sent[q][1]
		t.Logf("quadrant %d: sent U %.0f V %.0f, received U %.1f V %.1f (want %.0f, %.0f)", q, sent[q][0], sent[q][1], u, v, wantU, wantV)
		if math.Abs(u-wantU) > 16 || math.Abs(v-wantV) > 16 {
			t.Errorf("quadrant %d: chroma U %.1f V %.1f, want about %.0f, %.0f (sent %.0f, %.0f)", q, u, v, wantU, wantV, sent[q][0], sent[q][1])
		}
	}

	// The label, as the bot draws it on its 640×360 frame (scale 4 at 360 lines, at 8,324).
	exp := media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.NV12, Width: 640, Height: 360})
	_ = nv12.FillRect(exp, 0, 0, 640, 360, nv12.Gray)
	bg := nv12.Black
	_ = nv12.DrawText(exp, 8, 324, "Ann", nv12.TextStyle{Scale: 4, Color: nv12.White, Background: &bg, Pad: 4})
	tw, th := nv12.TextSize("Ann", 4)
	agree, total, ink := 0, 0, 0
	ep, _ := exp.Planes()
	gp, _ := got.Planes()
	for y := 324 + 1; y < 324+th-1; y++ {
		for x := 8 + 1; x < 8+tw-1; x++ {
			want := ep[0][y*640+x] > 128
			gx, gy := x*w/640, y*h/360
			have := gp[0][gy*w+gx] > 128
			if want == have {
				agree++
			}
			if want {
				ink++
			}
			total++
		}
	}
	t.Logf("label: %d of %d pixels agree with %q drawn by the bot (%d ink)", agree, total, "Ann", ink)
	if float64(agree) < 0.85*float64(total) {
		t.Errorf("the label region agrees with the drawn name on %d of %d pixels", agree, total)
	}
	if l := meanLuma(got, 0, h*95/100, w/100+1, h); l > 60 {
		t.Logf("note: the box's corner is not dark (%.0f)", l)
	}
}
