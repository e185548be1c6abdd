package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const example = `{
  "listen": "127.0.0.1:9000",
  "publicUrl": "https://sb.example.com/",
  "tls": {"certFile": "/etc/sb/cert.pem", "keyFile": "/etc/sb/key.pem"},
  "mediaPorts": {"min": 50000, "max": 50100},
  "signingKeyFile": "/var/lib/sb/signing.pem",
  "answerTimeout": "10s",
  "mediaTimeout": "5s",
  "bots": [{"appId": "echo", "secret": "0123456789abcdef0123456789abcdef", "webhookUrl": "https://bot.example.com/api/calling/"}]
}`

func noenv(string) string { return "" }

func TestLoadDefaults(t *testing.T) {
	c, err := Load(nil, noenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen || c.AnswerTimeout.D() != DefaultAnswerTimeout || c.TLS.Enabled() || len(c.Bots) != 0 {
		t.Fatalf("defaults: %+v", c)
	}
	if c.Scheme() != "http" {
		t.Fatalf("scheme %q", c.Scheme())
	}
}

func TestLoadFileEnvFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sb.json")
	if err := os.WriteFile(path, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SWITCHBOARD_CONFIG": path, "SWITCHBOARD_LISTEN": "127.0.0.1:9100", "SWITCHBOARD_MEDIA_TIMEOUT": "7s"}
	c, err := Load([]string{"-listen", "[::1]:9200"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "[::1]:9200" {
		t.Errorf("flag must win over env: listen %q", c.Listen)
	}
	if c.MediaTimeout.D() != 7*time.Second {
		t.Errorf("env must win over file: media timeout %v", c.MediaTimeout.D())
	}
	if c.AnswerTimeout.D() != 10*time.Second || c.MediaPorts != (PortRange{50000, 50100}) || c.File != path {
		t.Errorf("file values lost: %+v", c)
	}
	if c.PublicURL != "https://sb.example.com" || c.Bots[0].WebhookURL != "https://bot.example.com/api/calling" || c.Bots[0].DisplayName != "echo" {
		t.Errorf("normalisation: %+v", c)
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"plain http on all interfaces", []string{"-listen", ":8080"}, "loopback"},
		{"plain http on public address", []string{"-listen", "192.0.2.1:80"}, "loopback"},
		{"cert without key", []string{"-tls-cert", "c.pem"}, "both"},
		{"bad listen", []string{"-listen", "nope"}, "listen address"},
		{"bad port range", []string{"-media-ports", "9-3"}, "media port range"},
		{"bad timeout", []string{"-answer-timeout", "soon"}, "answer-timeout"},
		{"http public url", []string{"-public-url", "http://sb.example.com"}, "https"},
		{"public url with path", []string{"-public-url", "https://sb.example.com/x"}, "no path"},
		{"stray argument", []string{"extra"}, "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.args, noenv, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want one mentioning %q wrapping ErrInvalid", err, tc.want)
			}
		})
	}
	// TLS makes a non-loopback address acceptable.
	if _, err := Load([]string{"-listen", ":443", "-tls-cert", "c", "-tls-key", "k"}, noenv, io.Discard); err != nil {
		t.Fatal(err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"listen": 1}`, "listen"},
		{`{"lisen": "x"}`, "unknown field"},
		{"{\n\"listen\": }", "line 2"},
		{`{} {}`, "trailing"},
		{`{"answerTimeout": 5}`, "duration"},
		{`{"answerTimeout": "5 parsecs"}`, "duration"},
	} {
		_, err := Parse([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestValidateBots(t *testing.T) {
	good := Bot{AppID: "a", Secret: "0123456789abcdef0123456789abcdef", WebhookURL: "http://127.0.0.1:9/bot"}
	for _, tc := range []struct {
		name string
		mod  func(*Bot)
		want string
	}{
		{"no app id", func(b *Bot) { b.AppID = "" }, "appId is empty"},
		{"short secret", func(b *Bot) { b.Secret = "x" }, "secret"},
		{"relative url", func(b *Bot) { b.WebhookURL = "/bot" }, "webhookUrl"},
		{"http off loopback", func(b *Bot) { b.WebhookURL = "http://bot.example.com/" }, "loopback"},
		{"ftp", func(b *Bot) { b.WebhookURL = "ftp://127.0.0.1/" }, "webhookUrl"},
	} {
		b := good
		tc.mod(&b)
		if err := ValidateBots([]Bot{b}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
	if err := ValidateBots([]Bot{good, good}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate: %v", err)
	}
	if err := ValidateBots([]Bot{good}); err != nil {
		t.Error(err)
	}
}

func TestReadFileTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(path, []byte(`{"listen":"`+strings.Repeat("x", MaxFileSize)+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing.json")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"bots":[{"appId":"x","secret":"0123456789abcdef0123456789abcdef","webhookUrl":"http://[::1]:1/"}],"watchConfig":"1s"}`))
	f.Add([]byte(`{"mediaPorts":{"min":-1,"max":70000},"listen":"[::1]:0"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		_ = c.Validate() // must not panic
	})
}
