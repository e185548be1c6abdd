// Command hue is an example bot that sends every caller's video back to them with its hue
// turned (a rotation of the colours, -degrees) and the dominant speaker's name drawn on it in a
// small built-in font. It echoes nothing on audio, unless -echo asks it to send the call's
// audio back too.
//
// It is built only on the public packages sdk, sdk/bot and media. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/media/nv12"
	"github.com/switchboard-rtc/switchboard/sdk"
	"github.com/switchboard-rtc/switchboard/sdk/bot"
)

func main() {
	var cfg bot.Config
	cfg.RegisterFlags(flag.CommandLine)
	var opts options
	flag.Float64Var(&opts.degrees, "degrees", 120, "hue rotation in degrees")
	flag.BoolVar(&opts.echo, "echo", false, "send the call's audio back as well")
	flag.BoolVar(&opts.label, "label", true, "draw the dominant speaker's name on the video")
	flag.Parse()
	if cfg.AppID == "" {
		cfg.AppID = "hue"
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := bot.Run(ctx, cfg, func(p *sdk.MediaPlatform, c *sdk.Call) sdk.CallEvents {
		return newMirror(opts, p, c).events()
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "hue:", err)
		os.Exit(1)
	}
}

type options struct {
	degrees float64
	echo    bool
	label   bool
}

// Width and Height are the size the bot subscribes to the caller's video at.
const Width, Height = 640, 360

// sendFormats are the sizes the bot's video is encoded at: the subscribed size and the one
// below, landscape and portrait. The bot sends each received frame as it is; the socket scales
// one of another size to its preferred format.
var sendFormats = []media.VideoFormat{
	media.NV12_640x360_30, media.NV12_320x180_15,
	media.NV12_360x640_30, media.NV12_180x320_15,
}

// mirror is one call: it subscribes its video socket to the speaker's (or the caller's) video
// and sends each frame back turned and labelled.
type mirror struct {
	opts     options
	platform *sdk.MediaPlatform
	call     *sdk.Call
	rot      rotation
	video    *sdk.VideoSocket

	label atomic.Pointer[string] // the name drawn on the video; written by the call's goroutine

	// Owned by the call's event goroutine.
	roster     sdk.Roster
	dominant   uint32
	subscribed uint32
}

func newMirror(opts options, p *sdk.MediaPlatform, c *sdk.Call) *mirror {
	return &mirror{opts: opts, platform: p, call: c, rot: newRotation(opts.degrees)}
}

func (m *mirror) events() sdk.CallEvents {
	return sdk.CallEvents{
		OnIncomingCall:           m.answer,
		OnRosterUpdated:          func(ps []sdk.Participant) { m.roster = sdk.Roster(ps); m.update() },
		OnDominantSpeakerChanged: func(id uint32) { m.dominant = id; m.update() },
		OnOperationCompleted: func(res sdk.OperationResult) {
			if res.Err != nil {
				m.call.Logger().Warn("operation failed", "type", res.Type, "err", res.Err)
			}
		},
	}
}

func (m *mirror) answer(ctx context.Context, in *sdk.IncomingCall) sdk.Workflow {
	if !in.HasMedia {
		return sdk.Reject("hue needs media")
	}
	name := in.From.DisplayName
	m.label.Store(&name)
	var err error
	m.video, err = sdk.NewVideoSocket(sdk.VideoSocketSettings{
		Direction:            sdk.Sendrecv,
		SupportedSendFormats: sendFormats,
		OnVideoReceived:      m.onVideo,
	})
	if err != nil {
		m.call.Logger().Error("video socket", "err", err)
		return sdk.Reject("hue failed to set up its media")
	}
	sockets := []sdk.MediaSocket{m.video}
	if m.opts.echo {
		var audio *sdk.AudioSocket
		audio, err = sdk.NewAudioSocket(sdk.AudioSocketSettings{
			Direction: sdk.Sendrecv,
			OnAudioReceived: func(ev sdk.AudioReceivedEvent) {
				for _, u := range ev.Unmixed {
					u.Release()
				}
				if audio.Send(ev.Buffer) != nil {
					ev.Buffer.Release() // not sending (yet): the buffer is still ours
				}
			},
		})
		if err != nil {
			m.video.Close()
			m.call.Logger().Error("audio socket", "err", err)
			return sdk.Reject("hue failed to set up its media")
		}
		sockets = append(sockets, audio)
	}
	cfg, err := m.platform.CreateMediaConfiguration(sockets...)
	if err != nil {
		for _, s := range sockets {
			s.Close()
		}
		m.call.Logger().Error("media configuration", "err", err)
		return sdk.Reject("hue failed to set up its media")
	}
	return sdk.Answer(cfg)
}

// update follows the roster and the dominant speaker: the label is the dominant speaker's
// name, and the video socket shows the dominant speaker's video (or, until someone speaks or
// when the speaker sends none, the first participant's).
func (m *mirror) update() {
	var want uint32
	if p, ok := m.roster.BySource(m.dominant); ok && !p.IsBot {
		name := p.DisplayName
		m.label.Store(&name)
		want, _ = m.roster.VideoSourceOf(p.ID)
	}
	for _, p := range m.roster {
		if want != 0 {
			break
		}
		if !p.IsBot {
			want, _ = p.Source(sdk.StreamVideo)
		}
	}
	if want == 0 || want == m.subscribed || m.video == nil {
		return
	}
	ctx, cancel := context.WithTimeout(m.call.Context(), 10*time.Second)
	defer cancel()
	if _, err := m.call.Subscribe(ctx, m.video, want, Width, Height); err != nil {
		m.call.Logger().Warn("subscribe", "source", want, "err", err)
		return
	}
	m.subscribed = want
}

// onVideo runs on the video socket's event goroutine: turn, label, send back.
func (m *mirror) onVideo(ev sdk.VideoReceivedEvent) {
	buf := ev.Buffer
	if m.video.SendStatus() != sdk.Active {
		buf.Release()
		return
	}
	m.rot.apply(buf)
	if m.opts.label {
		drawLabel(buf, *m.label.Load())
	}
	if m.video.Send(buf) != nil {
		buf.Release() // the encoder is behind or the call is ending: drop this frame
	}
}

// labelScale is the text's scale for a frame height: 4 at 360 lines, always even.
func labelScale(height int) int { return max(height/90&^1, 2) }

// labelOrigin is where drawLabel puts the text's top-left corner.
func labelOrigin(height int) (x, y int) {
	s := labelScale(height)
	return 2 * s, height - (nv12.GlyphHeight+2)*s
}

// drawLabel writes name at the bottom left, white on a black box.
func drawLabel(buf *media.VideoBuffer, name string) {
	if name == "" {
		return
	}
	f := buf.Format()
	s := labelScale(f.Height)
	x, y := labelOrigin(f.Height)
	bg := nv12.Black
	_ = nv12.DrawText(buf, x, y, name, nv12.TextStyle{Scale: s, Color: nv12.White, Background: &bg, Pad: s})
}
