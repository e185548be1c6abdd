package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/media/nv12"
	"github.com/switchboard-rtc/switchboard/media/y4m"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// videoSource makes the frames the player sends.
type videoSource interface {
	// next fills dst (NV12, of whatever size the socket prefers) with the next frame, or
	// returns io.EOF at the end of the clip.
	next(dst *media.VideoBuffer) error
	// formats are the formats the source can send, largest first.
	formats() []media.VideoFormat
	close()
}

// The pattern's colour bars, left to right (75 % bars, as test cards have them).
var bars = [...]nv12.Color{
	nv12.FromRGB(191, 191, 191), nv12.FromRGB(191, 191, 0), nv12.FromRGB(0, 191, 191), nv12.FromRGB(0, 191, 0),
	nv12.FromRGB(191, 0, 191), nv12.FromRGB(191, 0, 0), nv12.FromRGB(0, 0, 191),
}

// pattern is a generated test card: colour bars over the top two thirds, and below them a box
// that moves one step a frame and a clock (time since the start, and the frame number).
type pattern struct {
	start time.Time
	n     int
}

func (p *pattern) formats() []media.VideoFormat {
	return []media.VideoFormat{media.NV12_1280x720_30, media.NV12_640x360_30, media.NV12_320x180_15}
}

func (p *pattern) close() {}

func (p *pattern) next(dst *media.VideoBuffer) error {
	if p.start.IsZero() {
		p.start = time.Now()
	}
	drawPattern(dst, p.n, time.Since(p.start))
	p.n++
	return nil
}

// drawPattern draws frame n of the test card at dst's size, with elapsed on its clock.
func drawPattern(dst *media.VideoBuffer, n int, elapsed time.Duration) {
	f := dst.Format()
	w, h := f.Width, f.Height
	barsH := h * 2 / 3 &^ 1
	for i, c := range bars {
		x0 := (i * w / len(bars)) &^ 1
		x1 := ((i + 1) * w / len(bars)) &^ 1
		if i == len(bars)-1 {
			x1 = w
		}
		_ = nv12.FillRect(dst, x0, 0, x1-x0, barsH, c)
	}
	_ = nv12.FillRect(dst, 0, barsH, w, h-barsH, nv12.Black)
	box := max(h/12&^1, 2)
	travel := max(w-box, 1)
	x := (n * max(w/120, 1) * 2) % (2 * travel)
	if x >= travel {
		x = 2*travel - x // bounce back
	}
	_ = nv12.FillRect(dst, x&^1, barsH+2, box, box, nv12.White)
	scale := max(h/90&^1, 1)
	drawClock(dst, 2*scale, h-(nv12.GlyphHeight+2)*scale, scale, elapsed, n)
}

// chars are one-character strings, so that the clock is drawn without building a string.
var chars = func() (t [128]string) {
	for c := range t {
		t[c] = string(rune(c))
	}
	return t
}()

// drawClock draws "mm:ss.mmm  #n" at (x, y), allocating nothing.
func drawClock(dst *media.VideoBuffer, x, y, scale int, elapsed time.Duration, n int) {
	var buf [40]byte
	ms := elapsed.Milliseconds()
	b := appendPadded(buf[:0], ms/60000, 2)
	b = append(b, ':')
	b = appendPadded(b, ms/1000%60, 2)
	b = append(b, '.')
	b = appendPadded(b, ms%1000, 3)
	b = append(b, ' ', ' ', '#')
	b = strconv.AppendInt(b, int64(n), 10)
	style := nv12.TextStyle{Scale: scale, Color: nv12.White}
	for i, c := range b {
		_ = nv12.DrawText(dst, x+i*nv12.Advance*scale, y, chars[c&127], style)
	}
}

// appendPadded appends v in decimal with at least width digits.
func appendPadded(b []byte, v int64, width int) []byte {
	start := len(b)
	b = strconv.AppendInt(b, v, 10)
	for len(b)-start < width {
		b = append(b, 0)
		copy(b[start+1:], b[start:])
		b[start] = '0'
	}
	return b
}

// y4mClip plays a Y4M file, scaled to the size asked for.
type y4mClip struct {
	path  string
	loop  bool
	f     *os.File
	r     *y4m.Reader
	frame *media.VideoBuffer // one frame at the file's size
}

