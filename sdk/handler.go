// Package sdk is the Switchboard bot SDK: what a bot imports to take calls from the service and
// to send and receive their media.
//
// The calling side is an http.Handler (NewHandler) that the bot mounts on its own server: it
// verifies the service's signed requests, makes one *Call per incoming call, asks the bot's
// per-call CallEvents (made by HandlerConfig.NewCall) what to do, and delivers the call's
// events to them on one goroutine per call, in order, until exactly one OnCleanup. The media
// side (MediaPlatform, AudioSocket, VideoSocket, MediaConfiguration) turns the call's WebRTC
// media into 20 ms audio buffers and video frames. Every event handler of the SDK is a func
// field of a settings or events struct; nil means the bot ignores that event.
package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/protocol"
)

// Defaults of HandlerConfig.
const (
	DefaultAnswerTimeout    = 8 * time.Second
	DefaultEstablishTimeout = 30 * time.Second
	DefaultEventQueueSize   = 64
)

const (
	notificationGapTimeout = 2 * time.Second // how long an early notification waits for a missing one
	maxPendingOperations   = 1024
	idempotencyTTL         = 10 * time.Minute
	maxIdempotencyKeys     = 4096
	hangupTimeout          = 2 * time.Second
)

// HandlerConfig configures a Handler. AppID, AppSecret, ServiceURL, PublicURL and NewCall are
// required; the rest has defaults.
type HandlerConfig struct {
	// AppID is the bot's app id, registered with the service.
	AppID string
	// AppSecret is the bot's app secret (at least 32 bytes), shared with the service.
	AppSecret string
	// ServiceURL is the service's base URL. It is also the issuer of the service's tokens,
	// whose keys are fetched from ServiceURL + "/.well-known/jwks.json".
	ServiceURL string
	// PublicURL is the URL where this instance's handler is reachable from the service (the
	// callbackUri of its calls), e.g. "https://bot-3.example.com/api/calling".
	PublicURL string
	// NewCall makes the bot's object for a new call. It is called from the HTTP request's
	// goroutine and must return quickly; the work belongs in OnIncomingCall.
	NewCall func(*Call) CallEvents
	// Logger receives the handler's logs; nil means slog.Default().
	Logger *slog.Logger
	// HTTPClient makes the requests to the service (REST and keys); nil means a client with a
	// 10 s timeout.
	HTTPClient *http.Client
	// AnswerTimeout bounds OnIncomingCall and the media answer; past it the handler rejects
	// the call itself. It must be shorter than the service's request timeout (10 s).
	AnswerTimeout time.Duration
	// EstablishTimeout bounds the time from the answer to StateEstablished; past it the handler
	// ends the call.
	EstablishTimeout time.Duration
	// EventQueueSize bounds the events waiting for one call's goroutine; when it is full the
	// handler answers 503 and the service retries.
	EventQueueSize int
}

// Handler is a bot's calling endpoint: an http.Handler that serves POST /call, POST /callback
// and POST /notification (routed on the last path segment, so it can be mounted anywhere, with
// or without http.StripPrefix), and the client of the service's REST API.
//
// Each call gets one goroutine, owned by the Handler, that delivers the call's events to the
// bot's CallEvents in order and ends with the call's cleanup. Close ends every call and waits
// for those goroutines.
type Handler struct {
	cfg      HandlerConfig
	log      *slog.Logger
	client   *http.Client
	verifier *auth.Verifier
	signer   auth.BotSigner
	service  *url.URL
	public   string

	gapTimeout time.Duration // tests shorten it

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // call goroutines

	mu     sync.Mutex
	closed bool
	calls  map[string]*Call
	ops    map[string]*Operation
	early  map[string]protocol.Callback // callbacks that arrived before their operation was registered
	idem   *idempotencyCache
}

