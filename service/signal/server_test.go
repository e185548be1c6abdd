package signal

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/webhook"
	"github.com/switchboard-rtc/switchboard/service/bots"
	"github.com/switchboard-rtc/switchboard/service/calls"
	"github.com/switchboard-rtc/switchboard/service/sfu"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	sfu *sfu.SFU
	srv *Server
	hs  *httptest.Server
	url string
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	s, err := sfu.New(sfu.Config{Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	srv := NewServer(s, opts)
	hs := httptest.NewServer(srv)
	e := &env{sfu: s, srv: srv, hs: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http")}
	t.Cleanup(func() {
		_ = srv.Close()
		hs.Close()
		_ = s.Close()
	})
	return e
}

// client is a browser stand-in: a WebSocket, and optionally pion connections that follow the
// signalling (trickle ICE both ways).
type client struct {
	t    *testing.T
	conn *websocket.Conn
	msgs chan map[string]any
	done chan struct{}

	api        *webrtc.API
	pub, sub   *webrtc.PeerConnection
	mu         sync.Mutex
	got        map[byte]int // first payload byte of received audio → packets
	descSent   map[string]bool
	lastTracks []any
	stamp      bool    // send the send time in audio payloads, record delays
	delays     []int64 // send-to-receive delays (ns) of stamped packets
	candWait   map[string][]Candidate
	wg         sync.WaitGroup
}

func dial(t *testing.T, e *env) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, e.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(1 << 20)
	c := &client{t: t, conn: conn, msgs: make(chan map[string]any, 256), done: make(chan struct{}), got: make(map[byte]int),
		descSent: make(map[string]bool), candWait: make(map[string][]Candidate)}
	c.wg.Add(1)
	go c.readLoop()
	return c
}

func (c *client) readLoop() {
	defer c.wg.Done()
	defer close(c.done)
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			return
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			c.t.Errorf("server sent invalid JSON %q", data)
			return
		}
		c.media(m)
		select {
		case c.msgs <- m:
		default:
			c.t.Errorf("client queue full")
		}
	}
}

func (c *client) send(v any) {
	var data []byte
	switch v := v.(type) {
	case string:
		data = []byte(v)
	default:
		data, _ = json.Marshal(v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, data); err != nil {
		c.t.Errorf("write: %v", err)
	}
}

// expect returns the next message of type typ, skipping others (which must not be errors
// unless typ is "error").
func (c *client) expect(typ string) map[string]any {
	c.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-c.msgs:
			if m["type"] == typ {
				return m
			}
			if m["type"] == "error" {
				c.t.Fatalf("unexpected error while waiting for %s: %v", typ, m)
			}
		case <-timeout:
			c.t.Fatalf("timed out waiting for %s", typ)
		}
	}
}

// expectRoster waits for a roster satisfying ok.
func (c *client) expectRoster(ok func([]any) bool) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		m := c.expect("roster")
		if ok(m["participants"].([]any)) {
			return
		}
	}
	c.t.Fatal("roster never matched")
}

func rosterIDs(ps []any) []string {
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.(map[string]any)["id"].(string))
	}
	return ids
}

// media answers the server's offers, applies answers and candidates.
func (c *client) media(m map[string]any) {
	c.mu.Lock()
	pub, sub := c.pub, c.sub
	c.mu.Unlock()
	if pub == nil {
		return
	}
	switch m["type"] {
	case "offer":
		c.mu.Lock()
		c.lastTracks, _ = m["tracks"].([]any)
		c.mu.Unlock()
		if err := sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m["sdp"].(string)}); err != nil {
			c.t.Errorf("subscriber offer: %v", err)
			return
		}
		ans, err := sub.CreateAnswer(nil)
		if err != nil {
			c.t.Errorf("answer: %v", err)
			return
		}
		if err := sub.SetLocalDescription(ans); err != nil {
			c.t.Errorf("set answer: %v", err)
			return
		}
		c.sendDescription("subscriber", Answer{Type: "answer", SDP: ans.SDP})
	case "answer":
		if err := pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m["sdp"].(string)}); err != nil {
			c.t.Errorf("publisher answer: %v", err)
		}
	case "candidate":
		raw, _ := json.Marshal(m["candidate"])
		var init webrtc.ICECandidateInit
		_ = json.Unmarshal(raw, &init)
		pc := pub
		if m["target"] == "subscriber" {
			pc = sub
		}
		if err := pc.AddICECandidate(init); err != nil {
			c.t.Errorf("candidate %s before its description? %v", m["target"], err)
		}
	}
}

