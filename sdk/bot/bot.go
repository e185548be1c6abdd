// Package bot runs a bot process around the SDK: it reads the settings every bot needs from
// flags (with environment variables as their defaults), starts the media platform, serves the
// calling handler over HTTP and, when its context ends (SIGTERM, Ctrl-C), shuts down in the
// order that lets every call clean up: no new requests, every call's OnCleanup, then the media.
//
// A bot's main is then its per-call logic and a few lines:
//
//	var cfg bot.Config
//	cfg.RegisterFlags(flag.CommandLine)
//	flag.Parse()
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//	defer stop()
//	err := bot.Run(ctx, cfg, func(p *sdk.MediaPlatform, c *sdk.Call) sdk.CallEvents { ... })
//
// With -debug-listen (off by default) it also serves, on a listener of its own, the process's
// Prometheus metrics at /metrics (Config.AudioMetrics, which every audio socket of the bot's
// calls records into, and the Go runtime and process collectors) and net/http/pprof's
// profiles at /debug/pprof/. Neither is authenticated: keep that address on loopback.
//
// Nothing here is required: a bot with its own HTTP server mounts sdk.Handler itself.
package bot

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-rtc/switchboard/sdk"
)

// Environment variables that give the flags their defaults.
const (
	EnvServiceURL    = "SWITCHBOARD_URL"
	EnvAppID         = "BOT_APP_ID"
	EnvAppSecret     = "BOT_APP_SECRET"
	EnvListen        = "BOT_LISTEN"
	EnvPublicURL     = "BOT_PUBLIC_URL"
	EnvMediaIP       = "BOT_MEDIA_IP"
	EnvMediaPort     = "BOT_MEDIA_PORT"
	EnvMediaPublicIP = "BOT_MEDIA_PUBLIC_IP"
	EnvLogFormat     = "BOT_LOG_FORMAT"
	EnvDebugListen   = "BOT_DEBUG_LISTEN"
)

// CallingPath is where Run mounts the calling handler.
const CallingPath = "/api/calling/"

// shutdownTimeout bounds the HTTP server's shutdown.
const shutdownTimeout = 10 * time.Second

// Config is what a bot process needs to know. ServiceURL, AppID and AppSecret are required.
type Config struct {
	// ServiceURL is the calling service's base URL (flag -service, $SWITCHBOARD_URL).
	ServiceURL string
	// AppID is the bot's app id as registered with the service (-app, $BOT_APP_ID).
	AppID string
	// AppSecret is the bot's shared secret, at least 32 bytes (-secret, $BOT_APP_SECRET;
	// prefer the environment: flags show in process listings).
	AppSecret string
	// Listen is the HTTP address the service's requests arrive at (-listen, $BOT_LISTEN);
	// default 127.0.0.1:8081. Port 0 picks a free port.
	Listen string
	// PublicURL is the calling endpoint's URL as the service reaches it (-public-url,
	// $BOT_PUBLIC_URL); default http://<listen address>/api/calling.
	PublicURL string
	// MediaIP is the address the media platform listens on (-media-ip, $BOT_MEDIA_IP); empty
	// means Listen's host when that is one address (127.0.0.1 by default), else every IPv4
	// address.
	MediaIP string
	// MediaPort is the UDP port of every call's media (-media-port, $BOT_MEDIA_PORT); 0 picks
	// a free port.
	MediaPort int
	// MediaPublicIP is the address the service reaches the media port at, behind a 1:1 NAT
	// (-media-public-ip, $BOT_MEDIA_PUBLIC_IP).
	MediaPublicIP string
	// LogFormat is "text" (the default) or "json" (-log, $BOT_LOG_FORMAT); logs go to stderr.
	LogFormat string
	// DebugListen, when set, is the HTTP address that serves /metrics and /debug/pprof/
	// (-debug-listen, $BOT_DEBUG_LISTEN); empty (the default) serves neither. Nothing there is
	// authenticated and profiles reveal the process's internals: keep it on loopback
	// (127.0.0.1:9100). Port 0 picks a free port (logged as "debug listener").
	DebugListen string

	// AudioMetrics measure the bot's audio event cadence; /metrics serves them. Run gives them
	// to the media platform (MediaPlatformSettings.AudioMetrics), so every audio socket of every
	// call records into them; the bot does nothing. RegisterFlags makes them when nil, and so
	// does Run.
	AudioMetrics *sdk.AudioMetrics
	// Logger, when set, replaces the logger LogFormat would make.
	Logger *slog.Logger
	// Handler tunes the calling handler; Run sets its AppID, AppSecret, ServiceURL, PublicURL,
	// NewCall and (unless set) Logger.
	Handler sdk.HandlerConfig
	// OnReady, when set, is called once the bot serves requests, with its calling URL.
	OnReady func(publicURL string)
}