// NewHandler checks cfg and makes a Handler.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if !protocol.ValidID(cfg.AppID) {
		return nil, fmt.Errorf("sdk: new handler: app id %q is not valid", cfg.AppID)
	}
	if len(cfg.AppSecret) < auth.MinSecretBytes {
		return nil, fmt.Errorf("sdk: new handler for %s: app secret is %d bytes, fewer than %d", cfg.AppID, len(cfg.AppSecret), auth.MinSecretBytes)
	}
	issuer := strings.TrimSuffix(cfg.ServiceURL, "/")
	service, err := url.Parse(issuer)
	if err != nil || (service.Scheme != "http" && service.Scheme != "https") || service.Host == "" {
		return nil, fmt.Errorf("sdk: new handler for %s: service URL %q is not an http(s) URL", cfg.AppID, cfg.ServiceURL)
	}
	public := strings.TrimSuffix(cfg.PublicURL, "/")
	if err := protocol.ValidCallbackURI(public); err != nil {
		return nil, fmt.Errorf("sdk: new handler for %s: public URL: %w", cfg.AppID, err)
	}
	if cfg.NewCall == nil {
		return nil, fmt.Errorf("sdk: new handler for %s: NewCall is required", cfg.AppID)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.AnswerTimeout <= 0 {
		cfg.AnswerTimeout = DefaultAnswerTimeout
	}
	if cfg.EstablishTimeout <= 0 {
		cfg.EstablishTimeout = DefaultEstablishTimeout
	}
	if cfg.EventQueueSize <= 0 {
		cfg.EventQueueSize = DefaultEventQueueSize
	}
	verifier, err := auth.NewVerifier(auth.VerifierConfig{Issuer: issuer, Audience: cfg.AppID, HTTPClient: cfg.HTTPClient})
	if err != nil {
		return nil, fmt.Errorf("sdk: new handler for %s: %w", cfg.AppID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Handler{
		cfg:        cfg,
		log:        cfg.Logger.With("app_id", cfg.AppID),
		client:     cfg.HTTPClient,
		verifier:   verifier,
		signer:     auth.BotSigner{AppID: cfg.AppID, Secret: []byte(cfg.AppSecret), Audience: issuer},
		service:    service,
		public:     public,
		gapTimeout: notificationGapTimeout,
		ctx:        ctx,
		cancel:     cancel,
		calls:      map[string]*Call{},
		ops:        map[string]*Operation{},
		early:      map[string]protocol.Callback{},
		idem:       newIdempotencyCache(maxIdempotencyKeys, idempotencyTTL),
	}, nil
}

// Close ends every call (each bot gets OnCleanup with ErrHandlerClosed), refuses new requests
// with 503, completes pending operations with ErrHandlerClosed, and returns when the calls'
// goroutines have ended. It is idempotent. Stop the HTTP server first (Shutdown), so no request
// is still being handled.
func (h *Handler) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.wg.Wait()
		return nil
	}
	h.closed = true
	calls := make([]*Call, 0, len(h.calls))
	for _, c := range h.calls {
		calls = append(calls, c)
	}
	h.mu.Unlock()
	for _, c := range calls {
		c.end(ErrHandlerClosed)
	}
	h.wg.Wait()
	h.cancel()
	h.mu.Lock()
	for id, op := range h.ops {
		op.complete(ErrHandlerClosed)
		delete(h.ops, id)
	}
	h.mu.Unlock()
	return nil
}

