package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"

	"github.com/switchboard-rtc/switchboard/examples/echo/echo"
	"github.com/switchboard-rtc/switchboard/sdk/bot"
	"github.com/switchboard-rtc/switchboard/service"
	"github.com/switchboard-rtc/switchboard/service/config"
)

// demoAppID is the echo bot's app id in the demo.
const demoAppID = "echo"

// demoBot is the echo bot of `switchboard demo`, run by sdk/bot as any bot process runs: its
// own HTTP listener on loopback, its own media port, a secret made at start. It reaches the
// service only over HTTP and WebRTC.
type demoBot struct {
	cancel context.CancelFunc
	done   chan error
}

// startDemoBot starts the echo bot for srv and registers it there once it serves.
func startDemoBot(srv *service.Server, loopback bool, log *slog.Logger) (*demoBot, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate the echo bot's secret: %w", err)
	}
	secret := hex.EncodeToString(key)
	cfg := bot.Config{ServiceURL: srv.URL(), AppID: demoAppID, AppSecret: secret, Listen: "127.0.0.1:0", Logger: log}
	if !loopback {
		cfg.MediaIP = "0.0.0.0" // the service's media does not use loopback: reach the bot on the host's addresses
	}
	ready := make(chan string, 1)
	cfg.OnReady = func(url string) { ready <- url }
	ctx, cancel := context.WithCancel(context.Background())
	d := &demoBot{cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- bot.Run(ctx, cfg, echo.NewCall) }()
	select {
	case url := <-ready:
		if err := srv.AddBot(config.Bot{AppID: demoAppID, Secret: secret, WebhookURL: url, DisplayName: "Echo"}); err != nil {
			_ = d.stop()
			return nil, err
		}
		return d, nil
	case err := <-d.done:
		cancel()
		return nil, fmt.Errorf("start the echo bot: %w", err)
	}
}

// stop ends the bot's calls, stops it and waits. A nil demoBot does nothing.
func (d *demoBot) stop() error {
	if d == nil {
		return nil
	}
	d.cancel()
	return <-d.done
}
