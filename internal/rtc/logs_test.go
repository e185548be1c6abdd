package rtc_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
)

// recorder is a slog.Handler that keeps what it is given.
type recorder struct {
	level slog.Level
	mu    sync.Mutex
	recs  []string // "LEVEL scope msg"
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	scope := ""
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "pion" {
			scope = a.Value.String()
		}
		return true
	})
	r.recs = append(r.recs, rec.Level.String()+" "+scope+" "+rec.Message)
	return nil
}
func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler { return &withAttrs{r, as} }
func (r *recorder) WithGroup(string) slog.Handler         { return r }

type withAttrs struct {
	*recorder
	attrs []slog.Attr
}

func (w *withAttrs) Handle(ctx context.Context, rec slog.Record) error {
	rec.AddAttrs(w.attrs...)
	return w.recorder.Handle(ctx, rec)
}

// counted counts the times it is formatted.
type counted struct{ n *int }

func (c counted) String() string { *c.n++; return "x" }

// TestLoggerFactoryLevels: pion's levels map onto slog's; the routine warnings and errors of a
// starting or closing connection are demoted to debug, other errors and warnings are not; nothing below the handler's level is
// formatted.
func TestLoggerFactoryLevels(t *testing.T) {
	rec := &recorder{level: rtc.LevelTrace}
	l := rtc.NewLoggerFactory(slog.New(rec)).NewLogger("twcc_sender_interceptor")
	l.Error("io: read/write on closed pipe")
	l.Errorf("write rtcp: %v", "use of closed network connection")
	l.Warnf("ice: %s", "the agent is closed")
	l.Warn("Failed to ping without candidate pairs. Connection is not possible yet.")
	l.Warnf("failed sending: %s", "the DTLS transport has not started yet")
	l.Warnf("Could not determine PayloadType for SSRC %d (%v)", 7, "EOF")
	l.Warnf("Warning: mux: no endpoint for packet starting with %d, adding to queue size(%d)", 144, 0)
	l.Error("dtls: handshake failed: bad certificate")
	l.Warn("undeclared SSRC 1234")
	l.Info("ICE connection state changed: checking")
	l.Debugf("candidate %d", 3)
	l.Trace("tick")
	want := []string{
		"DEBUG twcc_sender_interceptor io: read/write on closed pipe",
		"DEBUG twcc_sender_interceptor write rtcp: use of closed network connection",
		"DEBUG twcc_sender_interceptor ice: the agent is closed",
		"DEBUG twcc_sender_interceptor Failed to ping without candidate pairs. Connection is not possible yet.",
		"DEBUG twcc_sender_interceptor failed sending: the DTLS transport has not started yet",
		"DEBUG twcc_sender_interceptor Could not determine PayloadType for SSRC 7 (EOF)",
		"DEBUG twcc_sender_interceptor Warning: mux: no endpoint for packet starting with 144, adding to queue size(0)",
		"ERROR twcc_sender_interceptor dtls: handshake failed: bad certificate",
		"WARN twcc_sender_interceptor undeclared SSRC 1234",
		"DEBUG twcc_sender_interceptor ICE connection state changed: checking",
		"DEBUG twcc_sender_interceptor candidate 3",
		"DEBUG-4 twcc_sender_interceptor tick",
	}
	if !slices.Equal(rec.recs, want) {
		t.Fatalf("records:\n%q\nwant\n%q", rec.recs, want)
	}

	quiet := &recorder{level: slog.LevelInfo}
	l = rtc.NewLoggerFactory(slog.New(quiet)).NewLogger("ice")
	n := 0
	l.Debugf("%v", counted{&n})
	l.Infof("%v", counted{&n})
	l.Tracef("%v", counted{&n})
	l.Errorf("io: read/write on closed pipe %v", counted{&n}) // formatted to be classified, then dropped
	if n != 1 || len(quiet.recs) != 0 {
		t.Fatalf("at info level: %d formatted, records %q", n, quiet.recs)
	}
}

// scopes is a LoggerFactory that records the scopes it makes loggers for.
type scopes struct {
	mu   sync.Mutex
	seen []string
}

func (s *scopes) NewLogger(scope string) logging.LeveledLogger {
	s.mu.Lock()
	s.seen = append(s.seen, scope)
	s.mu.Unlock()
	return rtc.NewLoggerFactory(slog.New(slog.DiscardHandler)).NewLogger(scope)
}

// TestInterceptorsLogThroughFactory: the interceptors (NACK, reports, TWCC) take their loggers
// from the factory given, and NewAPI gives them the setting engine's (pion's defaults would
// print to stderr).
func TestInterceptorsLogThroughFactory(t *testing.T) {
	f := &scopes{}
	reg, err := rtc.NewInterceptorRegistryWithLogs(f)
	if err != nil {
		t.Fatal(err)
	}
	ic, err := reg.Build("pc")
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	for _, scope := range []string{"twcc_sender_interceptor", "nack_generator", "nack_responder", "receiver_interceptor", "sender_interceptor"} {
		if !slices.Contains(f.seen, scope) {
			t.Errorf("no logger for %s from the factory (got %v)", scope, f.seen)
		}
	}

	se := rtc.ServiceSettingEngine(true)
	api := &scopes{}
	se.LoggerFactory = api
	a, err := rtc.NewAPI(se)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := a.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	_ = pc.Close()
	api.mu.Lock()
	defer api.mu.Unlock()
	if !slices.Contains(api.seen, "twcc_sender_interceptor") || !slices.Contains(api.seen, "ice") {
		t.Errorf("NewAPI: the setting engine's factory made loggers for %v, want the interceptors' and ICE's", api.seen)
	}
}
