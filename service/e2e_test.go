package service

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/examples/echo/echo"
	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/sdk"
	"github.com/switchboard-rtc/switchboard/sdk/bot"
	"github.com/switchboard-rtc/switchboard/service/config"
	"github.com/switchboard-rtc/switchboard/service/internal/servicetest"
	"github.com/switchboard-rtc/switchboard/service/internal/testpeer"
)

// confServer is a whole calling service (SFU, signalling, page) on loopback.
type confServer struct {
	*Server
	ws string // the signalling URL
}

// newConfServer builds and starts the service with the SFU.
func newConfServer(t *testing.T, conf Conferencing) *confServer {
	t.Helper()
	s, err := New(servicetest.Config(), Options{Logger: slog.New(slog.DiscardHandler), Conferencing: &conf})
	if err != nil {
		t.Fatal(err)
	}
	servicetest.Start(t, s)
	return &confServer{Server: s, ws: "ws" + strings.TrimPrefix(s.URL(), "http") + "/ws"}
}

// serveBot registers appID at a listener of its own and serves h there until the test ends
// (then closes closer, after the server stopped). It returns the bot's calling URL.
func serveBot(t *testing.T, s *confServer, appID string, h func(url string) http.Handler, closer func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/api/calling"
	if err := s.AddBot(config.Bot{AppID: appID, Secret: botSecret, WebhookURL: url, DisplayName: "Bot " + appID}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/calling/", h(url))
	servicetest.Serve(t, ln, mux, func() {
		if err := closer(); err != nil {
			t.Error(err)
		}
	})
}

// runEcho runs the echo bot (examples/echo) as its program does, with sdk/bot, on loopback,
// registered as "echo", until the test ends.
func runEcho(t *testing.T, s *confServer) {
	t.Helper()
	ready := make(chan string, 1)
	cfg := bot.Config{ServiceURL: s.URL(), AppID: "echo", AppSecret: botSecret, Listen: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler), OnReady: func(url string) { ready <- url }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bot.Run(ctx, cfg, echo.NewCall) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case url := <-ready:
		if err := s.AddBot(config.Bot{AppID: "echo", Secret: botSecret, WebhookURL: url, DisplayName: "Echo"}); err != nil {
			t.Fatal(err)
		}
	case err := <-done:
		t.Fatalf("echo bot: %v", err)
	}
}

func dialPeer(t *testing.T, s *confServer, cfg testpeer.Config) *testpeer.Peer {
	t.Helper()
	cfg.URL = s.ws
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	p, err := testpeer.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		if errs := p.Errors(); len(errs) > 0 {
			t.Errorf("%s: %v", cfg.Name, errs)
		}
	})
	return p
}

// steady is a constant-loudness voice: a tone of pitch at amplitude amp.
func steady(pitch, amp float64) func(int, []int16) {
	return func(n int, pcm []int16) {
		for k := range pcm {
			t := float64(n*len(pcm)+k) / 16000
			pcm[k] = int16(amp * (0.7*math.Sin(2*math.Pi*220*pitch*t) + 0.3*math.Sin(2*math.Pi*660*pitch*t)))
		}
	}
}

// rms of the last d of audio.
func rms(pcm []int16, d time.Duration) float64 {
	n := int(d.Seconds() * 16000)
	if len(pcm) < n {
		return 0
	}
	var sum float64
	for _, v := range pcm[len(pcm)-n:] {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(n))
}

// recordingBot is an SDK bot in this process (its own HTTP listener and media port) that records
// what a conference call brings it.
type recordingBot struct {
	h        *sdk.Handler
	platform *sdk.MediaPlatform

	mu          sync.Mutex
	call        *sdk.Call
	video       *sdk.VideoSocket
	established bool
	states      []string     // "state/reason", in order
	frames      []audioFrame // the last received audio frames
	audioTotal  int          // every audio frame received
	dominant    []uint32
	roster      []sdk.Participant
	videoFrames int
	videoFormat media.VideoFormat
	videoOrig   media.VideoFormat
	videoSource uint32
}

type audioFrame struct {
	speakers []uint32
	silence  bool
}

