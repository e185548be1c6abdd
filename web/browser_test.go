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
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/examples/echo/echo"
	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/sdk/bot"
	"github.com/switchboard-rtc/switchboard/service"
	"github.com/switchboard-rtc/switchboard/service/config"
	"github.com/switchboard-rtc/switchboard/service/sfu"
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
	// Chromium's fake microphone beeps for 20 ms every 500 ms: averaged over the detector's
	// 300 ms, that is far below the loudness of speech, which the default silence threshold
	// (60 dBov) is set for, and whether a beep ever crosses it depends on how the beeps fall on
	// the detector's ticks. Here any sound counts as speaking.
	conf := &service.Conferencing{Speaker: sfu.SpeakerConfig{Silence: 126}}
	s, err := service.New(cfg, service.Options{Logger: slog.New(slog.DiscardHandler), Conferencing: conf})
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

// inCall is true once the page has joined, holds its participant id and shows the call.
const inCall = `window.sb.call && window.sb.call.me && window.sb.call.me.participantId && !document.getElementById('call').classList.contains('hidden')`

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
// measured in the page. Then the page's WebSocket is cut (through a relay, as a network would)
// and new connections fail for 2 s: the page shows that it reconnects, resumes its session with
// its token, and the media keeps flowing.
func TestEchoCall(t *testing.T) {
	s := startService(t)
	relay := browsertest.NewRelay(t, s.Addr().String())
	b := browsertest.Launch(t, browsertest.Options{})
	p := b.Open("Tester", "http://"+relay.Addr()+"/?call=echo&name=Tester")

	p.Wait("the call", inCall, `document.body.innerText`)
	bot := botID(p)
	p.Run(browsertest.Probe)
	p.Gesture(`sbProbe.watchCall()`)
	if st := browsertest.Eval[string](p, `sbProbe.ctx.state`); st != "running" {
		t.Fatalf("audio context %s", st)
	}
	// Beeps leave through the microphone and come back from the bot. A pause of the
	// microphone marks them (their period is shorter than the path's delay may be).
	p.Wait("beeps back from the echo bot", `sbProbe.summary()[`+browsertest.Quote(bot)+`]?.onsets >= 2`, `sbProbe.summary()`)
	p.Run(`sbProbe.pause(1500)`)
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
	relay.Refuse(true) // for a while, as if the service were down
	if n := relay.Cut(); n == 0 {
		t.Fatal("no connection through the relay to cut")
	}
	p.Wait("the page to say it reconnects", `sbProbe.conn.includes('reconnecting…')`, `sbProbe.conn`)
	time.Sleep(2 * time.Second) // a few attempts fail
	relay.Refuse(false)
	p.Wait("the page to be connected again", `document.getElementById('conn').textContent === 'connected' && sbProbe.resumed > 0`, `[sbProbe.conn, document.body.innerText]`)
	if again := browsertest.Eval[string](p, `window.sb.call.me.participantId`); again != me {
		t.Fatalf("resumed as %s, was %s", again, me)
	}
	n := browsertest.Eval[int](p, `sbProbe.echoDelays(`+browsertest.Quote(bot)+`).length`)
	p.Wait("beeps back after the resume", `sbProbe.echoDelays(`+browsertest.Quote(bot)+`).length >= `+strconv.Itoa(n+3), `sbProbe.summary()`)
	t.Logf("connection states the page showed: %s", browsertest.Eval[string](p, `JSON.stringify(sbProbe.conn)`))
}

// rosterNames is the names the page's roster lists.
const rosterNames = `[...document.querySelectorAll('#roster li .name')].map((e) => e.textContent)`

