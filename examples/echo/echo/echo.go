// Package echo is the echo bot: it answers every call with a sendrecv audio socket and a
// sendrecv video socket, and sends back what it hears and what it sees. It is built only on the
// public sdk and media packages. examples/echo runs it as a program of its own; `switchboard
// demo` runs it beside the service, on its own HTTP listener and media port.
package echo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// Config is what the echo bot needs to know. AppID, Secret, ServiceURL and PublicURL are
// required.
type Config struct {
	AppID, Secret string
	// ServiceURL is the service's base URL, e.g. http://127.0.0.1:8080.
	ServiceURL string
	// PublicURL is where the service reaches the bot's handler, e.g.
	// http://127.0.0.1:9000/api/calling.
	PublicURL string
	// MediaIP and MediaPort are the UDP address of the bot's media ("" and 0: every
	// interface, a free port); MediaPublicIP is the address the service reaches it at, behind
	// a 1:1 NAT.
	MediaIP       string
	MediaPort     int
	MediaPublicIP string
	Logger        *slog.Logger
}

// Width and Height are the size of the caller's video the bot asks for, and sends back.
const Width, Height = 640, 360

// sendFormats are the frame sizes the bot echoes: what it subscribes to, and the layer below.
var sendFormats = []media.VideoFormat{
	{PixelFormat: media.NV12, Width: Width, Height: Height, FrameRate: 30},
	{PixelFormat: media.NV12, Width: Width / 2, Height: Height / 2, FrameRate: 30},
}

// Bot is a running echo bot: its media platform and its calling handler.
type Bot struct {
	platform *sdk.MediaPlatform
	handler  *sdk.Handler
	log      *slog.Logger
}

// New starts the bot's media platform and makes its calling handler. Serve Handler at
// PublicURL's path; Close when done.
func New(cfg Config) (*Bot, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	platform, err := sdk.NewMediaPlatform(sdk.MediaPlatformSettings{
		ServiceFQDN: "echo.local", AppID: cfg.AppID, InternalIP: cfg.MediaIP, InternalPort: cfg.MediaPort,
		PublicIP: cfg.MediaPublicIP, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("echo: %w", err)
	}
	b := &Bot{platform: platform, log: log}
	b.handler, err = sdk.NewHandler(sdk.HandlerConfig{
		AppID: cfg.AppID, AppSecret: cfg.Secret, ServiceURL: cfg.ServiceURL, PublicURL: cfg.PublicURL,
		NewCall: b.newCall, Logger: log,
	})
	if err != nil {
		_ = platform.Close()
		return nil, fmt.Errorf("echo: %w", err)
	}
	return b, nil
}

// Handler is the bot's calling endpoint (POST …/call, …/callback, …/notification).
func (b *Bot) Handler() http.Handler { return b.handler }

// MediaAddr is the UDP address the bot's media listens on.
func (b *Bot) MediaAddr() string { return b.platform.LocalAddr().String() }

// Close ends every call and stops the media platform. Stop the HTTP server first.
func (b *Bot) Close() error {
	return errors.Join(b.handler.Close(), b.platform.Close())
}

// call is one call's echo: its sockets, and the video source it subscribed to.
type call struct {
	bot         *Bot
	c           *sdk.Call
	log         *slog.Logger
	audio       *sdk.AudioSocket
	video       *sdk.VideoSocket
	roster      []sdk.Participant
	established bool
	subscribed  uint32
	warned      bool // about a frame size it cannot echo
}

func (b *Bot) newCall(c *sdk.Call) sdk.CallEvents {
	e := &call{bot: b, c: c, log: c.Logger()}
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

// answer makes the call's sockets and answers with them.
func (e *call) answer(_ context.Context, in *sdk.IncomingCall) sdk.Workflow {
	e.log.Info("incoming call", "from", in.From.DisplayName, "media", in.HasMedia)
	if !in.HasMedia {
		return sdk.Reject("the echo bot needs media")
	}
	var err error
	e.audio, err = sdk.NewAudioSocket(sdk.AudioSocketSettings{
		Direction: sdk.Sendrecv,
		// What it hears goes straight back; the platform hands the buffer back once it is sent.
		OnAudioReceived: func(ev sdk.AudioReceivedEvent) {
			if e.audio.Send(ev.Buffer) != nil {
				ev.Buffer.Release() // not sending (yet): the buffer is still ours
			}
		},
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
			e.log.Info("video send status", "status", ev.Status, "preferred", ev.PreferredFormat.String())
		},
		OnSendDone: func(buf *media.VideoBuffer) { buf.Release() },
	})
	if err != nil {
		e.audio.Close()
		return sdk.Reject(err.Error())
	}
	cfg, err := e.bot.platform.CreateMediaConfiguration(e.audio, e.video)
	if err != nil {
		e.audio.Close()
		e.video.Close()
		return sdk.Reject(err.Error())
	}
	return sdk.Answer(cfg)
}

// onVideo sends a received frame back while the socket may send and the frame has a size it
// sends; otherwise the frame is released here.
func (e *call) onVideo(ev sdk.VideoReceivedEvent) {
	if e.video.SendStatus() != sdk.Active {
		ev.Buffer.Release()
		return
	}
	if err := e.video.Send(ev.Buffer); err != nil {
		if !e.warned && !errors.Is(err, sdk.ErrSendQueueFull) {
			e.warned = true
			e.log.Warn("cannot echo this video", "format", ev.Buffer.Format().String(), "err", err)
		}
		ev.Buffer.Release()
	}
}

// subscribe asks for the first human participant's camera at Width×Height, once.
func (e *call) subscribe() {
	if !e.established || e.subscribed != 0 {
		return
	}
	for _, p := range e.roster {
		for _, s := range p.Streams {
			if p.IsBot || s.Kind != sdk.StreamVideo || s.Direction == sdk.DirectionRecvOnly {
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
