// Package webhook delivers the calling service's requests to bots: incoming calls, callbacks and
// notifications, as JSON POSTs to the bot's HTTPS endpoints.
//
// Every attempt carries a fresh ES256 bearer token (from a Signer, audience the bot's app id) and
// the delivery's Idempotency-Key, the same on every retry. A delivery is retried with exponential
// back-off and jitter after a network error, a timeout, a 5xx, 408 or 429, within a bounded
// number of attempts and a bounded total time; any other 4xx (and a 3xx: redirects are not
// followed) ends it at once.
//
// Requests are queued per key (the call id): one call's requests are sent one after the other, in
// the order they were enqueued, never concurrently; different calls are independent. Queues are
// bounded. A Dispatcher owns one goroutine per non-empty queue; Close stops them and waits.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
)

// Errors a Result or Enqueue wraps; callers branch on them with errors.Is.
var (
	// ErrClosed: the dispatcher is closed (or shutting down) and accepts nothing more; pending
	// deliveries end with it.
	ErrClosed = errors.New("webhook: dispatcher closed")
	// ErrQueueFull: the key's queue or the number of queues is at its bound.
	ErrQueueFull = errors.New("webhook: queue full")
	// ErrRejected: the bot answered with a status that is not retried (4xx other than 408 and
	// 429, or 3xx).
	ErrRejected = errors.New("webhook: request rejected by the bot")
	// ErrGaveUp: the attempts or the total time ran out while the bot kept failing.
	ErrGaveUp = errors.New("webhook: delivery failed after retries")
	// ErrCanceled: the request's context was cancelled before it was delivered.
	ErrCanceled = errors.New("webhook: delivery canceled")
)

// Kinds of request, used as metric labels and in logs.
const (
	KindCall         = "call"
	KindCallback     = "callback"
	KindNotification = "notification"
)

// Signer makes the bearer token of one attempt. *auth.Signer implements it.
type Signer interface {
	Sign(audience string, ttl time.Duration) (string, error)
}

// Request is one delivery to a bot.
type Request struct {
	// Key orders deliveries: requests with the same key are sent one at a time, in order. The
	// call id.
	Key string
	// URL is the full endpoint URL (base + /call, /callback or /notification).
	URL string
	// Audience is the bot's app id, the token's aud.
	Audience string
	// Kind is KindCall, KindCallback or KindNotification (metrics and logs).
	Kind string
	// Body is the JSON body. The dispatcher does not modify it.
	Body []byte
	// IdempotencyKey is sent on every attempt; empty means a fresh UUID.
	IdempotencyKey string
	// Done, when set, is called once with the outcome, from the queue's goroutine, after the
	// last attempt. It must not block for long: the key's next request waits for it.
	Done func(Result)
}

// Result is the outcome of one delivery.
type Result struct {
	// Status is the last response's HTTP status (0 when none arrived).
	Status int
	// Body is the last response's body (at most protocol.MaxBodyBytes).
	Body []byte
	// Attempts is the number of attempts made.
	Attempts int
	// Err is nil when the bot answered 2xx; otherwise it wraps ErrRejected, ErrGaveUp,
	// ErrCanceled or ErrClosed.
	Err error
}

// Options configures a Dispatcher. Zero fields take the defaults in brackets.
type Options struct {
	// Signer signs each attempt's token. Required.
	Signer Signer
	// Client sends the requests [a client with its own transport]. Its CheckRedirect is
	// replaced so that no redirect is followed; Close closes its idle connections.
	Client *http.Client
	// MaxAttempts bounds the attempts of one delivery [5].
	MaxAttempts int
	// MaxElapsed bounds the total time of one delivery, back-off included [30s].
	MaxElapsed time.Duration
	// AttemptTimeout bounds one attempt [10s].
	AttemptTimeout time.Duration
	// BaseDelay is the first back-off [200ms]; it doubles per retry up to MaxDelay [5s], and
	// the wait is drawn uniformly from [delay/2, delay].
	BaseDelay, MaxDelay time.Duration
	// TokenTTL is the lifetime of each token [2m].
	TokenTTL time.Duration
	// QueueSize bounds the pending requests of one key [256].
	QueueSize int
	// MaxQueues bounds the number of keys with pending requests [10000].
	MaxQueues int
	// Logger receives structured logs [slog.Default()].
	Logger *slog.Logger
	// Metrics observes attempts and deliveries [none].
	Metrics Metrics
}

// Metrics observes a Dispatcher. Implementations must be safe for concurrent use.
type Metrics interface {
	// Attempt is called after each attempt with its status (0 on a network error) and latency.
	Attempt(kind string, status int, err error, latency time.Duration)
	// Delivered is called once per delivery with its result and total time.
	Delivered(kind string, r Result, elapsed time.Duration)
	// Dropped is called when Enqueue refuses a request because a queue is full.
	Dropped(kind string)
}