func openY4M(path string, loop bool) (*y4mClip, error) {
	c := &y4mClip{path: path, loop: loop}
	if err := c.open(); err != nil {
		return nil, err
	}
	h := c.r.Header()
	c.frame = media.NewVideoBuffer(media.VideoFormat{PixelFormat: media.NV12, Width: h.Width, Height: h.Height, FrameRate: h.FrameRate()})
	return c, nil
}

func (c *y4mClip) open() error {
	f, err := os.Open(c.path)
	if err != nil {
		return err
	}
	r, err := y4m.NewReader(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", c.path, err)
	}
	if c.r != nil && (r.Header().Width != c.r.Header().Width || r.Header().Height != c.r.Header().Height) {
		f.Close()
		return fmt.Errorf("%s: changed size while playing", c.path)
	}
	if c.f != nil {
		c.f.Close()
	}
	c.f, c.r = f, r
	return nil
}

// formats are the file's size, half and quarter, at its frame rate (30 when it does not say).
func (c *y4mClip) formats() []media.VideoFormat {
	h := c.r.Header()
	fps := h.FrameRate()
	if !(fps > 0 && fps <= 120) {
		fps = 30
	}
	var out []media.VideoFormat
	for _, div := range []int{1, 2, 4} {
		w, ht := h.Width/div&^1, h.Height/div&^1
		if w >= 16 && ht >= 16 || div == 1 {
			out = append(out, media.VideoFormat{PixelFormat: media.NV12, Width: max(w, 2), Height: max(ht, 2), FrameRate: fps})
		}
	}
	return out
}

func (c *y4mClip) next(dst *media.VideoBuffer) error {
	err := c.r.ReadFrame(c.frame)
	if errors.Is(err, io.EOF) || errors.Is(err, y4m.ErrTruncated) {
		if !c.loop || c.r.Frames() == 0 {
			return io.EOF
		}
		if err := c.open(); err != nil {
			return err
		}
		err = c.r.ReadFrame(c.frame)
	}
	if err != nil {
		return err
	}
	return nv12.Scale(dst, c.frame)
}

func (c *y4mClip) close() {
	if c.f != nil {
		c.f.Close()
	}
}

// videoSender is what the video pump needs from the socket.
type videoSender interface {
	Send(*media.VideoBuffer) error
}

// videoPump sends a source's frames at its frame rate, in the socket's preferred format, and
// only while the send status is Active; paused, the clip keeps its place.
type videoPump struct {
	send     videoSender
	src      videoSource
	pool     *media.VideoPool
	finished chan struct{}

	mu      sync.Mutex
	active  bool
	format  media.VideoFormat
	sent    int
	dropped int
}

func newVideoPump(send videoSender, src videoSource) *videoPump {
	return &videoPump{send: send, src: src, pool: media.NewVideoPool("player"), finished: make(chan struct{})}
}

// status is the socket's OnSendStatusChanged.
func (p *videoPump) status(ev sdk.VideoSendStatusEvent) {
	p.mu.Lock()
	p.active = ev.Status == sdk.Active
	if ev.PreferredFormat.Width > 0 {
		p.format = ev.PreferredFormat
	}
	p.mu.Unlock()
}

// run sends one frame per frame period until stop closes or the clip ends.
func (p *videoPump) run(stop <-chan struct{}) {
	defer p.src.close()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		period, end := p.tick()
		if end {
			close(p.finished)
			return
		}
		t.Reset(period)
	}
}

// tick sends one frame when Active; it returns the time to the next frame and whether the clip
// has ended.
func (p *videoPump) tick() (time.Duration, bool) {
	p.mu.Lock()
	active, format := p.active, p.format
	p.mu.Unlock()
	period := time.Second / 30
	if format.FrameRate > 0 {
		period = time.Duration(float64(time.Second) / format.FrameRate)
	}
	if !active || format.Width == 0 {
		return period, false
	}
	format.PixelFormat = media.NV12
	buf := p.pool.Get(format)
	if err := p.src.next(buf); err != nil {
		buf.Release()
		return period, true // io.EOF, or a file that went bad: the clip is over either way
	}
	if err := p.send.Send(buf); err != nil {
		buf.Release()
		p.mu.Lock()
		p.dropped++
		p.mu.Unlock()
		return period, false
	}
	p.mu.Lock()
	p.sent++
	p.mu.Unlock()
	return period, false
}