// TestRoom: two browsers join a room from deep links, the echo bot is invited into the room's
// conference (as the service's API does), and each browser hears and sees the other; the
// rosters list everyone; the dominant speaker is highlighted, and the highlight moves when
// the speaker mutes.
func TestRoom(t *testing.T) {
	s := startService(t)
	pages := map[string]*browsertest.Page{}
	for _, name := range []string{"Ann", "Bob"} {
		b := browsertest.Launch(t, browsertest.Options{})
		pages[name] = b.Open(name, s.URL()+"/?room=standup&name="+name)
		pages[name].Wait("the call", inCall, `document.body.innerText`)
	}
	ctx, cancel := context.WithTimeout(t.Context(), browsertest.Liveness)
	defer cancel()
	if _, err := s.Calls().InviteBot(ctx, service.RoomConferenceID("standup"), "echo", protocol.Identity{Identity: "test", DisplayName: "test"}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for name, p := range pages {
		ids[name] = browsertest.Eval[string](p, `window.sb.call.me.participantId`)
		p.Run(browsertest.Probe)
		p.Gesture(`sbProbe.watchCall()`)
	}
	for name, p := range pages {
		p.Wait("Ann, Bob and the bot in the roster", rosterNames+`.join('|') === 'Ann|Bob|Echo'`, rosterNames)
		other := "Bob"
		if name == "Bob" {
			other = "Ann"
		}
		q := browsertest.Quote(ids[other])
		p.Wait(other+"'s microphone heard", `sbProbe.level(`+q+`) > 0.1`, `sbProbe.summary()`)
		t.Logf("%s hears %s: peak level %.2f", name, other, browsertest.Eval[float64](p, `sbProbe.level(`+q+`)`))
		seesVideo(t, p, ids[other], other)
	}

	// The service announces who holds the floor; each page highlights their tile and their
	// roster entry (checked as each announcement is handled).
	for _, p := range pages {
		p.Run(`sbProbe.watchDominant()`)
	}
	ann := pages["Ann"]
	const highlighted = `sbProbe.dominant.filter((d) => d.id && d.tile && d.roster && d.lit === 1)`
	ann.Wait("a dominant speaker highlighted", highlighted+`.length > 0`, `sbProbe.dominant`)
	// The holder now: the latest announcement highlighted (an earlier one may have moved on);
	// any announcement from here on of someone else counts as the floor moving.
	n := browsertest.Eval[int](ann, `sbProbe.dominant.length`)
	first := browsertest.Eval[string](ann, highlighted+`.at(-1).id`)
	// The speaker (or, if the bot has the floor, both browsers, whose sound it echoes) mutes:
	// the floor moves.
	for name, p := range pages {
		if first == ids[name] || !strings.HasPrefix(first, "p-") {
			p.Run(`window.sb.call.toggleMic()`)
		}
	}
	ann.Wait("the floor to move", `sbProbe.dominant.slice(`+strconv.Itoa(n)+`).some((d) => d.id !== `+browsertest.Quote(first)+` && d.roster && (d.id === '' ? d.lit === 0 : d.tile))`, `sbProbe.dominant`)
	// Ann shares her screen: Bob gets a screen tile next to her camera's.
	ann.Run(`window.sb.call.toggleScreen()`)
	bob := pages["Bob"]
	bob.Wait("Ann's screen in a tile", `[...window.sb.call.tiles.values()].some((t) => t.screenOwner === `+browsertest.Quote(ids["Ann"])+` && t.video.videoWidth > 0)`, `[...window.sb.call.tiles.keys()]`)
	t.Logf("Bob sees Ann's screen: %s", browsertest.Eval[string](bob, `(() => { const v = [...window.sb.call.tiles.values()].find((t) => t.screenOwner).video; return v.videoWidth + 'x' + v.videoHeight; })()`))

	t.Logf("dominant speakers Ann's page was told of (ids: Ann %s, Bob %s): %s", ids["Ann"], ids["Bob"], browsertest.Eval[string](ann, `JSON.stringify(sbProbe.dominant)`))
	ann.Screenshot(filepath.Join(browsertest.Artifacts(t), "room.png"))
	bob.Screenshot(filepath.Join(browsertest.Artifacts(t), "room-screen-share.png"))
}

// TestUnknownBot: the deep link to a bot the service does not have leaves the page in the lobby
// with a message that says so.
func TestUnknownBot(t *testing.T) {
	s := startService(t)
	b := browsertest.Launch(t, browsertest.Options{})
	p := b.Open("X", s.URL()+"/?call=nosuchbot&name=X")
	p.Wait("the unknown bot message", `!document.getElementById('lobby-error').classList.contains('hidden')`, `document.body.innerText`)
	msg := browsertest.Eval[string](p, `document.getElementById('lobby-error').textContent`)
	if !strings.Contains(msg, "Unknown bot “nosuchbot”") {
		t.Fatalf("the page says %q", msg)
	}
	p.Wait("the lobby, with the bots offered", `window.sb.call === null && !document.getElementById('lobby').classList.contains('hidden') && document.querySelectorAll('#bot-chips button').length === 1`, `document.body.innerText`)
	t.Logf("the page says: %s", msg)
	p.Screenshot(filepath.Join(browsertest.Artifacts(t), "unknown-bot.png"))
}

// TestDeniedDevices: a page whose camera and microphone are refused (a browser that is not
// told to grant them: headless, nobody answers its question, so it denies) says so, joins the
// room anyway, and hears and sees the other participant.
func TestDeniedDevices(t *testing.T) {
	s := startService(t)
	speaker := browsertest.Launch(t, browsertest.Options{}).Open("Speaker", s.URL()+"/?room=hall&name=Speaker")
	speaker.Wait("the call", inCall, `document.body.innerText`)
	listener := browsertest.Launch(t, browsertest.Options{RealPermissions: true}).Open("Listener", s.URL()+"/?room=hall&name=Listener")
	listener.Wait("the call", inCall, `document.body.innerText`)
	listener.Wait("the denied-device message", `document.getElementById('toasts').textContent.includes('was denied')`, `document.getElementById('toasts').textContent`)
	t.Logf("the page says: %s", browsertest.Eval[string](listener, `document.getElementById('toasts').textContent`))
	// Nothing captured, no click yet: the browser may refuse to play sound; the page asks for
	// a click, which starts it.
	listener.Wait("the speaker's audio", `[...window.sb.call.audioEls.values()].length > 0`, `window.sb.call.remoteStreams.size`)
	time.Sleep(500 * time.Millisecond)
	blocked := `document.getElementById('toasts').textContent.includes('Click anywhere to hear')`
	if browsertest.Eval[bool](listener, blocked) {
		t.Log("the page asks for a click to hear the call")
		listener.Click()
		listener.Wait("the sound to start", `!`+blocked+` && [...window.sb.call.audioEls.values()].every((e) => !e.paused)`, `document.getElementById('toasts').textContent`)
	}
	id := browsertest.Eval[string](speaker, `window.sb.call.me.participantId`)
	listener.Run(browsertest.Probe)
	listener.Gesture(`sbProbe.watchCall()`)
	listener.Wait("the speaker heard", `sbProbe.level(`+browsertest.Quote(id)+`) > 0.1`, `[sbProbe.summary(), [...window.sb.call.remoteStreams.entries()].map(([k, r]) => k + ' ' + r.kind + ' ' + r.owner + ' ' + r.stream.getTracks()[0].readyState + ' ' + r.stream.getTracks()[0].muted)]`)
	seesVideo(t, listener, id, "Speaker")
	if pub := browsertest.Eval[int](listener, `window.sb.call.pub.getSenders().length`); pub != 0 {
		t.Errorf("the listener sends %d tracks", pub)
	}
	listener.Screenshot(filepath.Join(browsertest.Artifacts(t), "denied-devices.png"))
}
