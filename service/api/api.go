// Package api is the calling service's HTTP surface for bots and operators: the bots' REST API
// (/v1, docs/protocol.md), the service's signing keys (/.well-known/jwks.json), Prometheus
// metrics (/metrics) and a health check (/healthz).
//
// Every /v1 request must carry a bot's HS256 token (internal/auth): a missing, malformed, badly
// signed or expired token is 401, a replayed one or one for another audience 403, and the request
// then changes nothing. Bodies are bounded (413), strictly decoded by internal/protocol (400) and
// errors are JSON bodies {"error":{"code","message"}}.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/service/calls"
)

// Calls is the call control the API forwards bots' requests to; *calls.Manager implements it.
// appID is the authenticated bot.
type Calls interface {
	BotEndCall(appID, callID string) error
	Subscribe(appID, callID string, req protocol.SubscribeRequest) (operationID string, err error)
	Unsubscribe(appID, callID string, socketID int) (operationID string, err error)
	Join(ctx context.Context, appID, conferenceID, callbackURI string) (callID, operationID string, err error)
	Invite(ctx context.Context, appID, conferenceID, invitee string) (operationID string, err error)
}

// TokenVerifier checks a bot's bearer token; *auth.BotVerifier implements it.
type TokenVerifier interface {
	VerifyBotToken(token string, lookupSecret func(appID string) ([]byte, bool)) (*auth.Claims, error)
}

// Options configures the handler.
type Options struct {
	// Calls receives the bots' requests. Required.
	Calls Calls
	// Verifier checks bot tokens. Required.
	Verifier TokenVerifier
	// Secret returns a registered bot's HS256 secret. Required.
	Secret func(appID string) ([]byte, bool)
	// JWKS serves the service's public keys (*auth.Signer). Required.
	JWKS http.Handler
	// Metrics serves /metrics; nil leaves it out.
	Metrics http.Handler
	// Logger receives request logs [slog.Default()].
	Logger *slog.Logger
}

// New returns the handler serving the routes above on mux (a new ServeMux when nil), so that
// other layers (the browser page, signalling) can share the mux.
func New(opts Options, mux *http.ServeMux) (*http.ServeMux, error) {
	if opts.Calls == nil || opts.Verifier == nil || opts.Secret == nil || opts.JWKS == nil {
		return nil, errors.New("api: Calls, Verifier, Secret and JWKS are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if mux == nil {
		mux = http.NewServeMux()
	}
	a := &handler{opts: opts}
	mux.Handle(protocol.RouteSubscribe, a.bot(a.subscribe))
	mux.Handle(protocol.RouteUnsubscribe, a.bot(a.unsubscribe))
	mux.Handle(protocol.RouteEndCall, a.bot(a.endCall))
	mux.Handle(protocol.RouteJoin, a.bot(a.join))
	mux.Handle(protocol.RouteInvite, a.bot(a.invite))
	mux.Handle("/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protocol.WriteError(w, protocol.CodeNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
	}))
	mux.Handle(protocol.RouteJWKS, opts.JWKS)
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", opts.Metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux, nil
}

type handler struct {
	opts Options
}

// botHandler handles an authenticated bot request; body is the bounded request body.
type botHandler func(w http.ResponseWriter, r *http.Request, appID string, body []byte)

// bot authenticates the request, reads its body and calls h.
func (a *handler) bot(h botHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := a.opts.Verifier.VerifyBotToken(auth.BearerToken(r.Header), a.opts.Secret)
		if err != nil {
			code := protocol.CodeUnauthorized
			switch auth.HTTPStatus(err) {
			case http.StatusForbidden:
				code = protocol.CodeForbidden
			case http.StatusServiceUnavailable:
				code = protocol.CodeUnavailable
			}
			if code == protocol.CodeUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
			}
			a.opts.Logger.Info("bot request refused", "method", r.Method, "path", r.URL.Path, "err", err)
			protocol.WriteError(w, code, err.Error())
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" && r.ContentLength != 0 {
			if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != protocol.ContentTypeJSON {
				protocol.WriteError(w, protocol.CodeUnsupportedType, fmt.Sprintf("content type %.60q: want %s", ct, protocol.ContentTypeJSON))
				return
			}
		}
		body, err := protocol.ReadBody(http.MaxBytesReader(w, r.Body, protocol.MaxBodyBytes))
		if err != nil {
			if errors.Is(err, protocol.ErrTooLarge) {
				protocol.WriteError(w, protocol.CodeTooLarge, err.Error())
			} else {
				protocol.WriteError(w, protocol.CodeBadRequest, err.Error())
			}
			return
		}
		a.opts.Logger.Debug("bot request", "method", r.Method, "path", r.URL.Path, "app_id", claims.Issuer, "call_id", r.PathValue("callId"))
		h(w, r, claims.Issuer, body)
	})
}