// prepare makes the pion connections (before join, so that no offer finds them missing).
func (c *client) prepare() {
	se := rtc.ServiceSettingEngine(true)
	api, err := rtc.NewAPI(se)
	if err != nil {
		c.t.Fatal(err)
	}
	c.api = api
	sub, _ := api.NewPeerConnection(webrtc.Configuration{})
	pub, _ := api.NewPeerConnection(webrtc.Configuration{})
	for role, pc := range map[string]*webrtc.PeerConnection{"publisher": pub, "subscriber": sub} {
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand == nil {
				return
			}
			j := cand.ToJSON()
			m := Candidate{Type: "candidate", Target: role, Candidate: CandidateInit{Candidate: j.Candidate, SDPMid: j.SDPMid, SDPMLineIndex: j.SDPMLineIndex}}
			c.mu.Lock()
			if !c.descSent[role] {
				c.candWait[role] = append(c.candWait[role], m)
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			c.send(m)
		})
	}
	sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				p, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				if len(p.Payload) > 0 {
					c.mu.Lock()
					c.got[p.Payload[0]]++
					if len(p.Payload) == 9 && len(c.delays) < 1<<20 {
						c.delays = append(c.delays, time.Now().UnixNano()-int64(binary.BigEndian.Uint64(p.Payload[1:])))
					}
					c.mu.Unlock()
				}
			}
		}()
	})
	c.mu.Lock()
	c.pub, c.sub = pub, sub
	c.mu.Unlock()
}

// startMedia publishes an audio track sending payloads tagged with tag (after prepare and join).
func (c *client) startMedia(tag byte) {
	c.mu.Lock()
	pub := c.pub
	c.mu.Unlock()
	track, _ := webrtc.NewTrackLocalStaticRTP(rtc.OpusCodec().RTPCodecCapability, "mic", "me")
	if _, err := pub.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		c.t.Fatal(err)
	}
	offer, err := pub.CreateOffer(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := pub.SetLocalDescription(offer); err != nil {
		c.t.Fatal(err)
	}
	c.sendDescription("publisher", Publish{Type: "publish", SDP: offer.SDP})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(1); ; seq++ {
			select {
			case <-c.done:
				return
			case <-tick.C:
			}
			payload := []byte{tag, 1, 2}
			if c.stamp {
				payload = binary.BigEndian.AppendUint64([]byte{tag}, uint64(time.Now().UnixNano()))
			}
			_ = track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 960},
				Payload: payload})
		}
	}()
}

// sendDescription sends an offer or answer, then the candidates that waited for it (as a page
// does: its candidate events come after the description it sent).
func (c *client) sendDescription(role string, m any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.send(m)
	c.descSent[role] = true
	for _, w := range c.candWait[role] {
		c.send(w)
	}
	c.candWait[role] = nil
}

func (c *client) heard(tag byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[tag]
}

func (c *client) close() {
	_ = c.conn.CloseNow()
	<-c.done
	c.mu.Lock()
	pub, sub := c.pub, c.sub
	c.mu.Unlock()
	if pub != nil {
		_ = pub.Close()
		_ = sub.Close()
	}
	c.wg.Wait()
}

func join(c *client, room, name string) map[string]any {
	c.send(Join{Type: "join", Room: room, DisplayName: name})
	return c.expect("joined")
}