// Dispatcher delivers Requests. It is safe for concurrent use.
type Dispatcher struct {
	opts   Options
	client *http.Client
	log    *slog.Logger

	ctx    context.Context // cancelled by Close: aborts attempts and waits
	cancel context.CancelFunc

	mu      sync.Mutex
	queues  map[string]*queue
	closing bool
	idle    chan struct{} // closed when queues becomes empty while someone waits (Shutdown)
	wg      sync.WaitGroup
	once    sync.Once
}

type queue struct {
	jobs []job
}

type job struct {
	ctx context.Context
	req Request
}

// New makes a Dispatcher.
func New(opts Options) (*Dispatcher, error) {
	if opts.Signer == nil {
		return nil, errors.New("webhook: new dispatcher: Signer is required")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&opts.MaxElapsed, 30*time.Second)
	def(&opts.AttemptTimeout, 10*time.Second)
	def(&opts.BaseDelay, 200*time.Millisecond)
	def(&opts.MaxDelay, 5*time.Second)
	def(&opts.TokenTTL, 2*time.Minute)
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 256
	}
	if opts.MaxQueues <= 0 {
		opts.MaxQueues = 10000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	if opts.Client != nil {
		c := *opts.Client
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	ctx, cancel := context.WithCancel(context.Background())
	return &Dispatcher{
		opts: opts, client: client, log: opts.Logger,
		ctx: ctx, cancel: cancel,
		queues: make(map[string]*queue),
	}, nil
}

// Enqueue queues req behind the earlier requests of req.Key. ctx cancels the delivery (before or
// during its attempts; Done then gets ErrCanceled); it is not used after the delivery ends. It
// never blocks: a full queue returns ErrQueueFull, a closed dispatcher ErrClosed (Done is not
// called then).
func (d *Dispatcher) Enqueue(ctx context.Context, req Request) error {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = uuid.NewString()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return fmt.Errorf("enqueue %s for %s: %w", req.Kind, req.Key, ErrClosed)
	}
	q := d.queues[req.Key]
	if q == nil {
		if len(d.queues) >= d.opts.MaxQueues {
			d.dropped(req.Kind)
			return fmt.Errorf("enqueue %s for %s: %d queues: %w", req.Kind, req.Key, len(d.queues), ErrQueueFull)
		}
		q = &queue{}
		d.queues[req.Key] = q
		d.wg.Add(1)
		go d.run(req.Key, q)
	}
	if len(q.jobs) >= d.opts.QueueSize {
		d.dropped(req.Kind)
		return fmt.Errorf("enqueue %s for %s: %d pending: %w", req.Kind, req.Key, len(q.jobs), ErrQueueFull)
	}
	q.jobs = append(q.jobs, job{ctx: ctx, req: req})
	return nil
}

func (d *Dispatcher) dropped(kind string) {
	if d.opts.Metrics != nil {
		d.opts.Metrics.Dropped(kind)
	}
}

// run delivers the jobs of one key until its queue is empty, then removes the queue.
// The goroutine is started by Enqueue together with the queue, so a queue in the map always has
// exactly one goroutine.
func (d *Dispatcher) run(key string, q *queue) {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		if len(q.jobs) == 0 {
			delete(d.queues, key)
			if len(d.queues) == 0 && d.idle != nil {
				close(d.idle)
				d.idle = nil
			}
			d.mu.Unlock()
			return
		}
		j := q.jobs[0]
		q.jobs[0] = job{}
		q.jobs = q.jobs[1:]
		d.mu.Unlock()

		res := d.deliver(j.ctx, j.req)
		if j.req.Done != nil {
			j.req.Done(res)
		}
	}
}

