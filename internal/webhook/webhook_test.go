package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeSigner issues distinct tokens "tok-<aud>-<n>".
type fakeSigner struct{ n atomic.Int64 }

func (s *fakeSigner) Sign(aud string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", errors.New("bad ttl")
	}
	return fmt.Sprintf("tok-%s-%d", aud, s.n.Add(1)), nil
}

// hang reads the request body (so that the server notices a closed connection) and waits until
// the client goes away.
func hang(r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

// hit is one request the test server saw.
type hit struct {
	token, key, body string
}

func newDispatcher(t *testing.T, mod func(*Options)) *Dispatcher {
	t.Helper()
	opts := Options{
		Signer: &fakeSigner{}, BaseDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond,
		AttemptTimeout: 5 * time.Second, MaxElapsed: 20 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// wait receives one Result or fails the test after a generous liveness bound.
func wait(t *testing.T, ch <-chan Result) Result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no result")
		return Result{}
	}
}

func send(t *testing.T, d *Dispatcher, ctx context.Context, key, url string) <-chan Result {
	t.Helper()
	ch := make(chan Result, 1)
	err := d.Enqueue(ctx, Request{Key: key, URL: url, Audience: "bot", Kind: KindNotification, Body: []byte(`{}`), Done: func(r Result) { ch <- r }})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestOrderPerKeyNeverConcurrent(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]string{}
	inflight := map[string]int{}
	var overlap atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key, seq, _ := strings.Cut(string(body), ":")
		mu.Lock()
		inflight[key]++
		if inflight[key] > 1 {
			overlap.Store(true)
		}
		mu.Unlock()
		time.Sleep(time.Millisecond) // widen any overlap window
		mu.Lock()
		inflight[key]--
		got[key] = append(got[key], seq)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	d := newDispatcher(t, nil)
	const keys, per = 4, 25
	var wg sync.WaitGroup
	for i := range per {
		for k := range keys {
			wg.Add(1)
			key := fmt.Sprintf("call-%d", k)
			err := d.Enqueue(context.Background(), Request{Key: key, URL: srv.URL, Audience: "bot", Kind: KindNotification,
				Body: fmt.Appendf(nil, "%s:%d", key, i), Done: func(r Result) {
					if r.Err != nil {
						t.Error(r.Err)
					}
					wg.Done()
				}})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	if overlap.Load() {
		t.Error("two requests of one key were in flight at once")
	}
	for k := range keys {
		seqs := got[fmt.Sprintf("call-%d", k)]
		if len(seqs) != per {
			t.Fatalf("key %d: %d deliveries", k, len(seqs))
		}
		for i, s := range seqs {
			if s != fmt.Sprint(i) {
				t.Fatalf("key %d: order %v", k, seqs)
			}
		}
	}
}

func TestRetryKeepsIdempotencyKeyAndSignsEachAttempt(t *testing.T) {
	var mu sync.Mutex
	var hits []hit
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		hits = append(hits, hit{r.Header.Get("Authorization"), r.Header.Get("Idempotency-Key"), string(body)})
		n := len(hits)
		mu.Unlock()
		if r.Header.Get("Content-Type") != "application/json" {
			t.Error("content type", r.Header.Get("Content-Type"))
		}
		if n < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer srv.Close()
	d := newDispatcher(t, nil)
	r := wait(t, send(t, d, context.Background(), "c1", srv.URL))
	if r.Err != nil || r.Attempts != 3 || r.Status != 200 || string(r.Body) != `{"ok":true}` {
		t.Fatalf("result %+v", r)
	}
	if hits[0].key == "" || hits[0].key != hits[1].key || hits[1].key != hits[2].key {
		t.Errorf("idempotency keys differ across retries: %+v", hits)
	}
	if hits[0].token == hits[1].token || !strings.HasPrefix(hits[0].token, "Bearer tok-bot-") {
		t.Errorf("each attempt needs a fresh token: %+v", hits)
	}
	// A second delivery gets a new key.
	r = wait(t, send(t, d, context.Background(), "c1", srv.URL))
	if r.Err != nil || hits[3].key == hits[0].key {
		t.Errorf("second delivery: %+v, key %q", r, hits[3].key)
	}
}

func TestNoRetryOn4xxAndRedirect(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 410, 302} {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			if status == 302 {
				http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", status)
				return
			}
			w.WriteHeader(status)
		}))
		d := newDispatcher(t, nil)
		r := wait(t, send(t, d, context.Background(), "c", srv.URL))
		srv.Close()
		if !errors.Is(r.Err, ErrRejected) || r.Attempts != 1 || n.Load() != 1 || r.Status != status {
			t.Errorf("status %d: %+v after %d requests", status, r, n.Load())
		}
	}
}

