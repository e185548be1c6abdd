package bot

import (
	"context"
	"flag"
	"io"
	"log/slog"
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
