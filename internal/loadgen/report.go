package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what one run measured. Its JSON form is what --json prints.
type Report struct {
	Bot           string  `json:"bot"`
	Mode          string  `json:"mode"`
	Calls         int     `json:"calls"`
	Video         bool    `json:"video,omitempty"`
	LossPercent   float64 `json:"impairLossPercent,omitempty"`
	JitterMs      float64 `json:"impairJitterMs,omitempty"`
	RampSeconds   float64 `json:"rampSeconds"`
	WindowSeconds float64 `json:"windowSeconds"`

	Established int            `json:"established"`
	Failed      int            `json:"failed"`
	Dropped     int            `json:"dropped"`
	Reasons     map[string]int `json:"reasons,omitempty"`

	Processes []Process `json:"processes"`
	Cadence   *Cadence  `json:"cadence,omitempty"`
	RxGap     *Gaps     `json:"rxGap,omitempty"`
	RTT       *RTT      `json:"rtt,omitempty"`
	Packets   *Packets  `json:"packets,omitempty"`

	// LoadAverage is the machine's 1-minute load average before the ramp and after the window.
	LoadAverage [2]float64 `json:"loadAverage"`
	// MachineBusyPercent is the share of all the machine's CPUs in use during the window.
	MachineBusyPercent float64 `json:"machineBusyPercent"`
}

// Process is one measured process over the window.
type Process struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// CPUPercent is user+system CPU over the window, in % of one core.
	CPUPercent float64 `json:"cpuPercent"`
	// CPUMsPerCallSecond is CPU time per established call per second of the window.
	CPUMsPerCallSecond float64 `json:"cpuMsPerCallSecond"`
	// PeakRSSMiB is the process's peak resident set (VmHWM) at the end of the window.
	PeakRSSMiB float64 `json:"peakRssMiB"`
	// RSSPerCallKiB is (peak − resident set before the first call) / established calls.
	RSSPerCallKiB float64 `json:"rssPerCallKiB,omitempty"`
}

// Cadence is the interval between consecutive audio events of a bot's sockets, from the bot's
// sdk.AudioMetrics, over the window. MaxMs is the upper bound of the highest bucket hit (-1:
// beyond 5 s).
type Cadence struct {
	Source    string  `json:"source"`
	Intervals uint64  `json:"intervals"`
	P50Ms     float64 `json:"p50Ms"`
	P99Ms     float64 `json:"p99Ms"`
	MaxMs     float64 `json:"maxMs"`
	Events    uint64  `json:"events"`
	Silent    uint64  `json:"silent"`
	Dropped   uint64  `json:"dropped"`
}

// Gaps is the interval between consecutive audio packets a participant received from the bot.
type Gaps struct {
	Intervals uint64  `json:"intervals"`
	P50Ms     float64 `json:"p50Ms"`
	P99Ms     float64 `json:"p99Ms"`
	MaxMs     float64 `json:"maxMs"`
}

// RTT is the marker round trip: from sending a marker burst to its onset in the audio that
// came back, on the sampled calls. It includes CodecDelayMs (two Opus encode-decode passes: the
// participant's and the bot's, at the SDK's default encoding).
type RTT struct {
	SampledCalls int     `json:"sampledCalls"`
	Samples      uint64  `json:"samples"`
	P50Ms        float64 `json:"p50Ms"`
	P99Ms        float64 `json:"p99Ms"`
	CodecDelayMs float64 `json:"codecDelayMs"`
}

// Packets counts audio packets over the window: sent by the participants, received back from
// the bot, and lost on the way back (gaps in the sequence numbers).
type Packets struct {
	Sent            uint64  `json:"sent"`
	Received        uint64  `json:"received"`
	ReceivedPercent float64 `json:"receivedPercent"`
	LostOnReturn    int64   `json:"lostOnReturn"`
	// VideoReceived counts the video packets that came back from the bot (with Video).
	VideoReceived uint64 `json:"videoReceived,omitempty"`
}