// TestSignalling: two browsers join a room over WebSocket with trickle ICE and hear each other;
// a hostile third one's malformed messages and bad SDP get errors only on its own connection;
// a dropped connection is resumed with its token within the grace period; one that is not
// resumed, and one that leaves, vanish from the others' rosters.
func TestSignalling(t *testing.T) {
	e := newEnv(t, Options{Grace: 2 * time.Second})
	a, b := dial(t, e), dial(t, e)
	defer a.close()
	a.prepare()
	b.prepare()
	ja := join(a, "standup", "Ann")
	jb := join(b, "standup", "Bob")
	idA, idB := ja["participantId"].(string), jb["participantId"].(string)
	if ja["conferenceId"] != "room-standup" || ja["token"] == "" || idA == idB {
		t.Fatalf("joined = %v / %v", ja, jb)
	}
	a.expectRoster(func(ps []any) bool { return len(ps) == 2 })

	a.startMedia('A')
	b.startMedia('B')
	deadline := time.Now().Add(20 * time.Second)
	for a.heard('B') < 10 || b.heard('A') < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("media: A heard %d, B heard %d", a.heard('B'), b.heard('A'))
		}
		time.Sleep(20 * time.Millisecond)
	}

	a.mu.Lock()
	tracks := a.lastTracks
	a.mu.Unlock()
	if len(tracks) != 1 || tracks[0].(map[string]any)["participantId"] != idB || tracks[0].(map[string]any)["kind"] != "audio" ||
		tracks[0].(map[string]any)["mid"] == "" {
		t.Errorf("A's offer tracks = %v, want B's audio", tracks)
	}

	// A hostile client: errors for it only.
	h := dial(t, e)
	defer h.close()
	h.send(`{"type":"publish","sdp":"v=0\r\n"}`)
	if m := h.expect("error"); m["code"] != CodeNotJoined {
		t.Errorf("publish before join: %v", m)
	}
	join(h, "standup", "Mallory")
	for _, bad := range []string{`not json`, `{"type":"join","room":"x"}`, `{"type":"fly"}`, `{"type":"subscribe","sourceId":999,"layer":"q"}`,
		`{"type":"publish","sdp":"v=0\r\nthis is not sdp"}`, `{"type":"answer","sdp":"v=0\r\n"}`,
		`{"type":"candidate","target":"publisher","candidate":{"candidate":"candidate:garbage"}}`, strings.Repeat("x", MaxMessageBytes+10)} {
		h.send(bad)
		m := h.expect("error")
		if m["message"] == "" || m["code"] == "" {
			t.Errorf("%.40s: error without code or message: %v", bad, m)
		}
	}
	h.send(Ping{Type: "ping"})
	h.expect("pong")
	a.send(Ping{Type: "ping"})
	a.expect("pong") // A saw no error in between (expect fails on one)
	before := a.heard('B')
	time.Sleep(200 * time.Millisecond)
	if a.heard('B') <= before {
		t.Error("media stopped after the hostile client's messages")
	}

	// B's connection drops and resumes with its token: same participant.
	_ = b.conn.CloseNow()
	<-b.done
	b2 := dial(t, e)
	defer b2.close()
	b2.send(Resume{Type: "resume", Token: jb["token"].(string)})
	if j := b2.expect("joined"); j["participantId"] != idB {
		t.Fatalf("resumed as %v, want %s", j["participantId"], idB)
	}
	b2.send(Resume{Type: "resume", Token: "nope"})
	b2.expect("error")
	b3 := dial(t, e)
	defer b3.close()
	b3.send(Resume{Type: "resume", Token: "nope"})
	if m := b3.expect("error"); m["code"] != CodeNotFound {
		t.Errorf("bad token: %v", m)
	}

	// The hostile client drops and never resumes: gone after the grace period.
	_ = h.conn.CloseNow()
	a.expectRoster(func(ps []any) bool { return len(ps) == 2 })

	// A leaves: told so, and B's roster loses it.
	a.send(Leave{Type: "leave"})
	a.expect("left")
	b2.expectRoster(func(ps []any) bool { ids := rosterIDs(ps); return len(ids) == 1 && ids[0] == idB })
	b.close()
}

// oneBot knows the bot "rec" only.
type oneBot struct{}

func (oneBot) Lookup(appID string) (bots.Bot, error) {
	if appID == "rec" {
		return bots.Bot{AppID: "rec", WebhookURL: "http://127.0.0.1:1/calling", DisplayName: "Recorder"}, nil
	}
	return bots.Bot{}, fmt.Errorf("bot %q: %w", appID, bots.ErrUnknown)
}

type nullBus struct{}

func (nullBus) Enqueue(context.Context, webhook.Request) error { return nil }

