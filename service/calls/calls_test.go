package calls

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/internal/webhook"
	"github.com/switchboard-rtc/switchboard/service/bots"
	"github.com/switchboard-rtc/switchboard/service/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "0123456789abcdef0123456789abcdef"

// fakeBus records requests; the test answers incoming calls by calling their Done.
type fakeBus struct {
	mu   sync.Mutex
	reqs []sent
	err  error
}

type sent struct {
	ctx context.Context
	webhook.Request
}

func (b *fakeBus) Enqueue(ctx context.Context, r webhook.Request) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	b.reqs = append(b.reqs, sent{ctx, r})
	return nil
}

func (b *fakeBus) all() []sent {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]sent(nil), b.reqs...)
}

// incoming returns the incoming-call request of callID.
func (b *fakeBus) incoming(t *testing.T, callID string) sent {
	t.Helper()
	for _, r := range b.all() {
		if r.Kind == webhook.KindCall && r.Key == callID {
			return r
		}
	}
	t.Fatalf("no incoming call %s", callID)
	return sent{}
}

// notifications decodes callID's notifications, strictly, in order.
func (b *fakeBus) notifications(t *testing.T, callID string) []protocol.Notification {
	t.Helper()
	var out []protocol.Notification
	for _, r := range b.all() {
		if r.Kind == webhook.KindNotification && r.Key == callID {
			n, err := protocol.DecodeNotification(r.Body)
			if err != nil {
				t.Fatalf("notification %s: %v", r.Body, err)
			}
			if n.Sequence != uint64(len(out)+1) {
				t.Fatalf("sequence %d after %d notifications", n.Sequence, len(out))
			}
			out = append(out, *n)
		}
	}
	return out
}

func (b *fakeBus) callbacks(t *testing.T, callID string) []protocol.Callback {
	t.Helper()
	var out []protocol.Callback
	for _, r := range b.all() {
		if r.Kind == webhook.KindCallback && r.Key == callID {
			cb, err := protocol.DecodeCallback(r.Body)
			if err != nil {
				t.Fatalf("callback %s: %v", r.Body, err)
			}
			out = append(out, *cb)
		}
	}
	return out
}

// states lists the callStateChange states (with reasons) of notifications.
func states(ns []protocol.Notification) string {
	var s []string
	for _, n := range ns {
		switch n.Type {
		case protocol.NotificationCallStateChange:
			if n.Reason != "" {
				s = append(s, string(n.State)+":"+n.Reason)
			} else {
				s = append(s, string(n.State))
			}
		case protocol.NotificationRosterUpdate:
			var ids []string
			for _, p := range n.Participants {
				ids = append(ids, p.ID)
			}
			s = append(s, "roster["+strings.Join(ids, ",")+"]")
		default:
			s = append(s, string(n.Type))
		}
	}
	return strings.Join(s, " ")
}

// fakeMedia offers a fixed SDP; Connect waits for a result on connect or for ctx.
type fakeMedia struct {
	connect chan error
	mu      sync.Mutex
	closed  map[string]int
	subs    []protocol.SubscribeRequest
	subErr  error
}

func newFakeMedia() *fakeMedia {
	return &fakeMedia{connect: make(chan error, 1), closed: map[string]int{}}
}

func (f *fakeMedia) Offer(ctx context.Context, c CallRef) (string, error) {
	return "v=0\r\ns=" + c.ID + "\r\n", nil
}

func (f *fakeMedia) Connect(ctx context.Context, c CallRef, sdp string) error {
	select {
	case err := <-f.connect:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeMedia) Subscribe(ctx context.Context, c CallRef, r protocol.SubscribeRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs = append(f.subs, r)
	return f.subErr
}

func (f *fakeMedia) Unsubscribe(ctx context.Context, c CallRef, socket int) error { return nil }

func (f *fakeMedia) Close(c CallRef) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed[c.ID]++
}

func (f *fakeMedia) closes(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed[id]
}

type env struct {
	m      *Manager
	bus    *fakeBus
	media  *fakeMedia
	events chan CallInfo
}