func processFigures(name string, pid int, cpu time.Duration, rssBefore int64, window float64, calls int) Process {
	p := Process{Name: name, PID: pid}
	if window > 0 {
		p.CPUPercent = 100 * cpu.Seconds() / window
		p.CPUMsPerCallSecond = float64(cpu.Microseconds()) / 1000 / window / float64(calls)
	}
	if peak, _, err := procMemory(pid); err == nil {
		p.PeakRSSMiB = float64(peak) / (1 << 20)
		if rssBefore > 0 && peak > rssBefore {
			p.RSSPerCallKiB = float64(peak-rssBefore) / 1024 / float64(calls)
		}
	}
	return p
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as a table for people.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	imp := ""
	if r.LossPercent > 0 || r.JitterMs > 0 {
		imp = fmt.Sprintf(", impaired %.1f%% loss %.0f ms jitter", r.LossPercent, r.JitterMs)
	}
	video := ""
	if r.Video {
		video = " with video"
	}
	row("run", "%d %s calls%s to %q%s; ramp %.1fs, window %.1fs", r.Calls, r.Mode, video, r.Bot, imp, r.RampSeconds, r.WindowSeconds)
	row("calls", "%d established, %d failed, %d dropped", r.Established, r.Failed, r.Dropped)
	for _, k := range sortedReasons(r.Reasons) {
		row("", "%d× %s", r.Reasons[k], k)
	}
	for _, p := range r.Processes {
		per := ""
		if p.RSSPerCallKiB > 0 {
			per = fmt.Sprintf(" (%.0f KiB per call)", p.RSSPerCallKiB)
		}
		row(p.Name, "CPU %.1f%% of a core = %.2f ms per call-second; peak RSS %.1f MiB%s (pid %d)",
			p.CPUPercent, p.CPUMsPerCallSecond, p.PeakRSSMiB, per, p.PID)
	}
	if c := r.Cadence; c != nil {
		max := fmt.Sprintf("≤%.0fms", c.MaxMs)
		if c.MaxMs < 0 {
			max = ">5s"
		}
		row("bot cadence", "p50 %.1fms p99 %.1fms max %s over %d intervals; %d events, %d silent, %d dropped",
			c.P50Ms, c.P99Ms, max, c.Intervals, c.Events, c.Silent, c.Dropped)
	} else {
		row("bot cadence", "not measured (no bot metrics endpoint with sdk.AudioMetrics)")
	}
	if g := r.RxGap; g != nil {
		row("rx gap", "p50 %.1fms p99 %.1fms max ≤%.1fms (participant side, %d intervals)", g.P50Ms, g.P99Ms, g.MaxMs, g.Intervals)
	}
	if t := r.RTT; t != nil {
		row("path RTT", "p50 %.1fms p99 %.1fms (%d markers on %d sampled calls; includes %.1fms of Opus codec delay)",
			t.P50Ms, t.P99Ms, t.Samples, t.SampledCalls, t.CodecDelayMs)
	}
	if p := r.Packets; p != nil {
		if r.Mode == Sendrecv.String() {
			row("packets", "%d sent, %d back (%.2f%%), %d lost on the way back", p.Sent, p.Received, p.ReceivedPercent, p.LostOnReturn)
			if r.Video {
				row("", "%d video packets back from the bot", p.VideoReceived)
			}
		} else {
			row("packets", "%d sent", p.Sent)
		}
	}
	row("machine", "%.0f%% busy over the window; load average %.2f before, %.2f after", r.MachineBusyPercent, r.LoadAverage[0], r.LoadAverage[1])
	return tw.Flush()
}

// Summary is a one-line form of the report.
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d %s up, %d failed, %d dropped", r.Established, r.Calls, r.Mode, r.Failed, r.Dropped)
	for _, p := range r.Processes {
		fmt.Fprintf(&b, "; %s %.2f ms/call-s", p.Name, p.CPUMsPerCallSecond)
	}
	if c := r.Cadence; c != nil {
		fmt.Fprintf(&b, "; cadence p99 %.1fms", c.P99Ms)
	}
	if t := r.RTT; t != nil {
		fmt.Fprintf(&b, "; rtt p50 %.0fms", t.P50Ms)
	}
	return b.String()
}
