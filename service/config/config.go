// Package config is the calling service's configuration: one JSON file, overridden by
// SWITCHBOARD_* environment variables, overridden by command-line flags. With nothing configured
// the service listens on 127.0.0.1:8080 over plain HTTP with an in-memory signing key and no bots.
//
// Plain HTTP is allowed only on loopback addresses: a configuration that would listen elsewhere
// without a certificate, or deliver to a bot's non-loopback webhook without TLS, is refused by
// Validate with an error that says how to fix it.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults used when neither the file, the environment nor a flag sets a value.
const (
	DefaultListen        = "127.0.0.1:8080"
	DefaultAnswerTimeout = 20 * time.Second
	DefaultMediaTimeout  = 15 * time.Second
	DefaultMediaPortMin  = 40000
	DefaultMediaPortMax  = 40999
	// MaxFileSize bounds the configuration file read by Load.
	MaxFileSize = 1 << 20
)

// ErrInvalid is wrapped by every validation error, so that callers can tell a bad configuration
// from an unreadable file.
var ErrInvalid = errors.New("invalid configuration")

// Config is the service's whole configuration. Its JSON form is the configuration file's.
type Config struct {
	// Listen is the HTTP(S) listen address, host:port. Default 127.0.0.1:8080.
	Listen string `json:"listen,omitempty"`
	// PublicURL is the service's public base URL (scheme and FQDN, e.g. https://sb.example.com).
	// It is the issuer of the service's tokens and the audience of the bots' tokens. Default: the
	// scheme and the listen address actually bound.
	PublicURL string `json:"publicUrl,omitempty"`
	// TLS names the certificate and key files (PEM). Both or neither.
	TLS TLS `json:"tls,omitzero"`
	// MediaPorts is the UDP port range the media server may use (inclusive).
	MediaPorts PortRange `json:"mediaPorts,omitzero"`
	// SigningKeyFile is the PEM file of the service's ES256 signing key. It is generated when the
	// file does not exist. Empty: a fresh in-memory key at every start (bots refetch the JWKS).
	SigningKeyFile string `json:"signingKeyFile,omitempty"`
	// AnswerTimeout bounds the time from placing a call to the bot's answer.
	AnswerTimeout Duration `json:"answerTimeout,omitzero"`
	// MediaTimeout bounds the time from the bot's answer to media connected.
	MediaTimeout Duration `json:"mediaTimeout,omitzero"`
	// WatchConfig, when positive, is how often the configuration file is checked for changes
	// (the bot registry is reloaded when it changed), and the TLS certificate's files (the
	// certificate is reloaded when either changed). SIGHUP always reloads both.
	WatchConfig Duration `json:"watchConfig,omitzero"`
	// Bots are the registered bots.
	Bots []Bot `json:"bots,omitempty"`

	// File is the path the configuration was read from ("" when none). Not part of the file.
	File string `json:"-"`
}

// TLS names a certificate and its key.
type TLS struct {
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
}

// Enabled reports whether a certificate is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// PortRange is an inclusive range of UDP ports.
type PortRange struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// String formats the range as min-max.
func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.Min, r.Max) }

// ParsePortRange parses "min-max" (or a single port).
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, found := strings.Cut(strings.TrimSpace(s), "-")
	if !found {
		hi = lo
	}
	min, err1 := strconv.Atoi(strings.TrimSpace(lo))
	max, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil {
		return PortRange{}, fmt.Errorf("port range %q: want min-max: %w", s, ErrInvalid)
	}
	return PortRange{Min: min, Max: max}, nil
}

// Bot is one registered bot.
type Bot struct {
	// AppID identifies the bot; it is the audience of the service's tokens and the issuer of
	// the bot's.
	AppID string `json:"appId"`
	// Secret is the HS256 key of the bot's tokens (at least 32 bytes).
	Secret string `json:"secret"`
	// WebhookURL is the base of the bot's endpoints (…/call, …/callback, …/notification).
	WebhookURL string `json:"webhookUrl"`
	// DisplayName is the bot's name in rosters. Default: AppID.
	DisplayName string `json:"displayName,omitempty"`
}

// MinSecretLen is the shortest bot secret accepted (the same bound as internal/auth.MinSecretBytes).
const MinSecretLen = 32

// Duration is a time.Duration written as a Go duration string ("20s", "1m30s") in JSON.
type Duration time.Duration

