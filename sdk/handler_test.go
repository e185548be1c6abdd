package sdk

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/protocol"
)

const (
	testApp    = "echo-bot"
	testSecret = "0123456789abcdef0123456789abcdef-secret"
	testOffer  = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	liveness   = 10 * time.Second // generous bound for things that must happen, never a timing assertion
)

// fakeService plays the service: JWKS, signing, and the REST API a bot calls.
type fakeService struct {
	t      *testing.T
	key    *auth.Key
	signer *auth.Signer
	botVer *auth.BotVerifier
	srv    *httptest.Server

	mu       sync.Mutex
	requests []string // "METHOD path" of authenticated REST requests
	nextOp   int
}

func newFakeService(t *testing.T) *fakeService {
	t.Helper()
	s := &fakeService{t: t}
	mux := http.NewServeMux()
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	var err error
	if s.key, err = auth.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	if s.signer, err = auth.NewSigner(auth.SignerConfig{Issuer: s.srv.URL, Key: s.key}); err != nil {
		t.Fatal(err)
	}
	if s.botVer, err = auth.NewBotVerifier(auth.BotVerifierConfig{Audience: s.srv.URL}); err != nil {
		t.Fatal(err)
	}
	mux.Handle(protocol.RouteJWKS, s.signer)
	op := func(w http.ResponseWriter, r *http.Request) {
		if !s.authenticate(w, r) {
			return
		}
		protocol.WriteJSON(w, http.StatusAccepted, protocol.OperationResponse{OperationID: s.opID()})
	}
	mux.HandleFunc(protocol.RouteSubscribe, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := protocol.DecodeSubscribeRequest(body); err != nil {
			protocol.WriteError(w, protocol.CodeBadRequest, err.Error())
			return
		}
		op(w, r)
	})
	mux.HandleFunc(protocol.RouteUnsubscribe, op)
	mux.HandleFunc(protocol.RouteInvite, op)
	mux.HandleFunc(protocol.RouteEndCall, func(w http.ResponseWriter, r *http.Request) {
		if s.authenticate(w, r) {
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc(protocol.RouteJoin, func(w http.ResponseWriter, r *http.Request) {
		if s.authenticate(w, r) {
			protocol.WriteJSON(w, http.StatusAccepted, protocol.JoinResponse{CallID: "c-joined", OperationID: s.opID()})
		}
	})
	return s
}

func (s *fakeService) authenticate(w http.ResponseWriter, r *http.Request) bool {
	_, err := s.botVer.VerifyBotToken(auth.BearerToken(r.Header), func(appID string) ([]byte, bool) {
		return []byte(testSecret), appID == testApp
	})
	if err != nil {
		s.t.Errorf("service refused the bot's token: %v", err)
		protocol.WriteError(w, protocol.CodeUnauthorized, err.Error())
		return false
	}
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	s.mu.Unlock()
	return true
}

func (s *fakeService) opID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextOp++
	return fmt.Sprintf("op-%d", s.nextOp)
}

func (s *fakeService) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *fakeService) token() string {
	tok, err := s.signer.Sign(testApp, time.Minute)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// env is a bot handler on 127.0.0.1 talking to a fake service.
type env struct {
	t      *testing.T
	svc    *fakeService
	h      *Handler
	srv    *httptest.Server
	client *http.Client
	keys   atomic.Int64
}

func newEnv(t *testing.T, newCall func(*Call) CallEvents, tweak ...func(*HandlerConfig)) *env {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last
	e := &env{t: t, svc: newFakeService(t)}
	var h atomic.Pointer[Handler]
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.Load().ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)
	e.client = &http.Client{Transport: &http.Transport{}, Timeout: liveness}
	t.Cleanup(e.client.CloseIdleConnections)
	cfg := HandlerConfig{
		AppID:      testApp,
		AppSecret:  testSecret,
		ServiceURL: e.svc.srv.URL,
		PublicURL:  e.srv.URL + "/api/calling",
		NewCall:    newCall,
		Logger:     slog.New(slog.DiscardHandler),
		HTTPClient: &http.Client{Transport: &http.Transport{}, Timeout: liveness},
	}
	for _, f := range tweak {
		f(&cfg)
	}
	hnd, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.Store(hnd)
	e.h = hnd
	t.Cleanup(func() {
		_ = hnd.Close()
		cfg.HTTPClient.CloseIdleConnections()
	})
	return e
}

func (e *env) key() string { return fmt.Sprintf("key-%d", e.keys.Add(1)) }

