package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/internal/webhook"
	"github.com/switchboard-rtc/switchboard/service/bots"
	"github.com/switchboard-rtc/switchboard/service/calls"
	"github.com/switchboard-rtc/switchboard/service/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	issuer     = "http://127.0.0.1:8080"
	echoSecret = "echo-secret-0123456789abcdef-0123456789"
	recSecret  = "rec-secret-0123456789abcdef-0123456789ab"
)

// bus records requests and answers every incoming call with a signalling-only answer.
type bus struct {
	mu   sync.Mutex
	reqs []webhook.Request
	wg   sync.WaitGroup
}

func (b *bus) Enqueue(ctx context.Context, r webhook.Request) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reqs = append(b.reqs, r)
	if r.Kind == webhook.KindCall {
		body, _ := json.Marshal(protocol.Workflow{
			Actions:     []protocol.Action{{Action: protocol.ActionAnswer, OperationID: "op-answer"}},
			CallbackURI: "http://127.0.0.1:9/cb", NotificationSubscriptions: []protocol.NotificationType{protocol.NotificationCallStateChange},
		})
		b.wg.Go(func() { r.Done(webhook.Result{Status: 200, Body: body}) })
	}
	return nil
}

func (b *bus) count() int {
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.reqs)
}

type env struct {
	srv    *httptest.Server
	m      *calls.Manager
	bus    *bus
	conf   string
	callID string // echo's established call
}

func newEnv(t testing.TB) *env {
	t.Helper()
	reg, err := bots.New([]config.Bot{
		{AppID: "echo", Secret: echoSecret, WebhookURL: "http://127.0.0.1:9/echo"},
		{AppID: "rec", Secret: recSecret, WebhookURL: "http://127.0.0.1:9/rec"},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{bus: &bus{}}
	e.m, err = calls.New(calls.Options{Bots: reg, Bus: e.bus, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auth.NewSigner(auth.SignerConfig{Issuer: issuer})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewBotVerifier(auth.BotVerifierConfig{Audience: issuer})
	if err != nil {
		t.Fatal(err)
	}
	mux, err := New(Options{Calls: e.m, Verifier: verifier, JWKS: signer, Logger: slog.New(slog.DiscardHandler),
		Secret:  func(id string) ([]byte, bool) { b, err := reg.Lookup(id); return b.Secret, err == nil },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "# metrics\n") }),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.srv.Close()
		e.m.Close()
		e.bus.wg.Wait()
	})
	e.conf, _ = e.m.CreateConference("room", "Room")
	_ = e.m.AddParticipant(e.conf, calls.Participant{ID: "p1", Identity: "alice"})
	c, err := e.m.InviteBot(t.Context(), e.conf, "echo", protocol.Identity{})
	if err != nil {
		t.Fatal(err)
	}
	e.callID = c.ID
	e.bus.count()
	if info, _ := e.m.Call(c.ID); info.State != protocol.StateEstablished {
		t.Fatalf("setup: %+v", info)
	}
	return e
}

func token(t testing.TB, app, secret string, mod func(*auth.BotSigner)) string {
	t.Helper()
	s := &auth.BotSigner{AppID: app, Secret: []byte(secret), Audience: issuer}
	if mod != nil {
		mod(s)
	}
	tok, err := s.Sign()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	body   []byte
}

func (e *env) do(t *testing.T, method, path, tok, contentType string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, data}
}

// wantError checks a JSON error body with code.
func wantError(t *testing.T, r response, status int, code protocol.ErrorCode) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	eb, err := protocol.DecodeErrorBody(r.body)
	if err != nil || eb.Error.Code != code || eb.Error.Message == "" {
		t.Fatalf("error body %s (%v), want code %s", r.body, err, code)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	before := e.bus.count()
	path := protocol.CallPath(e.callID)
	for _, tc := range []struct {
		name string
		tok  string
		code protocol.ErrorCode
	}{
		{"no token", "", protocol.CodeUnauthorized},
		{"garbage", "not.a.jwt", protocol.CodeUnauthorized},
		{"wrong secret", token(t, "echo", recSecret, nil), protocol.CodeUnauthorized},
		{"unknown app", token(t, "ghost", echoSecret, nil), protocol.CodeUnauthorized},
		{"expired", token(t, "echo", echoSecret, func(s *auth.BotSigner) {
			s.Now = func() time.Time { return time.Now().Add(-10 * time.Minute) }
		}), protocol.CodeUnauthorized},
		{"wrong audience", token(t, "echo", echoSecret, func(s *auth.BotSigner) { s.Audience = "https://other.example.com" }), protocol.CodeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, http.MethodDelete, path, tc.tok, "", nil)
			wantError(t, r, tc.code.Status(), tc.code)
		})
	}
	// A replayed token: the first use works (a subscribe), the second is refused.
	tok := token(t, "echo", echoSecret, nil)
	sub := `{"socketId":0,"sourceId":5,"width":320,"height":180}`
	if r := e.do(t, http.MethodPost, protocol.SubscriptionsPath(e.callID), tok, "application/json", strings.NewReader(sub)); r.status != http.StatusAccepted {
		t.Fatalf("first use: %d %s", r.status, r.body)
	}
	before++ // the subscribe's callback
	wantError(t, e.do(t, http.MethodDelete, path, tok, "", nil), 403, protocol.CodeForbidden)
	if info, err := e.m.Call(e.callID); err != nil || info.State != protocol.StateEstablished {
		t.Fatalf("refused requests changed the call: %+v %v", info, err)
	}
	if n := e.bus.count(); n != before {
		t.Fatalf("refused requests sent %d requests to the bot", n-before)
	}
}