func TestGivesUp(t *testing.T) {
	t.Run("5xx", func(t *testing.T) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
		}))
		defer srv.Close()
		d := newDispatcher(t, func(o *Options) { o.MaxAttempts = 3 })
		r := wait(t, send(t, d, context.Background(), "c", srv.URL))
		if !errors.Is(r.Err, ErrGaveUp) || r.Attempts != 3 || n.Load() != 3 {
			t.Fatalf("%+v after %d", r, n.Load())
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		d := newDispatcher(t, func(o *Options) { o.MaxAttempts = 2 })
		r := wait(t, send(t, d, context.Background(), "c", url))
		if !errors.Is(r.Err, ErrGaveUp) || r.Attempts != 2 || r.Status != 0 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("dropped connection", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}))
		defer srv.Close()
		d := newDispatcher(t, func(o *Options) { o.MaxAttempts = 2 })
		r := wait(t, send(t, d, context.Background(), "c", srv.URL))
		if !errors.Is(r.Err, ErrGaveUp) || r.Attempts != 2 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("attempt timeout", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hang(r) }))
		defer srv.Close()
		d := newDispatcher(t, func(o *Options) { o.MaxAttempts = 2; o.AttemptTimeout = 20 * time.Millisecond })
		r := wait(t, send(t, d, context.Background(), "c", srv.URL))
		if !errors.Is(r.Err, ErrGaveUp) || r.Attempts != 2 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("total time", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) }))
		defer srv.Close()
		// The first back-off (≥ 1 s) does not fit in MaxElapsed: one attempt only.
		d := newDispatcher(t, func(o *Options) {
			o.MaxAttempts = 10
			o.BaseDelay = 2 * time.Second
			o.MaxDelay = 4 * time.Second
			o.MaxElapsed = time.Second
		})
		r := wait(t, send(t, d, context.Background(), "c", srv.URL))
		if !errors.Is(r.Err, ErrGaveUp) || r.Attempts != 1 {
			t.Fatalf("%+v", r)
		}
	})
}

func TestCancelInFlight(t *testing.T) {
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		hang(r)
	}))
	defer srv.Close()
	d := newDispatcher(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ch := send(t, d, ctx, "c", srv.URL)
	<-started
	cancel()
	if r := wait(t, ch); !errors.Is(r.Err, ErrCanceled) {
		t.Fatalf("%+v", r)
	}
	// The key's queue goes on with the next request.
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer ok.Close()
	if r := wait(t, send(t, d, context.Background(), "c", ok.URL)); r.Err != nil {
		t.Fatal(r.Err)
	}
}

func TestBoundedQueues(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case started <- struct{}{}:
		default:
		}
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	m, err := NewPrometheusMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	d := newDispatcher(t, func(o *Options) { o.QueueSize = 1; o.MaxQueues = 2; o.Metrics = m })
	first := send(t, d, context.Background(), "a", srv.URL)
	<-started // "a"'s first request is in flight, its queue is empty
	second := send(t, d, context.Background(), "a", srv.URL)
	if err := d.Enqueue(context.Background(), Request{Key: "a", URL: srv.URL, Kind: KindNotification}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third request of a: %v", err)
	}
	third := send(t, d, context.Background(), "b", srv.URL)
	if err := d.Enqueue(context.Background(), Request{Key: "c", URL: srv.URL, Kind: KindCallback}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third key: %v", err)
	}
	close(release)
	for _, ch := range []<-chan Result{first, second, third} {
		if r := wait(t, ch); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if got := counter(t, reg, "switchboard_webhook_dropped_total"); got != 2 {
		t.Errorf("dropped = %v", got)
	}
	if got := counter(t, reg, "switchboard_webhook_deliveries_total"); got != 3 {
		t.Errorf("deliveries = %v", got)
	}
}

// counter sums a metric family's counter values, or its histogram sample counts.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				sum += float64(h.GetSampleCount())
			}
		}
	}
	return sum
}

func TestCloseEndsPendingAndIsIdempotent(t *testing.T) {
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case started <- struct{}{}:
		default:
		}
		hang(r)
	}))
	defer srv.Close()
	d := newDispatcher(t, nil)
	a := send(t, d, context.Background(), "k", srv.URL)
	b := send(t, d, context.Background(), "k", srv.URL)
	<-started
	d.Close()
	d.Close()
	for _, ch := range []<-chan Result{a, b} {
		if r := wait(t, ch); !errors.Is(r.Err, ErrClosed) {
			t.Fatalf("%+v", r)
		}
	}
	if err := d.Enqueue(context.Background(), Request{Key: "k"}); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if d.Pending() != 0 {
		t.Fatal("queues left")
	}
}

func TestShutdownDrains(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		time.Sleep(2 * time.Millisecond)
		w.WriteHeader(204)
	}))
	defer srv.Close()
	d := newDispatcher(t, nil)
	for i := range 10 {
		send(t, d, context.Background(), fmt.Sprint(i%3), srv.URL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 10 {
		t.Fatalf("%d of 10 delivered before shutdown returned", n.Load())
	}
	if err := d.Enqueue(context.Background(), Request{Key: "x"}); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

func TestShutdownDeadlineAbandons(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hang(r) }))
	defer srv.Close()
	d := newDispatcher(t, nil)
	ch := send(t, d, context.Background(), "k", srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if r := wait(t, ch); !errors.Is(r.Err, ErrClosed) {
		t.Fatalf("%+v", r)
	}
}

func TestBackoffBounds(t *testing.T) {
	d := newDispatcher(t, func(o *Options) { o.BaseDelay = 100 * time.Millisecond; o.MaxDelay = time.Second })
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		for range 100 {
			if w := d.backoff(attempt); w < want/2 || w > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", attempt, w, want/2, want)
			}
		}
	}
}

func TestNewNeedsSigner(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("no error")
	}
}

// TestRequestNotReplayedByTransport: an attempt's request cannot be resent by net/http's
// transport on its own (it would carry the same token, a replay to the bot); only the
// dispatcher retries, with a fresh token.
func TestRequestNotReplayedByTransport(t *testing.T) {
	hr, err := newHTTPRequest(context.Background(), Request{URL: "http://127.0.0.1:1/call", Body: []byte(`{}`), IdempotencyKey: "k"}, "tok")
	if err != nil {
		t.Fatal(err)
	}
	if hr.GetBody != nil {
		t.Error("request has GetBody: the transport may resend it with the same token")
	}
	if hr.Header.Get(protocol.HeaderIdempotencyKey) != "k" || hr.Header.Get(protocol.HeaderAuthorization) != "Bearer tok" {
		t.Errorf("headers %v", hr.Header)
	}
}