// post sends body to the bot's path with a fresh token and key, unless given.
func (e *env) post(path string, body any, hdr map[string]string) (int, []byte) {
	e.t.Helper()
	var data []byte
	switch b := body.(type) {
	case []byte:
		data = b
	case string:
		data = []byte(b)
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/calling"+path, bytes.NewReader(data))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.svc.token())
	req.Header.Set(protocol.HeaderIdempotencyKey, e.key())
	req.Header.Set("Content-Type", protocol.ContentTypeJSON)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func incoming(callID string, media bool) *protocol.IncomingCall {
	in := &protocol.IncomingCall{
		CallID: callID, CorrelationID: "corr-" + callID,
		From: protocol.Identity{Identity: "alice", DisplayName: "Alice"}, To: protocol.Target{AppID: testApp},
		Modalities: []protocol.Modality{protocol.ModalityAudio},
	}
	if media {
		in.MediaOffer = &protocol.SessionDescription{SDP: testOffer}
	}
	return in
}

func stateNote(callID string, seq uint64, state protocol.CallState) *protocol.Notification {
	return &protocol.Notification{CallID: callID, Sequence: seq, Type: protocol.NotificationCallStateChange, State: state}
}

func speakerNote(callID string, seq uint64, id uint32) *protocol.Notification {
	return &protocol.Notification{CallID: callID, Sequence: seq, Type: protocol.NotificationDominantSpeakerChanged, SourceID: &id}
}

// recorder is a test bot: it records every event of its calls.
type recorder struct {
	mu       sync.Mutex
	events   []string
	cleanups map[string]int
	reasons  map[string]error
	cleaned  chan string
	decide   func(ctx context.Context, c *Call, in *IncomingCall) Workflow
	calls    map[string]*Call
}

func newRecorder() *recorder {
	return &recorder{cleanups: map[string]int{}, reasons: map[string]error{}, cleaned: make(chan string, 64), calls: map[string]*Call{}}
}

func (r *recorder) add(ev string) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) newCall(c *Call) CallEvents {
	r.mu.Lock()
	r.calls[c.ID()] = c
	r.mu.Unlock()
	return CallEvents{
		OnIncomingCall: func(ctx context.Context, in *IncomingCall) Workflow {
			r.add("incoming:" + in.CallID)
			if r.decide != nil {
				return r.decide(ctx, c, in)
			}
			return Answer(nil)
		},
		OnCallStateChanged:       func(s CallState, reason string) { r.add("state:" + string(s)) },
		OnRosterUpdated:          func(ps []Participant) { r.add(fmt.Sprintf("roster:%d", len(ps))) },
		OnDominantSpeakerChanged: func(id uint32) { r.add(fmt.Sprintf("speaker:%d", id)) },
		OnOperationCompleted: func(res OperationResult) {
			r.add(fmt.Sprintf("op:%s:%s:%v", res.Type, res.ID, res.Err == nil))
		},
		OnCleanup: func(reason error) {
			r.mu.Lock()
			r.cleanups[c.ID()]++
			r.reasons[c.ID()] = reason
			r.mu.Unlock()
			r.cleaned <- c.ID()
		},
	}
}

func (r *recorder) call(id string) *Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id]
}

// waitCleanup waits for callID's cleanup and checks it happened once, for want.
func (r *recorder) waitCleanup(t *testing.T, callID string, want error) {
	t.Helper()
	select {
	case id := <-r.cleaned:
		if id != callID {
			t.Fatalf("cleanup of %s, want %s", id, callID)
		}
	case <-time.After(liveness):
		t.Fatalf("no cleanup of %s", callID)
	}
	r.mu.Lock()
	n, reason := r.cleanups[callID], r.reasons[callID]
	r.mu.Unlock()
	if n != 1 || !errors.Is(reason, want) {
		t.Fatalf("call %s: %d cleanups, reason %v; want 1, %v", callID, n, reason, want)
	}
	if c := r.call(callID); c != nil {
		select {
		case <-c.Done():
		case <-time.After(liveness):
			t.Fatalf("call %s goroutine did not end", callID)
		}
	}
}

func decodeWorkflow(t *testing.T, body []byte) *protocol.Workflow {
	t.Helper()
	wf, err := protocol.DecodeWorkflow(body)
	if err != nil {
		t.Fatalf("workflow %s: %v", body, err)
	}
	return wf
}

