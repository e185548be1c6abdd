package sdk

import "github.com/switchboard-rtc/switchboard/media"

// How a video socket chooses its preferred send format.
const (
	// bitsPerPixel is the VP8 bitrate a format needs per pixel and frame to look acceptable.
	bitsPerPixel = 0.04
	// inputWindow is how many frames in a row, all smaller than the input size the socket
	// believes in, it takes to lower that size (larger frames raise it at once).
	inputWindow = 15
	// graceFrames is how many frames after a change of the preferred format frames of the
	// formats preferred before still count as the bot following the preference (they were
	// made or queued before the bot heard of the change); SendQueueFrames is added to it.
	graceFrames = 30
)

// sendPreference chooses a video socket's preferred send format, the one its encoder runs at,
// from three things:
//
//   - the bandwidth estimate (REMB from the service): the largest format whose need
//     (bitsPerPixel per pixel and frame) fits it, else the smallest;
//   - the size of the frames the bot sends (the input size): never a format wider or taller
//     than that, so a 640×360 source is not scaled up to 720p whatever the bandwidth. Frames of
//     the size the socket asked for (the current preferred format while the bandwidth chose
//     it, or a format preferred just before) say nothing about the source, since a bot that
//     renders its frames follows the preference: they leave the input size alone;
//   - the orientation of the latest frame: portrait frames pick among the portrait formats
//     and landscape (or square) frames among the landscape ones, when the list has both.
//
// Key frame requests do not move it; they make the next frame a key frame. A change of format
// restarts the encoder, whose first frame is a key frame too, which is why the input size
// rises at once but falls only after inputWindow smaller frames.
//
// It is not safe for concurrent use; the socket guards it.
type sendPreference struct {
	formats []media.VideoFormat // largest first
	grace   uint64              // frames of a superseded format still count as following

	mixed    bool  // formats has both portrait and landscape ones
	bps      int64 // the bandwidth estimate
	cur      int   // index of the preferred format
	byInput  bool  // cur is smaller than the bandwidth alone would choose
	portrait bool  // the latest frame is taller than wide

	inW, inH   int // the input size, 0 while unknown
	lowW, lowH int // the largest of the smaller frames in a row since
	lowN       int // how many of them
	frames     uint64
	recent     [3]recentFormat // formats preferred before, newest first
}

// recentFormat is a format preferred before, whose frames may still be on their way.
type recentFormat struct {
	w, h  int
	until uint64 // frame count until which its frames count as following
}

func newSendPreference(formats []media.VideoFormat, bps int64, sendQueue int) *sendPreference {
	p := &sendPreference{formats: formats, bps: bps, grace: uint64(graceFrames + sendQueue)}
	for _, f := range formats {
		if isPortrait(f.Width, f.Height) != isPortrait(formats[0].Width, formats[0].Height) {
			p.mixed = true
		}
	}
	p.cur, p.byInput = p.pick()
	return p
}

// current is the index of the preferred format.
func (p *sendPreference) current() int { return p.cur }

// estimate takes a new bandwidth estimate and reports whether the preferred format changed.
func (p *sendPreference) estimate(bps int64) bool {
	p.bps = bps
	return p.update()
}

// input takes the size of a frame the bot sent and reports whether the preferred format
// changed.
func (p *sendPreference) input(w, h int) bool {
	p.frames++
	p.portrait = isPortrait(w, h)
	switch {
	case p.inW != 0 && (w > p.inW || h > p.inH):
		// A larger frame raises the input size at once, whoever chose its size: the bot can
		// send it, so no format up to it is a scaling up.
		p.inW, p.inH, p.lowN = w, h, 0
	case p.following(w, h):
		p.lowN = 0
	case p.inW == 0:
		p.inW, p.inH, p.lowN = w, h, 0
	default:
		if p.lowN == 0 {
			p.lowW, p.lowH = 0, 0
		}
		p.lowW, p.lowH = max(p.lowW, w), max(p.lowH, h)
		if p.lowN++; p.lowN >= inputWindow {
			p.inW, p.inH, p.lowN = p.lowW, p.lowH, 0
		}
	}
	return p.update()
}

// following reports whether a frame of w×h is of the size the socket asked for.
func (p *sendPreference) following(w, h int) bool {
	if len(p.formats) == 0 {
		return false
	}
	if f := p.formats[p.cur]; f.Width == w && f.Height == h && !p.byInput {
		return true
	}
	for _, r := range p.recent {
		if r.w == w && r.h == h && p.frames <= r.until {
			return true
		}
	}
	return false
}

// update chooses again and reports whether the choice changed.
func (p *sendPreference) update() bool {
	i, byInput := p.pick()
	p.byInput = byInput
	if i == p.cur {
		return false
	}
	old := p.formats[p.cur]
	copy(p.recent[1:], p.recent[:len(p.recent)-1])
	p.recent[0] = recentFormat{w: old.Width, h: old.Height, until: p.frames + p.grace}
	p.cur = i
	return true
}

// pick is the preferred format now, and whether the input size made it smaller than the
// bandwidth alone would.
func (p *sendPreference) pick() (i int, byInput bool) {
	if len(p.formats) == 0 {
		return 0, false
	}
	i = p.choose(p.inW, p.inH)
	if p.inW == 0 {
		return i, false
	}
	return i, i != p.choose(0, 0)
}

// choose is the largest format of the latest frame's orientation that is no wider than inW and
// no taller than inH (when inW is not 0) and whose need fits the bandwidth; else the smallest
// of those that fit the input; else the smallest of that orientation.
func (p *sendPreference) choose(inW, inH int) int {
	fitsInput, smallest := -1, -1
	for i, f := range p.formats {
		if p.mixed && isPortrait(f.Width, f.Height) != p.portrait {
			continue
		}
		smallest = i
		if inW != 0 && (f.Width > inW || f.Height > inH) {
			continue
		}
		fitsInput = i
		if float64(f.Width*f.Height)*f.FrameRate*bitsPerPixel <= float64(p.bps) {
			return i
		}
	}
	if fitsInput >= 0 {
		return fitsInput
	}
	return smallest
}

// isPortrait reports whether a picture is taller than wide.
func isPortrait(w, h int) bool { return h > w }
