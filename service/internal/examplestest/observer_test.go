package examplestest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/sdk"
	"github.com/switchboard-rtc/switchboard/service/internal/servicetest"
)

// observer is an in-process bot (app id "observer", on the public SDK) that a test invites
// into a conference to look at the pixels another bot sends: it subscribes its one video
// socket to the video of the bot whose display name is target and keeps the latest frame.
type observer struct {
	target string

	mu     sync.Mutex
	frames int
	format media.VideoFormat
	last   []byte // NV12
}

// newObserver starts the observer bot on e's address for "observer".
func newObserver(t *testing.T, e *env, target string) *observer {
	t.Helper()
	o := &observer{target: target}
	addr := e.addrs["observer"]
	platform, err := sdk.NewMediaPlatform(sdk.MediaPlatformSettings{AppID: "observer", ServiceFQDN: "localhost", InternalIP: "127.0.0.1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := sdk.NewHandler(sdk.HandlerConfig{
		AppID: "observer", AppSecret: secret, ServiceURL: e.srv.URL(), PublicURL: "http://" + addr + "/api/calling",
		Logger:  slog.New(slog.DiscardHandler),
		NewCall: func(c *sdk.Call) sdk.CallEvents { return o.newCall(platform, c) },
	})
	if err != nil {
		platform.Close()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/calling/", h)
	servicetest.Serve(t, ln, mux, func() {
		_ = h.Close()
		_ = platform.Close()
	})
	return o
}

func (o *observer) newCall(platform *sdk.MediaPlatform, c *sdk.Call) sdk.CallEvents {
	var video *sdk.VideoSocket
	var subscribed uint32
	return sdk.CallEvents{
		OnIncomingCall: func(ctx context.Context, in *sdk.IncomingCall) sdk.Workflow {
			var err error
			video, err = sdk.NewVideoSocket(sdk.VideoSocketSettings{Direction: sdk.Recvonly, OnVideoReceived: o.onVideo})
			if err != nil {
				return sdk.Reject(err.Error())
			}
			m, err := platform.CreateMediaConfiguration(video)
			if err != nil {
				video.Close()
				return sdk.Reject(err.Error())
			}
			return sdk.Answer(m)
		},
		OnRosterUpdated: func(ps []sdk.Participant) {
			for _, p := range ps {
				if !p.IsBot || p.DisplayName != o.target {
					continue
				}
				for _, s := range p.Streams {
					if s.Kind == sdk.StreamVideo && s.SourceID != subscribed {
						if _, err := c.Subscribe(c.Context(), video, s.SourceID, 640, 360); err == nil {
							subscribed = s.SourceID
						}
					}
				}
			}
		},
	}
}

func (o *observer) onVideo(ev sdk.VideoReceivedEvent) {
	defer ev.Buffer.Release()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.frames++
	o.format = ev.Buffer.Format()
	o.last = append(o.last[:0], ev.Buffer.Data()...)
}

// frame returns how many frames arrived, and a copy of the latest.
func (o *observer) frame() (int, *media.VideoBuffer) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.frames == 0 {
		return 0, nil
	}
	b := media.NewVideoBuffer(o.format)
	copy(b.Data(), o.last)
	return o.frames, b
}

// invite brings the observer into the conference.
func (o *observer) invite(t *testing.T, e *env, conferenceID string) {
	t.Helper()
	var err error
	for range 3 {
		if _, err = e.srv.Calls().InviteBot(t.Context(), conferenceID, "observer", protocol.Identity{Identity: "test"}); err == nil {
			return
		}
		if errors.Is(err, context.Canceled) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("invite the observer into %s: %v", conferenceID, err)
}

// waitFrames waits until the observer has n frames and returns the latest.
func (o *observer) waitFrames(t *testing.T, n int) *media.VideoBuffer {
	t.Helper()
	var last *media.VideoBuffer
	servicetest.Eventually(t, "frames at the observer", func() bool {
		var got int
		got, last = o.frame()
		return got >= n
	})
	return last
}

// meanChroma is the mean U and V of an NV12 frame's region (in luma pixels).
func meanChroma(b *media.VideoBuffer, x0, y0, x1, y1 int) (u, v float64) {
	f := b.Format()
	planes, _ := b.Planes()
	cw := (f.Width + 1) / 2
	n := 0
	for y := y0 / 2; y < y1/2; y++ {
		for x := x0 / 2; x < x1/2; x++ {
			u += float64(planes[1][2*(y*cw+x)])
			v += float64(planes[1][2*(y*cw+x)+1])
			n++
		}
	}
	return u / float64(n), v / float64(n)
}

// meanLuma is the mean Y of a region.
func meanLuma(b *media.VideoBuffer, x0, y0, x1, y1 int) float64 {
	f := b.Format()
	planes, _ := b.Planes()
	var sum float64
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			sum += float64(planes[0][y*f.Width+x])
		}
	}
	return sum / float64((x1-x0)*(y1-y0))
}
