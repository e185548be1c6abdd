package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/sdk"
	"github.com/switchboard-rtc/switchboard/sdk/bot"
)

// botCommand is the name of the hidden subcommand that runs the instrumented load bot.
const botCommand = "bot"

// runBot is a measuring bot for load runs: the echo example's audio path (sendrecv, every
// received frame sent back) or a receive-only one (frames released, as a recorder that keeps
// nothing), its sockets' audio events recorded by sdk/bot's AudioMetrics, and /metrics and
// /debug/pprof/ served on -debug-listen. The examples serve the same metrics (sdk/bot's
// -debug-listen); this bot measures the audio path alone, without their video.
func runBot(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchboard-load bot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bot.Config
	cfg.RegisterFlags(fs)
	mode := fs.String("mode", "sendrecv", "sendrecv (echo the audio) or recvonly (receive and release)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	dir := sdk.Sendrecv
	switch *mode {
	case "sendrecv":
	case "recvonly":
		dir = sdk.Recvonly
	default:
		fmt.Fprintf(stderr, "switchboard-load bot: mode %q, want sendrecv or recvonly\n", *mode)
		return 2
	}
	if cfg.DebugListen == "" {
		cfg.DebugListen = "127.0.0.1:0" // this bot is for measuring: its metrics are always served
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := bot.Run(ctx, cfg, func(p *sdk.MediaPlatform, c *sdk.Call) sdk.CallEvents {
		var audio *sdk.AudioSocket
		return sdk.CallEvents{
			OnIncomingCall: func(context.Context, *sdk.IncomingCall) sdk.Workflow {
				var err error
				audio, err = sdk.NewAudioSocket(sdk.AudioSocketSettings{
					Direction: dir,
					OnAudioReceived: func(ev sdk.AudioReceivedEvent) {
						if dir == sdk.Sendrecv && audio.Send(ev.Buffer) == nil {
							return // released by OnSendDone once encoded and sent
						}
						ev.Buffer.Release()
					},
					OnSendDone: func(buf *media.AudioBuffer) { buf.Release() },
				})
				if err != nil {
					return sdk.Reject(err.Error())
				}
				m, err := p.CreateMediaConfiguration(audio)
				if err != nil {
					audio.Close()
					return sdk.Reject(err.Error())
				}
				return sdk.Answer(m)
			},
		}
	})
	if err != nil {
		fmt.Fprintln(stderr, "switchboard-load bot:", err)
		return 1
	}
	return 0
}
