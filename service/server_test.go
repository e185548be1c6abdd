package service

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/internal/webhook"
	"github.com/switchboard-rtc/switchboard/service/calls"
	"github.com/switchboard-rtc/switchboard/service/config"
	"github.com/switchboard-rtc/switchboard/service/internal/servicetest"
)

// bins are the programs the tests run (the test bot).
var bins servicetest.Binaries

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { bins.Remove() }))
}

const botSecret = "test-bot-secret-0123456789abcdef-0123456789"

// liveness bounds waits for things that must happen; never a timing assertion.
const liveness = servicetest.Liveness

func newServer(t *testing.T, mod func(*config.Config)) *Server {
	t.Helper()
	cfg := servicetest.Config()
	cfg.AnswerTimeout = config.Duration(time.Second)
	cfg.MediaTimeout = config.Duration(time.Second)
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, Options{
		Logger:  slog.New(slog.DiscardHandler),
		Webhook: webhook.Options{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 40 * time.Millisecond, AttemptTimeout: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	servicetest.Start(t, s)
	return s
}

// ---- an SDK bot in its own process ----

func testbot(t *testing.T) string {
	t.Helper()
	return bins.Build(t, "./service/internal/testbot")
}

type botLine struct {
	Event        string   `json:"event"`
	URL          string   `json:"url"`
	CallID       string   `json:"callId"`
	State        string   `json:"state"`
	Reason       string   `json:"reason"`
	Participants []string `json:"participants"`
	Error        string   `json:"error"`
}

type botProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan botLine
	url   string
	done  chan struct{}
}

func startBot(t *testing.T, serviceURL, appID string) *botProc {
	t.Helper()
	cmd := exec.Command(testbot(t), "-service", serviceURL, "-app", appID, "-secret", botSecret)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &botProc{cmd: cmd, stdin: stdin, lines: make(chan botLine, 256), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		defer close(b.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var l botLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("bot printed %q", sc.Text())
				continue
			}
			b.lines <- l
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-b.done:
		case <-time.After(liveness):
			cmd.Process.Kill()
			<-b.done
		}
		cmd.Wait()
	})
	b.url = b.expect(t, func(l botLine) bool { return l.Event == "listening" }).URL
	return b
}

// expect returns the first line matching ok, failing on lines that say "error" and after the
// liveness bound.
func (b *botProc) expect(t *testing.T, ok func(botLine) bool) botLine {
	t.Helper()
	timeout := time.After(liveness)
	for {
		select {
		case l, open := <-b.lines:
			if !open {
				t.Fatal("bot exited")
			}
			if l.Event == "error" || l.Error != "" {
				t.Fatalf("bot: %+v", l)
			}
			if ok(l) {
				return l
			}
		case <-timeout:
			t.Fatal("bot event never came")
		}
	}
}

func state(callID, s string) func(botLine) bool {
	return func(l botLine) bool { return l.CallID == callID && l.Event == "state" && l.State == s }
}

func roster(callID string, ids ...string) func(botLine) bool {
	return func(l botLine) bool {
		return l.CallID == callID && l.Event == "roster" && strings.Join(l.Participants, ",") == strings.Join(ids, ",")
	}
}