// D returns the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string such as "20s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: want a string such as \"20s\": %w", b, ErrInvalid)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, ErrInvalid)
	}
	*d = Duration(v)
	return nil
}

// Default returns the configuration used when nothing is configured.
func Default() Config {
	return Config{
		Listen:        DefaultListen,
		MediaPorts:    PortRange{Min: DefaultMediaPortMin, Max: DefaultMediaPortMax},
		AnswerTimeout: Duration(DefaultAnswerTimeout),
		MediaTimeout:  Duration(DefaultMediaTimeout),
	}
}

// Parse decodes a configuration file's contents over the defaults. Unknown fields are errors
// (a misspelt key must not be silently ignored). It does not validate.
func Parse(data []byte) (Config, error) {
	c := Default()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("decode configuration: %w", describeJSONError(data, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("decode configuration: trailing data after the JSON object: %w", ErrInvalid)
	}
	return c, nil
}

// describeJSONError adds the line number to a JSON syntax error.
func describeJSONError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
		return fmt.Errorf("line %d: %w (%w)", line, err, ErrInvalid)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q: %w (%w)", te.Field, err, ErrInvalid)
	}
	return fmt.Errorf("%w (%w)", err, ErrInvalid)
}

// ReadFile reads and parses a configuration file (not validated).
func ReadFile(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("read configuration: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("read configuration %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return Config{}, fmt.Errorf("read configuration %s: larger than %d bytes: %w", path, MaxFileSize, ErrInvalid)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	c.File = path
	return c, nil
}

// Env names the environment variables Load reads, with the flag each one stands for.
var Env = map[string]string{
	"SWITCHBOARD_CONFIG":         "config",
	"SWITCHBOARD_LISTEN":         "listen",
	"SWITCHBOARD_PUBLIC_URL":     "public-url",
	"SWITCHBOARD_TLS_CERT":       "tls-cert",
	"SWITCHBOARD_TLS_KEY":        "tls-key",
	"SWITCHBOARD_MEDIA_PORTS":    "media-ports",
	"SWITCHBOARD_SIGNING_KEY":    "signing-key",
	"SWITCHBOARD_ANSWER_TIMEOUT": "answer-timeout",
	"SWITCHBOARD_MEDIA_TIMEOUT":  "media-timeout",
}

// Load builds the configuration of `switchboard serve` from its arguments and environment
// (getenv is os.Getenv in production): defaults, then the file (-config or SWITCHBOARD_CONFIG),
// then SWITCHBOARD_* variables, then flags. The result is validated. Flag usage goes to out.
func Load(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.String("config", "", "configuration file (JSON); env SWITCHBOARD_CONFIG")
	fs.String("listen", "", "listen address host:port (default "+DefaultListen+"); env SWITCHBOARD_LISTEN")
	fs.String("public-url", "", "public base URL, e.g. https://sb.example.com; env SWITCHBOARD_PUBLIC_URL")
	fs.String("tls-cert", "", "TLS certificate file (PEM); env SWITCHBOARD_TLS_CERT")
	fs.String("tls-key", "", "TLS key file (PEM); env SWITCHBOARD_TLS_KEY")
	fs.String("media-ports", "", "UDP media port range min-max; env SWITCHBOARD_MEDIA_PORTS")
	fs.String("signing-key", "", "ES256 signing key file, generated when absent; env SWITCHBOARD_SIGNING_KEY")
	fs.String("answer-timeout", "", "time a bot has to answer a call; env SWITCHBOARD_ANSWER_TIMEOUT")
	fs.String("media-timeout", "", "time from answer to media connected; env SWITCHBOARD_MEDIA_TIMEOUT")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q: %w", fs.Args(), ErrInvalid)
	}
	values := map[string]string{}
	for env, name := range Env {
		if v := getenv(env); v != "" {
			values[name] = v
		}
	}
	fs.Visit(func(f *flag.Flag) { values[f.Name] = f.Value.String() })

	c := Default()
	if path := values["config"]; path != "" {
		var err error
		if c, err = ReadFile(path); err != nil {
			return Config{}, err
		}
	}
	if err := c.apply(values); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// apply sets the values given by flag name.
func (c *Config) apply(values map[string]string) error {
	for name, v := range values {
		switch name {
		case "listen":
			c.Listen = v
		case "public-url":
			c.PublicURL = v
		case "tls-cert":
			c.TLS.CertFile = v
		case "tls-key":
			c.TLS.KeyFile = v
		case "signing-key":
			c.SigningKeyFile = v
		case "media-ports":
			r, err := ParsePortRange(v)
			if err != nil {
				return fmt.Errorf("media-ports: %w", err)
			}
			c.MediaPorts = r
		case "answer-timeout", "media-timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s %q: %w", name, v, ErrInvalid)
			}
			if name == "answer-timeout" {
				c.AnswerTimeout = Duration(d)
			} else {
				c.MediaTimeout = Duration(d)
			}
		}
	}
	return nil
}

