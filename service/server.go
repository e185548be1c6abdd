// Package service ties the calling service together: configuration, bot registry, signing key,
// webhook dispatcher, call control and the HTTP API, in one Server with Start and Shutdown; with
// Options.Conferencing also the SFU (the calls' media), the browser signalling at /ws, the web
// page at / and the list of bots the page offers at /api/bots.
//
// A Server owns its listener, its HTTP server, its Prometheus registry, the dispatcher's and the
// call manager's goroutines, the SFU and the signalling server, and the configuration watcher;
// Shutdown ends every call (the bots get their terminated notifications, the browsers are told),
// drains the webhook queues and stops them all.
package service

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/internal/webhook"
	"github.com/switchboard-rtc/switchboard/service/api"
	"github.com/switchboard-rtc/switchboard/service/bots"
	"github.com/switchboard-rtc/switchboard/service/calls"
	"github.com/switchboard-rtc/switchboard/service/config"
	"github.com/switchboard-rtc/switchboard/service/sfu"
)

// Options are the parts of a Server that are not configuration.
type Options struct {
	// Logger receives the service's logs [slog.Default()].
	Logger *slog.Logger
	// Media is the media server; nil makes every call signalling-only unless Conferencing is
	// set.
	Media calls.Media
	// Conferencing, when set, runs the SFU (then the calls' media; Media must be nil), the
	// browser signalling and the web page in the Server: the whole calling service.
	Conferencing *Conferencing
	// OnCallState observes call state changes (see calls.Options).
	OnCallState func(calls.CallInfo)
	// Webhook tunes the dispatcher (Signer, Logger and Metrics are set by the Server).
	Webhook webhook.Options
}

// Server is one calling service node.
type Server struct {
	cfg  config.Config
	log  *slog.Logger
	ln   net.Listener
	url  string
	http *http.Server
	mux  *http.ServeMux

	registry   *bots.Registry
	signer     *auth.Signer
	dispatcher *webhook.Dispatcher
	manager    *calls.Manager
	metrics    *prometheus.Registry
	media      *conferencing // nil without conferencing
	cert       *certificate  // the HTTPS listener's; nil without TLS

	watchStop chan struct{}
	watchWG   sync.WaitGroup
	serveWG   sync.WaitGroup
	reloadMu  sync.Mutex
	lastConf  []byte
	fileBots  []config.Bot // the configured bots
	extraBots []config.Bot // bots added with AddBot

	startOnce, stopOnce sync.Once
	stopErr             error
}

// New validates cfg, loads (or creates) the signing key, binds the listen address and builds the
// service. Nothing is served until Start.
func New(cfg config.Config, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, log: log, watchStop: make(chan struct{}), metrics: prometheus.NewRegistry(), fileBots: cfg.Bots}
	var err error
	if s.registry, err = bots.New(cfg.Bots); err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(cfg.SigningKeyFile, log)
	if err != nil {
		return nil, err
	}
	var tlsConf *tls.Config
	if cfg.TLS.Enabled() {
		if s.cert, err = loadCertificate(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
			return nil, err
		}
		tlsConf = &tls.Config{GetCertificate: s.cert.get, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	s.ln = ln
	if tlsConf != nil {
		s.ln = tls.NewListener(ln, tlsConf)
	}
	s.url = cfg.PublicURL
	if s.url == "" {
		s.url = cfg.Scheme() + "://" + ln.Addr().String()
	}
	if err := s.build(key, opts); err != nil {
		s.media.close()
		ln.Close()
		return nil, err
	}
	if cfg.File != "" {
		s.lastConf, _ = os.ReadFile(cfg.File)
	}
	return s, nil
}

func (s *Server) build(key *auth.Key, opts Options) error {
	var err error
	if s.signer, err = auth.NewSigner(auth.SignerConfig{Issuer: s.url, Key: key}); err != nil {
		return err
	}
	verifier, err := auth.NewBotVerifier(auth.BotVerifierConfig{Audience: s.url})
	if err != nil {
		return err
	}
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mediaSeam := opts.Media
	if opts.Conferencing != nil {
		if opts.Media != nil {
			return errMediaConflict
		}
		if s.media, err = s.startMedia(*opts.Conferencing); err != nil {
			return err
		}
		mediaSeam = s.media.sfu.CallMedia(sfu.BotOptions{})
	}
	wm, err := webhook.NewPrometheusMetrics(s.metrics)
	if err != nil {
		return err
	}
	wopts := opts.Webhook
	wopts.Signer, wopts.Metrics, wopts.Logger = s.signer, wm, s.log.With("component", "webhook")
	if s.dispatcher, err = webhook.New(wopts); err != nil {
		return err
	}
	s.manager, err = calls.New(calls.Options{
		Bots: s.registry, Bus: s.dispatcher, Media: mediaSeam,
		AnswerTimeout: s.cfg.AnswerTimeout.D(), MediaTimeout: s.cfg.MediaTimeout.D(),
		OnCallState: opts.OnCallState, Logger: s.log.With("component", "calls"),
	})
	if err != nil {
		s.dispatcher.Close()
		return err
	}
	s.metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchboard_calls_active", Help: "Bot calls that have not terminated.",
	}, func() float64 { n, _ := s.manager.Stats(); return float64(n) }))
	s.metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchboard_conferences_active", Help: "Open conferences, one-to-one calls included.",
	}, func() float64 { _, n := s.manager.Stats(); return float64(n) }))
	s.mux, err = api.New(api.Options{
		Calls: s.manager, Verifier: verifier, JWKS: s.signer, Logger: s.log.With("component", "api"),
		Secret: func(appID string) ([]byte, bool) {
			b, err := s.registry.Lookup(appID)
			return b.Secret, err == nil
		},
		Metrics: promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{Registry: s.metrics}),
	}, nil)
	if err != nil {
		s.manager.Close()
		s.dispatcher.Close()
		return err
	}
	s.mux.HandleFunc("GET /api/bots", s.serveBots)
	if s.media != nil {
		s.media.attach(s, opts.Conferencing.Grace)
	}
	s.http = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return nil
}