// RegisterFlags defines the Config's flags on fs, with the environment as their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ServiceURL, "service", os.Getenv(EnvServiceURL), "calling service base URL [$"+EnvServiceURL+"]")
	fs.StringVar(&c.AppID, "app", os.Getenv(EnvAppID), "the bot's app id [$"+EnvAppID+"]")
	fs.StringVar(&c.AppSecret, "secret", os.Getenv(EnvAppSecret), "the bot's app secret, 32 bytes or more [$"+EnvAppSecret+"]")
	fs.StringVar(&c.Listen, "listen", envOr(EnvListen, "127.0.0.1:8081"), "HTTP address for the service's requests [$"+EnvListen+"]")
	fs.StringVar(&c.PublicURL, "public-url", os.Getenv(EnvPublicURL), "calling URL as the service reaches it; default http://<listen>/api/calling [$"+EnvPublicURL+"]")
	fs.StringVar(&c.MediaIP, "media-ip", os.Getenv(EnvMediaIP), "address for media; empty: the -listen host, or all IPv4 addresses [$"+EnvMediaIP+"]")
	port, _ := strconv.Atoi(os.Getenv(EnvMediaPort))
	fs.IntVar(&c.MediaPort, "media-port", port, "UDP port for every call's media; 0 picks one [$"+EnvMediaPort+"]")
	fs.StringVar(&c.MediaPublicIP, "media-public-ip", os.Getenv(EnvMediaPublicIP), "public address of the media port behind a 1:1 NAT [$"+EnvMediaPublicIP+"]")
	fs.StringVar(&c.LogFormat, "log", envOr(EnvLogFormat, "text"), "log format on stderr: text or json [$"+EnvLogFormat+"]")
	fs.StringVar(&c.DebugListen, "debug-listen", os.Getenv(EnvDebugListen), "address serving /metrics and /debug/pprof/, unauthenticated: keep it on loopback; empty: off [$"+EnvDebugListen+"]")
	if c.AudioMetrics == nil {
		c.AudioMetrics = sdk.NewAudioMetrics()
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// NewCallFunc makes the bot's events for one call; it runs on the HTTP request's goroutine, so
// it must return quickly (see sdk.HandlerConfig.NewCall). p is the process's media platform, for
// the call's MediaConfiguration.
type NewCallFunc func(p *sdk.MediaPlatform, c *sdk.Call) sdk.CallEvents

// Run starts the bot and serves calls until ctx ends; then it stops taking requests, ends every
// call (each gets its OnCleanup, and the service is told), closes the media platform and
// returns. It returns early with an error when the bot cannot start or its server fails.
func Run(ctx context.Context, cfg Config, newCall NewCallFunc) error {
	log, err := cfg.logger()
	if err != nil {
		return err
	}
	if cfg.ServiceURL == "" || cfg.AppID == "" || cfg.AppSecret == "" {
		return fmt.Errorf("bot: the service URL (-service), app id (-app) and secret (-secret or $%s) are required", EnvAppSecret)
	}
	if newCall == nil {
		return errors.New("bot: newCall is nil")
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("bot: listen on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	if cfg.AudioMetrics == nil {
		cfg.AudioMetrics = sdk.NewAudioMetrics()
	}
	var debug *debugServer
	if cfg.DebugListen != "" {
		if debug, err = startDebug(cfg.DebugListen, cfg.AudioMetrics, log); err != nil {
			return err
		}
		defer debug.close()
	}
	mediaIP := cfg.MediaIP
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); mediaIP == "" && host != "" {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			mediaIP = host // a bot listening on one address has its media there too
		}
	}
	public := cfg.PublicURL
	if public == "" {
		public = "http://" + ln.Addr().String() + strings.TrimSuffix(CallingPath, "/")
	}
	platform, err := sdk.NewMediaPlatform(sdk.MediaPlatformSettings{
		AppID:        cfg.AppID,
		ServiceFQDN:  hostOf(public),
		InternalIP:   mediaIP,
		InternalPort: cfg.MediaPort,
		PublicIP:     cfg.MediaPublicIP,
		Logger:       log,
		AudioMetrics: cfg.AudioMetrics,
	})
	if err != nil {
		return fmt.Errorf("bot: %w", err)
	}
	defer platform.Close()

	hc := cfg.Handler
	hc.AppID, hc.AppSecret, hc.ServiceURL, hc.PublicURL = cfg.AppID, cfg.AppSecret, cfg.ServiceURL, public
	hc.NewCall = func(c *sdk.Call) sdk.CallEvents { return newCall(platform, c) }
	if hc.Logger == nil {
		hc.Logger = log
	}
	h, err := sdk.NewHandler(hc)
	if err != nil {
		return fmt.Errorf("bot: %w", err)
	}
	defer h.Close()

	mux := http.NewServeMux()
	mux.Handle(CallingPath, h)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("bot ready", "app_id", cfg.AppID, "calling_url", public, "media", platform.LocalAddr().String())
	if cfg.OnReady != nil {
		cfg.OnReady(public)
	}

	select {
	case <-ctx.Done():
		log.Info("bot shutting down")
	case err := <-served:
		return fmt.Errorf("bot: serve %s: %w", ln.Addr(), err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	serr := srv.Shutdown(sctx)
	<-served
	_ = h.Close()        // every call's OnCleanup has returned when this does
	_ = platform.Close() // then the media of any call still half set up
	if debug != nil {
		debug.close() // last: the metrics stay readable until the calls have ended
	}
	log.Info("bot stopped")
	if serr != nil {
		return fmt.Errorf("bot: shut the HTTP server down: %w", serr)
	}
	return nil
}

func (c *Config) logger() (*slog.Logger, error) {
	if c.Logger != nil {
		return c.Logger, nil
	}
	switch c.LogFormat {
	case "", "text":
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, nil)), nil
	}
	return nil, fmt.Errorf("bot: log format %q, want text or json", c.LogFormat)
}

