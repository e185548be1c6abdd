package sdk

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// AudioEventIntervalBuckets are the upper bounds, in seconds, of the AudioMetrics interval
// histogram: 1 ms steps from 1 to 40 ms (a steady socket's events are 20 ms apart), then coarser.
var AudioEventIntervalBuckets = func() []float64 {
	b := make([]float64, 0, 56)
	for ms := 1; ms <= 40; ms++ {
		b = append(b, float64(ms)/1000)
	}
	return append(b, 0.045, 0.050, 0.060, 0.080, 0.100, 0.150, 0.200, 0.300, 0.500, 1, 2, 5)
}()

// AudioMetrics measures how steadily a bot's audio events arrive, for load tests and
// monitoring: the interval between consecutive OnAudioReceived calls of each socket (a
// histogram), and counters of events, silent events (comfort noise: no speaker's audio arrived
// for the frame) and frames the socket dropped because the bot's callbacks were slow.
//
// It is a prometheus.Collector: register one per process and serve the registry. Give it to
// the media platform (MediaPlatformSettings.AudioMetrics, which sdk/bot does) and every audio
// socket of every call records into it; a socket can also take part alone by wrapping its
// callback with Wrap. Recording an event costs a clock read and a few atomic additions, and
// allocates nothing. Its methods are safe for concurrent use.
//
//	m := sdk.NewAudioMetrics()
//	reg.MustRegister(m)
//	platform, err := sdk.NewMediaPlatform(sdk.MediaPlatformSettings{AudioMetrics: m, ...})
type AudioMetrics struct {
	interval prometheus.Histogram
	events   prometheus.Counter
	silent   prometheus.Counter
	dropped  prometheus.Counter
	now      func() time.Time // tests replace it
}

// NewAudioMetrics makes the metrics, named switchboard_sdk_audio_event_interval_seconds,
// switchboard_sdk_audio_events_total, switchboard_sdk_audio_silent_events_total,
// and switchboard_sdk_audio_dropped_events_total.
func NewAudioMetrics() *AudioMetrics {
	return &AudioMetrics{
		interval: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_sdk_audio_event_interval_seconds",
			Help:    "Time between consecutive audio events (OnAudioReceived calls) of one audio socket.",
			Buckets: AudioEventIntervalBuckets,
		}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_sdk_audio_events_total",
			Help: "Audio events delivered to the bot, all sockets.",
		}),
		silent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_sdk_audio_silent_events_total",
			Help: "Audio events whose frame carried no received audio (comfort noise or silence).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_sdk_audio_dropped_events_total",
			Help: "Audio frames dropped because the bot's callbacks returned too late.",
		}),
		now: time.Now,
	}
}

// Describe implements prometheus.Collector.
func (m *AudioMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.interval.Describe(ch)
	m.events.Describe(ch)
	m.silent.Describe(ch)
	m.dropped.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *AudioMetrics) Collect(ch chan<- prometheus.Metric) {
	m.interval.Collect(ch)
	m.events.Collect(ch)
	m.silent.Collect(ch)
	m.dropped.Collect(ch)
}

// AudioEventRecorder records the events of one audio socket; Wrap makes one per socket. Its
// Record is called on the socket's event goroutine only (events of a socket are serialised).
type AudioEventRecorder struct {
	m       *AudioMetrics
	last    time.Time
	dropped uint64
}

// Recorder returns a recorder for one socket's events.
func (m *AudioMetrics) Recorder() *AudioEventRecorder { return &AudioEventRecorder{m: m} }

// Record counts one event of the socket and the interval since its previous one.
func (r *AudioEventRecorder) Record(e AudioReceivedEvent) {
	now := r.m.now()
	if !r.last.IsZero() {
		r.m.interval.Observe(now.Sub(r.last).Seconds())
	}
	r.last = now
	r.m.events.Inc()
	if e.Buffer != nil && e.Buffer.Silence {
		r.m.silent.Inc()
	}
	if e.Dropped > r.dropped {
		r.m.dropped.Add(float64(e.Dropped - r.dropped))
		r.dropped = e.Dropped
	}
}

// Wrap returns an OnAudioReceived callback for one socket that records each event, then calls
// f (nil: the event's buffers are released). Use a fresh Wrap per socket: the interval is
// measured between the events of one socket.
func (m *AudioMetrics) Wrap(f func(AudioReceivedEvent)) func(AudioReceivedEvent) {
	r := m.Recorder()
	return func(e AudioReceivedEvent) {
		r.Record(e)
		if f != nil {
			f(e)
			return
		}
		e.Buffer.Release()
		for _, u := range e.Unmixed {
			u.Release()
		}
	}
}
