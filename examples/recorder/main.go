// Command recorder is an example bot that records every call it is in: the call's audio as a
// WAV file (the mix, and with -per-speaker one file per speaker), the video of the dominant
// speaker (or of every participant, up to its video sockets) as Y4M files, and a PNG snapshot
// of each video every few seconds.
//
// It is built only on the public packages sdk, sdk/bot and media. Every file stays playable
// while it grows, and a call that ends abruptly or a recorder stopped with SIGTERM leaves them
// complete: the WAV header's sizes are kept current, Y4M needs no trailer, and SIGTERM ends
// every call (closing its files) before the process exits. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchboard-rtc/switchboard/sdk"
	"github.com/switchboard-rtc/switchboard/sdk/bot"
)

func main() {
	var cfg bot.Config
	cfg.RegisterFlags(flag.CommandLine)
	var opts options
	flag.StringVar(&opts.dir, "out", "recordings", "directory to record into (one subdirectory per call)")
	flag.BoolVar(&opts.perSpeaker, "per-speaker", false, "also write one WAV file per speaker")
	flag.StringVar(&opts.video, "video", "dominant", "whose video to record: dominant (the dominant speaker's), all (every participant's, one per socket) or none")
	flag.IntVar(&opts.sockets, "video-sockets", 0, "video sockets in -video all mode, 0 means 4 (a call that offers fewer video slots gets one socket per slot)")
	flag.IntVar(&opts.width, "width", 640, "width to subscribe video at")
	flag.IntVar(&opts.height, "height", 360, "height to subscribe video at")
	flag.Float64Var(&opts.fps, "fps", 30, "frame rate of the Y4M files (frames are repeated or skipped to keep time)")
	flag.DurationVar(&opts.snapshotEvery, "snapshot-every", 5*time.Second, "media time between PNG snapshots of each video; 0 disables them")
	flag.Parse()
	if cfg.AppID == "" {
		cfg.AppID = "recorder"
	}
	if err := opts.check(); err != nil {
		fmt.Fprintln(os.Stderr, "recorder:", err)
		os.Exit(2)
	}
	if err := os.MkdirAll(opts.dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "recorder:", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := bot.Run(ctx, cfg, func(p *sdk.MediaPlatform, c *sdk.Call) sdk.CallEvents {
		return newRecording(opts, p, c).events()
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "recorder:", err)
		os.Exit(1)
	}
}

// options are the recorder's own flags.
type options struct {
	dir           string
	perSpeaker    bool
	video         string
	sockets       int
	width, height int
	fps           float64
	snapshotEvery time.Duration
}

func (o *options) check() error {
	switch o.video {
	case "dominant":
		o.sockets = 1
	case "all":
		if o.sockets == 0 {
			o.sockets = 4
		}
		if o.sockets < 1 || o.sockets > 16 {
			return fmt.Errorf("-video-sockets %d, want 1 to 16", o.sockets)
		}
	case "none":
		o.sockets = 0
	default:
		return fmt.Errorf("-video %q, want dominant, all or none", o.video)
	}
	if o.width < 2 || o.height < 2 || o.width > 4096 || o.height > 4096 {
		return fmt.Errorf("-width %d -height %d out of range", o.width, o.height)
	}
	if !(o.fps >= 1 && o.fps <= 120) {
		return fmt.Errorf("-fps %v, want 1 to 120", o.fps)
	}
	return nil
}
