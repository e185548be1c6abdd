// Package servicetest holds what the calling service's tests share: the configuration of a
// service on loopback, starting one and stopping it when the test ends, serving a bot's
// handler on a listener for the length of a test, building the module's programs once, and
// waiting for what must happen. It is imported by tests only.
package servicetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/service/config"
)

// Liveness bounds waits for things that must happen; never a timing assertion.
const Liveness = 60 * time.Second

// Eventually polls cond until it holds, failing the test with what past Liveness.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Liveness)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Config is the default configuration listening on a free loopback port, with answer and media
// timeouts of 20 s (generous for a busy machine).
func Config() config.Config {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.AnswerTimeout = config.Duration(20 * time.Second)
	cfg.MediaTimeout = config.Duration(20 * time.Second)
	return cfg
}

// Server is what Start needs of a *service.Server.
type Server interface {
	Start()
	Shutdown(ctx context.Context) error
}

// Start starts s and shuts it down when the test ends (an error if that takes more than
// Liveness or fails), then closes the default HTTP client's idle connections.
func Start(t testing.TB, s Server) {
	t.Helper()
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Liveness)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	})
}

// Serve serves h on ln until the test ends; then it shuts that server down, waits for it and
// calls after (if not nil).
func Serve(t testing.TB, ln net.Listener, h http.Handler, after func()) {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Liveness)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
		if after != nil {
			after()
		}
	})
}

// Binaries builds the module's main packages, each once, into a temporary directory. The zero
// value is ready; call Remove from TestMain when the tests are done.
type Binaries struct {
	mu    sync.Mutex
	dir   string
	built map[string]string
}

// Build builds the main package pkg, a path from the module's root ("./examples/echo"), the
// first time it is asked for, and returns the program's path.
func (b *Binaries) Build(t testing.TB, pkg string) string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.built[pkg]; ok {
		return p
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if b.dir == "" {
		if b.dir, err = os.MkdirTemp("", "switchboard-test-bin-"); err != nil {
			t.Fatal(err)
		}
		b.built = make(map[string]string)
	}
	out := filepath.Join(b.dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	b.built[pkg] = out
	return out
}

// Remove deletes the programs built.
func (b *Binaries) Remove() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
		b.dir, b.built = "", nil
	}
}

// moduleRoot is the nearest directory above the working directory with a go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("module root: no go.mod above the working directory")
		}
		dir = parent
	}
}