// deliver makes the attempts of one request.
func (d *Dispatcher) deliver(ctx context.Context, req Request) Result {
	start := time.Now()
	log := d.log.With("call_id", req.Key, "kind", req.Kind, "url", req.URL, "idempotency_key", req.IdempotencyKey)
	deadline := start.Add(d.opts.MaxElapsed)
	var res Result
	var lastErr error
	for attempt := 1; ; attempt++ {
		if err := d.stopped(ctx); err != nil {
			res.Err = err
			break
		}
		res.Attempts = attempt
		attemptDeadline := time.Now().Add(d.opts.AttemptTimeout)
		if deadline.Before(attemptDeadline) {
			attemptDeadline = deadline
		}
		attemptCtx, cancel := context.WithDeadline(ctx, attemptDeadline)
		stop := context.AfterFunc(d.ctx, cancel)
		t0 := time.Now()
		status, body, err := d.attempt(attemptCtx, req)
		stop()
		cancel()
		if d.opts.Metrics != nil {
			d.opts.Metrics.Attempt(req.Kind, status, err, time.Since(t0))
		}
		res.Status, res.Body = status, body
		if err == nil && status >= 200 && status < 300 {
			res.Err = nil
			break
		}
		if stopErr := d.stopped(ctx); stopErr != nil {
			res.Err = stopErr
			break
		}
		if err == nil && !retryable(status) {
			res.Err = fmt.Errorf("deliver %s to %s: status %d: %w", req.Kind, req.URL, status, ErrRejected)
			break
		}
		if err != nil {
			lastErr = err
		} else {
			lastErr = fmt.Errorf("status %d", status)
		}
		wait := d.backoff(attempt)
		if attempt >= d.opts.MaxAttempts || time.Now().Add(wait).After(deadline) {
			res.Err = fmt.Errorf("deliver %s to %s: %d attempts, last: %w: %w", req.Kind, req.URL, attempt, lastErr, ErrGaveUp)
			break
		}
		log.Debug("webhook attempt failed; retrying", "attempt", attempt, "status", status, "err", lastErr, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		case <-d.ctx.Done():
			t.Stop()
		}
	}
	elapsed := time.Since(start)
	if d.opts.Metrics != nil {
		d.opts.Metrics.Delivered(req.Kind, res, elapsed)
	}
	if res.Err != nil {
		log.Warn("webhook delivery failed", "attempts", res.Attempts, "status", res.Status, "err", res.Err, "elapsed", elapsed)
	} else {
		log.Debug("webhook delivered", "attempts", res.Attempts, "status", res.Status, "elapsed", elapsed)
	}
	return res
}

// stopped reports why a delivery must stop (dispatcher closed, request cancelled), or nil.
func (d *Dispatcher) stopped(ctx context.Context) error {
	if d.ctx.Err() != nil {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrCanceled, context.Cause(ctx))
	}
	return nil
}

func retryable(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
}

// backoff is the wait after the attempt-th failure: BaseDelay·2^(attempt-1) capped at MaxDelay,
// drawn uniformly from its upper half.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	delay := d.opts.BaseDelay
	for i := 1; i < attempt && delay < d.opts.MaxDelay; i++ {
		delay *= 2
	}
	delay = min(delay, d.opts.MaxDelay)
	half := delay / 2
	return half + rand.N(delay-half+1)
}

// newHTTPRequest builds one attempt's request. It has no GetBody: net/http's transport resends a
// request that carries an Idempotency-Key by itself when a kept-alive connection fails, and it
// would resend the same token, which the bot rightly refuses as a replay. Retries are ours to
// make, each with a fresh token.
func newHTTPRequest(ctx context.Context, req Request, token string) (*http.Request, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		return nil, fmt.Errorf("build request to %s: %w", req.URL, err)
	}
	hr.GetBody = nil
	hr.Header.Set(protocol.HeaderAuthorization, "Bearer "+token)
	hr.Header.Set(protocol.HeaderIdempotencyKey, req.IdempotencyKey)
	hr.Header.Set("Content-Type", protocol.ContentTypeJSON)
	return hr, nil
}

// attempt sends one request and reads the response.
func (d *Dispatcher) attempt(ctx context.Context, req Request) (int, []byte, error) {
	token, err := d.opts.Signer.Sign(req.Audience, d.opts.TokenTTL)
	if err != nil {
		return 0, nil, fmt.Errorf("sign token for %s: %w", req.Audience, err)
	}
	hr, err := newHTTPRequest(ctx, req, token)
	if err != nil {
		return 0, nil, err
	}
	resp, err := d.client.Do(hr)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, protocol.MaxBodyBytes+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read response from %s: %w", req.URL, err)
	}
	if len(body) > protocol.MaxBodyBytes {
		return resp.StatusCode, nil, fmt.Errorf("response from %s: more than %d bytes", req.URL, protocol.MaxBodyBytes)
	}
	return resp.StatusCode, body, nil
}

// Pending returns the number of keys with requests queued or in flight.
func (d *Dispatcher) Pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.queues)
}

// Shutdown stops accepting requests, waits until every queued request is delivered (or has
// failed) or ctx ends, then closes the dispatcher. It returns ctx's error if it had to abandon
// deliveries.
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	d.closing = true
	var idle chan struct{}
	if len(d.queues) > 0 {
		if d.idle == nil {
			d.idle = make(chan struct{})
		}
		idle = d.idle
	}
	d.mu.Unlock()
	var err error
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			err = fmt.Errorf("webhook shutdown: %w", ctx.Err())
		}
	}
	d.Close()
	return err
}

// Close stops accepting requests, aborts the attempts in flight, ends every pending delivery
// with ErrClosed (their Done is called) and waits for the queue goroutines. It is idempotent.
func (d *Dispatcher) Close() {
	d.once.Do(func() {
		d.mu.Lock()
		d.closing = true
		d.mu.Unlock()
		d.cancel()
	})
	d.wg.Wait()
	d.client.CloseIdleConnections()
}
