package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-rtc/switchboard/service"
	"github.com/switchboard-rtc/switchboard/service/config"
	"github.com/switchboard-rtc/switchboard/service/sfu"
	sbsignal "github.com/switchboard-rtc/switchboard/service/signal"
)

// serveCommand is the name of the hidden subcommand that runs the service for a load run.
const serveCommand = "serve-per-connection"

// serve runs the calling service as `switchboard serve` does (same configuration, bots, call
// layer, SFU, /ws signalling), with two differences for load runs: every peer connection,
// browsers' too, gets its own UDP port from -peer-ports, and /debug/pprof/ is served, so that
// a load run can take the service's CPU profile. docs/load.md says more.
func serve(args []string, stderr io.Writer) int {
	var portRange string
	var rest []string
	for i := 0; i < len(args); i++ {
		if a := args[i]; a == "-peer-ports" || a == "--peer-ports" {
			if i+1 < len(args) {
				portRange = args[i+1]
				i++
			}
			continue
		}
		rest = append(rest, args[i])
	}
	lo, hi, err := parseRange(portRange)
	if err != nil {
		fmt.Fprintln(stderr, "switchboard-load serve:", err)
		return 2
	}
	cfg, err := config.Load(rest, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "switchboard-load serve:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	media, err := sfu.New(sfu.Config{PortMin: lo, PortMax: hi, Loopback: service.Loopback(cfg), Logger: log.With("component", "sfu")})
	if err != nil {
		fmt.Fprintln(stderr, "switchboard-load serve:", err)
		return 1
	}
	defer media.Close()
	srv, err := service.New(cfg, service.Options{Logger: log, Media: media.CallMedia(sfu.BotOptions{})})
	if err != nil {
		fmt.Fprintln(stderr, "switchboard-load serve:", err)
		return 1
	}
	unreport := media.ReportTo(srv.Calls())
	defer unreport()
	sig := sbsignal.NewServer(media, sbsignal.Options{Directory: sbsignal.CallsDirectory{Calls: srv.Calls()}, Logger: log.With("component", "signal")})
	defer sig.Close()
	srv.Handle("/ws", sig)
	srv.Handle("/debug/pprof/", http.HandlerFunc(pprof.Index))
	srv.Handle("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv.Start()
	srv.Describe(stderr)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = sig.Close()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintln(stderr, "switchboard-load serve: shutdown:", err)
		return 1
	}
	return 0
}

func parseRange(s string) (lo, hi uint16, err error) {
	a, b, ok := strings.Cut(s, "-")
	x, err1 := strconv.ParseUint(a, 10, 16)
	y, err2 := strconv.ParseUint(b, 10, 16)
	if !ok || err1 != nil || err2 != nil || x == 0 || x > y {
		return 0, 0, fmt.Errorf("-peer-ports %q: want min-max, e.g. 20000-29999", s)
	}
	return uint16(x), uint16(y), nil
}