func newEnv(t *testing.T, media bool) *env {
	t.Helper()
	reg, err := bots.New([]config.Bot{
		{AppID: "echo", Secret: secret, WebhookURL: "http://127.0.0.1:9/echo", DisplayName: "Echo"},
		{AppID: "rec", Secret: secret, WebhookURL: "http://127.0.0.1:9/rec"},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{bus: &fakeBus{}, events: make(chan CallInfo, 100)}
	opts := Options{Bots: reg, Bus: e.bus, AnswerTimeout: 10 * time.Second, MediaTimeout: 5 * time.Second,
		Logger: slog.New(slog.DiscardHandler), OnCallState: func(c CallInfo) { e.events <- c }}
	if media {
		e.media = newFakeMedia()
		opts.Media = e.media
	}
	if e.m, err = New(opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.m.Close)
	return e
}

var alice = Participant{ID: "p-alice", Identity: "alice@example.com", DisplayName: "Alice",
	Streams: []protocol.Stream{{Kind: protocol.StreamAudio, Direction: protocol.DirectionSendRecv, SourceID: 11}}}

func workflow(t *testing.T, actions []protocol.Action, subs ...protocol.NotificationType) []byte {
	t.Helper()
	b, err := json.Marshal(protocol.Workflow{Actions: actions, NotificationSubscriptions: subs, CallbackURI: "http://127.0.0.1:9/instance-1"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var allSubs = []protocol.NotificationType{protocol.NotificationCallStateChange, protocol.NotificationRosterUpdate, protocol.NotificationDominantSpeakerChanged}

func answer(sdp string) []protocol.Action {
	a := protocol.Action{Action: protocol.ActionAnswer, OperationID: "op-answer"}
	if sdp != "" {
		a.MediaAnswer = &protocol.SessionDescription{SDP: sdp}
	}
	return []protocol.Action{a}
}

// respond completes the incoming call of callID with a 200 and body.
func (e *env) respond(t *testing.T, callID string, body []byte) {
	t.Helper()
	e.bus.incoming(t, callID).Done(webhook.Result{Status: 200, Body: body, Attempts: 1})
}

func TestSignallingOnlyCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, false)
		c, err := e.m.PlaceCall(t.Context(), "echo", alice, protocol.ModalityAudio, protocol.ModalityVideo)
		if err != nil {
			t.Fatal(err)
		}
		req := e.bus.incoming(t, c.ID)
		if req.URL != "http://127.0.0.1:9/echo/call" || req.Audience != "echo" {
			t.Fatalf("incoming call to %s for %s", req.URL, req.Audience)
		}
		in, err := protocol.DecodeIncomingCall(req.Body)
		if err != nil {
			t.Fatal(err)
		}
		if in.CallID != c.ID || in.Conference != nil || in.MediaOffer != nil || in.From.Identity != "alice@example.com" || len(in.Modalities) != 2 {
			t.Fatalf("incoming call %+v", in)
		}
		e.respond(t, c.ID, workflow(t, answer(""), allSubs...))
		if got := states(e.bus.notifications(t, c.ID)); got != "establishing established roster[p-alice,bot-"+c.ID+"]" {
			t.Fatalf("notifications: %s", got)
		}
		for _, r := range e.bus.all()[1:] {
			if !strings.HasPrefix(r.URL, "http://127.0.0.1:9/instance-1/") {
				t.Fatalf("request after the workflow went to %s, not the callbackUri", r.URL)
			}
		}
		if cbs := e.bus.callbacks(t, c.ID); len(cbs) != 1 || cbs[0].OperationID != "op-answer" || cbs[0].Outcome != protocol.OutcomeSuccess {
			t.Fatalf("callbacks %+v", cbs)
		}
		info, err := e.m.Call(c.ID)
		if err != nil || info.State != protocol.StateEstablished {
			t.Fatalf("%+v %v", info, err)
		}
		// The caller hangs up: one-to-one calls end with the caller.
		if err := e.m.RemoveParticipant(c.ConferenceID, alice.ID); err != nil {
			t.Fatal(err)
		}
		ns := e.bus.notifications(t, c.ID)
		if last := ns[len(ns)-1]; last.State != protocol.StateTerminated || last.Reason != ReasonParticipantLeft {
			t.Fatalf("last notification %+v", last)
		}
		if _, err := e.m.Call(c.ID); !errors.Is(err, ErrCallNotFound) {
			t.Fatal(err)
		}
		if _, err := e.m.Conference(c.ConferenceID); !errors.Is(err, ErrConferenceNotFound) {
			t.Fatal("one-to-one conference left behind")
		}
		e.m.Close()
		var seen []string
		for len(e.events) > 0 {
			ev := <-e.events
			seen = append(seen, string(ev.State))
		}
		if strings.Join(seen, " ") != "incoming establishing established terminated" {
			t.Fatalf("OnCallState saw %v", seen)
		}
	})
}

func TestNoAnswerThenLateAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		c, err := e.m.PlaceCall(t.Context(), "echo", alice)
		if err != nil {
			t.Fatal(err)
		}
		req := e.bus.incoming(t, c.ID)
		in, _ := protocol.DecodeIncomingCall(req.Body)
		if in.MediaOffer == nil || in.MediaOffer.SDP != "v=0\r\ns="+c.ID+"\r\n" {
			t.Fatalf("offer %+v", in.MediaOffer)
		}
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if info, _ := e.m.Call(c.ID); info.State != protocol.StateIncoming {
			t.Fatalf("state %s before the timeout", info.State)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if req.ctx.Err() == nil {
			t.Fatal("the incoming call's delivery was not cancelled")
		}
		if got := states(e.bus.notifications(t, c.ID)); got != "terminated:noAnswer" {
			t.Fatalf("notifications: %s", got)
		}
		if n := e.bus.all()[1]; n.URL != "http://127.0.0.1:9/echo/notification" {
			t.Fatalf("terminated notification to %s", n.URL)
		}
		if e.media.closes(c.ID) != 1 {
			t.Fatal("media not closed")
		}
		// The answer arrives late: nothing changes.
		before := len(e.bus.all())
		e.respond(t, c.ID, workflow(t, answer("v=0\r\n"), allSubs...))
		if len(e.bus.all()) != before {
			t.Fatal("late answer produced requests")
		}
	})
}

func TestMediaTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		c, _ := e.m.PlaceCall(t.Context(), "echo", alice)
		e.respond(t, c.ID, workflow(t, answer("v=0\r\n"), protocol.NotificationCallStateChange))
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if got := states(e.bus.notifications(t, c.ID)); got != "establishing terminated:mediaTimeout" {
			t.Fatalf("notifications: %s", got)
		}
		cbs := e.bus.callbacks(t, c.ID)
		if len(cbs) != 1 || cbs[0].Outcome != protocol.OutcomeFailure || cbs[0].FailureReason != ReasonMediaTimeout {
			t.Fatalf("callbacks %+v", cbs)
		}
		if e.media.closes(c.ID) != 1 {
			t.Fatal("media not closed")
		}
	})
}

func TestMediaConnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		c, _ := e.m.PlaceCall(t.Context(), "echo", alice)
		e.respond(t, c.ID, workflow(t, answer("v=0\r\n"), protocol.NotificationCallStateChange))
		synctest.Wait()
		if info, _ := e.m.Call(c.ID); info.State != protocol.StateEstablishing {
			t.Fatalf("state %s", info.State)
		}
		e.media.connect <- nil
		synctest.Wait()
		if got := states(e.bus.notifications(t, c.ID)); got != "establishing established" {
			t.Fatalf("notifications: %s", got)
		}
		// The media timer is gone: nothing happens later.
		time.Sleep(time.Minute)
		synctest.Wait()
		if info, _ := e.m.Call(c.ID); info.State != protocol.StateEstablished {
			t.Fatalf("state %s", info.State)
		}
		// Subscriptions go to the media server; the outcome comes back as a callback.
		if _, err := e.m.Subscribe("rec", c.ID, protocol.SubscribeRequest{SourceID: 12}); !errors.Is(err, ErrForbidden) {
			t.Fatal(err)
		}
		op, err := e.m.Subscribe("echo", c.ID, protocol.SubscribeRequest{SocketID: 0, SourceID: 12, Width: 640, Height: 360})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		cbs := e.bus.callbacks(t, c.ID)
		if last := cbs[len(cbs)-1]; last.OperationID != op || last.Type != protocol.OperationSubscribe || last.Outcome != protocol.OutcomeSuccess {
			t.Fatalf("callbacks %+v", cbs)
		}
		e.media.subErr = errors.New("no such source")
		op, _ = e.m.Subscribe("echo", c.ID, protocol.SubscribeRequest{SourceID: 99})
		synctest.Wait()
		cbs = e.bus.callbacks(t, c.ID)
		if last := cbs[len(cbs)-1]; last.OperationID != op || last.Outcome != protocol.OutcomeFailure {
			t.Fatalf("callbacks %+v", cbs)
		}
		if err := e.m.BotEndCall("echo", c.ID); err != nil {
			t.Fatal(err)
		}
		if got := states(e.bus.notifications(t, c.ID)); got != "establishing established terminated:endedByBot" {
			t.Fatalf("notifications: %s", got)
		}
		synctest.Wait()
		if e.media.closes(c.ID) != 1 {
			t.Fatal("media not closed once")
		}
	})
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		result func(t *testing.T) webhook.Result
		reason string
	}{
		{"bot unreachable", func(*testing.T) webhook.Result {
			return webhook.Result{Attempts: 5, Err: fmt.Errorf("dial: %w", webhook.ErrGaveUp)}
		}, ReasonBotUnreachable},
		{"bot 500", func(*testing.T) webhook.Result {
			return webhook.Result{Status: 500, Attempts: 5, Err: webhook.ErrGaveUp}
		}, ReasonBotUnreachable},
		{"bot 404", func(*testing.T) webhook.Result {
			return webhook.Result{Status: 404, Attempts: 1, Err: webhook.ErrRejected}
		}, ReasonBotUnreachable},
		{"malformed workflow", func(*testing.T) webhook.Result { return webhook.Result{Status: 200, Body: []byte(`{"actions":`)} }, ReasonBadWorkflow},
		{"invalid workflow", func(*testing.T) webhook.Result {
			return webhook.Result{Status: 200, Body: []byte(`{"actions":[{"action":"dance"}]}`)}
		}, ReasonBadWorkflow},
		{"reject", func(t *testing.T) webhook.Result {
			return webhook.Result{Status: 200, Body: workflow(t, []protocol.Action{{Action: protocol.ActionReject, Reason: "busy"}})}
		}, ReasonRejected},
		{"hangup", func(t *testing.T) webhook.Result {
			return webhook.Result{Status: 200, Body: workflow(t, []protocol.Action{{Action: protocol.ActionHangup}})}
		}, ReasonHangup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, true)
				c, _ := e.m.PlaceCall(t.Context(), "echo", alice)
				e.bus.incoming(t, c.ID).Done(tc.result(t))
				if got := states(e.bus.notifications(t, c.ID)); got != "terminated:"+tc.reason {
					t.Fatalf("notifications: %s", got)
				}
				synctest.Wait()
				if e.media.closes(c.ID) != 1 {
					t.Fatal("media not closed")
				}
				if _, err := e.m.Call(c.ID); !errors.Is(err, ErrCallNotFound) {
					t.Fatal("call still there")
				}
			})
		})
	}
}

func TestMediaConnectFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		c, _ := e.m.PlaceCall(t.Context(), "echo", alice)
		e.respond(t, c.ID, workflow(t, answer("v=0\r\n")))
		e.media.connect <- errors.New("DTLS failed")
		synctest.Wait()
		if got := states(e.bus.notifications(t, c.ID)); got != "terminated:mediaFailed" {
			t.Fatalf("notifications: %s", got)
		}
	})
}

func TestConferenceRoster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, false)
		conf, err := e.m.CreateConference("standup", "Daily standup")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.CreateConference("standup", ""); !errors.Is(err, ErrConferenceExists) {
			t.Fatal(err)
		}
		if err := e.m.AddParticipant(conf, alice); err != nil {
			t.Fatal(err)
		}
		if err := e.m.AddParticipant(conf, alice); !errors.Is(err, ErrConflict) {
			t.Fatal(err)
		}
		c, err := e.m.InviteBot(t.Context(), conf, "echo", protocol.Identity{Identity: "alice@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		in, _ := protocol.DecodeIncomingCall(e.bus.incoming(t, c.ID).Body)
		if in.Conference == nil || in.Conference.ID != "standup" || in.Conference.Name != "Daily standup" {
			t.Fatalf("conference %+v", in.Conference)
		}
		if _, err := e.m.InviteBot(t.Context(), conf, "echo", protocol.Identity{}); !errors.Is(err, ErrConflict) {
			t.Fatalf("second call of one bot: %v", err)
		}
		e.respond(t, c.ID, workflow(t, answer(""), protocol.NotificationRosterUpdate, protocol.NotificationDominantSpeakerChanged))
		bob := Participant{ID: "p-bob", Identity: "bob", Streams: []protocol.Stream{
			{Kind: protocol.StreamAudio, Direction: protocol.DirectionSendRecv, SourceID: 21},
			{Kind: protocol.StreamVideo, Direction: protocol.DirectionSendOnly, SourceID: 22}}}
		if err := e.m.AddParticipant(conf, bob); err != nil {
			t.Fatal(err)
		}
		if err := e.m.SetMuted(conf, "p-bob", true); err != nil {
			t.Fatal(err)
		}
		if err := e.m.SetMuted(conf, "p-bob", true); err != nil { // no change, no update
			t.Fatal(err)
		}
		if err := e.m.SetDominantSpeaker(conf, 11); err != nil {
			t.Fatal(err)
		}
		if err := e.m.RemoveParticipant(conf, "p-alice"); err != nil {
			t.Fatal(err)
		}
		bot := "bot-" + c.ID
		ns := e.bus.notifications(t, c.ID)
		want := "roster[p-alice," + bot + "] roster[p-alice,p-bob," + bot + "] roster[p-alice,p-bob," + bot + "] dominantSpeakerChanged roster[p-bob," + bot + "]"
		if got := states(ns); got != want {
			t.Fatalf("notifications:\n got %s\nwant %s", got, want)
		}
		muted := ns[2].Participants[1]
		if muted.Streams[0].Direction != protocol.DirectionRecvOnly || muted.Streams[1].Direction != protocol.DirectionSendOnly {
			t.Fatalf("muted bob: %+v", muted.Streams)
		}
		if b := ns[0].Participants[1]; !b.IsBot || b.Identity != "echo" || b.DisplayName != "Echo" {
			t.Fatalf("bot in roster: %+v", b)
		}
		if *ns[3].SourceID != 11 {
			t.Fatal("dominant speaker")
		}
		// Unknown ids change nothing.
		for _, err := range []error{
			e.m.RemoveParticipant(conf, "p-nobody"), e.m.SetMuted(conf, "p-nobody", true), e.m.AddParticipant("nope", bob),
			e.m.SetStreams(conf, "p-nobody", nil), e.m.EndCall("nope", ""),
		} {
			if !errors.Is(err, ErrParticipantNotFound) && !errors.Is(err, ErrConferenceNotFound) && !errors.Is(err, ErrCallNotFound) {
				t.Fatalf("unknown id: %v", err)
			}
		}
		if err := e.m.AddParticipant(conf, Participant{ID: "", Identity: "x"}); !errors.Is(err, ErrInvalid) {
			t.Fatal(err)
		}
		if len(e.bus.notifications(t, c.ID)) != len(ns) {
			t.Fatal("a refused request produced a notification")
		}
		// The bot's own streams, reported by the media server, reach the roster.
		if err := e.m.SetStreams(conf, bot, []protocol.Stream{{Kind: protocol.StreamAudio, Direction: protocol.DirectionSendRecv, SourceID: 99}}); err != nil {
			t.Fatal(err)
		}
		info, _ := e.m.Conference(conf)
		if len(info.Roster) != 2 || info.Roster[1].Streams[0].SourceID != 99 || len(info.Calls) != 1 {
			t.Fatalf("conference %+v", info)
		}
		if err := e.m.EndConference(conf, ""); err != nil {
			t.Fatal(err)
		}
		if got := states(e.bus.notifications(t, c.ID)); !strings.HasSuffix(got, "terminated:endedByService") {
			t.Fatalf("notifications: %s", got)
		}
	})
}

