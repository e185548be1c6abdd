// Command switchboard is the calling service.
//
//	switchboard serve [flags]   run the service (flags: switchboard serve -h; docs/operator.md)
//	switchboard demo [flags]    run the service and the echo bot, and print the URL to open
//	switchboard version         print the version
//
// serve runs the whole calling service in one process: the bots' REST API, the signing keys,
// the SFU on one UDP port, the browser signalling at /ws, the web page at /, metrics and health.
// It stops gracefully on SIGINT or SIGTERM (calls end with notifications to their bots, browsers
// are told) and reloads the bot registry from the configuration file on SIGHUP.
//
// demo takes serve's flags and adds the echo bot (examples/echo), registered under the app id
// "echo" with a secret generated at start. The bot runs in the same process but as a separate
// component: its own HTTP listener on 127.0.0.1 for the service's webhooks and its own UDP port
// for media, reached over HTTP and WebRTC exactly as a bot on another machine would be.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-rtc/switchboard/service"
	"github.com/switchboard-rtc/switchboard/service/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// shutdownTimeout bounds a graceful shutdown.
const shutdownTimeout = 20 * time.Second

// envMediaPublicIPs overrides the addresses the media server announces (comma-separated IPv4),
// which are otherwise derived from the public URL.
const envMediaPublicIPs = "SWITCHBOARD_MEDIA_PUBLIC_IPS"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr, false)
	case "demo":
		return serve(args[1:], stdout, stderr, true)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "switchboard", versionString())
		return 0
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "switchboard: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  switchboard serve [flags]   run the calling service (switchboard serve -h lists the flags)
  switchboard demo [flags]    run the service with the echo bot and print the URL to open
  switchboard version         print the version
`)
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func serve(args []string, stdout, stderr io.Writer, demo bool) int {
	name := "serve"
	if demo {
		name = "demo"
	}
	cfg, err := config.Load(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchboard %s: %v\n", name, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if demo && slices.ContainsFunc(cfg.Bots, func(b config.Bot) bool { return b.AppID == demoAppID }) {
		fmt.Fprintf(stderr, "switchboard demo: a bot %q is already configured; the demo registers its own\n", demoAppID)
		return 2
	}
	conf := &service.Conferencing{}
	if v := os.Getenv(envMediaPublicIPs); v != "" {
		conf.PublicIPs = strings.Split(v, ",")
	}
	srv, err := service.New(cfg, service.Options{Logger: log, Conferencing: conf})
	if err != nil {
		fmt.Fprintf(stderr, "switchboard %s: %v\n", name, err)
		if errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintf(stderr, "another program (another switchboard?) listens there; choose another address, e.g. "+
				"SWITCHBOARD_LISTEN=127.0.0.1:8090 (with make run too) or -listen 127.0.0.1:8090\n")
		}
		return 1
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(stop)
	defer signal.Stop(hup)

	var bot *demoBot
	if demo {
		if bot, err = startDemoBot(srv, service.Loopback(cfg), log.With("component", "echo")); err != nil {
			fmt.Fprintf(stderr, "switchboard demo: %v\n", err)
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			_ = srv.Shutdown(ctx)
			return 1
		}
	}
	srv.Start()
	srv.Describe(stdout)
	if bot != nil {
		fmt.Fprintf(stdout, "\nThe echo bot is ready. Open this in a browser, allow the microphone and camera, and hear and see yourself:\n\n    %s/?call=echo\n\n", srv.URL())
	}
	for {
		select {
		case <-hup:
			if err := srv.Reload(); err != nil {
				log.Error("reload failed", "err", err)
			}
			continue
		case sig := <-stop:
			log.Info("shutting down", "signal", sig.String())
		}
		break
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	code := 0
	if err := srv.Shutdown(ctx); err != nil {
		log.Error("shutdown incomplete", "err", err)
		code = 1
	}
	if err := bot.stop(); err != nil {
		log.Error("echo bot shutdown incomplete", "err", err)
		code = 1
	}
	if code == 0 {
		log.Info("stopped")
	}
	return code
}
