package sdk

import (
	"fmt"
	"testing"

	"github.com/switchboard-rtc/switchboard/media"
)

var (
	f720  = media.VideoFormat{PixelFormat: media.NV12, Width: 1280, Height: 720, FrameRate: 30}
	f360  = media.VideoFormat{PixelFormat: media.NV12, Width: 640, Height: 360, FrameRate: 30}
	f180  = media.VideoFormat{PixelFormat: media.NV12, Width: 320, Height: 180, FrameRate: 15}
	f360p = media.VideoFormat{PixelFormat: media.NV12, Width: 360, Height: 640, FrameRate: 30}
	f180p = media.VideoFormat{PixelFormat: media.NV12, Width: 180, Height: 320, FrameRate: 15}
)

const (
	fullBandwidth = 2_000_000
	lowBandwidth  = 150_000
)

// prefTest drives a sendPreference as a socket does.
type prefTest struct {
	t *testing.T
	p *sendPreference
}

func newPrefTest(t *testing.T, formats ...media.VideoFormat) *prefTest {
	return &prefTest{t: t, p: newSendPreference(formats, fullBandwidth, 3)}
}

func (pt *prefTest) frames(n int, f media.VideoFormat) {
	for range n {
		pt.p.input(f.Width, f.Height)
	}
}

// follow sends n frames as a bot that renders at the preferred format does, whose frames reach
// the socket lag frames after it hears of a change.
func (pt *prefTest) follow(n, lag int) {
	var queue []media.VideoFormat
	for range n {
		queue = append(queue, pt.preferred())
		if len(queue) > lag {
			f := queue[0]
			queue = queue[1:]
			pt.p.input(f.Width, f.Height)
		}
	}
}

func (pt *prefTest) preferred() media.VideoFormat { return pt.p.formats[pt.p.current()] }

func (pt *prefTest) want(what string, f media.VideoFormat) {
	pt.t.Helper()
	if got := pt.preferred(); got != f {
		pt.t.Errorf("%s: preferred %v, want %v", what, got, f)
	}
}

// TestPreferredFormatFollowsBandwidth: with no frames, or frames of the size asked for, the
// preferred format follows the bandwidth estimate alone.
func TestPreferredFormatFollowsBandwidth(t *testing.T) {
	pt := newPrefTest(t, f720, f360, f180)
	pt.want("full bandwidth", f720)
	pt.p.estimate(lowBandwidth)
	pt.want("150 kbit/s", f180)
	pt.p.estimate(400_000)
	pt.want("400 kbit/s", f360)
	pt.p.estimate(fullBandwidth)
	pt.want("full bandwidth again", f720)
}

// TestPreferredFormatNotLargerThanInput: a 640×360 source is not scaled up to 720p at full
// bandwidth; a lower estimate still moves the format down, and a higher one back up to the
// source's size only.
func TestPreferredFormatNotLargerThanInput(t *testing.T) {
	pt := newPrefTest(t, f720, f360, f180)
	pt.frames(1, f360)
	pt.want("640x360 frames at full bandwidth", f360)
	pt.frames(100, f360)
	pt.want("many 640x360 frames", f360)
	pt.p.estimate(lowBandwidth)
	pt.frames(100, f360)
	pt.want("640x360 frames at 150 kbit/s", f180)
	pt.p.estimate(fullBandwidth)
	pt.frames(100, f360)
	pt.want("640x360 frames at full bandwidth again", f360)

	// A 4:3 source: 640×360 is the largest format no wider and no taller.
	pt = newPrefTest(t, f720, f360, f180)
	pt.frames(50, media.VideoFormat{Width: 640, Height: 480})
	pt.want("640x480 frames", f360)

	// A source smaller than every format: the smallest.
	pt = newPrefTest(t, f720, f360, f180)
	pt.frames(50, media.VideoFormat{Width: 160, Height: 90})
	pt.want("160x90 frames", f180)
}

// TestPreferredFormatInputChanges: larger frames raise the input size at once; smaller ones
// lower it only after inputWindow of them in a row.
func TestPreferredFormatInputChanges(t *testing.T) {
	pt := newPrefTest(t, f720, f360, f180)
	pt.frames(20, f180)
	pt.want("320x180 frames", f180)
	pt.frames(1, f720)
	pt.want("one 1280x720 frame", f720)
	pt.frames(inputWindow-1, f360)
	pt.want("a few 640x360 frames", f720)
	pt.frames(1, f720) // the run of smaller frames starts again
	pt.frames(inputWindow-1, f360)
	pt.want("a few 640x360 frames after a 720p one", f720)
	pt.frames(1, f360)
	pt.want(fmt.Sprintf("%d 640x360 frames in a row", inputWindow), f360)
}

// TestPreferredFormatFollower: a bot that renders at the preferred format (its frames lagging
// the changes) follows the bandwidth down and back up: its own frames never pin the format.
func TestPreferredFormatFollower(t *testing.T) {
	for _, lag := range []int{0, 1, 4, 8, 20} {
		pt := newPrefTest(t, f720, f360, f180)
		pt.follow(60, lag)
		pt.want("full bandwidth", f720)
		pt.p.estimate(lowBandwidth)
		pt.follow(60, lag)
		pt.want("150 kbit/s", f180)
		pt.p.estimate(400_000)
		pt.p.estimate(fullBandwidth) // two changes before the bot catches up
		pt.follow(60, lag)
		pt.want("full bandwidth again", f720)
		if pt.p.inW != 0 && pt.p.inW < 1280 {
			t.Errorf("lag %d: input size %dx%d", lag, pt.p.inW, pt.p.inH)
		}
	}
}

// TestPreferredFormatOrientation: portrait frames pick a portrait format, landscape ones a
// landscape format.
func TestPreferredFormatOrientation(t *testing.T) {
	pt := newPrefTest(t, f360, f180, f360p, f180p)
	pt.want("no frames", f360)
	pt.frames(1, f360p)
	pt.want("a portrait frame", f360p)
	pt.frames(5, media.VideoFormat{Width: 720, Height: 1280})
	pt.want("720x1280 frames", f360p)
	pt.p.estimate(lowBandwidth)
	pt.want("portrait at 150 kbit/s", f180p)
	pt.frames(1, f360)
	pt.want("a landscape frame at 150 kbit/s", f180)
}