// hostOf is the host name of an http(s) URL, or "localhost".
func hostOf(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return "localhost"
	}
	host, _, _ := strings.Cut(rest, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" {
		return "localhost"
	}
	return host
}

// debugServer serves /metrics and /debug/pprof/ on a listener of its own.
type debugServer struct {
	srv    *http.Server
	served chan struct{}
	once   sync.Once
}

// startDebug listens on addr and serves a registry with m and the Go runtime and process
// collectors at /metrics, and the pprof handlers at /debug/pprof/, on a mux of its own.
func startDebug(addr string, m *sdk.AudioMetrics, log *slog.Logger) (*debugServer, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(m); err != nil {
		return nil, fmt.Errorf("bot: register the audio metrics: %w", err)
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bot: debug listen on %s: %w", addr, err)
	}
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().IsLoopback() {
		log.Warn("debug listener is not on loopback: its metrics and profiles are unauthenticated", "addr", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and the named profiles: heap, goroutine, ...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	d := &debugServer{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		served: make(chan struct{}),
	}
	go func() {
		defer close(d.served)
		_ = d.srv.Serve(ln) // returns when close closes it
	}()
	log.Info("debug listener", "metrics", "http://"+ln.Addr().String()+"/metrics", "pprof", "http://"+ln.Addr().String()+"/debug/pprof/")
	return d, nil
}

// close stops the server, cutting off any profile still being taken, and waits for it. It is
// idempotent.
func (d *debugServer) close() {
	d.once.Do(func() {
		_ = d.srv.Close()
		<-d.served
	})
}
