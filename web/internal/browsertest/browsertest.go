// Package browsertest drives headless Chromium for the web page's end-to-end tests: it finds
// the browser (skipping the test when it is missing, failing it under CI), starts one per test
// in a fresh profile with fake camera and microphone, opens tabs, evaluates JavaScript in them,
// takes screenshots, and makes sure no browser process outlives the test. It also provides a
// TCP relay whose connections a test can cut, to drop the page's WebSocket as a network would,
// and Probe, JavaScript that measures what a page hears and sees.
package browsertest

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Liveness bounds every wait for something that should happen: generous, because the machine
// may be loaded; a test fails only when the thing does not happen at all.
const Liveness = 30 * time.Second

// Probe is JavaScript that installs window.sbProbe in a page: beep onsets and peak levels of
// the local microphone and of each remote audio stream (an AudioWorklet on one AudioContext, so
// that the times compare), and a fingerprint of what a <video> shows. Evaluate it in the page
// (it is idempotent), then call its functions; probe.js documents them.
//
//go:embed probe.js
var Probe string

// Chromium returns the browser's path: /usr/bin/chromium, or chromium (or chromium-browser) in
// PATH. When there is none it skips the test, but fails it when the environment variable CI is
// set (CI installs the browser).
func Chromium(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium is not installed (/usr/bin/chromium, or chromium in PATH), and CI needs the browser tests")
	}
	t.Skip("Chromium is not installed (/usr/bin/chromium, or chromium in PATH): browser tests skipped")
	return ""
}

// Options choose how a browser starts.
type Options struct {
	// RealPermissions leaves out --use-fake-ui-for-media-stream: the browser then asks about
	// the camera and microphone, and headless, nobody answers: the page is denied them
	// (NotAllowedError).
	RealPermissions bool
}

// Browser is one Chromium process with a profile of its own. Its tabs share the process.
type Browser struct {
	t      *testing.T
	ctx    context.Context // the browser's first tab
	dir    string          // the profile, unique to this browser
	cancel context.CancelFunc
	tabs   int
}

// Launch starts Chromium for t with the flags known to work for WebRTC on loopback. The
// browser is killed, and any process of its left behind too, when the test ends.
func Launch(t *testing.T, opts Options) *Browser {
	t.Helper()
	path := Chromium(t)
	dir, err := os.MkdirTemp("", "switchboard-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	flags := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("headless", "new"),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(dir),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.WindowSize(1280, 800),
	}
	if !opts.RealPermissions {
		flags = append(flags, chromedp.Flag("use-fake-ui-for-media-stream", true))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), flags...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	b := &Browser{t: t, ctx: ctx, dir: dir, cancel: func() { cancelCtx(); cancelAlloc() }}
	t.Cleanup(b.close)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`1`)); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return b
}

// close kills the browser, then whatever of it is left, and removes its profile.
func (b *Browser) close() {
	b.cancel()
	if n := killProcessesUsing(b.dir); n > 0 {
		b.t.Logf("killed %d Chromium processes left behind", n)
		deadline := time.Now().Add(5 * time.Second)
		for killProcessesUsing(b.dir) > 0 {
			if time.Now().After(deadline) {
				b.t.Errorf("Chromium processes of %s survive SIGKILL", b.dir)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	_ = os.RemoveAll(b.dir)
}

// killProcessesUsing kills the processes started with the profile dir (Chromium passes
// --user-data-dir to its helpers) and returns how many there were.
func killProcessesUsing(dir string) int {
	want := []byte("--user-data-dir=" + dir)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
			if bytes.Equal(arg, want) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				n++
				break
			}
		}
	}
	return n
}

// Page is one tab. The test fails when the page throws an exception it does not catch (the
// messages are logged as they happen).
type Page struct {
	t    *testing.T
	ctx  context.Context
	name string

	mu     sync.Mutex
	thrown []string
}

// listen logs the page's uncaught exceptions and console errors, and keeps the exceptions.
func (p *Page) listen() error {
	return chromedp.Listen(p.ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			msg = fmt.Sprintf("%s (%s:%d)", msg, d.URL, d.LineNumber+1)
			p.mu.Lock()
			p.thrown = append(p.thrown, msg)
			p.mu.Unlock()
			p.t.Logf("%s: uncaught: %s", p.name, msg)
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.ConsoleAPICalledTypeError {
				return
			}
			var parts []string
			for _, a := range ev.Args {
				if a.Description != "" {
					parts = append(parts, a.Description)
				} else {
					parts = append(parts, string(a.Value))
				}
			}
			p.t.Logf("%s: console error: %s", p.name, strings.Join(parts, " "))
		}
	})
}