// newRecordingBot runs a recording bot registered as appID until the test ends.
func newRecordingBot(t *testing.T, s *confServer, appID string) *recordingBot {
	t.Helper()
	b := &recordingBot{}
	var err error
	b.platform, err = sdk.NewMediaPlatform(sdk.MediaPlatformSettings{ServiceFQDN: "bot.local", AppID: appID, InternalIP: "127.0.0.1",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	serveBot(t, s, appID, func(url string) http.Handler {
		b.h, err = sdk.NewHandler(sdk.HandlerConfig{AppID: appID, AppSecret: botSecret, ServiceURL: s.URL(), PublicURL: url,
			Logger: slog.New(slog.DiscardHandler), NewCall: b.newCall})
		if err != nil {
			t.Fatal(err)
		}
		return b.h
	}, b.close)
	return b
}

func (b *recordingBot) close() error { return errors.Join(b.h.Close(), b.platform.Close()) }

func (b *recordingBot) newCall(c *sdk.Call) sdk.CallEvents {
	return sdk.CallEvents{
		OnIncomingCall: func(_ context.Context, in *sdk.IncomingCall) sdk.Workflow {
			audio, err := sdk.NewAudioSocket(sdk.AudioSocketSettings{Direction: sdk.Recvonly, OnAudioReceived: func(e sdk.AudioReceivedEvent) {
				f := audioFrame{speakers: slices.Clone(e.Buffer.ActiveSpeakers()), silence: e.Buffer.Silence}
				e.Buffer.Release()
				b.mu.Lock()
				b.frames = append(b.frames, f)
				b.audioTotal++
				if len(b.frames) > 500 {
					b.frames = slices.Delete(b.frames, 0, 250)
				}
				b.mu.Unlock()
			}})
			if err != nil {
				return sdk.Reject(err.Error())
			}
			video, err := sdk.NewVideoSocket(sdk.VideoSocketSettings{Direction: sdk.Recvonly, OnVideoReceived: func(e sdk.VideoReceivedEvent) {
				b.mu.Lock()
				b.videoFrames++
				b.videoFormat, b.videoOrig, b.videoSource = e.Buffer.Format(), e.Buffer.OriginalFormat, e.Buffer.SourceID
				b.mu.Unlock()
				e.Buffer.Release()
			}})
			if err != nil {
				return sdk.Reject(err.Error())
			}
			m, err := b.platform.CreateMediaConfiguration(audio, video)
			if err != nil {
				return sdk.Reject(err.Error())
			}
			b.mu.Lock()
			b.call, b.video = c, video
			b.mu.Unlock()
			return sdk.Answer(m)
		},
		OnCallStateChanged: func(s sdk.CallState, reason string) {
			b.mu.Lock()
			b.established = s == sdk.StateEstablished
			b.states = append(b.states, string(s)+"/"+reason)
			b.mu.Unlock()
		},
		OnRosterUpdated: func(ps []sdk.Participant) {
			b.mu.Lock()
			b.roster = ps
			b.mu.Unlock()
		},
		OnDominantSpeakerChanged: func(src uint32) {
			b.mu.Lock()
			b.dominant = append(b.dominant, src)
			b.mu.Unlock()
		},
	}
}

// heard counts, over the last n audio frames, the frames each source was an active speaker in.
func (b *recordingBot) heard(n int) (map[uint32]int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	got := map[uint32]int{}
	frames := b.frames[max(0, len(b.frames)-n):]
	for _, f := range frames {
		for _, s := range f.speakers {
			got[s]++
		}
	}
	return got, len(frames)
}

func (b *recordingBot) lastDominant() uint32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.dominant) == 0 {
		return 0
	}
	return b.dominant[len(b.dominant)-1]
}

func (b *recordingBot) rosterIDs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []string
	for _, p := range b.roster {
		ids = append(ids, p.ID)
	}
	return ids
}