// waitGone waits until the service has forgotten callID.
func waitGone(t *testing.T, s *Server, callID string) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for {
		if _, err := s.Calls().Call(callID); errors.Is(err, calls.ErrCallNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s still there", callID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeConfig(t *testing.T, path string, bots []config.Bot) {
	t.Helper()
	data, err := json.Marshal(config.Config{Bots: bots})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

var alice = calls.Participant{ID: "p-alice", Identity: "alice@example.com", DisplayName: "Alice",
	Streams: []protocol.Stream{{Kind: protocol.StreamAudio, Direction: protocol.DirectionSendRecv, SourceID: 11}}}
var bob = calls.Participant{ID: "p-bob", Identity: "bob@example.com",
	Streams: []protocol.Stream{{Kind: protocol.StreamAudio, Direction: protocol.DirectionSendRecv, SourceID: 21}}}

// TestEndToEndWithSDKBot runs the service and a bot built on package sdk in separate
// processes, over real HTTP on loopback.
func TestEndToEndWithSDKBot(t *testing.T) {
	file := filepath.Join(t.TempDir(), "switchboard.json")
	writeConfig(t, file, nil)
	s := newServer(t, func(c *config.Config) {
		c.File = file
		c.AnswerTimeout = config.Duration(20 * time.Second) // the bot process may start slowly
	})
	bot := startBot(t, s.URL(), "sdkbot")
	// Register the bot by reloading the configuration, as an operator would.
	writeConfig(t, file, []config.Bot{{AppID: "sdkbot", Secret: botSecret, WebhookURL: bot.url}})
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	m := s.Calls()

	t.Run("one-to-one, ended by the service", func(t *testing.T) {
		c, err := m.PlaceCall(t.Context(), "sdkbot", alice)
		if err != nil {
			t.Fatal(err)
		}
		bot.expect(t, func(l botLine) bool { return l.Event == "incoming" && l.CallID == c.ID })
		bot.expect(t, state(c.ID, "established"))
		bot.expect(t, roster(c.ID, "p-alice", "bot-"+c.ID))
		if err := m.EndCall(c.ID, ""); err != nil {
			t.Fatal(err)
		}
		if l := bot.expect(t, state(c.ID, "terminated")); l.Reason != calls.ReasonEndedByService {
			t.Fatalf("terminated: %+v", l)
		}
		bot.expect(t, func(l botLine) bool { return l.Event == "cleanup" && l.CallID == c.ID })
	})

	t.Run("conference roster, ended by the bot", func(t *testing.T) {
		conf, _ := m.CreateConference("", "Standup")
		if err := m.AddParticipant(conf, alice); err != nil {
			t.Fatal(err)
		}
		c, err := m.InviteBot(t.Context(), conf, "sdkbot", protocol.Identity{Identity: "alice@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		bot.expect(t, state(c.ID, "established"))
		me := "bot-" + c.ID
		bot.expect(t, roster(c.ID, "p-alice", me))
		m.AddParticipant(conf, bob)
		bot.expect(t, roster(c.ID, "p-alice", "p-bob", me))
		m.RemoveParticipant(conf, "p-alice")
		bot.expect(t, roster(c.ID, "p-bob", me))
		fmt.Fprintf(bot.stdin, "end %s\n", c.ID)
		// "ended" (EndCall returned) and "cleanup" come in either order.
		seen := map[string]bool{}
		for !seen["ended"] || !seen["cleanup"] {
			l := bot.expect(t, func(l botLine) bool { return (l.Event == "ended" || l.Event == "cleanup") && l.CallID == c.ID })
			seen[l.Event] = true
		}
		waitGone(t, s, c.ID)
		if info, _ := m.Conference(conf); len(info.Calls) != 0 || len(info.Roster) != 1 {
			t.Fatalf("conference after the bot left: %+v", info)
		}
	})

	t.Run("shutdown ends calls with notifications", func(t *testing.T) {
		c, err := m.PlaceCall(t.Context(), "sdkbot", alice)
		if err != nil {
			t.Fatal(err)
		}
		bot.expect(t, state(c.ID, "established"))
		ctx, cancel := context.WithTimeout(context.Background(), liveness)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		// Shutdown returned after the notification was delivered.
		if l := bot.expect(t, state(c.ID, "terminated")); l.Reason != calls.ReasonServiceShutdown {
			t.Fatalf("terminated: %+v", l)
		}
	})
}

// ---- hostile bots, in process, that check the service's tokens ----

// hostileBot is an httptest bot whose /call endpoint misbehaves; /notification and /callback
// work. Every request's token is verified against the service's JWKS.
type hostileBot struct {
	srv  *httptest.Server
	mu   sync.Mutex
	errs []error
	got  chan protocol.Notification
}

func newHostileBot(t *testing.T, serviceURL string, call http.HandlerFunc) *hostileBot {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierConfig{Issuer: serviceURL, Audience: "hostile"})
	if err != nil {
		t.Fatal(err)
	}
	b := &hostileBot{got: make(chan protocol.Notification, 16)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := v.Verify(r.Context(), auth.BearerToken(r.Header)); err != nil {
			b.fail(fmt.Errorf("%s: token: %w", r.URL.Path, err))
			http.Error(w, err.Error(), auth.HTTPStatus(err))
			return
		}
		if r.Header.Get("Idempotency-Key") == "" {
			b.fail(fmt.Errorf("%s: no Idempotency-Key", r.URL.Path))
		}
		switch r.URL.Path {
		case "/bot/call":
			call(w, r)
		case "/bot/notification":
			body, _ := io.ReadAll(r.Body)
			n, err := protocol.DecodeNotification(body)
			if err != nil {
				b.fail(err)
				http.Error(w, err.Error(), 400)
				return
			}
			b.got <- *n
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(func() {
		b.srv.CloseClientConnections()
		b.srv.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, err := range b.errs {
			t.Error(err)
		}
	})
	return b
}

// hostileService is a service whose configuration file registers a hostile bot, app id
// "hostile", with call as its /call endpoint (the file is returned for more reloads).
func hostileService(t *testing.T, call http.HandlerFunc) (*Server, *hostileBot, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "switchboard.json")
	writeConfig(t, file, nil)
	s := newServer(t, func(c *config.Config) { c.File = file })
	bot := newHostileBot(t, s.URL(), call)
	writeConfig(t, file, []config.Bot{{AppID: "hostile", Secret: botSecret, WebhookURL: bot.srv.URL + "/bot"}})
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	return s, bot, file
}

func (b *hostileBot) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errs = append(b.errs, err)
}

func TestHostileBots(t *testing.T) {
	answer, _ := json.Marshal(protocol.Workflow{Actions: []protocol.Action{{Action: protocol.ActionAnswer, OperationID: "op"}}, CallbackURI: "http://127.0.0.1:1/never"})
	for _, tc := range []struct {
		name   string
		call   http.HandlerFunc
		reason string
	}{
		{"never answers", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}, calls.ReasonNoAnswer},
		{"answers late", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
			w.Write(answer)
		}, calls.ReasonNoAnswer},
		{"answers 500", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}, calls.ReasonBotUnreachable},
		{"drops the connection", func(w http.ResponseWriter, r *http.Request) {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
		}, calls.ReasonBotUnreachable},
		{"answers garbage", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"actions":[{"action":"answer"}]`))
		}, calls.ReasonBadWorkflow},
		{"answers 403", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", http.StatusForbidden)
		}, calls.ReasonBotUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, bot, _ := hostileService(t, tc.call)
			c, err := s.Calls().PlaceCall(t.Context(), "hostile", alice)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case n := <-bot.got:
				if n.CallID != c.ID || n.State != protocol.StateTerminated || n.Reason != tc.reason {
					t.Fatalf("notification %+v, want terminated %s", n, tc.reason)
				}
			case <-time.After(liveness):
				t.Fatal("no terminated notification")
			}
			waitGone(t, s, c.ID)
			if n, confs := s.Calls().Stats(); n != 0 || confs != 0 {
				t.Fatalf("%d calls, %d conferences left", n, confs)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		url := dead.URL
		dead.Close()
		s := newServer(t, func(c *config.Config) {
			c.Bots = []config.Bot{{AppID: "gone", Secret: botSecret, WebhookURL: url}}
		})
		c, err := s.Calls().PlaceCall(t.Context(), "gone", alice)
		if err != nil {
			t.Fatal(err)
		}
		waitGone(t, s, c.ID)
	})
}

func TestPublicEndpointsAndMetrics(t *testing.T) {
	s := newServer(t, nil)
	for path, want := range map[string]string{
		protocol.JWKSPath: `"kty":"EC"`,
		"/healthz":        "ok",
		"/metrics":        "switchboard_calls_active",
	} {
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	var sb strings.Builder
	s.Describe(&sb)
	if !strings.Contains(sb.String(), s.JWKSURL()) {
		t.Fatalf("Describe: %s", sb.String())
	}
}

func TestSigningKeyPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "signing.pem")
	kid := func() string {
		s := newServer(t, func(c *config.Config) { c.SigningKeyFile = path })
		resp, err := http.Get(s.JWKSURL())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var set struct {
			Keys []struct {
				Kid string `json:"kid"`
			} `json:"keys"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) != 1 {
			t.Fatalf("jwks: %v", err)
		}
		return set.Keys[0].Kid
	}
	first := kid()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if second := kid(); second != first {
		t.Fatalf("key changed across restarts: %s then %s", first, second)
	}
	os.WriteFile(path, []byte("not a key"), 0o600)
	cfg := config.Default()
	cfg.Listen, cfg.SigningKeyFile = "127.0.0.1:0", path
	if _, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)}); err == nil {
		t.Fatal("a corrupt key file was accepted")
	}
}

