package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/switchboard-rtc/switchboard/examples/echo/echo"
	"github.com/switchboard-rtc/switchboard/service"
	"github.com/switchboard-rtc/switchboard/service/config"
)

// demoAppID is the echo bot's app id in the demo.
const demoAppID = "echo"

// demoBot is the echo bot of `switchboard demo`: its own HTTP listener on loopback, its own
// media port, a secret made at start. Nil methods do nothing, so serve can call them either way.
type demoBot struct {
	ln     net.Listener
	secret string
	url    string
	bot    *echo.Bot
	http   *http.Server
	served chan error
	// loopback: the service's media is loopback-only, so the bot's is too.
	loopback bool
}

// listenDemoBot binds the bot's webhook listener and registers the bot in cfg (before the
// service is built: the registry needs the bot's URL).
func listenDemoBot(cfg *config.Config) (*demoBot, error) {
	for _, b := range cfg.Bots {
		if b.AppID == demoAppID {
			return nil, fmt.Errorf("a bot %q is already configured; the demo registers its own", demoAppID)
		}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate the echo bot's secret: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the echo bot: %w", err)
	}
	d := &demoBot{ln: ln, secret: hex.EncodeToString(key), url: "http://" + ln.Addr().String() + "/api/calling",
		loopback: service.Loopback(*cfg)}
	cfg.Bots = append(cfg.Bots, config.Bot{AppID: demoAppID, Secret: d.secret, WebhookURL: d.url, DisplayName: "Echo"})
	if err := cfg.Validate(); err != nil {
		ln.Close()
		return nil, err
	}
	return d, nil
}

// start makes the bot for the service at serviceURL and serves its webhook.
func (d *demoBot) start(serviceURL string, log *slog.Logger) error {
	mediaIP := ""
	if d.loopback {
		mediaIP = "127.0.0.1"
	}
	var err error
	d.bot, err = echo.New(echo.Config{AppID: demoAppID, Secret: d.secret, ServiceURL: serviceURL, PublicURL: d.url,
		MediaIP: mediaIP, Logger: log})
	if err != nil {
		d.abort()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/calling/", d.bot.Handler())
	d.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	d.served = make(chan error, 1)
	go func() { d.served <- d.http.Serve(d.ln) }()
	log.Info("echo bot listening", "webhook", d.url, "media", d.bot.MediaAddr())
	return nil
}

// abort releases the listener of a bot that never started.
func (d *demoBot) abort() {
	if d != nil && d.http == nil {
		d.ln.Close()
	}
}

// stop stops the bot's HTTP server, then the bot (its calls end), and waits.
func (d *demoBot) stop(ctx context.Context) error {
	if d == nil || d.http == nil {
		d.abort()
		return nil
	}
	err := d.http.Shutdown(ctx)
	if serr := <-d.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, d.bot.Close())
}