// TestConferenceEndToEnd runs the whole service in process (SFU, signalling, call control) with
// three browser stand-ins that connect over /ws as the page does (real Opus; one also publishes
// real VP8 in three simulcast layers) and one SDK bot invited into their room, with the bot's
// audio limited to the 2 loudest speakers. Everyone hears the others; the bot hears the loudest
// two with their source ids; dominant-speaker events follow whoever speaks, to the browsers and
// to the bot; the bot subscribes to one participant's camera at 640×360 and gets that layer; a
// participant who leaves disappears from every roster.
func TestConferenceEndToEnd(t *testing.T) {
	s := newConfServer(t, Conferencing{BotAudioSlots: 2})
	rec := newRecordingBot(t, s, "recorder")

	ctx := t.Context()
	a := dialPeer(t, s, testpeer.Config{Name: "Ann", Audio: steady(1.0, 12000), Video: true})
	b := dialPeer(t, s, testpeer.Config{Name: "Bob", Audio: steady(1.26, 5000)})
	c := dialPeer(t, s, testpeer.Config{Name: "Cid", Audio: steady(1.5, 1200)})
	peers := []*testpeer.Peer{a, b, c}
	var joined []testpeer.Joined
	for _, p := range peers {
		j, err := p.Join(ctx, "e2e")
		if err != nil {
			t.Fatal(err)
		}
		joined = append(joined, j)
	}
	ja, jb, jc := joined[0], joined[1], joined[2]
	for _, p := range peers {
		servicetest.Eventually(t, "three in every roster", func() bool { return len(p.Roster()) == 3 })
	}

	// Everyone hears the two others (decoded Opus, with energy), and not themselves.
	for i, p := range peers {
		for k, j := range joined {
			if k == i {
				continue
			}
			servicetest.Eventually(t, "every participant hears the others", func() bool {
				pcm, n := p.Audio(j.Sources.Audio)
				return n >= 50 && rms(pcm, 500*time.Millisecond) > 200
			})
		}
		if _, n := p.Audio(joined[i].Sources.Audio); n != 0 {
			t.Errorf("participant %d hears itself", i)
		}
	}

	// The bot joins the room's conference.
	info, err := s.Calls().InviteBot(ctx, ja.ConferenceID, "recorder", protocol.Identity{DisplayName: "test"})
	if err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, "bot call established", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.established })
	for _, p := range peers {
		servicetest.Eventually(t, "the bot in every roster", func() bool { return len(p.Roster()) == 4 })
	}
	servicetest.Eventually(t, "the bot's roster", func() bool { return len(rec.rosterIDs()) == 4 })

	// The rec hears the loudest two (Ann, Bob), not Cid.
	servicetest.Eventually(t, "the bot hears Ann and Bob", func() bool {
		got, n := rec.heard(50)
		return n == 50 && got[ja.Sources.Audio] >= 40 && got[jb.Sources.Audio] >= 40
	})
	if got, _ := rec.heard(50); got[jc.Sources.Audio] > 0 {
		t.Errorf("the bot hears Cid, the quietest, over 2 slots: %v", got)
	}

	// Dominant speaker follows whoever speaks: Bob alone, then Cid alone.
	for _, speaker := range []int{1, 2} {
		for i, p := range peers {
			if i == speaker {
				p.SetAudio(steady(1+0.25*float64(i), 8000))
			} else {
				p.SetAudio(nil)
			}
		}
		want := joined[speaker]
		for _, p := range peers {
			servicetest.Eventually(t, "dominant speaker reaches the browsers", func() bool {
				d := p.LastDominant()
				return d.SourceID == want.Sources.Audio && d.ParticipantID == want.ParticipantID
			})
		}
		servicetest.Eventually(t, "dominant speaker reaches the bot", func() bool { return rec.lastDominant() == want.Sources.Audio })
		servicetest.Eventually(t, "the bot hears the one who speaks", func() bool {
			got, n := rec.heard(25)
			return n == 25 && got[want.Sources.Audio] >= 20
		})
	}

	// The rec subscribes to Ann's camera at 640×360 (its source id from the bot's roster).
	var annVideo uint32
	rec.mu.Lock()
	for _, p := range rec.roster {
		for _, st := range p.Streams {
			if p.ID == ja.ParticipantID && st.Kind == sdk.StreamVideo {
				annVideo = st.SourceID
			}
		}
	}
	call, vsock := rec.call, rec.video
	rec.mu.Unlock()
	if annVideo == 0 || annVideo != ja.Sources.Video {
		t.Fatalf("Ann's video source in the bot's roster = %d, joined says %d", annVideo, ja.Sources.Video)
	}
	op, err := call.Subscribe(ctx, vsock, annVideo, 640, 360)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, liveness)
	defer cancel()
	if err := op.Wait(wctx); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	servicetest.Eventually(t, "the bot gets Ann's 640×360 layer", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.videoFrames >= 10 && rec.videoFormat.Width == 640 && rec.videoFormat.Height == 360 && rec.videoSource == annVideo
	})
	rec.mu.Lock()
	orig := rec.videoOrig
	rec.mu.Unlock()
	// The browsers' roster carries the camera's full size (the highest layer's).
	servicetest.Eventually(t, "Ann's camera size in Bob's roster", func() bool {
		for _, p := range b.Roster() {
			for _, st := range p.Streams {
				if st.SourceID == annVideo && st.Width == 1280 && st.Height == 720 {
					return true
				}
			}
		}
		return false
	})
	if orig.Width != 1280 || orig.Height != 720 {
		t.Errorf("the bot's 640×360 frames report an original size of %dx%d, want the camera's 1280x720", orig.Width, orig.Height)
	}

	// Cid leaves: gone from every roster, the bot's too.
	if err := c.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*testpeer.Peer{a, b} {
		servicetest.Eventually(t, "Cid gone from the browsers' rosters", func() bool {
			ids := p.RosterIDs()
			return len(ids) == 3 && !slices.Contains(ids, jc.ParticipantID)
		})
	}
	servicetest.Eventually(t, "Cid gone from the bot's roster", func() bool {
		ids := rec.rosterIDs()
		return len(ids) == 3 && !slices.Contains(ids, jc.ParticipantID)
	})
	if err := s.Calls().EndCall(info.ID, ""); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*testpeer.Peer{a, b} {
		servicetest.Eventually(t, "the bot gone from the rosters", func() bool { return len(p.Roster()) == 2 })
	}
}