func (a *handler) subscribe(w http.ResponseWriter, r *http.Request, appID string, body []byte) {
	req, err := protocol.DecodeSubscribeRequest(body)
	if err != nil {
		writeDecodeError(w, err)
		return
	}
	op, err := a.opts.Calls.Subscribe(appID, r.PathValue("callId"), *req)
	writeOperation(w, op, err)
}

func (a *handler) unsubscribe(w http.ResponseWriter, r *http.Request, appID string, body []byte) {
	if len(body) != 0 {
		protocol.WriteError(w, protocol.CodeBadRequest, "unsubscribe takes no body")
		return
	}
	socket, err := strconv.Atoi(r.PathValue("socketId"))
	if err != nil || socket < 0 || socket > 1<<16 {
		protocol.WriteError(w, protocol.CodeBadRequest, fmt.Sprintf("socket id %.40q: want a small non-negative integer", r.PathValue("socketId")))
		return
	}
	op, err := a.opts.Calls.Unsubscribe(appID, r.PathValue("callId"), socket)
	writeOperation(w, op, err)
}

func (a *handler) endCall(w http.ResponseWriter, r *http.Request, appID string, body []byte) {
	if len(body) != 0 {
		protocol.WriteError(w, protocol.CodeBadRequest, "end call takes no body")
		return
	}
	if err := a.opts.Calls.BotEndCall(appID, r.PathValue("callId")); err != nil {
		writeCallsError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *handler) join(w http.ResponseWriter, r *http.Request, appID string, body []byte) {
	req, err := protocol.DecodeJoinRequest(body)
	if err != nil {
		writeDecodeError(w, err)
		return
	}
	callID, op, err := a.opts.Calls.Join(r.Context(), appID, r.PathValue("conferenceId"), req.CallbackURI)
	if err != nil {
		writeCallsError(w, err)
		return
	}
	protocol.WriteJSON(w, http.StatusAccepted, protocol.JoinResponse{CallID: callID, OperationID: op})
}

func (a *handler) invite(w http.ResponseWriter, r *http.Request, appID string, body []byte) {
	req, err := protocol.DecodeInviteRequest(body)
	if err != nil {
		writeDecodeError(w, err)
		return
	}
	op, err := a.opts.Calls.Invite(r.Context(), appID, r.PathValue("conferenceId"), req.AppID)
	writeOperation(w, op, err)
}

// writeOperation answers a request that started the operation op (202), or the call layer's
// error that refused it.
func writeOperation(w http.ResponseWriter, op string, err error) {
	if err != nil {
		writeCallsError(w, err)
		return
	}
	protocol.WriteJSON(w, http.StatusAccepted, protocol.OperationResponse{OperationID: op})
}

func writeDecodeError(w http.ResponseWriter, err error) {
	if errors.Is(err, protocol.ErrTooLarge) {
		protocol.WriteError(w, protocol.CodeTooLarge, err.Error())
		return
	}
	protocol.WriteError(w, protocol.CodeBadRequest, err.Error())
}

// writeCallsError maps call control's sentinel errors to protocol error codes.
func writeCallsError(w http.ResponseWriter, err error) {
	code := protocol.CodeInternal
	switch {
	case errors.Is(err, calls.ErrCallNotFound), errors.Is(err, calls.ErrConferenceNotFound), errors.Is(err, calls.ErrUnknownBot):
		code = protocol.CodeNotFound
	case errors.Is(err, calls.ErrForbidden):
		code = protocol.CodeForbidden
	case errors.Is(err, calls.ErrConflict), errors.Is(err, calls.ErrConferenceFull):
		code = protocol.CodeConflict
	case errors.Is(err, calls.ErrInvalid):
		code = protocol.CodeBadRequest
	case errors.Is(err, calls.ErrClosed):
		code = protocol.CodeUnavailable
	}
	protocol.WriteError(w, code, err.Error())
}