// newCallsEnv is an env whose directory is a call layer (that knows the bot "rec" and delivers
// nothing).
func newCallsEnv(t *testing.T) (*calls.Manager, *env) {
	t.Helper()
	m, err := calls.New(calls.Options{Bots: oneBot{}, Bus: nullBus{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m, newEnv(t, Options{Directory: CallsDirectory{Calls: m}})
}

// TestCallsDirectory: with the call layer as directory, a browser in a room is in the call
// layer's conference RoomConferenceID(room) until it leaves, and a bot can be invited into it
// (its id is a protocol id); calling an unknown bot is not_found.
func TestCallsDirectory(t *testing.T) {
	m, e := newCallsEnv(t)
	a := dial(t, e)
	defer a.close()
	j := join(a, "retro", "Ann")
	if j["conferenceId"] != "room-retro" {
		t.Fatalf("joined %v, want conference room-retro", j)
	}
	info, err := m.Conference("room-retro")
	if err != nil || len(info.Roster) != 1 || info.Roster[0].ID != j["participantId"] {
		t.Fatalf("call layer conference = %+v, %v", info, err)
	}
	if _, err := m.InviteBot(t.Context(), "room-retro", "rec", protocol.Identity{Identity: "test"}); err != nil {
		t.Fatalf("invite a bot into the room: %v", err)
	}
	a.send(Mute{Type: "mute", Kind: "audio", Muted: true})
	a.send(Ping{Type: "ping"})
	a.expect("pong")
	b := dial(t, e)
	defer b.close()
	b.send(CallBot{Type: "callBot", Bot: "nobody"})
	if m := b.expect("error"); m["code"] != CodeNotFound {
		t.Fatalf("unknown bot: %v", m)
	}
	a.send(Leave{Type: "leave"})
	a.expect("left")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if calls, confs := m.Stats(); calls == 0 && confs == 0 {
			break // the room ended with its last browser, and the bot's call with it
		}
		if time.Now().After(deadline) {
			info, _ := m.Conference("room-retro")
			t.Fatalf("call layer after the last browser left: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestJoinFailureLeavesNothing: a browser that the call layer admitted but the SFU could not
// take (here: closed) is not left behind in the call layer's room.
func TestJoinFailureLeavesNothing(t *testing.T) {
	m, e := newCallsEnv(t)
	_ = e.sfu.Close()
	a := dial(t, e)
	defer a.close()
	a.send(Join{Type: "join", Room: "retro", DisplayName: "Ann"})
	if got := a.expect("error"); got["code"] != CodeFailed {
		t.Fatalf("join with the SFU closed: %v", got)
	}
	if calls, confs := m.Stats(); calls != 0 || confs != 0 {
		t.Fatalf("after a failed join: %d calls, %d conferences in the call layer", calls, confs)
	}
}

// publisher joins room and publishes audio tagged tag; it returns once the roster shows the
// stream.
func publisher(t *testing.T, e *env, room string, tag byte) *client {
	t.Helper()
	c := dial(t, e)
	c.prepare()
	join(c, room, "Ann")
	c.startMedia(tag)
	c.expectRoster(func(ps []any) bool {
		return len(ps) == 1 && len(ps[0].(map[string]any)["streams"].([]any)) == 1
	})
	return c
}

// TestJoinedBeforeOffer: a page makes its connections when it is told it joined, so whoever
// joins a room where someone already publishes must get "joined" before the subscriber offer
// that carries that stream (an offer that came first would be lost, and the joiner would
// receive nothing, ever). Twenty joiners in a row, each checked.
func TestJoinedBeforeOffer(t *testing.T) {
	e := newEnv(t, Options{})
	a := publisher(t, e, "hall", 'A')
	defer a.close()
	for i := range 20 {
		b := dial(t, e)
		b.send(Join{Type: "join", Room: "hall", DisplayName: "Bob"})
		var order []string
		for len(order) == 0 || order[len(order)-1] != "offer" {
			select {
			case m := <-b.msgs:
				if typ := m["type"].(string); typ != "roster" {
					order = append(order, typ)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("joiner %d: no offer (got %v)", i, order)
			}
		}
		if order[0] != "joined" {
			t.Fatalf("joiner %d got %v: the offer came before joined", i, order)
		}
		b.close()
	}
}

// TestResumeResendsOffer: a subscriber offer the page never answered (its connection dropped
// with the offer in flight) comes again on the resumed connection, and media then flows (the
// SFU makes no new offer while it waits for that answer).
func TestResumeResendsOffer(t *testing.T) {
	e := newEnv(t, Options{Grace: 10 * time.Second})
	a := publisher(t, e, "hall", 'A')
	defer a.close()
	b := dial(t, e)
	jb := join(b, "hall", "Bob")
	b.expect("offer") // unanswered: b has no connections
	b.close()
	b2 := dial(t, e)
	defer b2.close()
	b2.prepare()
	b2.send(Resume{Type: "resume", Token: jb["token"].(string)})
	b2.expect("joined")
	b2.expect("offer")
	deadline := time.Now().Add(20 * time.Second)
	for b2.heard('A') < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("the resumed page heard %d packets", b2.heard('A'))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