// TestEchoBotEndToEnd calls the echo bot (examples/echo) through the service as a browser
// would — over /ws, with callBot "echo" — and gets its own voice back (correlation of at least
// 0.8 after alignment, through two Opus encodings, the SFU twice and the bot's jitter buffer)
// and its own camera back as video frames.
func TestEchoBotEndToEnd(t *testing.T) {
	s := newConfServer(t, Conferencing{})
	runEcho(t, s)

	voice := func(n int, pcm []int16) { testpeer.Tone(n, pcm, 1, 8000) }
	p := dialPeer(t, s, testpeer.Config{Name: "Ann", Audio: voice, Video: true})
	j, err := p.CallBot(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	var botAudio, botVideo uint32
	servicetest.Eventually(t, "the echo bot in the roster with its streams", func() bool {
		for _, e := range p.Roster() {
			for _, st := range e.Streams {
				if e.IsBot && st.Kind == "audio" {
					botAudio = st.SourceID
				}
				if e.IsBot && st.Kind == "video" {
					botVideo = st.SourceID
				}
			}
		}
		return botAudio != 0 && botVideo != 0
	})
	servicetest.Eventually(t, "5 s of echoed audio", func() bool { _, n := p.Audio(botAudio); return n >= 250 })
	pcm, _ := p.Audio(botAudio)
	// Half-second stretches of what Ann said, each looked for anywhere in what came back; the
	// best one counts (a stretch that a concealed loss on this busy machine cut through does
	// not).
	best := 0.0
	frame := make([]int16, testpeer.FrameSamples)
	for first := 100; first <= 200; first += 25 {
		want := make([]int16, 0, 8000)
		for n := first; n < first+25; n++ {
			voice(n, frame)
			want = append(want, frame...)
		}
		corr, lag := testpeer.Correlation(want, pcm)
		t.Logf("echo: frames %d-%d found at offset %d of %d samples back, correlation %.3f", first, first+24, lag, len(pcm), corr)
		best = max(best, corr)
	}
	if best < 0.8 {
		t.Errorf("echoed audio correlates at best %.3f with what was sent, want ≥ 0.8", best)
	}
	servicetest.Eventually(t, "echoed video frames", func() bool { return p.Video(botVideo).Frames >= 10 })
	v := p.Video(botVideo)
	t.Logf("echo: %d video frames back, %dx%d", v.Frames, v.Width, v.Height)
	if v.Width != echo.Width && v.Width != echo.Width/2 {
		t.Errorf("echoed video is %dx%d", v.Width, v.Height)
	}
	_ = j
	if err := p.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestEchoTwoCallers: two browsers call the same echo bot process at once, and both get their
// media back (two calls between the service and one bot process, whose media shares one UDP
// port on the bot's side). Bob's camera is 4:3: the bot echoes it at 16:9, 640×360 or, when
// what it receives is smaller (the SDK does not scale up), 320×180.
func TestEchoTwoCallers(t *testing.T) {
	s := newConfServer(t, Conferencing{})
	runEcho(t, s)
	var peers []*testpeer.Peer
	for i, name := range []string{"Ann", "Bob"} {
		pitch := 1 + 0.3*float64(i)
		p := dialPeer(t, s, testpeer.Config{Name: name, Audio: func(n int, pcm []int16) { testpeer.Tone(n, pcm, pitch, 8000) },
			Video: i == 1, Layers: [3][2]int{{160, 120}, {320, 240}, {640, 480}}})
		if _, err := p.CallBot(t.Context(), "echo"); err != nil {
			t.Fatal(err)
		}
		peers = append(peers, p)
	}
	for _, p := range peers {
		servicetest.Eventually(t, "echoed audio for every caller", func() bool {
			for _, e := range p.Roster() {
				for _, st := range e.Streams {
					if e.IsBot && st.Kind == "audio" && p.Packets(st.SourceID) >= 50 {
						return true
					}
				}
			}
			return false
		})
	}
	bob := peers[1]
	servicetest.Eventually(t, "Bob's 4:3 camera echoed at 16:9", func() bool {
		for _, e := range bob.Roster() {
			for _, st := range e.Streams {
				if v := bob.Video(st.SourceID); e.IsBot && st.Kind == "video" && v.Frames >= 10 {
					return (v.Width == echo.Width && v.Height == echo.Height) || (v.Width == echo.Width/2 && v.Height == echo.Height/2)
				}
			}
		}
		return false
	})
}
