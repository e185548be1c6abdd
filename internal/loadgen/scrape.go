package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric names the load generator reads from a bot (sdk.AudioMetrics).
const (
	metricInterval = "switchboard_sdk_audio_event_interval_seconds"
	metricEvents   = "switchboard_sdk_audio_events_total"
	metricSilent   = "switchboard_sdk_audio_silent_events_total"
	metricDropped  = "switchboard_sdk_audio_dropped_events_total"
)

// ErrNoCadenceMetrics is returned when a metrics endpoint has no audio event histogram (the
// bot does not use sdk.AudioMetrics).
var ErrNoCadenceMetrics = errors.New("loadgen: no audio event interval histogram in the bot's metrics")

// botScrape is one reading of a bot's audio metrics.
type botScrape struct {
	interval                promHist
	events, silent, dropped float64
}

func (s botScrape) sub(o botScrape) botScrape {
	return botScrape{
		interval: s.interval.sub(o.interval),
		events:   s.events - o.events,
		silent:   s.silent - o.silent,
		dropped:  s.dropped - o.dropped,
	}
}

// scrapeBot reads the audio metrics from a Prometheus text endpoint.
func scrapeBot(ctx context.Context, client *http.Client, url string) (botScrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return botScrape{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return botScrape{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return botScrape{}, fmt.Errorf("scrape %s: status %s", url, resp.Status)
	}
	return parseBotMetrics(io.LimitReader(resp.Body, 8<<20))
}

func parseBotMetrics(r io.Reader) (botScrape, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return botScrape{}, fmt.Errorf("parse bot metrics: %w", err)
	}
	var s botScrape
	f := fams[metricInterval]
	if f == nil || len(f.GetMetric()) == 0 || f.GetMetric()[0].GetHistogram() == nil {
		return s, ErrNoCadenceMetrics
	}
	h := f.GetMetric()[0].GetHistogram()
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), 1) {
			continue // the count is the +Inf bucket
		}
		s.interval.bounds = append(s.interval.bounds, b.GetUpperBound())
		s.interval.cum = append(s.interval.cum, b.GetCumulativeCount())
	}
	s.interval.count = h.GetSampleCount()
	counter := func(name string) float64 {
		if f := fams[name]; f != nil && len(f.GetMetric()) > 0 {
			return sumCounter(f.GetMetric())
		}
		return 0
	}
	s.events, s.silent, s.dropped = counter(metricEvents), counter(metricSilent), counter(metricDropped)
	return s, nil
}

func sumCounter(ms []*dto.Metric) float64 {
	var v float64
	for _, m := range ms {
		v += m.GetCounter().GetValue()
	}
	return v
}