func TestAnswerAndEventsInOrder(t *testing.T) {
	r := newRecorder()
	e := newEnv(t, r.newCall)
	status, body := e.post("/call", incoming("c-1", false), nil)
	if status != http.StatusOK {
		t.Fatalf("incoming call: %d %s", status, body)
	}
	wf := decodeWorkflow(t, body)
	if wf.CallbackURI != e.srv.URL+"/api/calling" || wf.Actions[0].Action != protocol.ActionAnswer || wf.Actions[0].MediaAnswer != nil {
		t.Fatalf("workflow %+v", wf)
	}
	if !slices.Equal(wf.NotificationSubscriptions, []protocol.NotificationType{"callStateChange", "rosterUpdate", "dominantSpeakerChanged"}) {
		t.Fatalf("subscriptions %v", wf.NotificationSubscriptions)
	}
	roster := &protocol.Notification{CallID: "c-1", Sequence: 2, Type: protocol.NotificationRosterUpdate,
		Participants: []protocol.Participant{{ID: "p-1", Identity: "alice", Streams: []protocol.Stream{{Kind: "audio", Direction: "sendrecv", SourceID: 11}}}}}
	for _, n := range []any{stateNote("c-1", 1, protocol.StateEstablished), roster, speakerNote("c-1", 3, 11)} {
		if status, body := e.post("/notification", n, nil); status != http.StatusNoContent {
			t.Fatalf("notification: %d %s", status, body)
		}
	}
	cb := protocol.Callback{CallID: "c-1", OperationID: wf.Actions[0].OperationID, Type: protocol.OperationAnswer, Outcome: protocol.OutcomeSuccess}
	if status, body := e.post("/callback", cb, nil); status != http.StatusNoContent {
		t.Fatalf("callback: %d %s", status, body)
	}
	if status, _ := e.post("/notification", stateNote("c-1", 4, protocol.StateTerminated), nil); status != http.StatusNoContent {
		t.Fatalf("terminated: %d", status)
	}
	r.waitCleanup(t, "c-1", ErrCallTerminated)
	want := []string{"incoming:c-1", "state:established", "roster:1", "speaker:11", "op:answer:" + cb.OperationID + ":true", "state:terminated"}
	if got := r.log(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	// The call is gone: later requests for it are 404.
	if status, _ := e.post("/notification", stateNote("c-1", 5, protocol.StateTerminated), nil); status != http.StatusNotFound {
		t.Fatalf("notification after cleanup: %d", status)
	}
}

func TestHostileRequestsRefused(t *testing.T) {
	r := newRecorder()
	e := newEnv(t, r.newCall)
	other, _ := auth.NewSigner(auth.SignerConfig{Issuer: e.svc.srv.URL}) // right issuer, key not published
	// The published key, an hour ago: its tokens have expired.
	expiredKeySigner, _ := auth.NewSigner(auth.SignerConfig{Issuer: e.svc.srv.URL, Key: e.svc.key, Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	must := func(tok string, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	replayed := e.svc.token()
	if status, _ := e.post("/call", incoming("c-ok", false), map[string]string{"Authorization": "Bearer " + replayed}); status != 200 {
		t.Fatalf("first use of a token: %d", status)
	}
	good := incoming("c-2", false)
	header := b64json(map[string]any{"alg": "none", "typ": "JWT"})
	now := time.Now().Unix()
	claims := b64json(map[string]any{"iss": e.svc.srv.URL, "aud": testApp, "iat": now, "exp": now + 60, "jti": "j1"})
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": e.svc.srv.URL, "aud": testApp, "iat": now, "exp": now + 60, "jti": "j2"})
	hs.Header["kid"] = e.svc.signer.ActiveKeyID()
	hsTok := must(hs.SignedString([]byte(testSecret)))

	cases := []struct {
		name   string
		path   string
		body   any
		hdr    map[string]string
		status int
	}{
		{"no token", "/call", good, map[string]string{"Authorization": ""}, 401},
		{"garbage token", "/call", good, map[string]string{"Authorization": "Bearer garbage"}, 401},
		{"unsigned (alg none)", "/call", good, map[string]string{"Authorization": "Bearer " + header + "." + claims + "."}, 401},
		{"HS256 with the app secret (alg confusion)", "/call", good, map[string]string{"Authorization": "Bearer " + hsTok}, 401},
		{"signed by an unpublished key", "/call", good, map[string]string{"Authorization": "Bearer " + must(other.Sign(testApp, time.Minute))}, 401},
		{"expired", "/call", good, map[string]string{"Authorization": "Bearer " + must(expiredKeySigner.Sign(testApp, time.Minute))}, 401},
		{"wrong audience", "/call", good, map[string]string{"Authorization": "Bearer " + must(e.svc.signer.Sign("other-bot", time.Minute))}, 403},
		{"replayed token", "/call", good, map[string]string{"Authorization": "Bearer " + replayed}, 403},
		{"malformed JSON", "/call", `{"callId":`, nil, 400},
		{"unknown field", "/call", `{"callId":"c-2","bogus":1}`, nil, 400},
		{"missing required field", "/call", `{"callId":"c-2"}`, nil, 400},
		{"wrong app", "/call", func() any { in := incoming("c-2", false); in.To.AppID = "other"; return in }(), nil, 400},
		{"missing Idempotency-Key", "/call", good, map[string]string{protocol.HeaderIdempotencyKey: ""}, 400},
		{"oversized body", "/call", `{"callId":"` + strings.Repeat("x", protocol.MaxBodyBytes) + `"}`, nil, 413},
		{"unknown call (callback)", "/callback", protocol.Callback{CallID: "nope", OperationID: "o", Type: "subscribe", Outcome: "success"}, nil, 404},
		{"unknown call (notification)", "/notification", stateNote("nope", 1, protocol.StateEstablished), nil, 404},
		{"unknown endpoint", "/elsewhere", good, nil, 404},
		{"duplicate call id", "/call", incoming("c-ok", false), nil, 409},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.post(tc.path, tc.body, tc.hdr)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if _, err := protocol.DecodeErrorBody(body); err != nil {
				t.Fatalf("error body %s: %v", body, err)
			}
		})
	}
	t.Run("wrong method", func(t *testing.T) {
		resp, err := e.client.Get(e.srv.URL + "/api/calling/call")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
			t.Fatalf("GET: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
	// No change: only the one good call reached the bot.
	if got := r.log(); !slices.Equal(got, []string{"incoming:c-ok"}) {
		t.Fatalf("bot saw %q", got)
	}
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestRetriedDeliveriesAreIdempotent(t *testing.T) {
	r := newRecorder()
	release := make(chan struct{})
	r.decide = func(ctx context.Context, c *Call, in *IncomingCall) Workflow {
		<-release // the retry arrives while the first attempt is being answered
		return Answer(nil)
	}
	e := newEnv(t, r.newCall)
	key := map[string]string{protocol.HeaderIdempotencyKey: "delivery-1"}
	var wg sync.WaitGroup
	bodies := make([][]byte, 2)
	for i := range bodies {
		wg.Go(func() {
			status, body := e.post("/call", incoming("c-1", false), key) // each with a fresh token
			if status != 200 {
				t.Errorf("attempt %d: %d %s", i, status, body)
			}
			bodies[i] = body
		})
	}
	time.Sleep(50 * time.Millisecond) // let both attempts arrive (correctness does not depend on it)
	close(release)
	wg.Wait()
	if !bytes.Equal(bodies[0], bodies[1]) {
		t.Fatalf("retry answered differently:\n%s\n%s", bodies[0], bodies[1])
	}
	// A retried notification is delivered once, and so is a repeated sequence with a new key.
	nkey := map[string]string{protocol.HeaderIdempotencyKey: "delivery-2"}
	for range 2 {
		if status, _ := e.post("/notification", speakerNote("c-1", 1, 5), nkey); status != 204 {
			t.Fatalf("notification: %d", status)
		}
	}
	e.post("/notification", speakerNote("c-1", 1, 5), nil)
	e.post("/notification", stateNote("c-1", 2, protocol.StateTerminated), nil)
	r.waitCleanup(t, "c-1", ErrCallTerminated)
	if got := r.log(); !slices.Equal(got, []string{"incoming:c-1", "speaker:5", "state:terminated"}) {
		t.Fatalf("events %q", got)
	}
}

func TestEventsInOrderUnderConcurrentDeliveries(t *testing.T) {
	r := newRecorder()
	e := newEnv(t, r.newCall)
	if status, _ := e.post("/call", incoming("c-1", false), nil); status != 200 {
		t.Fatal(status)
	}
	const n = 40
	var wg sync.WaitGroup
	for i := n; i >= 1; i-- { // started in reverse to make arrival order differ from sequence order
		wg.Go(func() {
			if status, body := e.post("/notification", speakerNote("c-1", uint64(i), uint32(i)), nil); status != 204 {
				t.Errorf("notification %d: %d %s", i, status, body)
			}
		})
	}
	wg.Wait()
	e.post("/notification", stateNote("c-1", n+1, protocol.StateTerminated), nil)
	r.waitCleanup(t, "c-1", ErrCallTerminated)
	want := []string{"incoming:c-1"}
	for i := 1; i <= n; i++ {
		want = append(want, fmt.Sprintf("speaker:%d", i))
	}
	want = append(want, "state:terminated")
	if got := r.log(); !slices.Equal(got, want) {
		t.Fatalf("events %q", got)
	}
}

func TestNotificationGapIsSkipped(t *testing.T) {
	r := newRecorder()
	e := newEnv(t, r.newCall)
	e.h.gapTimeout = 20 * time.Millisecond
	e.post("/call", incoming("c-1", false), nil)
	e.post("/notification", speakerNote("c-1", 1, 1), nil)
	e.post("/notification", speakerNote("c-1", 3, 3), nil) // 2 never arrives
	e.post("/notification", stateNote("c-1", 4, protocol.StateTerminated), nil)
	r.waitCleanup(t, "c-1", ErrCallTerminated)
	if got := r.log(); !slices.Equal(got, []string{"incoming:c-1", "speaker:1", "speaker:3", "state:terminated"}) {
		t.Fatalf("events %q", got)
	}
}

// fakeMedia counts what the handler does with a call's media.
type fakeMedia struct {
	answerErr error
	closes    atomic.Int32
	speakers  atomic.Int32
	failure   atomic.Pointer[func(error)]
}

func (f *fakeMedia) answer(callID, offerSDP string) (string, error) {
	if f.answerErr != nil {
		return "", f.answerErr
	}
	return testOffer, nil
}
func (f *fakeMedia) dominantSpeakerChanged(uint32) { f.speakers.Add(1) }
func (f *fakeMedia) close()                        { f.closes.Add(1) }
func (f *fakeMedia) onFailure(fn func(error))      { f.failure.Store(&fn) }

func TestCleanupExactlyOnce(t *testing.T) {
	type trigger func(t *testing.T, e *env, r *recorder, m *fakeMedia, wf *protocol.Workflow)
	post := func(v any, path string) trigger {
		return func(t *testing.T, e *env, r *recorder, m *fakeMedia, wf *protocol.Workflow) {
			if status, body := e.post(path, v, nil); status != 204 {
				t.Fatalf("%s: %d %s", path, status, body)
			}
		}
	}
	cases := []struct {
		name    string
		media   *fakeMedia
		tweak   func(*HandlerConfig)
		trigger trigger
		want    error
		hangup  bool // the handler tells the service
	}{
		{name: "terminated by the service", trigger: post(stateNote("c-1", 1, protocol.StateTerminated), "/notification"), want: ErrCallTerminated},
		{name: "answer failed", trigger: func(t *testing.T, e *env, r *recorder, m *fakeMedia, wf *protocol.Workflow) {
			post(protocol.Callback{CallID: "c-1", OperationID: wf.Actions[0].OperationID, Type: "answer", Outcome: "failure", FailureReason: "ICE failed"}, "/callback")(t, e, r, m, wf)
		}, want: ErrAnswerFailed},
		{name: "not established in time", tweak: func(c *HandlerConfig) { c.EstablishTimeout = 10 * time.Millisecond }, want: ErrEstablishTimeout, hangup: true},
		{name: "ended by the bot", trigger: func(t *testing.T, e *env, r *recorder, m *fakeMedia, wf *protocol.Workflow) {
			if err := r.call("c-1").EndCall(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, want: ErrCallEnded, hangup: true},
		{name: "media failed", trigger: func(t *testing.T, e *env, r *recorder, m *fakeMedia, wf *protocol.Workflow) {
			(*m.failure.Load())(errors.New("DTLS closed"))
		}, want: ErrMediaFailed, hangup: true},
		{name: "handler closed", trigger: func(t *testing.T, e *env, r *recorder, m *fakeMedia, wf *protocol.Workflow) {
			_ = e.h.Close()
		}, want: ErrHandlerClosed, hangup: true},
		{name: "everything at once", trigger: func(t *testing.T, e *env, r *recorder, m *fakeMedia, wf *protocol.Workflow) {
			var wg sync.WaitGroup
			wg.Go(func() { e.post("/notification", stateNote("c-1", 1, protocol.StateTerminated), nil) })
			wg.Go(func() { _ = r.call("c-1").EndCall(context.Background()) })
			wg.Go(func() { (*m.failure.Load())(errors.New("gone")) })
			wg.Go(func() { _ = e.h.Close() })
			wg.Wait()
		}, want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecorder()
			m := &fakeMedia{}
			r.decide = func(ctx context.Context, c *Call, in *IncomingCall) Workflow {
				return Workflow{action: protocol.ActionAnswer, media: m}
			}
			tweaks := []func(*HandlerConfig){}
			if tc.tweak != nil {
				tweaks = append(tweaks, tc.tweak)
			}
			e := newEnv(t, r.newCall, tweaks...)
			status, body := e.post("/call", incoming("c-1", true), nil)
			if status != 200 {
				t.Fatalf("call: %d %s", status, body)
			}
			wf := decodeWorkflow(t, body)
			if wf.Actions[0].MediaAnswer == nil || wf.Actions[0].MediaAnswer.SDP != testOffer {
				t.Fatalf("no media answer in %s", body)
			}
			if tc.trigger != nil {
				tc.trigger(t, e, r, m, wf)
			}
			select {
			case <-r.cleaned:
			case <-time.After(liveness):
				t.Fatal("no cleanup")
			}
			<-r.call("c-1").Done()
			_ = e.h.Close()
			r.mu.Lock()
			n, reason := r.cleanups["c-1"], r.reasons["c-1"]
			r.mu.Unlock()
			if n != 1 || m.closes.Load() != 1 {
				t.Fatalf("%d cleanups, %d media closes; want 1 and 1", n, m.closes.Load())
			}
			if tc.want != nil && !errors.Is(reason, tc.want) {
				t.Fatalf("reason %v, want %v", reason, tc.want)
			}
			hungUp := slices.Contains(e.svc.seen(), "DELETE /v1/calls/c-1")
			if tc.want != nil && hungUp != tc.hangup {
				t.Fatalf("hung up at the service: %v, want %v (%q)", hungUp, tc.hangup, e.svc.seen())
			}
		})
	}
}

// TestMediaClosedBeforeCleanup: by the time OnCleanup runs, the handler has closed the call's
// media (exactly once) and cancelled the call's context, so no socket callback can race it.
func TestMediaClosedBeforeCleanup(t *testing.T) {
	r := newRecorder()
	m := &fakeMedia{}
	r.decide = func(ctx context.Context, c *Call, in *IncomingCall) Workflow {
		return Workflow{action: protocol.ActionAnswer, media: m}
	}
	var closesAtCleanup atomic.Int32
	var ctxDone atomic.Bool
	e := newEnv(t, func(c *Call) CallEvents {
		ev := r.newCall(c)
		inner := ev.OnCleanup
		ev.OnCleanup = func(reason error) {
			closesAtCleanup.Store(m.closes.Load())
			ctxDone.Store(c.Context().Err() != nil)
			inner(reason)
		}
		return ev
	})
	if status, body := e.post("/call", incoming("c-1", true), nil); status != http.StatusOK {
		t.Fatalf("call: %d %s", status, body)
	}
	if status, _ := e.post("/notification", stateNote("c-1", 1, protocol.StateTerminated), nil); status != http.StatusNoContent {
		t.Fatalf("terminated: %d", status)
	}
	r.waitCleanup(t, "c-1", ErrCallTerminated)
	if n := closesAtCleanup.Load(); n != 1 {
		t.Errorf("media closed %d times when OnCleanup ran, want 1 (closed before it)", n)
	}
	if !ctxDone.Load() {
		t.Error("the call's context was not done when OnCleanup ran")
	}
	if n := m.closes.Load(); n != 1 {
		t.Errorf("media closed %d times in all, want 1", n)
	}
}

func TestAnswerFailuresReject(t *testing.T) {
	cases := []struct {
		name   string
		media  bool // the call offers media
		decide func(m *fakeMedia) func(ctx context.Context, c *Call, in *IncomingCall) Workflow
		tweak  func(*HandlerConfig)
		want   error
		closes int32
	}{
		{"media answer fails", true, func(m *fakeMedia) func(context.Context, *Call, *IncomingCall) Workflow {
			m.answerErr = errors.New("no codecs in common")
			return func(context.Context, *Call, *IncomingCall) Workflow {
				return Workflow{action: protocol.ActionAnswer, media: m}
			}
		}, nil, ErrAnswerFailed, 1},
		{"media without an offer", false, func(m *fakeMedia) func(context.Context, *Call, *IncomingCall) Workflow {
			return func(context.Context, *Call, *IncomingCall) Workflow {
				return Workflow{action: protocol.ActionAnswer, media: m}
			}
		}, nil, ErrAnswerFailed, 1},
		{"bot rejects", true, func(m *fakeMedia) func(context.Context, *Call, *IncomingCall) Workflow {
			return func(context.Context, *Call, *IncomingCall) Workflow { return Reject("busy") }
		}, nil, ErrCallRejected, 0},
		{"bot panics", true, func(m *fakeMedia) func(context.Context, *Call, *IncomingCall) Workflow {
			return func(context.Context, *Call, *IncomingCall) Workflow { panic("boom") }
		}, nil, ErrBotPanic, 0},
		{"bot too slow", true, func(m *fakeMedia) func(context.Context, *Call, *IncomingCall) Workflow {
			return func(ctx context.Context, _ *Call, _ *IncomingCall) Workflow {
				<-ctx.Done() // honours the deadline, then answers anyway: too late
				return Workflow{action: protocol.ActionAnswer, media: m}
			}
		}, func(c *HandlerConfig) { c.AnswerTimeout = 20 * time.Millisecond }, ErrAnswerTimeout, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecorder()
			m := &fakeMedia{}
			decide := tc.decide(m)
			r.decide = func(ctx context.Context, c *Call, in *IncomingCall) Workflow { return decide(ctx, c, in) }
			var tweaks []func(*HandlerConfig)
			if tc.tweak != nil {
				tweaks = append(tweaks, tc.tweak)
			}
			e := newEnv(t, r.newCall, tweaks...)
			status, body := e.post("/call", incoming("c-1", tc.media), nil)
			if status != 200 {
				t.Fatalf("%d %s", status, body)
			}
			if wf := decodeWorkflow(t, body); wf.Actions[0].Action != protocol.ActionReject {
				t.Fatalf("workflow %s, want a reject", body)
			}
			r.waitCleanup(t, "c-1", tc.want)
			if m.closes.Load() != tc.closes {
				t.Fatalf("%d media closes, want %d", m.closes.Load(), tc.closes)
			}
		})
	}
}

func TestPanicInEventEndsOnlyThatCall(t *testing.T) {
	r := newRecorder()
	e := newEnv(t, func(c *Call) CallEvents {
		ev := r.newCall(c)
		if c.ID() == "c-bad" {
			ev.OnDominantSpeakerChanged = func(uint32) { panic("bot bug") }
		}
		return ev
	})
	e.post("/call", incoming("c-bad", false), nil)
	e.post("/call", incoming("c-good", false), nil)
	e.post("/notification", speakerNote("c-bad", 1, 7), nil)
	r.waitCleanup(t, "c-bad", ErrBotPanic)
	if !slices.Contains(e.svc.seen(), "DELETE /v1/calls/c-bad") {
		t.Fatalf("the panicking call was not hung up at the service: %q", e.svc.seen())
	}
	e.post("/notification", speakerNote("c-good", 1, 7), nil)
	e.post("/notification", stateNote("c-good", 2, protocol.StateTerminated), nil)
	r.waitCleanup(t, "c-good", ErrCallTerminated)
	if !slices.Contains(r.log(), "speaker:7") {
		t.Fatalf("the other call lost its event: %q", r.log())
	}
}

func TestPanicInNewCallAndCleanup(t *testing.T) {
	var cleanups atomic.Int32
	e := newEnv(t, func(c *Call) CallEvents {
		if c.ID() == "c-1" {
			panic("factory bug")
		}
		return CallEvents{
			OnIncomingCall: func(context.Context, *IncomingCall) Workflow { return Reject("") },
			OnCleanup:      func(error) { cleanups.Add(1); panic("cleanup bug") },
		}
	})
	status, body := e.post("/call", incoming("c-1", false), nil)
	if status != 200 || decodeWorkflow(t, body).Actions[0].Action != protocol.ActionReject {
		t.Fatalf("%d %s", status, body)
	}
	status, _ = e.post("/call", incoming("c-2", false), nil)
	if status != 200 {
		t.Fatal(status)
	}
	_ = e.h.Close()
	if cleanups.Load() != 1 {
		t.Fatalf("%d cleanups", cleanups.Load())
	}
}

func TestOperations(t *testing.T) {
	r := newRecorder()
	e := newEnv(t, r.newCall)
	e.post("/call", incoming("c-1", false), nil)
	call := r.call("c-1")
	ctx := context.Background()
	sub, err := call.Subscribe(ctx, &VideoSocket{}, 12, 640, 360)
	if err != nil {
		t.Fatal(err)
	}
	unsub, err := call.Unsubscribe(ctx, &VideoSocket{})
	if err != nil {
		t.Fatal(err)
	}
	join, err := e.h.Join(ctx, "standup")
	if err != nil {
		t.Fatal(err)
	}
	invite, err := e.h.Invite(ctx, "standup", "recorder")
	if err != nil {
		t.Fatal(err)
	}
	if join.CallID() != "c-joined" {
		t.Fatalf("join call id %q", join.CallID())
	}
	e.post("/callback", protocol.Callback{CallID: "c-1", OperationID: sub.ID(), Type: "subscribe", Outcome: "success"}, nil)
	e.post("/callback", protocol.Callback{CallID: "c-1", OperationID: unsub.ID(), Type: "unsubscribe", Outcome: "failure", FailureReason: "not subscribed"}, nil)
	// The join's and the invitation's callbacks name calls this instance does not hold.
	if status, _ := e.post("/callback", protocol.Callback{CallID: "c-joined", OperationID: join.ID(), Type: "join", Outcome: "success"}, nil); status != 204 {
		t.Fatalf("join callback: %d", status)
	}
	if status, _ := e.post("/callback", protocol.Callback{CallID: "c-other", OperationID: invite.ID(), Type: "invite", Outcome: "success"}, nil); status != 204 {
		t.Fatalf("invite callback: %d", status)
	}
	wctx, cancel := context.WithTimeout(ctx, liveness)
	defer cancel()
	if err := sub.Wait(wctx); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := unsub.Wait(wctx); !errors.Is(err, ErrOperationFailed) {
		t.Fatalf("unsubscribe: %v", err)
	}
	if err := join.Wait(wctx); err != nil {
		t.Fatalf("join: %v", err)
	}
	if err := invite.Wait(wctx); err != nil {
		t.Fatalf("invite: %v", err)
	}
	e.post("/notification", stateNote("c-1", 1, protocol.StateTerminated), nil)
	r.waitCleanup(t, "c-1", ErrCallTerminated)
	want := []string{"incoming:c-1", "op:subscribe:" + sub.ID() + ":true", "op:unsubscribe:" + unsub.ID() + ":false", "state:terminated"}
	if got := r.log(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	wantReq := []string{"POST /v1/calls/c-1/subscriptions", "DELETE /v1/calls/c-1/subscriptions/0", "POST /v1/conferences/standup/join", "POST /v1/conferences/standup/invitations"}
	if got := e.svc.seen(); !slices.Equal(got, wantReq) {
		t.Fatalf("service saw %q", got)
	}
	// A pending operation of an ended call completes with the call's end.
	pending, err := e.h.Invite(ctx, "standup", "other")
	if err != nil {
		t.Fatal(err)
	}
	_ = e.h.Close()
	if err := pending.Wait(wctx); !errors.Is(err, ErrHandlerClosed) {
		t.Fatalf("pending operation after Close: %v", err)
	}
}

func TestNewHandlerChecksConfig(t *testing.T) {
	good := HandlerConfig{AppID: testApp, AppSecret: testSecret, ServiceURL: "https://sb.example", PublicURL: "https://bot.example/calling",
		NewCall: func(*Call) CallEvents { return CallEvents{} }}
	for name, f := range map[string]func(*HandlerConfig){
		"bad app id":     func(c *HandlerConfig) { c.AppID = "a b" },
		"short secret":   func(c *HandlerConfig) { c.AppSecret = "short" },
		"no service URL": func(c *HandlerConfig) { c.ServiceURL = "" },
		"bad public URL": func(c *HandlerConfig) { c.PublicURL = "bot.example" },
		"no NewCall":     func(c *HandlerConfig) { c.NewCall = nil },
	} {
		cfg := good
		f(&cfg)
		if _, err := NewHandler(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	h, err := NewHandler(good)
	if err != nil {
		t.Fatal(err)
	}
	_ = h.Close()
	_ = h.Close() // idempotent
}

func TestEndCallWhenServiceUnreachable(t *testing.T) {
	r := newRecorder()
	e := newEnv(t, r.newCall)
	e.post("/call", incoming("c-1", false), nil)
	e.svc.srv.Close()
	if err := r.call("c-1").EndCall(context.Background()); err == nil {
		t.Fatal("EndCall reported success with the service down")
	}
	r.waitCleanup(t, "c-1", ErrCallEnded)
}

func TestFullQueueAnswers503(t *testing.T) {
	r := newRecorder()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	e := newEnv(t, func(c *Call) CallEvents {
		ev := r.newCall(c)
		ev.OnDominantSpeakerChanged = func(id uint32) {
			entered <- struct{}{}
			<-release
			r.add(fmt.Sprintf("speaker:%d", id))
		}
		return ev
	}, func(c *HandlerConfig) { c.EventQueueSize = 1 })
	e.post("/call", incoming("c-1", false), nil)
	e.post("/notification", speakerNote("c-1", 1, 1), nil)
	<-entered // the bot is busy with 1
	if status, _ := e.post("/notification", speakerNote("c-1", 2, 2), nil); status != 204 {
		t.Fatalf("queued notification: %d", status)
	}
	retry := map[string]string{protocol.HeaderIdempotencyKey: "full-1"}
	if status, _ := e.post("/notification", speakerNote("c-1", 3, 3), retry); status != http.StatusServiceUnavailable {
		t.Fatalf("notification on a full queue: %d, want 503", status)
	}
	release <- struct{}{}
	<-entered
	close(release)
	// The service retries the refused delivery with the same key: now it is taken.
	if status, body := e.post("/notification", speakerNote("c-1", 3, 3), retry); status != 204 {
		t.Fatalf("retry: %d %s", status, body)
	}
	<-entered
	e.post("/notification", stateNote("c-1", 4, protocol.StateTerminated), nil)
	r.waitCleanup(t, "c-1", ErrCallTerminated)
	if got := r.log(); !slices.Equal(got, []string{"incoming:c-1", "speaker:1", "speaker:2", "speaker:3", "state:terminated"}) {
		t.Fatalf("events %q", got)
	}
}
