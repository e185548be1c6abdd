// Command echo is the echo bot: call it and it sends back what it hears and what it sees.
//
//	echo -service http://127.0.0.1:8080 -app echo -secret <32+ bytes> -listen 127.0.0.1:9000
//
// Register it with the service (docs/operator.md) under the same app id and secret, with
// webhookUrl http://127.0.0.1:9000/api/calling. Every flag can also be set in the environment
// (ECHO_LISTEN, ECHO_PUBLIC_URL, ECHO_SERVICE_URL, ECHO_APP_ID, ECHO_SECRET, ECHO_MEDIA_PORT,
// ECHO_MEDIA_IP, ECHO_MEDIA_PUBLIC_IP). It stops cleanly on SIGINT or SIGTERM: calls end, the
// service hears of it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-rtc/switchboard/examples/echo/echo"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

// env returns the environment variable's value, or def.
func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run() error {
	listen := flag.String("listen", env("ECHO_LISTEN", "127.0.0.1:9000"), "HTTP listen address of the calling webhook")
	public := flag.String("public-url", env("ECHO_PUBLIC_URL", ""), "URL the service posts calls to (default http://<listen>/api/calling)")
	service := flag.String("service", env("ECHO_SERVICE_URL", "http://127.0.0.1:8080"), "the service's base URL")
	appID := flag.String("app", env("ECHO_APP_ID", "echo"), "app id, as registered with the service")
	secret := flag.String("secret", env("ECHO_SECRET", ""), "app secret, as registered with the service (32 bytes or more)")
	mediaIP := flag.String("media-ip", env("ECHO_MEDIA_IP", ""), "UDP address for media (default: the listen address's host)")
	mediaPort := flag.String("media-port", env("ECHO_MEDIA_PORT", "0"), "UDP port for media (0: a free port)")
	mediaPublicIP := flag.String("media-public-ip", env("ECHO_MEDIA_PUBLIC_IP", ""), "address the service reaches the media at (1:1 NAT)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	port, err := strconv.Atoi(*mediaPort)
	if err != nil {
		return fmt.Errorf("media port %q: %w", *mediaPort, err)
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", *listen, err)
	}
	if *mediaIP == "" && host != "" && host != "0.0.0.0" {
		*mediaIP = host
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *public == "" {
		*public = "http://" + ln.Addr().String() + "/api/calling"
	}
	bot, err := echo.New(echo.Config{
		AppID: *appID, Secret: *secret, ServiceURL: *service, PublicURL: *public,
		MediaIP: *mediaIP, MediaPort: port, MediaPublicIP: *mediaPublicIP, Logger: log,
	})
	if err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/calling/", bot.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("echo bot ready", "webhook", *public, "media", bot.MediaAddr(), "service", strings.TrimSuffix(*service, "/"))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-served:
		_ = bot.Close()
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, bot.Close())
}