// check fails the test if the page threw.
func (p *Page) check() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.thrown) > 0 {
		p.t.Errorf("%s: the page threw %d uncaught exceptions, first: %s", p.name, len(p.thrown), p.thrown[0])
	}
}

// Open opens url in a new tab (the first call uses the browser's first tab). Each script of
// init runs in the page before its own scripts do, on this and every later navigation.
func (b *Browser) Open(name, url string, init ...string) *Page {
	b.t.Helper()
	ctx := b.ctx
	if b.tabs > 0 {
		var cancel context.CancelFunc
		ctx, cancel = chromedp.NewContext(b.ctx)
		b.t.Cleanup(cancel)
	}
	b.tabs++
	p := &Page{t: b.t, ctx: ctx, name: name}
	if err := p.listen(); err != nil {
		b.t.Fatalf("%s: listen to the page: %v", name, err)
	}
	b.t.Cleanup(p.check)
	for _, src := range init {
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
			b.t.Fatalf("%s: add init script: %v", name, err)
		}
	}
	if _, err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("%s: open %s: %v", name, url, err)
	}
	return p
}

// Name is the name the test gave the page.
func (p *Page) Name() string { return p.name }

// Eval evaluates expr in p (awaiting it when it is a promise) and decodes its value into T. It
// fails the test on an error.
func Eval[T any](p *Page, expr string) T {
	p.t.Helper()
	v, err := TryEval[T](p, expr)
	if err != nil {
		p.t.Fatalf("%s: evaluate %.120q: %v", p.name, expr, err)
	}
	return v
}

// TryEval is Eval returning the error.
func TryEval[T any](p *Page, expr string) (T, error) {
	return eval[T](p, expr, false)
}

func eval[T any](p *Page, expr string, gesture bool) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, Liveness)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise, func(e *runtime.EvaluateParams) {
		e.UserGesture = &gesture
	}))
}

// Run evaluates expr in p as Eval does, ignoring its value.
func (p *Page) Run(expr string) {
	p.t.Helper()
	Eval[chromedp.Void](p, expr)
}

// Gesture evaluates expr in p as Run does, as if the user had clicked just before: the page
// then has the user activation that lets it start sound.
func (p *Page) Gesture(expr string) {
	p.t.Helper()
	if _, err := eval[chromedp.Void](p, expr, true); err != nil {
		p.t.Fatalf("%s: evaluate %.120q: %v", p.name, expr, err)
	}
}

// Click clicks the middle of the page's header, as a user would (a real input event).
func (p *Page) Click() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, Liveness)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.MouseClickXY(640, 20)); err != nil {
		p.t.Fatalf("%s: click: %v", p.name, err)
	}
}

// Wait evaluates expr in p until it is true, polling, for at most Liveness; it fails the test
// then, with what and the value of explain (an expression saying what the page has instead).
func (p *Page) Wait(what, expr, explain string) {
	p.t.Helper()
	deadline := time.Now().Add(Liveness)
	for {
		ok, err := TryEval[bool](p, "Boolean("+expr+")")
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			got := "?"
			if explain != "" {
				if v, err := TryEval[string](p, "JSON.stringify("+explain+")"); err == nil {
					got = v
				}
			}
			p.t.Fatalf("%s: timed out waiting for %s (last error %v; page has %s)", p.name, what, err, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Screenshot saves a PNG of what the tab shows to path.
func (p *Page) Screenshot(path string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, Liveness)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("%s: screenshot saved to %s", p.name, path)
}

// Artifacts is the directory test artefacts (screenshots) go to: $SWITCHBOARD_ARTIFACTS,
// created when missing, or a temporary directory of the test.
func Artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SWITCHBOARD_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artefacts directory: %v", err)
	}
	return dir
}

// Quote makes s a JavaScript string literal.
func Quote(s string) string {
	return strconv.Quote(strings.ToValidUTF8(s, "\uFFFD"))
}