// TestRoomEndsWithItsLastHuman: a room (EnterRoom) lives while humans are in it; when the last
// one leaves, its bots' calls (established or still ringing) terminate with conferenceEnded,
// their media closes and the room is gone from Stats. A conference opened with
// CreateConference stays when its humans leave.
func TestRoomEndsWithItsLastHuman(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		bob := Participant{ID: "p-bob", Identity: "bob"}
		if err := e.m.EnterRoom("room-retro", "retro", alice); err != nil {
			t.Fatal(err)
		}
		if err := e.m.EnterRoom("room-retro", "retro", bob); err != nil {
			t.Fatal(err)
		}
		if err := e.m.EnterRoom("room-retro", "retro", bob); !errors.Is(err, ErrConflict) {
			t.Fatalf("bob twice: %v", err)
		}
		echo, err := e.m.InviteBot(t.Context(), "room-retro", "echo", protocol.Identity{Identity: "alice@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		e.respond(t, echo.ID, workflow(t, answer("v=0\r\n"), protocol.NotificationRosterUpdate))
		e.media.connect <- nil
		synctest.Wait()
		ringing, err := e.m.InviteBot(t.Context(), "room-retro", "rec", protocol.Identity{Identity: "alice@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.m.RemoveParticipant("room-retro", alice.ID); err != nil {
			t.Fatal(err)
		}
		if calls, confs := e.m.Stats(); calls != 2 || confs != 1 {
			t.Fatalf("with bob still there: %d calls, %d conferences", calls, confs)
		}
		if err := e.m.RemoveParticipant("room-retro", bob.ID); err != nil {
			t.Fatal(err)
		}
		if calls, confs := e.m.Stats(); calls != 0 || confs != 0 {
			t.Fatalf("after the last human left: %d calls, %d conferences", calls, confs)
		}
		if _, err := e.m.Conference("room-retro"); !errors.Is(err, ErrConferenceNotFound) {
			t.Fatalf("room after the last human left: %v", err)
		}
		bot := "bot-" + echo.ID
		want := "roster[p-alice,p-bob," + bot + "] roster[p-bob," + bot + "] terminated:" + ReasonConferenceEnded
		if got := states(e.bus.notifications(t, echo.ID)); got != want {
			t.Fatalf("established bot's notifications:\n got %s\nwant %s", got, want)
		}
		if got := states(e.bus.notifications(t, ringing.ID)); got != "terminated:"+ReasonConferenceEnded {
			t.Fatalf("ringing bot's notifications: %s", got)
		}
		synctest.Wait()
		if e.media.closes(echo.ID) != 1 || e.media.closes(ringing.ID) != 1 {
			t.Fatal("bot media not closed once")
		}
		// The name opens a new room; a refused entry leaves none behind.
		if err := e.m.EnterRoom("room-retro", "retro", bob); err != nil {
			t.Fatal(err)
		}
		if err := e.m.EnterRoom("room-x", "x", Participant{Identity: "no id"}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("invalid participant: %v", err)
		}
		if _, confs := e.m.Stats(); confs != 1 {
			t.Fatalf("%d conferences, want the new room only", confs)
		}
		// A conference opened with CreateConference outlives its humans.
		conf, _ := e.m.CreateConference("standing", "")
		if err := e.m.AddParticipant(conf, alice); err != nil {
			t.Fatal(err)
		}
		if err := e.m.RemoveParticipant(conf, alice.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.Conference(conf); err != nil {
			t.Fatalf("created conference after its human left: %v", err)
		}
	})
}

func TestJoinAndInviteByBot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, false)
		conf, _ := e.m.CreateConference("", "Room")
		if _, _, err := e.m.Join(t.Context(), "echo", "missing", ""); !errors.Is(err, ErrConferenceNotFound) {
			t.Fatal(err)
		}
		if _, _, err := e.m.Join(t.Context(), "nobody", conf, ""); !errors.Is(err, ErrUnknownBot) {
			t.Fatal(err)
		}
		callID, op, err := e.m.Join(t.Context(), "echo", conf, "http://127.0.0.1:9/instance-7/")
		if err != nil {
			t.Fatal(err)
		}
		req := e.bus.incoming(t, callID)
		in, _ := protocol.DecodeIncomingCall(req.Body)
		if req.URL != "http://127.0.0.1:9/instance-7/call" || in.OperationID != op {
			t.Fatalf("join's incoming call to %s with op %q", req.URL, in.OperationID)
		}
		// Not established yet: cannot invite.
		if _, err := e.m.Invite(t.Context(), "echo", conf, "rec"); !errors.Is(err, ErrForbidden) {
			t.Fatal(err)
		}
		e.respond(t, callID, workflow(t, answer("")))
		cbs := e.bus.callbacks(t, callID)
		if len(cbs) != 2 || cbs[1].Type != protocol.OperationJoin || cbs[1].OperationID != op || cbs[1].Outcome != protocol.OutcomeSuccess {
			t.Fatalf("callbacks %+v", cbs)
		}
		inviteOp, err := e.m.Invite(t.Context(), "echo", conf, "rec")
		if err != nil {
			t.Fatal(err)
		}
		info, _ := e.m.Conference(conf)
		recCall := info.Calls[1]
		in, _ = protocol.DecodeIncomingCall(e.bus.incoming(t, recCall).Body)
		if in.From.Identity != "echo" {
			t.Fatalf("invitation from %+v", in.From)
		}
		e.respond(t, recCall, workflow(t, []protocol.Action{{Action: protocol.ActionReject}}))
		cbs = e.bus.callbacks(t, callID)
		if last := cbs[len(cbs)-1]; last.Type != protocol.OperationInvite || last.OperationID != inviteOp || last.Outcome != protocol.OutcomeFailure || last.FailureReason != ReasonRejected {
			t.Fatalf("invite callback %+v", last)
		}
		// A failed join: the bot never answers; the join callback reports it.
		e.m.BotEndCall("echo", callID)
		callID, op, _ = e.m.Join(t.Context(), "echo", conf, "")
		time.Sleep(11 * time.Second)
		synctest.Wait()
		cbs = e.bus.callbacks(t, callID)
		if len(cbs) != 1 || cbs[0].OperationID != op || cbs[0].Outcome != protocol.OutcomeFailure || cbs[0].FailureReason != ReasonNoAnswer {
			t.Fatalf("callbacks %+v", cbs)
		}
	})
}

