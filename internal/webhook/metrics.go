package webhook

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PrometheusMetrics is a Metrics that exports Prometheus collectors:
//
//	switchboard_webhook_attempt_duration_seconds{kind,status}  histogram of attempt latency
//	switchboard_webhook_deliveries_total{kind,result}          deliveries by result
//	switchboard_webhook_dropped_total{kind}                    requests refused by a full queue
//
// status is the HTTP status class ("2xx", "4xx", "5xx") or "error"; result is "ok",
// "rejected", "gave_up", "canceled" or "closed".
type PrometheusMetrics struct {
	attempts   *prometheus.HistogramVec
	deliveries *prometheus.CounterVec
	dropped    *prometheus.CounterVec
}

// NewPrometheusMetrics makes the collectors and registers them on reg (the server's own
// registry, never the global one).
func NewPrometheusMetrics(reg prometheus.Registerer) (*PrometheusMetrics, error) {
	m := &PrometheusMetrics{
		attempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchboard_webhook_attempt_duration_seconds",
			Help:    "Latency of one webhook attempt to a bot, by request kind and status class.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind", "status"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_webhook_deliveries_total",
			Help: "Webhook deliveries to bots, by request kind and result.",
		}, []string{"kind", "result"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_webhook_dropped_total",
			Help: "Webhook requests refused because a queue was full.",
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.attempts, m.deliveries, m.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register webhook metrics: %w", err)
		}
	}
	return m, nil
}

// Attempt implements Metrics.
func (m *PrometheusMetrics) Attempt(kind string, status int, err error, latency time.Duration) {
	class := "error"
	if err == nil && status >= 100 && status < 600 {
		class = strconv.Itoa(status/100) + "xx"
	}
	m.attempts.WithLabelValues(kind, class).Observe(latency.Seconds())
}

// Delivered implements Metrics.
func (m *PrometheusMetrics) Delivered(kind string, r Result, _ time.Duration) {
	m.deliveries.WithLabelValues(kind, ResultLabel(r.Err)).Inc()
}

// Dropped implements Metrics.
func (m *PrometheusMetrics) Dropped(kind string) { m.dropped.WithLabelValues(kind).Inc() }

// ResultLabel names a delivery's outcome: "ok", "rejected", "gave_up", "canceled" or "closed".
func ResultLabel(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrRejected):
		return "rejected"
	case errors.Is(err, ErrCanceled):
		return "canceled"
	case errors.Is(err, ErrClosed):
		return "closed"
	}
	return "gave_up"
}
