package bot

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/sdk"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testSecret = "bot-package-test-secret-0123456789abcdef"

func TestFlagsTakeTheEnvironment(t *testing.T) {
	t.Setenv(EnvServiceURL, "http://svc.example:8080")
	t.Setenv(EnvAppID, "rec")
	t.Setenv(EnvAppSecret, testSecret)
	t.Setenv(EnvMediaPort, "40000")
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-app", "other", "-listen", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if c.ServiceURL != "http://svc.example:8080" || c.AppID != "other" || c.AppSecret != testSecret || c.MediaPort != 40000 || c.Listen != "127.0.0.1:0" || c.LogFormat != "text" {
		t.Fatalf("%+v", c)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	nc := func(*sdk.MediaPlatform, *sdk.Call) sdk.CallEvents { return sdk.CallEvents{} }
	for name, tc := range map[string]struct {
		cfg Config
		nc  NewCallFunc
	}{
		"no service":   {Config{AppID: "a", AppSecret: testSecret, Logger: quiet}, nc},
		"no secret":    {Config{ServiceURL: "http://127.0.0.1:1", AppID: "a", Logger: quiet}, nc},
		"short secret": {Config{ServiceURL: "http://127.0.0.1:1", AppID: "a", AppSecret: "short", Listen: "127.0.0.1:0", Logger: quiet}, nc},
		"bad listen":   {Config{ServiceURL: "http://127.0.0.1:1", AppID: "a", AppSecret: testSecret, Listen: "nowhere:-1", Logger: quiet}, nc},
		"no newCall":   {Config{ServiceURL: "http://127.0.0.1:1", AppID: "a", AppSecret: testSecret, Logger: quiet}, nil},
		"log format":   {Config{ServiceURL: "http://127.0.0.1:1", AppID: "a", AppSecret: testSecret, LogFormat: "xml"}, nc},
	} {
		if err := Run(context.Background(), tc.cfg, tc.nc); err == nil {
			t.Errorf("%s: Run started", name)
		}
	}
}

// TestRunServesAndStops: the handler is reachable at the calling URL (it refuses an unsigned
// request), and Run returns once its context ends, leaving no goroutine behind.
func TestRunServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			ServiceURL: "http://127.0.0.1:1", AppID: "tester", AppSecret: testSecret, Listen: "127.0.0.1:0",
			Logger:  slog.New(slog.DiscardHandler),
			OnReady: func(url string) { ready <- url },
		}, func(*sdk.MediaPlatform, *sdk.Call) sdk.CallEvents { return sdk.CallEvents{} })
	}()
	var url string
	select {
	case url = <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready")
	}
	if !strings.HasSuffix(url, "/api/calling") {
		t.Fatalf("calling URL %s", url)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post(url+"/call", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	client.CloseIdleConnections()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned call: %s", resp.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:9000/api/calling": "127.0.0.1",
		"https://bot.example.com/x":         "bot.example.com",
		"https://[::1]:8443/":               "::1",
		"nonsense":                          "localhost",
		"http:///path":                      "localhost",
	} {
		if got := hostOf(in); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// freeAddr is a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startRun runs the bot until the returned stop is called; stop returns Run's error.
func startRun(t *testing.T, cfg Config) (callingURL string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	cfg.ServiceURL, cfg.AppID, cfg.AppSecret, cfg.Listen = "http://127.0.0.1:1", "tester", testSecret, "127.0.0.1:0"
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.OnReady = func(url string) { ready <- url }
	go func() {
		done <- Run(ctx, cfg, func(*sdk.MediaPlatform, *sdk.Call) sdk.CallEvents { return sdk.CallEvents{} })
	}()
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return")
			return nil
		}
	}
	select {
	case callingURL = <-ready:
	case err := <-done:
		cancel()
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("not ready")
	}
	return callingURL, stop
}

func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// TestDebugListener: with -debug-listen, /metrics serves the audio events a socket's wrapped
// callback recorded (and the Go runtime's metrics), /debug/pprof/ serves the profiles, and
// both stop with the bot.
func TestDebugListener(t *testing.T) {
	addr := freeAddr(t)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var cfg Config
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"-debug-listen", addr}); err != nil {
		t.Fatal(err)
	}
	if cfg.DebugListen != addr || cfg.AudioMetrics == nil {
		t.Fatalf("flags: %+v", cfg)
	}
	_, stop := startRun(t, cfg)
	onAudio := cfg.AudioMetrics.Wrap(func(sdk.AudioReceivedEvent) {})
	for range 5 {
		onAudio(sdk.AudioReceivedEvent{Dropped: 2})
	}
	client := &http.Client{Timeout: 10 * time.Second}
	code, body := get(t, client, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"switchboard_sdk_audio_events_total 5",
		"switchboard_sdk_audio_dropped_events_total 2",
		"switchboard_sdk_audio_event_interval_seconds_count 4",
		"go_goroutines ",
		"process_",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	code, body = get(t, client, "http://"+addr+"/debug/pprof/")
	if code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Fatalf("/debug/pprof/: %d\n%s", code, body)
	}
	code, _ = get(t, client, "http://"+addr+"/debug/pprof/heap?debug=1")
	if code != http.StatusOK {
		t.Fatalf("/debug/pprof/heap: %d", code)
	}
	client.CloseIdleConnections()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if resp, err := client.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		t.Fatal("the debug listener still serves after Run returned")
	}
}

// TestDebugListenerOffByDefault: without -debug-listen (and $BOT_DEBUG_LISTEN) nothing but the
// calling handler is served; the metrics are not on the calling listener either.
func TestDebugListenerOffByDefault(t *testing.T) {
	t.Setenv(EnvDebugListen, "")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var cfg Config
	cfg.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if cfg.DebugListen != "" {
		t.Fatalf("-debug-listen defaults to %q", cfg.DebugListen)
	}
	url, stop := startRun(t, cfg)
	base := strings.TrimSuffix(url, "/api/calling")
	client := &http.Client{Timeout: 10 * time.Second}
	for _, p := range []string{"/metrics", "/debug/pprof/"} {
		if code, _ := get(t, client, base+p); code != http.StatusNotFound {
			t.Errorf("%s on the calling listener: %d", p, code)
		}
	}
	client.CloseIdleConnections()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestDebugListenRefusesBadAddress(t *testing.T) {
	err := Run(context.Background(), Config{
		ServiceURL: "http://127.0.0.1:1", AppID: "a", AppSecret: testSecret, Listen: "127.0.0.1:0",
		DebugListen: "nowhere:-1", Logger: slog.New(slog.DiscardHandler),
	}, func(*sdk.MediaPlatform, *sdk.Call) sdk.CallEvents { return sdk.CallEvents{} })
	if err == nil || !strings.Contains(err.Error(), "nowhere:-1") {
		t.Fatalf("Run: %v", err)
	}
}