// ServeHTTP serves the service's requests.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var serve func(http.ResponseWriter, *http.Request, []byte)
	switch "/" + path.Base(r.URL.Path) {
	case protocol.PathCall:
		serve = h.serveCall
	case protocol.PathCallback:
		serve = h.serveCallback
	case protocol.PathNotification:
		serve = h.serveNotification
	default:
		protocol.WriteError(w, protocol.CodeNotFound, "no such endpoint: "+r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		protocol.WriteError(w, protocol.CodeMethodNotAllowed, r.Method+" is not allowed, use POST")
		return
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		protocol.WriteError(w, protocol.CodeUnavailable, "the bot is shutting down")
		return
	}
	if _, err := h.verifier.Verify(r.Context(), auth.BearerToken(r.Header)); err != nil {
		h.log.Warn("refused a request's token", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		code := protocol.CodeUnauthorized
		switch auth.HTTPStatus(err) {
		case http.StatusForbidden:
			code = protocol.CodeForbidden
		case http.StatusServiceUnavailable:
			code = protocol.CodeUnavailable
		}
		protocol.WriteError(w, code, err.Error())
		return
	}
	if r.ContentLength > protocol.MaxBodyBytes {
		protocol.WriteError(w, protocol.CodeTooLarge, fmt.Sprintf("body of %d bytes is over %d", r.ContentLength, protocol.MaxBodyBytes))
		return
	}
	body, err := protocol.ReadBody(http.MaxBytesReader(w, r.Body, protocol.MaxBodyBytes))
	if errors.Is(err, protocol.ErrTooLarge) {
		protocol.WriteError(w, protocol.CodeTooLarge, err.Error())
		return
	} else if err != nil {
		protocol.WriteError(w, protocol.CodeBadRequest, err.Error())
		return
	}
	key := r.Header.Get(protocol.HeaderIdempotencyKey)
	if !protocol.ValidID(key) {
		protocol.WriteError(w, protocol.CodeBadRequest, "the Idempotency-Key header is missing or not an id")
		return
	}
	serve(w, r, body)
}

// reply is a recorded response, replayed to a retried delivery.
type reply struct {
	status int
	body   []byte // nil for 204
}

func (rp reply) write(w http.ResponseWriter) {
	if rp.body == nil {
		w.WriteHeader(rp.status)
		return
	}
	w.Header().Set("Content-Type", protocol.ContentTypeJSON)
	w.WriteHeader(rp.status)
	_, _ = w.Write(rp.body)
}

// once runs f for the first delivery of r's Idempotency-Key on route and records its reply when
// it is a success; a repeat (even one arriving while the first runs) gets the recorded reply.
func (h *Handler) once(w http.ResponseWriter, r *http.Request, route string, f func() (reply, bool)) {
	key := route + "\x00" + r.Header.Get(protocol.HeaderIdempotencyKey)
	e, first := h.idem.claim(key)
	if !first {
		select {
		case <-e.done:
		case <-r.Context().Done():
			return
		}
		if e.ok {
			e.reply.write(w)
			return
		}
		// The first attempt failed without a recorded reply: handle this one afresh.
		h.once(w, r, route, f)
		return
	}
	rp, ok := f()
	h.idem.finish(key, e, rp, ok)
	rp.write(w)
}

func errorReply(code protocol.ErrorCode, msg string) reply {
	rec := newReplyRecorder()
	protocol.WriteError(rec, code, msg)
	return reply{status: rec.status, body: rec.body}
}

func (h *Handler) serveCall(w http.ResponseWriter, r *http.Request, body []byte) {
	in, err := protocol.DecodeIncomingCall(body)
	if err != nil {
		h.badRequest(w, r, err)
		return
	}
	if in.To.AppID != h.cfg.AppID {
		protocol.WriteError(w, protocol.CodeBadRequest, fmt.Sprintf("call %s is for app %s, not %s", in.CallID, in.To.AppID, h.cfg.AppID))
		return
	}
	h.once(w, r, protocol.PathCall, func() (reply, bool) {
		c, rp := h.startCall(in)
		if c == nil {
			return rp, false
		}
		return c.awaitWorkflow(r.Context()), true
	})
}

func (h *Handler) serveCallback(w http.ResponseWriter, r *http.Request, body []byte) {
	cb, err := protocol.DecodeCallback(body)
	if err != nil {
		h.badRequest(w, r, err)
		return
	}
	h.once(w, r, protocol.PathCallback, func() (reply, bool) {
		h.mu.Lock()
		c := h.calls[cb.CallID]
		op := h.ops[cb.OperationID]
		if op != nil {
			delete(h.ops, cb.OperationID)
		} else if c != nil && len(h.early) < maxPendingOperations {
			h.early[cb.OperationID] = *cb
		}
		h.mu.Unlock()
		if op != nil {
			op.complete(callbackErr(cb))
		}
		if c == nil {
			if op != nil {
				return reply{status: http.StatusNoContent}, true
			}
			return errorReply(protocol.CodeNotFound, "no call "+cb.CallID+" on this instance"), false
		}
		if !c.enqueue(callEvent{callback: cb}) {
			return errorReply(protocol.CodeUnavailable, "call "+cb.CallID+" is busy, retry"), false
		}
		return reply{status: http.StatusNoContent}, true
	})
}

func (h *Handler) serveNotification(w http.ResponseWriter, r *http.Request, body []byte) {
	n, err := protocol.DecodeNotification(body)
	if err != nil {
		h.badRequest(w, r, err)
		return
	}
	h.once(w, r, protocol.PathNotification, func() (reply, bool) {
		h.mu.Lock()
		c := h.calls[n.CallID]
		h.mu.Unlock()
		if c == nil {
			return errorReply(protocol.CodeNotFound, "no call "+n.CallID+" on this instance"), false
		}
		if !c.enqueue(callEvent{notification: n}) {
			return errorReply(protocol.CodeUnavailable, "call "+n.CallID+" is busy, retry"), false
		}
		return reply{status: http.StatusNoContent}, true
	})
}

func (h *Handler) badRequest(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Warn("refused a malformed request", "path", r.URL.Path, "err", err)
	if errors.Is(err, protocol.ErrTooLarge) {
		protocol.WriteError(w, protocol.CodeTooLarge, err.Error())
		return
	}
	protocol.WriteError(w, protocol.CodeBadRequest, err.Error())
}

func callbackErr(cb *protocol.Callback) error {
	if cb.Outcome == protocol.OutcomeSuccess {
		return nil
	}
	reason := cb.FailureReason
	if reason == "" {
		reason = "no reason given"
	}
	return fmt.Errorf("%w: %s %s of call %s: %s", ErrOperationFailed, cb.Type, cb.OperationID, cb.CallID, reason)
}

// register records op as pending, or completes it at once if its callback came first.
func (h *Handler) register(op *Operation) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cb, ok := h.early[op.id]; ok {
		delete(h.early, op.id)
		op.complete(callbackErr(&cb))
		return nil
	}
	if h.closed {
		op.complete(ErrHandlerClosed)
		return nil
	}
	if len(h.ops) >= maxPendingOperations {
		return fmt.Errorf("sdk: %d operations pending, no room for %s %s", len(h.ops), op.typ, op.id)
	}
	h.ops[op.id] = op
	return nil
}