func TestBotRequestsCheckOwnerAndState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, false)
		c, _ := e.m.PlaceCall(t.Context(), "echo", alice)
		if _, err := e.m.Subscribe("echo", c.ID, protocol.SubscribeRequest{SourceID: 1}); !errors.Is(err, ErrConflict) {
			t.Fatalf("subscribe before answer: %v", err)
		}
		if err := e.m.BotEndCall("rec", c.ID); !errors.Is(err, ErrForbidden) {
			t.Fatal(err)
		}
		if err := e.m.BotEndCall("echo", "nope"); !errors.Is(err, ErrCallNotFound) {
			t.Fatal(err)
		}
		if info, _ := e.m.Call(c.ID); info.State != protocol.StateIncoming {
			t.Fatal("refused requests changed the call")
		}
		if len(e.bus.all()) != 1 {
			t.Fatal("refused requests sent something")
		}
		e.respond(t, c.ID, workflow(t, answer("")))
		op, err := e.m.Unsubscribe("echo", c.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		cbs := e.bus.callbacks(t, c.ID)
		if last := cbs[len(cbs)-1]; last.OperationID != op || last.FailureReason != "noMedia" {
			t.Fatalf("%+v", last)
		}
	})
}

func TestShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		a, _ := e.m.PlaceCall(t.Context(), "echo", alice)
		b, _ := e.m.PlaceCall(t.Context(), "rec", alice)
		e.respond(t, a.ID, workflow(t, answer("v=0\r\n")))
		if err := e.m.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{a.ID, b.ID} {
			if got := states(e.bus.notifications(t, id)); got != "terminated:serviceShutdown" {
				t.Fatalf("%s: %s", id, got)
			}
			if e.media.closes(id) != 1 {
				t.Fatal("media not closed")
			}
		}
		if _, err := e.m.PlaceCall(t.Context(), "echo", alice); !errors.Is(err, ErrClosed) {
			t.Fatal(err)
		}
		e.m.Close()
		e.m.Close()
	})
}

func TestPlaceCallRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		if _, err := e.m.PlaceCall(t.Context(), "nobody", alice); !errors.Is(err, ErrUnknownBot) {
			t.Fatal(err)
		}
		if _, err := e.m.PlaceCall(t.Context(), "echo", Participant{ID: "x"}); !errors.Is(err, ErrInvalid) {
			t.Fatal(err)
		}
		if _, err := e.m.PlaceCall(t.Context(), "echo", alice, "smell"); !errors.Is(err, ErrInvalid) {
			t.Fatal(err)
		}
		e.bus.err = webhook.ErrQueueFull
		if _, err := e.m.PlaceCall(t.Context(), "echo", alice); !errors.Is(err, webhook.ErrQueueFull) {
			t.Fatal(err)
		}
		synctest.Wait()
		e.media.mu.Lock()
		n := len(e.media.closed)
		e.media.mu.Unlock()
		if n != 1 {
			t.Fatalf("media of a refused call not closed: %d", n)
		}
	})
}
