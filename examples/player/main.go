// Command player is an example bot that plays media into every call it answers: a WAV file
// (16 kHz mono, or a rate and channel count it can convert simply) as its audio, and a Y4M file
// or a generated test card with a clock as its video. It sends only while the sockets' send
// status is Active, pausing otherwise, sends video in the format the socket prefers, and when
// the clip has played it ends the call (or, with -loop, starts again).
//
// It is built only on the public packages sdk, sdk/bot and media. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/sdk"
	"github.com/switchboard-rtc/switchboard/sdk/bot"
)

func main() {
	var cfg bot.Config
	cfg.RegisterFlags(flag.CommandLine)
	var opts options
	flag.StringVar(&opts.wav, "wav", "", "WAV file to play (16-bit PCM; 16 kHz mono, or 8/32/48/96 kHz, any channels)")
	flag.StringVar(&opts.video, "video", "pattern", "video to play: a .y4m file, pattern (a test card with a clock) or none")
	flag.BoolVar(&opts.loop, "loop", false, "play the clip again and again instead of ending the call")
	flag.Parse()
	if cfg.AppID == "" {
		cfg.AppID = "player"
	}

	// Load and check the media once, up front: a file the player cannot play is an error now,
	// not in every call.
	if opts.wav != "" {
		pcm, err := loadWAV(opts.wav)
		if err != nil {
			fmt.Fprintln(os.Stderr, "player:", err)
			os.Exit(2)
		}
		opts.pcm = pcm
	}
	if opts.video != "pattern" && opts.video != "none" {
		clip, err := openY4M(opts.video, false)
		if err != nil {
			fmt.Fprintln(os.Stderr, "player:", err)
			os.Exit(2)
		}
		clip.close()
	}
	if opts.pcm == nil && opts.video == "none" {
		fmt.Fprintln(os.Stderr, "player: nothing to play: give -wav, -video or both")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := bot.Run(ctx, cfg, func(p *sdk.MediaPlatform, c *sdk.Call) sdk.CallEvents {
		return newPlayback(opts, p, c).events()
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "player:", err)
		os.Exit(1)
	}
}

type options struct {
	wav   string
	pcm   []int16 // the WAV as 16 kHz mono
	video string
	loop  bool
}

// playback is one call's playback: its sockets, its two pumps (each on a goroutine the
// playback owns) and the goroutine that ends the call when the clip is over.
type playback struct {
	opts     options
	platform *sdk.MediaPlatform
	call     *sdk.Call

	media *sdk.MediaConfiguration
	audio *audioPump
	video *videoPump
	stop  chan struct{} // closed at cleanup
	wg    sync.WaitGroup
}

func newPlayback(opts options, p *sdk.MediaPlatform, c *sdk.Call) *playback {
	return &playback{opts: opts, platform: p, call: c, stop: make(chan struct{})}
}

func (pb *playback) events() sdk.CallEvents {
	return sdk.CallEvents{
		OnIncomingCall: pb.answer,
		OnCleanup:      pb.cleanup,
	}
}

func (pb *playback) answer(ctx context.Context, in *sdk.IncomingCall) sdk.Workflow {
	if !in.HasMedia {
		return sdk.Reject("the player needs media")
	}
	var sockets []sdk.MediaSocket
	if pb.opts.pcm != nil {
		var pump *audioPump
		sock, err := sdk.NewAudioSocket(sdk.AudioSocketSettings{
			Direction:           sdk.Sendonly,
			OnSendStatusChanged: func(s sdk.MediaSendStatus) { pump.status(s == sdk.Active) },
			OnSendDone:          func(b *media.AudioBuffer) { pump.done(b) },
		})
		if err != nil {
			return pb.fail(err, sockets)
		}
		pump = newAudioPump(sock, pb.opts.pcm, pb.opts.loop)
		pb.audio = pump
		sockets = append(sockets, sock)
	}
	if pb.opts.video != "none" {
		var src videoSource = &pattern{}
		if pb.opts.video != "pattern" {
			clip, err := openY4M(pb.opts.video, pb.opts.loop)
			if err != nil {
				return pb.fail(err, sockets)
			}
			src = clip
		}
		var pump *videoPump
		sock, err := sdk.NewVideoSocket(sdk.VideoSocketSettings{
			Direction:            sdk.Sendonly,
			SupportedSendFormats: src.formats(),
			OnSendStatusChanged:  func(ev sdk.VideoSendStatusEvent) { pump.status(ev) },
		})
		if err != nil {
			src.close()
			return pb.fail(err, sockets)
		}
		pump = newVideoPump(sock, src)
		pb.video = pump
		sockets = append(sockets, sock)
	}
	m, err := pb.platform.CreateMediaConfiguration(sockets...)
	if err != nil {
		if pb.video != nil {
			pb.video.src.close()
		}
		return pb.fail(err, sockets)
	}
	pb.media = m
	pb.start()
	pb.call.Logger().Info("playing", "wav", pb.opts.wav, "video", pb.opts.video, "loop", pb.opts.loop)
	return sdk.Answer(m)
}

func (pb *playback) fail(err error, sockets []sdk.MediaSocket) sdk.Workflow {
	pb.call.Logger().Error("cannot play", "err", err)
	for _, s := range sockets {
		s.Close()
	}
	return sdk.Reject("the player failed to set up its media")
}

// start runs the pumps, and a goroutine that ends the call when what decides the clip's
// length has played: the WAV, or without one the Y4M file (a test card never ends by itself).
func (pb *playback) start() {
	if pb.audio != nil {
		pb.wg.Add(1)
		go func() { defer pb.wg.Done(); pb.audio.run(pb.stop) }()
	}
	if pb.video != nil {
		pb.wg.Add(1)
		go func() { defer pb.wg.Done(); pb.video.run(pb.stop) }()
	}
	var finished <-chan struct{}
	switch {
	case pb.opts.loop:
	case pb.audio != nil:
		finished = pb.audio.finished
	case pb.opts.video != "pattern":
		finished = pb.video.finished
	}
	if finished == nil {
		return
	}
	pb.wg.Add(1)
	go func() {
		defer pb.wg.Done()
		select {
		case <-pb.stop:
			return
		case <-finished:
		}
		log := pb.call.Logger()
		log.Info("the clip has played; ending the call")
		ctx, cancel := context.WithTimeout(pb.call.Context(), 10*time.Second)
		defer cancel()
		if err := pb.call.EndCall(ctx); err != nil {
			log.Warn("end call", "err", err)
		}
	}()
}

// cleanup stops the pumps. The handler has closed the media already, so a pump's last Send
// may have failed with sdk.ErrSocketClosed (that frame was not sent).
func (pb *playback) cleanup(reason error) {
	close(pb.stop)
	pb.wg.Wait()
	log := pb.call.Logger()
	if pb.audio != nil {
		pb.audio.mu.Lock()
		log.Info("audio played", "frames", pb.audio.sent)
		pb.audio.mu.Unlock()
	}
	if pb.video != nil {
		pb.video.mu.Lock()
		log.Info("video played", "frames", pb.video.sent, "dropped", pb.video.dropped)
		pb.video.mu.Unlock()
	}
}