func TestReloadKeepsCallsAndRefusesBadFiles(t *testing.T) {
	var answer []byte
	s, bot, file := hostileService(t, func(w http.ResponseWriter, r *http.Request) { w.Write(answer) })
	answer, _ = json.Marshal(protocol.Workflow{Actions: []protocol.Action{{Action: protocol.ActionAnswer, OperationID: "op"}}, CallbackURI: bot.srv.URL + "/bot"})
	c, err := s.Calls().PlaceCall(t.Context(), "hostile", alice)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(liveness)
	for info, err := s.Calls().Call(c.ID); info.State != protocol.StateEstablished; info, err = s.Calls().Call(c.ID) {
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("call never established: %+v", info)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The bot is removed from the registry: its call in flight goes on and still reaches it.
	writeConfig(t, file, []config.Bot{{AppID: "other", Secret: botSecret, WebhookURL: "http://127.0.0.1:9/other"}})
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Calls().PlaceCall(t.Context(), "hostile", alice); !errors.Is(err, calls.ErrUnknownBot) {
		t.Fatalf("new call to a removed bot: %v", err)
	}
	if err := s.Calls().EndCall(c.ID, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-bot.got:
		if n.State != protocol.StateTerminated {
			t.Fatalf("%+v", n)
		}
	case <-time.After(liveness):
		t.Fatal("no terminated notification")
	}
	// An invalid file changes nothing.
	os.WriteFile(file, []byte(`{"bots":[{"appId":"b","secret":"short","webhookUrl":"http://127.0.0.1/"}]}`), 0o600)
	if err := s.Reload(); err == nil {
		t.Fatal("an invalid file was accepted")
	}
	if ids := s.Bots().AppIDs(); len(ids) != 1 || ids[0] != "other" {
		t.Fatalf("bots after a bad reload: %v", ids)
	}
}

func TestWatchReloads(t *testing.T) {
	file := filepath.Join(t.TempDir(), "switchboard.json")
	writeConfig(t, file, nil)
	s := newServer(t, func(c *config.Config) { c.File, c.WatchConfig = file, config.Duration(20*time.Millisecond) })
	writeConfig(t, file, []config.Bot{{AppID: "late", Secret: botSecret, WebhookURL: "http://127.0.0.1:9/late"}})
	deadline := time.Now().Add(liveness)
	for len(s.Bots().AppIDs()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watcher never reloaded")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRefusesPlainHTTPOffLoopback(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "0.0.0.0:0"
	if _, err := New(cfg, Options{}); !errors.Is(err, config.ErrInvalid) {
		t.Fatal(err)
	}
}
