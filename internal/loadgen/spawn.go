package loadgen

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DebugListenFlag is the flag a bot takes, when it has one, for a loopback HTTP address that
// serves its Prometheus metrics (with sdk.AudioMetrics) at /metrics and /debug/pprof/.
const DebugListenFlag = "debug-listen"

// SpawnConfig says what to build and start.
type SpawnConfig struct {
	// ModuleDir is the Switchboard module's root; "" looks upwards from the working directory
	// for its go.mod.
	ModuleDir string
	// Bot is the example bot to run (examples/<Bot>); it is also its app id.
	Bot string
	// BotArgs are extra flags for the bot.
	BotArgs []string
	// ServiceArgs are extra flags for switchboard serve.
	ServiceArgs []string
	// PeerPorts, when set ("20000-29999"), runs the service as `switchboard-load
	// serve-per-connection`: the same service, but every peer connection on its own UDP port
	// from the range, and /debug/pprof/ served. Empty runs `switchboard serve` itself.
	PeerPorts string
	// LoadBot, when set ("sendrecv" or "recvonly"), runs `switchboard-load bot -mode LoadBot`
	// (an instrumented bot serving sdk.AudioMetrics) instead of examples/<Bot>; Bot is then only
	// its app id.
	LoadBot string
	// ServiceProcs and BotProcs, when positive, are the GOMAXPROCS of the spawned service and
	// bot (0: what the environment says, or Go's default of one per core).
	ServiceProcs, BotProcs int
	// Logs receives both processes' output (nil: discarded; it is kept in the work directory).
	Logs io.Writer
}

// Spawned is a service and a bot started on loopback for a run.
type Spawned struct {
	ServiceURL    string
	ServicePID    int
	BotPID        int
	BotMetricsURL string // empty when the bot has no -debug-listen flag
	BotDebugURL   string // its /debug/pprof/ base, or empty
	ServiceDebug  string // the service's /debug/pprof/ base when it serves one, or empty
	Dir           string // work directory: binaries, configuration, logs

	procs []*exec.Cmd
	waits []chan error
}

// Spawn builds switchboard and examples/<bot>, writes a configuration registering the bot on
// loopback, and starts both. Close stops them.
func Spawn(ctx context.Context, sc SpawnConfig) (*Spawned, error) {
	mod := sc.ModuleDir
	if mod == "" {
		var err error
		if mod, err = findModule(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "switchboard-load-")
	if err != nil {
		return nil, fmt.Errorf("loadgen: work directory: %w", err)
	}
	s := &Spawned{Dir: dir}
	loadBin := filepath.Join(dir, "switchboard-load")
	svcBin, svcPkg, svcArgs := filepath.Join(dir, "switchboard"), "./cmd/switchboard", []string{"serve"}
	if sc.PeerPorts != "" {
		svcBin, svcPkg = loadBin, "./cmd/switchboard-load"
		svcArgs = []string{"serve-per-connection", "-peer-ports", sc.PeerPorts}
	}
	botBin, botPkg, botArgs := filepath.Join(dir, sc.Bot), "./examples/"+sc.Bot, []string(nil)
	if sc.LoadBot != "" {
		botBin, botPkg, botArgs = loadBin, "./cmd/switchboard-load", []string{"bot", "-mode", sc.LoadBot}
	}
	builds := map[string]string{svcBin: svcPkg, botBin: botPkg}
	for out, pkg := range builds {
		b := struct{ out, pkg string }{out, pkg}
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.out, b.pkg)
		cmd.Dir = mod
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("loadgen: go build %s: %w\n%s", b.pkg, err, out)
		}
	}
	ports, err := freeTCPPorts(3)
	if err != nil {
		return nil, err
	}
	secret := randomHex(24)
	s.ServiceURL = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	botListen := fmt.Sprintf("127.0.0.1:%d", ports[1])
	conf := map[string]any{
		"listen": fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"bots": []map[string]string{{
			"appId": sc.Bot, "secret": secret, "webhookUrl": "http://" + botListen + "/api/calling", "displayName": sc.Bot,
		}},
	}
	confFile := filepath.Join(dir, "switchboard.json")
	data, _ := json.MarshalIndent(conf, "", "  ")
	if err := os.WriteFile(confFile, data, 0o600); err != nil {
		return nil, fmt.Errorf("loadgen: write configuration: %w", err)
	}
	if err := s.start(dir, "service", svcBin, append(append(svcArgs, "-config", confFile), sc.ServiceArgs...), procsEnv(sc.ServiceProcs), sc.Logs); err != nil {
		s.Close()
		return nil, err
	}
	if err := waitHTTP(ctx, s.ServiceURL+"/healthz", 30*time.Second); err != nil {
		s.Close()
		return nil, fmt.Errorf("loadgen: service did not start (log in %s): %w", dir, err)
	}
	if ok, _ := servesPath(ctx, s.ServiceURL+"/debug/pprof/"); ok {
		s.ServiceDebug = s.ServiceURL + "/debug/pprof/"
	}
	args := append(botArgs, "-service", s.ServiceURL, "-app", sc.Bot, "-listen", botListen)
	if hasFlag(ctx, botBin, botArgs, DebugListenFlag) {
		debug := fmt.Sprintf("127.0.0.1:%d", ports[2])
		args = append(args, "-"+DebugListenFlag, debug)
		s.BotMetricsURL = "http://" + debug + "/metrics"
		s.BotDebugURL = "http://" + debug + "/debug/pprof/"
	}
	// The secret goes in the environment (both spellings the examples read), not in the
	// process list.
	env := append(procsEnv(sc.BotProcs), "BOT_APP_SECRET="+secret, strings.ToUpper(sc.Bot)+"_SECRET="+secret)
	if err := s.start(dir, "bot", botBin, append(args, sc.BotArgs...), env, sc.Logs); err != nil {
		s.Close()
		return nil, err
	}
	if err := waitTCP(ctx, botListen, 30*time.Second); err != nil {
		s.Close()
		return nil, fmt.Errorf("loadgen: bot did not start (log in %s): %w", dir, err)
	}
	if s.BotMetricsURL != "" {
		if err := waitHTTP(ctx, s.BotMetricsURL, 10*time.Second); err != nil {
			s.BotMetricsURL, s.BotDebugURL = "", ""
		}
	}
	return s, nil
}