func TestHostileRequests(t *testing.T) {
	e := newEnv(t)
	before := e.bus.count()
	echo := func() string { return token(t, "echo", echoSecret, nil) }
	subs := protocol.SubscriptionsPath(e.callID)
	for _, tc := range []struct {
		name, method, path, ctype string
		body                      string
		status                    int
		code                      protocol.ErrorCode
	}{
		{"malformed JSON", "POST", subs, "application/json", `{"socketId":0,`, 400, protocol.CodeBadRequest},
		{"not an object", "POST", subs, "application/json", `[1,2]`, 400, protocol.CodeBadRequest},
		{"unknown field", "POST", subs, "application/json", `{"socketId":0,"sourceId":5,"evil":1}`, 400, protocol.CodeBadRequest},
		{"missing socket", "POST", subs, "application/json", `{"sourceId":5}`, 400, protocol.CodeBadRequest},
		{"zero source", "POST", subs, "application/json", `{"socketId":0,"sourceId":0}`, 400, protocol.CodeBadRequest},
		{"huge dimension", "POST", subs, "application/json", `{"socketId":0,"sourceId":5,"width":99999,"height":1}`, 400, protocol.CodeBadRequest},
		{"text body", "POST", subs, "text/plain", `{"socketId":0,"sourceId":5}`, 415, protocol.CodeUnsupportedType},
		{"oversized", "POST", subs, "application/json", `{"socketId":0,"sourceId":5,"pad":"` + strings.Repeat("x", protocol.MaxBodyBytes) + `"}`, 413, protocol.CodeTooLarge},
		{"unknown call subscribe", "POST", protocol.SubscriptionsPath("nope"), "application/json", `{"socketId":0,"sourceId":5,"width":64,"height":64}`, 404, protocol.CodeNotFound},
		{"unknown call end", "DELETE", protocol.CallPath("nope"), "", "", 404, protocol.CodeNotFound},
		{"end with body", "DELETE", protocol.CallPath(e.callID), "application/json", `{}`, 400, protocol.CodeBadRequest},
		{"bad socket id", "DELETE", subs + "/minus", "", "", 400, protocol.CodeBadRequest},
		{"negative socket id", "DELETE", subs + "/-1", "", "", 400, protocol.CodeBadRequest},
		{"unknown conference join", "POST", protocol.JoinPath("nope"), "application/json", `{}`, 404, protocol.CodeNotFound},
		{"bad callback uri", "POST", protocol.JoinPath(e.conf), "application/json", `{"callbackUri":"ftp://x"}`, 400, protocol.CodeBadRequest},
		{"unknown invitee", "POST", protocol.InvitationsPath(e.conf), "application/json", `{"appId":"ghost"}`, 404, protocol.CodeNotFound},
		{"invite malformed", "POST", protocol.InvitationsPath(e.conf), "application/json", `{"appId":}`, 400, protocol.CodeBadRequest},
		{"unknown route", "GET", "/v1/nothing", "", "", 404, protocol.CodeNotFound},
		{"already in conference", "POST", protocol.JoinPath(e.conf), "application/json", ``, 409, protocol.CodeConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.do(t, tc.method, tc.path, echo(), tc.ctype, strings.NewReader(tc.body)), tc.status, tc.code)
		})
	}
	// Another bot's call: 403.
	wantError(t, e.do(t, "DELETE", protocol.CallPath(e.callID), token(t, "rec", recSecret, nil), "", nil), 403, protocol.CodeForbidden)
	// rec is not in the conference: it may not invite.
	wantError(t, e.do(t, "POST", protocol.InvitationsPath(e.conf), token(t, "rec", recSecret, nil), "application/json", strings.NewReader(`{"appId":"echo"}`)), 403, protocol.CodeForbidden)
	if info, err := e.m.Call(e.callID); err != nil || info.State != protocol.StateEstablished {
		t.Fatalf("refused requests changed the call: %+v %v", info, err)
	}
	if info, _ := e.m.Conference(e.conf); len(info.Calls) != 1 || len(info.Roster) != 2 {
		t.Fatalf("refused requests changed the conference: %+v", info)
	}
	if n := e.bus.count(); n != before {
		t.Fatalf("refused requests sent %d requests to the bot", n-before)
	}
}

