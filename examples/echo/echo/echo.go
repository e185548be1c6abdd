// Package echo is the echo bot's call logic: it answers every call with a sendrecv audio socket
// and a sendrecv video socket, and sends back what it hears and what it sees. It is built only
// on the public sdk and media packages. examples/echo runs it as a program of its own (sdk/bot);
// `switchboard demo` runs it beside the service, on its own HTTP listener and media port.
package echo

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// Width and Height are the size of the caller's video the bot asks for, and sends back.
const Width, Height = 640, 360

// sendFormats are the sizes the bot's video is encoded at: the size it subscribes to, and the
// layer below it, which the service sends when the caller's bandwidth is short. The bot sends
// every frame as it comes; the socket scales one of another size (a 4:3 camera) to the
// preferred of these.
var sendFormats = []media.VideoFormat{
	{PixelFormat: media.NV12, Width: Width, Height: Height, FrameRate: 30},
	{PixelFormat: media.NV12, Width: Width / 2, Height: Height / 2, FrameRate: 30},
}

// call is one call's echo. Its fields are used on the call's event goroutine only, except the
// sockets, which are set before the media starts.
type call struct {
	platform    *sdk.MediaPlatform
	c           *sdk.Call
	log         *slog.Logger
	audio       *sdk.AudioSocket
	video       *sdk.VideoSocket
	roster      []sdk.Participant
	established bool
	subscribed  uint32 // the video source asked for, 0 before
	warned      bool   // about a frame it could not echo
}

// NewCall makes the echo bot's events for one call (an sdk/bot.NewCallFunc).
func NewCall(p *sdk.MediaPlatform, c *sdk.Call) sdk.CallEvents {
	e := &call{platform: p, c: c, log: c.Logger()}
	return sdk.CallEvents{
		OnIncomingCall: e.answer,
		OnCallStateChanged: func(s sdk.CallState, reason string) {
			e.log.Info("call state", "state", s, "reason", reason)
			e.established = s == sdk.StateEstablished
			e.subscribe()
		},
		OnRosterUpdated: func(ps []sdk.Participant) { e.roster = ps; e.subscribe() },
		OnCleanup:       func(reason error) { e.log.Info("call over", "reason", reason) },
	}
}

// answer makes the call's two sockets and answers with them.
func (e *call) answer(_ context.Context, in *sdk.IncomingCall) sdk.Workflow {
	e.log.Info("incoming call", "from", in.From.DisplayName, "media", in.HasMedia)
	if !in.HasMedia {
		return sdk.Reject("the echo bot needs media")
	}
	// What it hears goes straight back: the received buffer is handed to Send...
	onAudio := func(ev sdk.AudioReceivedEvent) {
		if e.audio.Send(ev.Buffer) != nil {
			ev.Buffer.Release() // not sending (yet): the buffer is still ours
		}
	}
	var err error
	e.audio, err = sdk.NewAudioSocket(sdk.AudioSocketSettings{
		Direction: sdk.Sendrecv,
		// At most 3 frames (60 ms) wait to be sent. The socket sends one frame per 20 ms tick,
		// so frames that pile up while the bot's event goroutine is held up would otherwise
		// stay queued, adding their length to the echo's delay for the rest of the call
		// (measured in a browser: 115–420 ms from call to call; with this, 100–150 ms).
		SendQueueFrames: 3,
		OnAudioReceived: onAudio,
		// ...and released once the platform has encoded and sent it.
		OnSendDone: func(buf *media.AudioBuffer) { buf.Release() },
	})
	if err != nil {
		return sdk.Reject(err.Error())
	}
	e.video, err = sdk.NewVideoSocket(sdk.VideoSocketSettings{
		Direction:            sdk.Sendrecv,
		SupportedSendFormats: sendFormats,
		OnVideoReceived:      e.onVideo,
		OnSendStatusChanged: func(ev sdk.VideoSendStatusEvent) {
			e.log.Info("video send status", "status", ev.Status, "preferred", ev.PreferredFormat.String(), "kbps", ev.BitrateKbps)
		},
		OnSendDone: func(buf *media.VideoBuffer) { buf.Release() },
	})
	if err != nil {
		e.audio.Close()
		return sdk.Reject(err.Error())
	}
	cfg, err := e.platform.CreateMediaConfiguration(e.audio, e.video)
	if err != nil {
		e.audio.Close()
		e.video.Close()
		return sdk.Reject(err.Error())
	}
	return sdk.Answer(cfg)
}

// onVideo sends a received frame back while the socket may send; otherwise (or when the frame
// cannot be sent) it releases the frame.
func (e *call) onVideo(ev sdk.VideoReceivedEvent) {
	buf := ev.Buffer
	if e.video.SendStatus() != sdk.Active {
		buf.Release()
		return
	}
	if err := e.video.Send(buf); err != nil { // any size: the socket scales it
		if !errors.Is(err, sdk.ErrSendQueueFull) {
			e.warn(buf.Format(), err)
		}
		buf.Release()
	}
}

// warn logs the first frame the bot could not echo.
func (e *call) warn(f media.VideoFormat, err error) {
	if !e.warned {
		e.warned = true
		e.log.Warn("cannot echo this video", "format", f.String(), "err", err)
	}
}

// subscribe asks, once the call is established, for the first human participant's camera at
// Width×Height.
func (e *call) subscribe() {
	if !e.established || e.subscribed != 0 {
		return
	}
	for _, p := range e.roster {
		for _, s := range p.Streams {
			if p.IsBot || s.Kind != sdk.StreamVideo {
				continue
			}
			ctx, cancel := context.WithTimeout(e.c.Context(), 5*time.Second)
			_, err := e.c.Subscribe(ctx, e.video, s.SourceID, Width, Height)
			cancel()
			if err != nil {
				e.log.Warn("subscribe to video", "source", s.SourceID, "err", err)
				return // the next roster update tries again
			}
			e.subscribed = s.SourceID
			e.log.Info("subscribed to video", "participant", p.DisplayName, "source", s.SourceID)
			return
		}
	}
}