// loadOrCreateKey reads the signing key file, creating it with a new key when it does not exist;
// path "" makes an in-memory key.
func loadOrCreateKey(path string, log *slog.Logger) (*auth.Key, error) {
	if path == "" {
		return auth.GenerateKey()
	}
	key, err := auth.LoadKeyFile(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if key, err = auth.GenerateKey(); err != nil {
		return nil, err
	}
	data, err := key.MarshalPEM()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create signing key directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create signing key %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("write signing key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write signing key %s: %w", path, err)
	}
	log.Info("signing key created", "file", path, "kid", key.ID())
	return key, nil
}

// URL is the service's public base URL (its token issuer).
func (s *Server) URL() string { return s.url }

// JWKSURL is where the service's public keys are served.
func (s *Server) JWKSURL() string { return s.url + protocol.JWKSPath }

// Addr is the bound listen address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Calls is the call control, for the browser signalling layer and the media server.
func (s *Server) Calls() *calls.Manager { return s.manager }

// Bots is the bot registry.
func (s *Server) Bots() *bots.Registry { return s.registry }

// Metrics is the Server's Prometheus registry (served on /metrics); other layers register
// their collectors on it.
func (s *Server) Metrics() *prometheus.Registry { return s.metrics }

// Handle adds a route to the Server's mux (the browser page, signalling). Call it before Start.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Describe writes what the Server serves, for an operator.
func (s *Server) Describe(w io.Writer) {
	fmt.Fprintf(w, "switchboard listening on %s (%s)\n", s.ln.Addr(), s.cfg.Scheme())
	if s.media != nil {
		fmt.Fprintf(w, "  page:    %s/\n", s.url)
		if r := s.MediaPorts(); r.Max > 0 {
			host := "every interface"
			if s.media.loopback {
				host = "127.0.0.1"
			}
			port := 0
			if a, ok := s.MediaAddr().(*net.UDPAddr); ok {
				port = a.Port
			}
			fmt.Fprintf(w, "  media:   UDP ports %s on %s: %d shared by browsers, one per bot call", r, host, port)
		} else {
			fmt.Fprintf(w, "  media:   UDP %s, shared by every connection", s.MediaAddr())
		}
		if s.media.loopback {
			fmt.Fprint(w, " (loopback only)")
		}
		if len(s.media.public) > 0 {
			fmt.Fprintf(w, ", announced as %s", strings.Join(s.media.public, ", "))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  JWKS:    %s\n", s.JWKSURL())
	fmt.Fprintf(w, "  metrics: %s/metrics\n", s.url)
	ids := s.registry.AppIDs()
	if len(ids) == 0 {
		fmt.Fprintf(w, "  bots:    none registered (add them to a configuration file: see docs/operator.md)\n")
	}
	for _, id := range ids {
		b, _ := s.registry.Lookup(id)
		fmt.Fprintf(w, "  bot:     %s → %s", id, b.WebhookURL)
		if s.media != nil {
			fmt.Fprintf(w, " (call it: %s/?call=%s)", s.url, url.QueryEscape(id))
		}
		fmt.Fprintln(w)
	}
}

// Start serves HTTP(S) on the bound listener, and watches the configuration file when
// configured. It returns at once; Shutdown stops it.
func (s *Server) Start() {
	s.startOnce.Do(func() {
		s.serveWG.Add(1)
		go func() {
			defer s.serveWG.Done()
			if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("HTTP server stopped", "err", err)
			}
		}()
		if (s.cfg.File != "" || s.cert != nil) && s.cfg.WatchConfig > 0 {
			s.watchWG.Add(1)
			go s.watch(s.cfg.WatchConfig.D())
		}
	})
}

// Reload rereads the TLS certificate and key files, and the configuration file, whose bot list
// it swaps in (atomically: calls in flight keep the bot entry they started with). Other settings
// need a restart. An invalid file changes nothing: the certificate and the bots in use stay.
func (s *Server) Reload() error {
	var certErr error
	if s.cert != nil {
		if _, certErr = s.cert.reload(true); certErr == nil {
			s.log.Info("TLS certificate reloaded", "file", s.cfg.TLS.CertFile)
		}
	}
	if s.cfg.File == "" {
		if s.cert != nil {
			return certErr
		}
		return errors.New("reload: no configuration file")
	}
	return errors.Join(certErr, s.reloadBots())
}

// reloadBots rereads the configuration file and swaps in its bot list.
func (s *Server) reloadBots() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	data, err := os.ReadFile(s.cfg.File)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	c, err := config.ReadFile(s.cfg.File)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if err := s.registry.Replace(append(slices.Clone(c.Bots), s.extraBots...)); err != nil {
		return fmt.Errorf("reload %s: %w", s.cfg.File, err)
	}
	s.fileBots = c.Bots
	s.lastConf = data
	s.log.Info("bot registry reloaded", "file", s.cfg.File, "bots", s.registry.AppIDs())
	return nil
}