func TestBotOperations(t *testing.T) {
	e := newEnv(t)
	echo := func() string { return token(t, "echo", echoSecret, nil) }
	r := e.do(t, "POST", protocol.SubscriptionsPath(e.callID), echo(), "application/json", strings.NewReader(`{"socketId":1,"sourceId":5,"width":640,"height":360}`))
	if r.status != 202 {
		t.Fatalf("subscribe: %d %s", r.status, r.body)
	}
	if op, err := protocol.DecodeOperationResponse(r.body); err != nil || op.OperationID == "" {
		t.Fatalf("subscribe response %s: %v", r.body, err)
	}
	if r := e.do(t, "DELETE", protocol.SubscriptionPath(e.callID, 1), echo(), "", nil); r.status != 202 {
		t.Fatalf("unsubscribe: %d %s", r.status, r.body)
	}
	// rec joins by id, then invites... itself is refused (already there) once it has answered.
	r = e.do(t, "POST", protocol.JoinPath(e.conf), token(t, "rec", recSecret, nil), "application/json", strings.NewReader(`{"callbackUri":"http://127.0.0.1:9/rec-2"}`))
	if r.status != 202 {
		t.Fatalf("join: %d %s", r.status, r.body)
	}
	jr, err := protocol.DecodeJoinResponse(r.body)
	if err != nil {
		t.Fatal(err)
	}
	e.bus.count()
	if info, err := e.m.Call(jr.CallID); err != nil || info.State != protocol.StateEstablished || info.AppID != "rec" {
		t.Fatalf("joined call %+v %v", info, err)
	}
	if r := e.do(t, "DELETE", protocol.CallPath(jr.CallID), token(t, "rec", recSecret, nil), "", nil); r.status != 204 {
		t.Fatalf("end: %d %s", r.status, r.body)
	}
	if r := e.do(t, "POST", protocol.InvitationsPath(e.conf), echo(), "application/json", strings.NewReader(`{"appId":"rec"}`)); r.status != 202 {
		t.Fatalf("invite: %d %s", r.status, r.body)
	}
	if r := e.do(t, "DELETE", protocol.CallPath(e.callID), echo(), "", nil); r.status != 204 {
		t.Fatalf("end: %d %s", r.status, r.body)
	}
	wantError(t, e.do(t, "DELETE", protocol.CallPath(e.callID), echo(), "", nil), 404, protocol.CodeNotFound)
}

func TestPublicEndpoints(t *testing.T) {
	e := newEnv(t)
	r := e.do(t, "GET", protocol.JWKSPath, "", "", nil)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &set) != nil || len(set.Keys) != 1 || set.Keys[0]["kty"] != "EC" {
		t.Fatalf("jwks: %d %s", r.status, r.body)
	}
	if r := e.do(t, "GET", "/healthz", "", "", nil); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
	if r := e.do(t, "GET", "/metrics", "", "", nil); r.status != 200 || !strings.Contains(string(r.body), "metrics") {
		t.Fatalf("metrics %d", r.status)
	}
}

// FuzzBotRequest sends arbitrary bodies to every bot route with a valid token: the answer is
// never a 5xx and never a panic.
func FuzzBotRequest(f *testing.F) {
	for _, seed := range []string{
		`{"socketId":0,"sourceId":5,"width":640,"height":360}`, `{"callbackUri":"https://bot.example.com/api/calling"}`,
		`{"appId":"rec"}`, ``, `{}`, `null`, `{"socketId":-1,"sourceId":4294967295}`, "{\"appId\":\"\xff\"}",
	} {
		for route := range uint8(5) {
			f.Add(route, seed)
		}
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		var method, path string
		switch route % 5 {
		case 0:
			method, path = "POST", protocol.SubscriptionsPath(e.callID)
		case 1:
			method, path = "DELETE", protocol.SubscriptionPath(e.callID, 0)
		case 2:
			method, path = "POST", protocol.JoinPath(e.conf)
		case 3:
			method, path = "POST", protocol.InvitationsPath(e.conf)
		case 4:
			method, path = "DELETE", protocol.CallPath("nope")
		}
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token(t, "echo", echoSecret, nil))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.srv.Config.Handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", method, path, body, rec.Code, rec.Body)
		}
	})
}
