package sfu

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// streamMetrics are the per-kind counters the packet path touches (resolved once, so that the
// path allocates nothing).
type streamMetrics struct {
	in        prometheus.Counter
	out       prometheus.Counter
	outBytes  prometheus.Counter
	malformed prometheus.Counter
	plis      prometheus.Counter
}

// metrics are the SFU's collectors, registered on the Registerer of Config (none when nil).
type metrics struct {
	kinds            [4]*streamMetrics // by StreamKind
	malformedRTCP    prometheus.Counter
	keyframeRequests prometheus.Counter
	nacks            prometheus.Counter
	unannounced      prometheus.Counter
	retransmits      prometheus.Counter
	loss             prometheus.Histogram
	participants     prometheus.Gauge
	conferences      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	in := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "sfu",
		Name: "packets_received_total", Help: "RTP packets received from publishers, by stream kind."}, []string{"kind"})
	out := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "sfu",
		Name: "packets_forwarded_total", Help: "RTP packets forwarded to receivers, by stream kind."}, []string{"kind"})
	outBytes := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "sfu",
		Name: "payload_bytes_forwarded_total", Help: "RTP payload bytes forwarded to receivers, by stream kind."}, []string{"kind"})
	bad := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "sfu",
		Name: "packets_malformed_total", Help: "RTP packets dropped as malformed, by stream kind."}, []string{"kind"})
	plis := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "sfu",
		Name: "keyframe_requests_sent_total", Help: "PLIs sent to publishers (rate-limited), by stream kind."}, []string{"kind"})
	m := &metrics{
		malformedRTCP: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "sfu",
			Name: "rtcp_malformed_total", Help: "RTCP compound packets from receivers dropped as malformed."}),
		keyframeRequests: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "sfu",
			Name: "keyframe_requests_received_total", Help: "PLI and FIR packets received from receivers."}),
		nacks: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "sfu",
			Name: "nacks_received_total", Help: "Generic NACK entries received from receivers (answered from the retransmission buffers)."}),
		unannounced: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "sfu",
			Name: "bot_packets_unannounced_total", Help: "RTP packets from bots with an SSRC their answer did not announce (dropped)."}),
		retransmits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "switchboard", Subsystem: "sfu",
			Name: "bot_retransmissions_total", Help: "Video packets sent to bots again for their NACKs."}),
		loss: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "switchboard", Subsystem: "sfu",
			Name: "receiver_loss_ratio", Help: "Fraction lost in receivers' reports on forwarded streams.",
			Buckets: []float64{0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5}}),
		participants: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "switchboard", Subsystem: "sfu",
			Name: "participants", Help: "Participants (browsers and bots) in conferences."}),
		conferences: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "switchboard", Subsystem: "sfu",
			Name: "conferences", Help: "Open conferences."}),
	}
	for _, k := range []StreamKind{StreamAudio, StreamVideo, StreamScreen} {
		l := k.String()
		m.kinds[k] = &streamMetrics{in: in.WithLabelValues(l), out: out.WithLabelValues(l),
			outBytes: outBytes.WithLabelValues(l), malformed: bad.WithLabelValues(l), plis: plis.WithLabelValues(l)}
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{in, out, outBytes, bad, plis, m.malformedRTCP, m.keyframeRequests,
		m.nacks, m.unannounced, m.retransmits, m.loss, m.participants, m.conferences} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				return nil, fmt.Errorf("sfu: metrics already registered (one SFU per registry): %w", err)
			}
			return nil, fmt.Errorf("sfu: register metrics: %w", err)
		}
	}
	return m, nil
}