// procsEnv is the environment that sets a process's GOMAXPROCS to n (none for n ≤ 0).
func procsEnv(n int) []string {
	if n <= 0 {
		return nil
	}
	return []string{"GOMAXPROCS=" + strconv.Itoa(n)}
}

func (s *Spawned) start(dir, name, bin string, args, env []string, logs io.Writer) error {
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return fmt.Errorf("loadgen: %s log: %w", name, err)
	}
	var out io.Writer = f
	if logs != nil {
		out = io.MultiWriter(f, prefixWriter{w: logs, prefix: name + ": "})
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir // what a bot writes (a recorder's files) stays in the work directory
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("loadgen: start %s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); f.Close() }()
	s.procs = append(s.procs, cmd)
	s.waits = append(s.waits, done)
	switch name {
	case "service":
		s.ServicePID = cmd.Process.Pid
	case "bot":
		s.BotPID = cmd.Process.Pid
	}
	return nil
}

// Close stops the bot, then the service (SIGTERM, then SIGKILL after 20 s), and waits for
// them. The work directory stays (its logs may be wanted); RemoveAll removes it.
func (s *Spawned) Close() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		_ = s.procs[i].Process.Signal(syscall.SIGTERM)
		select {
		case <-s.waits[i]:
		case <-time.After(20 * time.Second):
			_ = s.procs[i].Process.Kill()
			<-s.waits[i]
		}
	}
	s.procs, s.waits = nil, nil
}

// RemoveAll deletes the work directory.
func (s *Spawned) RemoveAll() { _ = os.RemoveAll(s.Dir) }

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) > 0 {
			_, _ = io.WriteString(p.w, p.prefix+string(line))
		}
	}
	return len(b), nil
}

func findModule() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("loadgen: working directory: %w", err)
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(data, []byte("switchboard-rtc/switchboard")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("loadgen: not inside the switchboard module (no go.mod above the working directory); run from the repository")
		}
		dir = parent
	}
}

func freeTCPPorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("loadgen: find a free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// hasFlag reports whether a command's -h output lists the flag.
func hasFlag(ctx context.Context, bin string, args []string, name string) bool {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(cctx, bin, append(args, "-h")...).CombinedOutput()
	return bytes.Contains(out, []byte("-"+name+" ")) || bytes.Contains(out, []byte("-"+name+"\n"))
}

func waitHTTP(ctx context.Context, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		ok, err := servesPath(ctx, url)
		if ok {
			return nil
		}
		last = err
		if !sleepUntil(ctx, time.Now().Add(100*time.Millisecond)) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("GET %s: %w", url, last)
}

func servesPath(ctx context.Context, url string) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("status %s", resp.Status)
	}
	return true, nil
}

func waitTCP(ctx context.Context, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		if !sleepUntil(ctx, time.Now().Add(100*time.Millisecond)) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("connect %s: %w", addr, last)
}
