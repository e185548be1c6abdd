// Command echo is the echo bot: call it and it sends back what it hears and what it sees.
//
//	BOT_APP_SECRET=<32 bytes or more> echo -service http://127.0.0.1:8080 -listen 127.0.0.1:9000
//
// Register it with the service under the same app id ("echo" unless -app says otherwise) and
// secret, with webhookUrl http://127.0.0.1:9000/api/calling (docs/operator.md). Flags and their
// environment variables (echo -h): -listen ($BOT_LISTEN), -public-url ($BOT_PUBLIC_URL), -service
// ($SWITCHBOARD_URL), -app ($BOT_APP_ID), -secret ($BOT_APP_SECRET), -media-port
// ($BOT_MEDIA_PORT), -media-ip, -media-public-ip, -debug-listen ($BOT_DEBUG_LISTEN: /metrics and
// /debug/pprof/ on a loopback address). It stops cleanly on SIGINT or SIGTERM: every
// call ends and the service is told.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-rtc/switchboard/examples/echo/echo"
	"github.com/switchboard-rtc/switchboard/sdk/bot"
)

func main() {
	var cfg bot.Config
	cfg.RegisterFlags(flag.CommandLine)
	flag.Parse()
	if cfg.AppID == "" {
		cfg.AppID = "echo"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bot.Run(ctx, cfg, echo.NewCall); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}