// AddBot registers a bot beside the configured ones; it stays registered across reloads (the
// demo's echo bot). An app id that is already registered is an error.
func (s *Server) AddBot(b config.Bot) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	extra := append(slices.Clone(s.extraBots), b)
	if err := s.registry.Replace(append(slices.Clone(s.fileBots), extra...)); err != nil {
		return fmt.Errorf("add bot %q: %w", b.AppID, err)
	}
	s.extraBots = extra
	return nil
}

// watch reloads the bots when the configuration file's contents change, and the TLS
// certificate when its files change.
func (s *Server) watch(every time.Duration) {
	defer s.watchWG.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.watchStop:
			return
		case <-t.C:
		}
		if s.cert != nil {
			if changed, err := s.cert.reload(false); err != nil {
				s.log.Error("TLS certificate files changed but not reloaded", "err", err)
			} else if changed {
				s.log.Info("TLS certificate reloaded", "file", s.cfg.TLS.CertFile)
			}
		}
		if s.cfg.File == "" {
			continue
		}
		data, err := os.ReadFile(s.cfg.File)
		s.reloadMu.Lock()
		changed := err == nil && !bytes.Equal(data, s.lastConf)
		if changed {
			s.lastConf = data // a bad file is reported once, not every tick
		}
		s.reloadMu.Unlock()
		if changed {
			if err := s.reloadBots(); err != nil {
				s.log.Error("configuration changed but not reloaded", "err", err)
			}
		}
	}
}

// Shutdown ends every call (the bots get terminated notifications), ends the browsers' sessions
// (they are told), drains the webhook queues, stops the HTTP server, closes the SFU and waits for
// every goroutine the Server started, or for ctx (then the rest is abandoned and cancelled). It
// is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		close(s.watchStop)
		s.watchWG.Wait()
		errs := []error{s.manager.Shutdown(ctx)}
		if s.media != nil && s.media.signal != nil {
			_ = s.media.signal.Close() // browsers leave; one-to-one calls end with them
		}
		errs = append(errs, s.dispatcher.Shutdown(ctx))
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("HTTP shutdown: %w", err))
			s.http.Close()
		}
		s.ln.Close() // when Start was never called
		s.serveWG.Wait()
		s.media.close()
		s.manager.Close()
		s.dispatcher.Close()
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}
