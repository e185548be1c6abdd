package examplestest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/service"
	"github.com/switchboard-rtc/switchboard/service/config"
	"github.com/switchboard-rtc/switchboard/service/internal/servicetest"
	"github.com/switchboard-rtc/switchboard/service/internal/testpeer"
)

// secret is every bot's app secret.
const secret = "examples-e2e-secret-0123456789abcdef-0123456789"

// liveness bounds waits for things that must happen; never a timing assertion.
const liveness = servicetest.Liveness

// bins are the example programs the tests run.
var bins servicetest.Binaries

func TestMain(m *testing.M) {
	code := m.Run()
	bins.Remove()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// build compiles examples/<name> once per test run and returns the binary's path.
func build(t *testing.T, name string) string {
	t.Helper()
	return bins.Build(t, "./examples/"+name)
}

// env is a whole calling service on loopback (SFU, signalling, call control) that knows the
// given bots, each at a listen address picked in advance.
type env struct {
	srv   *service.Server
	ws    string
	addrs map[string]string // app id → the bot's listen address
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newEnv(t *testing.T, appIDs ...string) *env {
	t.Helper()
	e := &env{addrs: map[string]string{}}
	cfg := servicetest.Config()
	for _, id := range appIDs {
		e.addrs[id] = freeAddr(t)
		cfg.Bots = append(cfg.Bots, config.Bot{AppID: id, Secret: secret, WebhookURL: "http://" + e.addrs[id] + "/api/calling", DisplayName: id})
	}
	s, err := service.New(cfg, service.Options{Logger: slog.New(slog.DiscardHandler), Conferencing: &service.Conferencing{}})
	if err != nil {
		t.Fatal(err)
	}
	servicetest.Start(t, s)
	e.srv = s
	e.ws = "ws" + strings.TrimPrefix(s.URL(), "http") + "/ws"
	return e
}

// proc is an example bot running as its own process, logging JSON lines on stderr.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed

	mu    sync.Mutex
	lines []map[string]any
	raw   []string
}

// start runs examples/<name> (registered in e as app id name) with args.
func (e *env) start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	bin := build(t, name)
	args = append([]string{"-service", e.srv.URL(), "-app", name, "-listen", e.addrs[name], "-log", "json"}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "BOT_APP_SECRET="+secret)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m map[string]any
			_ = json.Unmarshal(sc.Bytes(), &m)
			p.mu.Lock()
			p.raw = append(p.raw, sc.Text())
			if m != nil {
				p.lines = append(p.lines, m)
			}
			p.mu.Unlock()
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s's log:\n%s", name, strings.Join(p.raw, "\n"))
			p.mu.Unlock()
		}
	})
	p.waitLog(t, "bot ready", nil)
	return p
}

// waitLog waits for a log line with message msg for which match (if any) holds.
func (p *proc) waitLog(t *testing.T, msg string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for i := 0; ; {
		p.mu.Lock()
		for ; i < len(p.lines); i++ {
			l := p.lines[i]
			if l["msg"] == msg && (match == nil || match(l)) {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case <-p.exited:
			t.Fatalf("%s exited (%v) before logging %q", p.name, p.err, msg)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within %v", p.name, msg, liveness)
		}
	}
}

// stop sends SIGTERM and waits for the process to exit (killing it past liveness).
func (p *proc) stop(t *testing.T) error {
	select {
	case <-p.exited:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(liveness):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("%s did not exit within %v of SIGTERM", p.name, liveness)
	}
	return p.err
}

// dial connects a participant to the service.
func (e *env) dial(t *testing.T, cfg testpeer.Config) *testpeer.Peer {
	t.Helper()
	cfg.URL = e.ws
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	p, err := testpeer.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// botSources waits for the bot named name in p's roster and returns its audio and video source
// ids (0 for a kind it does not publish once want is met).
func botSources(t *testing.T, p *testpeer.Peer, name string, wantAudio, wantVideo bool) (audio, video uint32) {
	t.Helper()
	servicetest.Eventually(t, name+" in the roster with its streams", func() bool {
		for _, e := range p.Roster() {
			if !e.IsBot || e.DisplayName != name {
				continue
			}
			for _, s := range e.Streams {
				switch s.Kind {
				case "audio":
					audio = s.SourceID
				case "video":
					video = s.SourceID
				}
			}
		}
		return (!wantAudio || audio != 0) && (!wantVideo || video != 0)
	})
	return audio, video
}

// sine is a participant's microphone: a pure tone.
func sine(hz, amp float64) func(int, []int16) {
	return func(n int, pcm []int16) {
		for k := range pcm {
			t := float64(n*len(pcm)+k) / 16000
			pcm[k] = int16(amp * math.Sin(2*math.Pi*hz*t))
		}
	}
}

// power is the Goertzel power of pcm (16 kHz) at hz, per sample.
func power(pcm []int16, hz float64) float64 {
	w := 2 * math.Pi * hz / 16000
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range pcm {
		s0 := float64(v) + c*s1 - s2
		s2, s1 = s1, s0
	}
	return (s1*s1 + s2*s2 - c*s1*s2) / float64(len(pcm)*len(pcm))
}