// Validate checks the configuration and fills in derived defaults (bot display names).
func (c *Config) Validate() error {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %v: %w", c.Listen, err, ErrInvalid)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("listen address %q: bad port: %w", c.Listen, ErrInvalid)
	}
	if c.TLS.Enabled() && (c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		return fmt.Errorf("tls: both certFile and keyFile are needed: %w", ErrInvalid)
	}
	if !c.TLS.Enabled() && !IsLoopbackHost(host) {
		return fmt.Errorf("listen address %q is not a loopback address: plain HTTP is allowed only on loopback; "+
			"configure tls.certFile and tls.keyFile (flags -tls-cert/-tls-key) or listen on 127.0.0.1: %w", c.Listen, ErrInvalid)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("public URL %q: want scheme://host[:port] with no path: %w", c.PublicURL, ErrInvalid)
		}
		if u.Scheme == "http" && !IsLoopbackHost(u.Hostname()) {
			return fmt.Errorf("public URL %q: plain HTTP is allowed only on loopback; use https: %w", c.PublicURL, ErrInvalid)
		}
		c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	}
	if r := c.MediaPorts; r.Min < 1 || r.Max > 65535 || r.Min > r.Max {
		return fmt.Errorf("media port range %s: want 1 <= min <= max <= 65535: %w", r, ErrInvalid)
	}
	if c.AnswerTimeout <= 0 {
		return fmt.Errorf("answer timeout %v: must be positive: %w", c.AnswerTimeout.D(), ErrInvalid)
	}
	if c.MediaTimeout <= 0 {
		return fmt.Errorf("media timeout %v: must be positive: %w", c.MediaTimeout.D(), ErrInvalid)
	}
	if c.WatchConfig < 0 {
		return fmt.Errorf("watchConfig %v: must not be negative: %w", c.WatchConfig.D(), ErrInvalid)
	}
	return ValidateBots(c.Bots)
}

// ValidateBots checks a bot list: unique non-empty app ids, secrets of at least MinSecretLen
// bytes, absolute webhook URLs (plain HTTP only on loopback). Empty display names become the
// app id.
func ValidateBots(bots []Bot) error {
	seen := make(map[string]bool, len(bots))
	for i := range bots {
		b := &bots[i]
		if b.AppID == "" {
			return fmt.Errorf("bots[%d]: appId is empty: %w", i, ErrInvalid)
		}
		if seen[b.AppID] {
			return fmt.Errorf("bots[%d]: appId %q appears twice: %w", i, b.AppID, ErrInvalid)
		}
		seen[b.AppID] = true
		if len(b.Secret) < MinSecretLen {
			return fmt.Errorf("bot %q: secret shorter than %d bytes: %w", b.AppID, MinSecretLen, ErrInvalid)
		}
		u, err := url.Parse(b.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("bot %q: webhookUrl %q: want an absolute http(s) URL without query: %w", b.AppID, b.WebhookURL, ErrInvalid)
		}
		if u.Scheme == "http" && !IsLoopbackHost(u.Hostname()) {
			return fmt.Errorf("bot %q: webhookUrl %q: plain HTTP is allowed only on loopback; use https: %w", b.AppID, b.WebhookURL, ErrInvalid)
		}
		b.WebhookURL = strings.TrimSuffix(b.WebhookURL, "/")
		if b.DisplayName == "" {
			b.DisplayName = b.AppID
		}
	}
	return nil
}

// IsLoopbackHost reports whether host (no port) is "localhost" or a loopback IP address.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}

// Scheme is "https" with TLS configured, else "http".
func (c *Config) Scheme() string {
	if c.TLS.Enabled() {
		return "https"
	}
	return "http"
}
