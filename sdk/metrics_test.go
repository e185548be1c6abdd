package sdk

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboard-rtc/switchboard/media"
)

// fakeClock steps by the given intervals, one per call.
type fakeClock struct {
	t     time.Time
	steps []time.Duration
}

func (c *fakeClock) now() time.Time {
	if len(c.steps) > 0 {
		c.t = c.t.Add(c.steps[0])
		c.steps = c.steps[1:]
	}
	return c.t
}

func TestAudioMetrics(t *testing.T) {
	m := NewAudioMetrics()
	clk := &fakeClock{t: time.Unix(1000, 0), steps: []time.Duration{0, 20 * time.Millisecond, 20 * time.Millisecond, 45 * time.Millisecond, 0}}
	m.now = clk.now
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	var got int
	cb := m.Wrap(func(e AudioReceivedEvent) { got++; e.Buffer.Release() })
	pool := media.NewAudioPool("test")
	for i, dropped := range []uint64{0, 0, 2, 3, 3} {
		b := pool.Get()
		b.Silence = i == 1
		cb(AudioReceivedEvent{Buffer: b, Dropped: dropped})
	}
	if got != 5 {
		t.Fatalf("callback ran %d times, want 5", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counters := map[string]float64{}
	var h *dto.Histogram
	for _, mf := range mfs {
		if mf.GetName() == "switchboard_sdk_audio_event_interval_seconds" {
			h = mf.GetMetric()[0].GetHistogram()
			continue
		}
		counters[mf.GetName()] = mf.GetMetric()[0].GetCounter().GetValue()
	}
	for name, want := range map[string]float64{
		"switchboard_sdk_audio_events_total":         5,
		"switchboard_sdk_audio_silent_events_total":  1,
		"switchboard_sdk_audio_dropped_events_total": 3,
	} {
		if counters[name] != want {
			t.Errorf("%s = %v, want %v", name, counters[name], want)
		}
	}
	if h == nil {
		t.Fatal("no interval histogram")
	}
	{
		if h.GetSampleCount() != 4 {
			t.Fatalf("intervals %d, want 4", h.GetSampleCount())
		}
		if s := h.GetSampleSum(); s < 0.0849 || s > 0.0851 {
			t.Fatalf("interval sum %v, want 0.085", s)
		}
		for _, b := range h.GetBucket() {
			le, n := b.GetUpperBound(), b.GetCumulativeCount()
			switch {
			case le < 0.0199 && n != 1, le >= 0.0199 && le < 0.044 && n != 3, le >= 0.045 && n != 4:
				t.Fatalf("bucket le=%v has %d", le, n)
			}
		}
	}
}

// TestAudioMetricsNoAllocs: recording an event allocates nothing.
func TestAudioMetricsNoAllocs(t *testing.T) {
	m := NewAudioMetrics()
	r := m.Recorder()
	var b media.AudioBuffer
	e := AudioReceivedEvent{Buffer: &b}
	r.Record(e)
	if n := testing.AllocsPerRun(1000, func() { e.Dropped++; r.Record(e) }); n != 0 {
		t.Fatalf("Record allocates %v times per event", n)
	}
}

func BenchmarkAudioMetricsRecord(b *testing.B) {
	m := NewAudioMetrics()
	r := m.Recorder()
	var buf media.AudioBuffer
	e := AudioReceivedEvent{Buffer: &buf}
	b.ReportAllocs()
	for b.Loop() {
		r.Record(e)
	}
}