// forget completes and drops the pending operations of callID; the call is over.
func (h *Handler) forget(callID string, reason error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, op := range h.ops {
		if op.callID == callID {
			op.complete(reason)
			delete(h.ops, id)
		}
	}
	for id, cb := range h.early {
		if cb.CallID == callID {
			delete(h.early, id)
		}
	}
}

// idempotencyCache remembers the replies of recent deliveries by Idempotency-Key.
type idempotencyCache struct {
	mu      sync.Mutex
	max     int
	ttl     time.Duration
	entries map[string]*idemEntry
	order   []string // keys in claim order, for expiry and eviction
}

type idemEntry struct {
	done    chan struct{} // closed when the first attempt finished
	ok      bool          // reply is recorded
	reply   reply
	claimed time.Time
}

func newIdempotencyCache(max int, ttl time.Duration) *idempotencyCache {
	return &idempotencyCache{max: max, ttl: ttl, entries: map[string]*idemEntry{}}
}

// claim returns key's entry and whether the caller is the first to claim it.
func (c *idempotencyCache) claim(key string) (*idemEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	// Forget entries past their TTL, and the oldest ones while over the bound.
	for len(c.order) > 0 {
		k := c.order[0]
		if e := c.entries[k]; e != nil {
			full := len(c.entries) >= c.max || len(c.order) >= 2*c.max
			if now.Sub(e.claimed) < c.ttl && !full {
				break
			}
			delete(c.entries, k)
		}
		c.order = c.order[1:]
	}
	if e, ok := c.entries[key]; ok {
		return e, false
	}
	e := &idemEntry{done: make(chan struct{}), claimed: now}
	c.entries[key] = e
	c.order = append(c.order, key)
	return e, true
}

// finish records the first attempt's reply (when ok) and wakes the repeats; a failed first
// attempt is forgotten so a retry is handled afresh.
func (c *idempotencyCache) finish(key string, e *idemEntry, rp reply, ok bool) {
	c.mu.Lock()
	e.ok, e.reply = ok, rp
	if !ok && c.entries[key] == e {
		delete(c.entries, key)
	}
	c.mu.Unlock()
	close(e.done)
}

// replyRecorder captures what protocol.WriteError writes.
type replyRecorder struct {
	header http.Header
	status int
	body   []byte
}

func newReplyRecorder() *replyRecorder { return &replyRecorder{header: http.Header{}} }

func (r *replyRecorder) Header() http.Header    { return r.header }
func (r *replyRecorder) WriteHeader(status int) { r.status = status }
func (r *replyRecorder) Write(b []byte) (int, error) {
	r.body = append(r.body, b...)
	return len(b), nil
}
