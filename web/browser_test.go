package web_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/examples/echo/echo"
	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/sdk/bot"
	"github.com/switchboard-rtc/switchboard/service"
	"github.com/switchboard-rtc/switchboard/service/config"
	"github.com/switchboard-rtc/switchboard/web/internal/browsertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startService runs the whole calling service on loopback (SFU, signalling, this page) with
// the echo bot (examples/echo, run by sdk/bot as its program runs it) registered as "echo".
func startService(t *testing.T) *service.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	browsertest.Chromium(t) // skip (or fail under CI) before starting anything
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.AnswerTimeout = config.Duration(20 * time.Second)
	cfg.MediaTimeout = config.Duration(20 * time.Second)
	s, err := service.New(cfg, service.Options{Logger: slog.New(slog.DiscardHandler), Conferencing: &service.Conferencing{}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), browsertest.Liveness)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	})

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	secret := hex.EncodeToString(key)
	ready := make(chan string, 1)
	bcfg := bot.Config{ServiceURL: s.URL(), AppID: "echo", AppSecret: secret, Listen: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler), OnReady: func(url string) { ready <- url }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bot.Run(ctx, bcfg, echo.NewCall) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("echo bot: %v", err)
		}
	})
	select {
	case url := <-ready:
		if err := s.AddBot(config.Bot{AppID: "echo", Secret: secret, WebhookURL: url, DisplayName: "Echo"}); err != nil {
			t.Fatal(err)
		}
	case err := <-done:
		t.Fatalf("echo bot: %v", err)
	}
	return s
}

// inCall is true once the page has joined and holds its participant id.
const inCall = `window.sb.call && window.sb.call.me && window.sb.call.me.participantId`

// botID waits for the roster of p to list a bot and returns its participant id.
func botID(p *browsertest.Page) string {
	p.Wait("a bot in the roster", `window.sb.call && window.sb.call.roster.some((x) => x.isBot)`, `window.sb.call && window.sb.call.roster`)
	return browsertest.Eval[string](p, `window.sb.call.roster.find((x) => x.isBot).id`)
}

// picture is what probe.print says of a <video>.
type picture struct {
	Hash, Mean, Width, Height, Frames int
}

// seesVideo checks that p's tile of owner plays video that moves: frames are presented, the
// picture is not black, and it changes.
func seesVideo(t *testing.T, p *browsertest.Page, owner, who string) {
	t.Helper()
	v := `sbProbe.tileVideo(` + browsertest.Quote(owner) + `)`
	p.Wait(who+"'s video playing in a tile", v+` && `+v+`.videoWidth > 0`, `window.sb.call && [...window.sb.call.tiles.keys()]`)
	first := browsertest.Eval[picture](p, `sbProbe.print(`+v+`)`)
	var last picture
	deadline := time.Now().Add(browsertest.Liveness)
	for {
		time.Sleep(500 * time.Millisecond)
		last = browsertest.Eval[picture](p, `sbProbe.print(`+v+`)`)
		if last.Hash != first.Hash && last.Frames >= 10 && last.Mean > 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s's video does not play: first %+v, last %+v", p.Name(), who, first, last)
		}
	}
	t.Logf("%s sees %s: %dx%d, %d frames presented in the probe's time, picture changed (mean brightness %d)",
		p.Name(), who, last.Width, last.Height, last.Frames, last.Mean)
}

// TestEchoCall: a browser calls the echo bot from the deep link /?call=echo and gets its own
// microphone's beeps and its own camera's moving picture back; the echo path's round trip is
// measured in the page. Then the page's WebSocket is cut (through a relay, as a network would):
// the page shows that it reconnects, resumes its session with its token, and the media keeps
// flowing.
func TestEchoCall(t *testing.T) {
	s := startService(t)
	relay := browsertest.NewRelay(t, s.Addr().String())
	b := browsertest.Launch(t, browsertest.Options{})
	p := b.Open("Tester", "http://"+relay.Addr()+"/?call=echo&name=Tester")

	p.Wait("the call", inCall, `document.body.innerText`)
	bot := botID(p)
	p.Run(browsertest.Probe)
	if st := browsertest.Eval[string](p, `sbProbe.watchCall()`); st != "running" {
		t.Fatalf("audio context %s", st)
	}
	// Beeps leave through the microphone and come back from the bot.
	p.Wait("8 beeps back from the echo bot", `sbProbe.echoDelays(`+browsertest.Quote(bot)+`).length >= 8`, `sbProbe.summary()`)
	delays := browsertest.Eval[[]int](p, `sbProbe.echoDelays(`+browsertest.Quote(bot)+`)`)
	slices.Sort(delays)
	t.Logf("echo round trip (local beep onset to returned onset, in the page's AudioContext) over %d beeps: median %d ms, min %d ms, max %d ms",
		len(delays), delays[len(delays)/2], delays[0], delays[len(delays)-1])
	t.Logf("probe: %s", browsertest.Eval[string](p, `JSON.stringify(sbProbe.summary())`))

	seesVideo(t, p, bot, "itself (through the echo bot)")
	p.Screenshot(filepath.Join(browsertest.Artifacts(t), "echo-call.png"))

	// The WebSocket drops; the page resumes the session.
	me := browsertest.Eval[string](p, `window.sb.call.me.participantId`)
	p.Run(`sbProbe.watchConn()`)
	if n := relay.Cut(); n == 0 {
		t.Fatal("no connection through the relay to cut")
	}
	p.Wait("the page to say it reconnects", `sbProbe.conn.includes('reconnecting…')`, `sbProbe.conn`)
	p.Wait("the page to be connected again", `document.getElementById('conn').textContent === 'connected' && sbProbe.resumed > 0`, `[sbProbe.conn, document.body.innerText]`)
	if again := browsertest.Eval[string](p, `window.sb.call.me.participantId`); again != me {
		t.Fatalf("resumed as %s, was %s", again, me)
	}
	n := browsertest.Eval[int](p, `sbProbe.echoDelays(`+browsertest.Quote(bot)+`).length`)
	p.Wait("beeps back after the resume", `sbProbe.echoDelays(`+browsertest.Quote(bot)+`).length >= `+strconv.Itoa(n+3), `sbProbe.summary()`)
	t.Logf("connection states the page showed: %s", browsertest.Eval[string](p, `JSON.stringify(sbProbe.conn)`))
}

var _ = protocol.Identity{}
