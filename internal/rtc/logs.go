package rtc

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/pion/logging"
)

// LevelTrace is the slog level of pion's trace logs (below slog.LevelDebug).
const LevelTrace = slog.LevelDebug - 4

// NewLoggerFactory returns a pion LoggerFactory that writes pion's logs to log (slog.Default()
// when nil), each with its pion scope as the attribute "pion". Levels: pion's trace is
// LevelTrace; its debug and info (per-connection chatter such as ICE state changes) are
// slog.LevelDebug; warnings and errors keep their level, except the routine ones every
// connection produces while it starts (ICE without a candidate pair yet, RTCP before DTLS is
// up) or closes (a write to a closed pipe or socket, an interceptor or agent that is already
// closed, the end of a stream), which are demoted to slog.LevelDebug. Debug and trace messages
// below the handler's level are not formatted.
func NewLoggerFactory(log *slog.Logger) logging.LoggerFactory {
	return loggerFactory{log: log}
}

type loggerFactory struct{ log *slog.Logger }

// NewLogger implements logging.LoggerFactory.
func (f loggerFactory) NewLogger(scope string) logging.LeveledLogger {
	log := f.log
	if log == nil {
		log = slog.Default()
	}
	return &pionLogger{log: log.With("pion", scope)}
}

// pionLogger is one pion scope's logging.LeveledLogger on slog.
type pionLogger struct{ log *slog.Logger }

func (l *pionLogger) Trace(msg string)                  { l.emit(LevelTrace, false, msg) }
func (l *pionLogger) Tracef(format string, args ...any) { l.emitf(LevelTrace, false, format, args) }
func (l *pionLogger) Debug(msg string)                  { l.emit(slog.LevelDebug, false, msg) }
func (l *pionLogger) Debugf(format string, args ...any) {
	l.emitf(slog.LevelDebug, false, format, args)
}
func (l *pionLogger) Info(msg string)                   { l.emit(slog.LevelDebug, false, msg) }
func (l *pionLogger) Infof(format string, args ...any)  { l.emitf(slog.LevelDebug, false, format, args) }
func (l *pionLogger) Warn(msg string)                   { l.emit(slog.LevelWarn, true, msg) }
func (l *pionLogger) Warnf(format string, args ...any)  { l.emitf(slog.LevelWarn, true, format, args) }
func (l *pionLogger) Error(msg string)                  { l.emit(slog.LevelError, true, msg) }
func (l *pionLogger) Errorf(format string, args ...any) { l.emitf(slog.LevelError, true, format, args) }

func (l *pionLogger) emitf(level slog.Level, demotable bool, format string, args []any) {
	if !demotable && !l.log.Enabled(context.Background(), level) {
		return
	}
	l.emit(level, demotable, fmt.Sprintf(format, args...))
}

func (l *pionLogger) emit(level slog.Level, demotable bool, msg string) {
	if demotable && routine(msg) {
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, msg)
}

// routineNoise are the texts of the warnings and errors pion reports in the normal life of a
// connection: while it starts (ICE has no candidate pair yet, RTCP before DTLS is up) and while
// it closes (interceptors' and transports' last writes and reads meet a closed pipe, socket or
// agent, or the end of a stream).
var routineNoise = []string{
	// starting
	"Connection is not possible yet", // ice: a ping before the first remote candidate (trickle ICE)
	"has not started yet",            // report/twcc: RTCP before the DTLS transport is up
	"no endpoint for packet",         // mux: SRTP before its endpoint is set up (the packet waits in a queue)
	"Incoming unhandled RTCP ssrc",   // pc: a sender report before its track is set up
	// closing
	"closed pipe",                      // io.ErrClosedPipe: RTCP/RTP writes of interceptors after Close
	"use of closed network connection", // net.ErrClosed, and pion's copies of it
	"conn is closed",                   // dtls.ErrConnClosed
	"connection closed",                // webrtc, sctp
	"agent is closed",                  // ice.ErrClosed, ice.ErrAgentClosed
	"interceptor is closed",            // interceptor/pkg/...
	"ICETransport closed",              // webrtc
	"already closed",                   // a second Close
	"(EOF)",                            // webrtc: a stream that ended ("Could not determine PayloadType … (EOF)")
}

// routine reports whether a pion warning or error is routine noise (see routineNoise).
func routine(msg string) bool {
	for _, s := range routineNoise {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
