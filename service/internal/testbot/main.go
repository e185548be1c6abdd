// Command testbot is a minimal bot built only on package sdk, for the service's end-to-end
// tests: it answers every call without media (or rejects it, with -reject), logs every event as
// one JSON line on stdout, and obeys commands read from stdin, one per line:
//
//	end <callId>    end the call from the bot's side
//
// It prints {"event":"listening","url":...} first, and exits when stdin closes or on SIGTERM,
// closing its handler (every call gets its cleanup) and its HTTP server.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-rtc/switchboard/sdk"
)

// line is one event the bot logs.
type line struct {
	Event        string   `json:"event"`
	URL          string   `json:"url,omitempty"`
	CallID       string   `json:"callId,omitempty"`
	State        string   `json:"state,omitempty"`
	Reason       string   `json:"reason,omitempty"`
	Participants []string `json:"participants,omitempty"`
	Error        string   `json:"error,omitempty"`
}

type logger struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (l *logger) log(v line) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.enc.Encode(v)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testbot:", err)
		os.Exit(1)
	}
}

func run() error {
	service := flag.String("service", "", "the service's base URL")
	appID := flag.String("app", "testbot", "app id")
	secret := flag.String("secret", "", "app secret")
	reject := flag.Bool("reject", false, "reject every call")
	flag.Parse()

	out := &logger{enc: json.NewEncoder(os.Stdout)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String() + "/api/calling"

	var mu sync.Mutex
	calls := map[string]*sdk.Call{}
	h, err := sdk.NewHandler(sdk.HandlerConfig{
		AppID: *appID, AppSecret: *secret, ServiceURL: *service, PublicURL: url,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		NewCall: func(c *sdk.Call) sdk.CallEvents {
			id := c.ID()
			mu.Lock()
			calls[id] = c
			mu.Unlock()
			return sdk.CallEvents{
				OnIncomingCall: func(ctx context.Context, in *sdk.IncomingCall) sdk.Workflow {
					out.log(line{Event: "incoming", CallID: id})
					if *reject {
						return sdk.Reject("testbot rejects")
					}
					return sdk.Answer(nil)
				},
				OnCallStateChanged: func(s sdk.CallState, reason string) {
					out.log(line{Event: "state", CallID: id, State: string(s), Reason: reason})
				},
				OnRosterUpdated: func(ps []sdk.Participant) {
					ids := make([]string, len(ps))
					for i, p := range ps {
						ids[i] = p.ID
					}
					out.log(line{Event: "roster", CallID: id, Participants: ids})
				},
				OnOperationCompleted: func(r sdk.OperationResult) {
					l := line{Event: "operation", CallID: id, State: string(r.Type)}
					if r.Err != nil {
						l.Error = r.Err.Error()
					}
					out.log(l)
				},
				OnCleanup: func(reason error) {
					mu.Lock()
					delete(calls, id)
					mu.Unlock()
					l := line{Event: "cleanup", CallID: id}
					if reason != nil {
						l.Reason = reason.Error()
					}
					out.log(l)
				},
			}
		},
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/calling/", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	out.log(line{Event: "listening", URL: url})

	cmds := make(chan string)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
loop:
	for {
		select {
		case <-sigs:
			break loop
		case cmd, ok := <-cmds:
			if !ok {
				break loop
			}
			verb, arg, _ := strings.Cut(strings.TrimSpace(cmd), " ")
			switch verb {
			case "end":
				mu.Lock()
				c := calls[arg]
				mu.Unlock()
				if c == nil {
					out.log(line{Event: "error", CallID: arg, Error: "no such call"})
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := c.EndCall(ctx)
				cancel()
				l := line{Event: "ended", CallID: arg}
				if err != nil {
					l.Error = err.Error()
				}
				out.log(l)
			default:
				out.log(line{Event: "error", Error: "unknown command " + cmd})
			}
		}
	}
	_ = h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	if err := <-served; err != nil && err != http.ErrServerClosed {
		return err
	}
	out.log(line{Event: "exited"})
	return nil
}
