package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestVersionAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "switchboard ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage") {
		t.Fatalf("no command: %d %q", code, errb.String())
	}
	if code := run([]string{"fly"}, &out, &errb); code != 2 {
		t.Fatalf("unknown command: %d", code)
	}
	errb.Reset()
	if code := run([]string{"serve", "-listen", "0.0.0.0:0"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "loopback") {
		t.Fatalf("plain HTTP off loopback: %d %q", code, errb.String())
	}
}

// TestServeWithNoConfiguration builds the binary, runs `switchboard serve` with no flags and no
// SWITCHBOARD_* variables, reads the JWKS URL it prints, fetches the keys and stops it with
// SIGTERM. If the default port is taken on this machine, it runs again on a free port (only the
// address differs).
func TestServeWithNoConfiguration(t *testing.T) {
	bin := build(t)
	env := cleanEnv()
	jwks, stop := startServe(t, bin, env)
	if jwks == "" {
		t.Log("default address 127.0.0.1:8080 is in use here; serving on a free port instead")
		jwks, stop = startServe(t, bin, append(env, "SWITCHBOARD_LISTEN=127.0.0.1:0"))
		if jwks == "" {
			t.Fatal("switchboard serve printed no JWKS URL")
		}
	} else if !strings.HasPrefix(jwks, "http://127.0.0.1:8080/") {
		t.Fatalf("default JWKS URL %s", jwks)
	}
	resp, err := http.Get(jwks)
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct{ Kty, Crv, Kid string } `json:"keys"`
	}
	err = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(set.Keys) != 1 || set.Keys[0].Kty != "EC" || set.Keys[0].Crv != "P-256" || set.Keys[0].Kid == "" {
		t.Fatalf("JWKS: %d %+v %v", resp.StatusCode, set, err)
	}
	stop()
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// build builds the binary once for the package's tests.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "switchboard-bin-"); buildErr != nil {
			return
		}
		if out, err := exec.Command("go", "build", "-o", filepath.Join(buildDir, "switchboard"), ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "switchboard")
}

// cleanEnv is the environment without SWITCHBOARD_* variables.
func cleanEnv() []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SWITCHBOARD_") {
			env = append(env, kv)
		}
	}
	return env
}

// TestDemo runs the built binary's `switchboard demo` (on a free port), reads the URL it prints,
// fetches the page and the bot list (the echo bot, no secrets), and stops it with SIGTERM: it
// exits cleanly, its bot too.
func TestDemo(t *testing.T) {
	bin := build(t)
	p, open := startProc(t, bin, append(cleanEnv(), "SWITCHBOARD_LISTEN=127.0.0.1:0"), func(line string) (string, bool) {
		line = strings.TrimSpace(line)
		return line, strings.HasPrefix(line, "http://") && strings.HasSuffix(line, "/?call=echo")
	}, "demo")
	if open == "" {
		t.Fatalf("demo exited: %v\n%s", p.wait(), p.stderr.String())
	}
	base := strings.TrimSuffix(open, "/?call=echo")

	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/?call=echo"); code != 200 || !strings.Contains(body, "/static/js/app.js") {
		t.Errorf("page: %d %.200s", code, body)
	}
	if code, _ := get("/static/js/app.js"); code != 200 {
		t.Errorf("app.js: %d", code)
	}
	code, body := get("/api/bots")
	var bots []map[string]string
	if err := json.Unmarshal([]byte(body), &bots); code != 200 || err != nil || len(bots) != 1 ||
		bots[0]["name"] != "echo" || bots[0]["displayName"] != "Echo" || len(bots[0]) != 2 {
		t.Errorf("/api/bots: %d %s", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz: %d", code)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	p.stop("msg=stopped")
}

// syncBuffer is a bytes.Buffer safe for the writer and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe starts the binary and returns the JWKS URL it prints ("" if it exited first) and a
// function that stops it with SIGTERM and checks a clean exit.
func startServe(t *testing.T, bin string, env []string) (string, func()) {
	t.Helper()
	p, url := startProc(t, bin, env, func(line string) (string, bool) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "JWKS:" {
			return f[1], true
		}
		return "", false
	}, "serve")
	if url == "" {
		p.wait()
		if !strings.Contains(p.stderr.String(), "address already in use") {
			t.Fatalf("switchboard serve failed: %s", p.stderr.String())
		}
		return "", nil
	}
	return url, func() { p.stop("stopped") }
}

// proc is the built binary running one command.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr syncBuffer
	done   chan error // cmd.Wait's result, once stdout is read to its end
}

// startProc runs bin with args and env and returns once a line of its stdout matches (match's
// value for it) or the process has exited (""). It fails the test if neither happens within 60 s.
func startProc(t *testing.T, bin string, env []string, match func(line string) (string, bool), args ...string) (*proc, string) {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(bin, args...), done: make(chan error, 1)}
	p.cmd.Env = env
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		matched := false
		for sc.Scan() {
			if v, ok := match(sc.Text()); ok && !matched {
				matched = true
				found <- v
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		if !matched {
			found <- ""
		}
		p.done <- p.cmd.Wait()
	}()
	select {
	case v := <-found:
		return p, v
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s %s: no output; stderr:\n%s", bin, strings.Join(args, " "), p.stderr.String())
		return nil, ""
	}
}

// wait waits for the process to exit and returns cmd.Wait's error.
func (p *proc) wait() error { return <-p.done }

// stop sends SIGTERM and checks that the process exits cleanly within 60 s, having logged
// stopped.
func (p *proc) stop(stopped string) {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Fatalf("exit after SIGTERM: %v; stderr:\n%s", err, p.stderr.String())
		}
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatal("did not stop on SIGTERM")
	}
	if !strings.Contains(p.stderr.String(), stopped) {
		p.t.Fatalf("no graceful stop:\n%s", p.stderr.String())
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		if buildDir != "" {
			os.RemoveAll(buildDir)
		}
	}))
}
