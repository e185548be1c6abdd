// Package loadgen places many concurrent calls through a Switchboard service to a bot and
// measures what they cost and how well they go: calls established and failed, CPU and peak
// memory of the service and bot processes, the bot's audio event cadence, the media's round
// trip through the service and the bot, and packet loss.
//
// Each call is a participant the way a browser is one: a WebSocket to the service's /ws
// (docs/signalling.md) that calls the bot, a publisher peer connection sending Opus (pion,
// real DTLS-SRTP), and a subscriber connection receiving the bot's audio. The participants'
// side is kept cheap so that it does not become the bottleneck: the signal is encoded once (a
// loop of packets shared by every call), one goroutine paces every call's packets and reads
// every call's sockets (lean.go: the media are counted from their RTP headers as they come off
// the socket, without pion's receive path), and only a sample of the calls decode what they
// receive, to find the latency markers (a loud burst at the start of every second of the
// signal).
//
// cmd/switchboard-load is its command line; docs/load.md explains the figures.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
)

// Mode is what the bot does with a call's audio.
type Mode uint8

// Modes.
const (
	// Sendrecv: the bot sends audio back (an echo bot); the round trip is measured.
	Sendrecv Mode = iota
	// Recvonly: the bot only receives (a recorder); calls are established when the bot joins.
	Recvonly
)

func (m Mode) String() string {
	if m == Recvonly {
		return "recvonly"
	}
	return "sendrecv"
}

// ParseMode reads "sendrecv" or "recvonly".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "sendrecv", "":
		return Sendrecv, nil
	case "recvonly":
		return Recvonly, nil
	}
	return 0, fmt.Errorf("loadgen: mode %q, want sendrecv or recvonly", s)
}

// Config is one load run.
type Config struct {
	// ServiceURL is the service's base URL (http://127.0.0.1:8080); calls go to its /ws.
	ServiceURL string
	// Bot is the app id of the bot to call.
	Bot string
	// Calls is how many concurrent calls to place.
	Calls int
	// Rate is how many calls to place a second while ramping up [20].
	Rate float64
	// Settle is the time between the last call placed and the start of the measured window [3s].
	Settle time.Duration
	// Duration is the measured (steady) window [20s].
	Duration time.Duration
	// Mode says whether the bot sends audio back.
	Mode Mode
	// Video adds a VP8 camera stream to every call (320×180, 12.5 frames a second, one layer),
	// encoded once and shared.
	Video bool
	// WAV is a 16 kHz WAV file to send instead of the generated tone.
	WAV string
	// DecodeEvery makes one call in DecodeEvery decode the bot's audio to find the latency
	// markers [10]; 1 decodes every call.
	DecodeEvery int
	// EstablishTimeout bounds placing one call [30s].
	EstablishTimeout time.Duration
	// DropAfter is how long an established sendrecv call may receive nothing before it counts
	// as dropped [3s].
	DropAfter time.Duration

	// Loss (0..1) and Jitter impair every call's media through a UDP relay on 127.0.0.1 in
	// front of each of its peer connections.
	Loss   float64
	Jitter time.Duration

	// ServicePID and BotPID are the processes whose CPU and memory are measured (0: not
	// measured).
	ServicePID, BotPID int
	// BotMetricsURL is the bot's Prometheus endpoint with sdk.AudioMetrics (empty: the cadence
	// is not measured at the bot).
	BotMetricsURL string

	// Progress receives one line a second while the run lasts (nil: none).
	Progress io.Writer
	// OnWindow, when set, is called as the measured window starts, with its length (to start
	// profilers). It must return quickly.
	OnWindow func(window time.Duration)
}

func (c *Config) defaults() error {
	if c.ServiceURL == "" || c.Bot == "" {
		return errors.New("loadgen: the service URL and the bot's app id are required")
	}
	if c.Calls <= 0 {
		return fmt.Errorf("loadgen: %d calls", c.Calls)
	}
	if c.Rate <= 0 {
		c.Rate = 20
	}
	if c.Settle <= 0 {
		c.Settle = 3 * time.Second
	}
	if c.Duration <= 0 {
		c.Duration = 20 * time.Second
	}
	if c.DecodeEvery <= 0 {
		c.DecodeEvery = 10
	}
	if c.EstablishTimeout <= 0 {
		c.EstablishTimeout = 30 * time.Second
	}
	if c.DropAfter <= 0 {
		c.DropAfter = 3 * time.Second
	}
	if c.Loss < 0 || c.Loss > 1 {
		return fmt.Errorf("loadgen: loss %v, want 0..1", c.Loss)
	}
	return nil
}

// Generator runs one load run. Make it with New, then Run it once.
type Generator struct {
	cfg   Config
	wsURL string
	sig   *Signal
	video *videoLoop
	api   *webrtc.API
	lean  *leanAPIs // nil with video: every call then takes pion's full path
	http  *http.Client

	mu    sync.Mutex
	calls []*call
	// sending holds the calls whose publisher is connected, by pacing group; the sender reads
	// it every tick.
	sending [sendGroups]atomic.Pointer[[]*call]
	sendMu  sync.Mutex

	videoRx atomic.Uint64 // video packets received from the bot, all calls

	rxGaps *hist // interval between consecutive packets of a call's received audio
	lat    *hist // marker round trip

	stop chan struct{}
	wg   sync.WaitGroup
}

// sendGroups spread the calls' packets over the 20 ms frame: group g sends at g×2 ms.
const sendGroups = 10

// reportSlots is the interval of a lean publisher's sender reports, in 20 ms slots (1 s); the
// calls of a group take turns over it.
const reportSlots = 50

// New checks cfg and prepares the signal and the WebRTC engine shared by every call.
func New(cfg Config) (*Generator, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	u, err := url.Parse(strings.TrimSuffix(cfg.ServiceURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("loadgen: service URL %q is not an http(s) URL", cfg.ServiceURL)
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	g := &Generator{
		cfg:    cfg,
		wsURL:  u.String() + "/ws",
		http:   &http.Client{Timeout: 5 * time.Second},
		rxGaps: newHist(500*time.Microsecond, 2000),
		lat:    newHist(time.Millisecond, 5000),
		stop:   make(chan struct{}),
	}
	if cfg.WAV != "" {
		g.sig, err = LoadWAVSignal(cfg.WAV)
	} else {
		g.sig, err = GenerateSignal(1)
	}
	if err != nil {
		return nil, err
	}
	if cfg.Video {
		if g.video, err = newVideoLoop(); err != nil {
			return nil, err
		}
	}
	// Each participant connection has its own UDP socket, as a browser's do. (They cannot
	// share one through an ICE UDP mux: the service has one media port, and a mux binds a
	// remote address to the first connection that heard from it.)
	if g.api, err = rtc.NewAPI(rtc.ServiceSettingEngine(true)); err != nil {
		return nil, err
	}
	if !cfg.Video {
		if g.lean, err = newLeanAPIs(); err != nil {
			return nil, err
		}
	}
	for i := range g.sending {
		g.sending[i].Store(&[]*call{})
	}
	return g, nil
}

func (g *Generator) impaired() bool { return g.cfg.Loss > 0 || g.cfg.Jitter > 0 }

func (g *Generator) addLatency(d time.Duration) { g.lat.observe(d) }

// startSending adds a call to its pacing group.
func (g *Generator) startSending(c *call) {
	g.sendMu.Lock()
	defer g.sendMu.Unlock()
	grp := &g.sending[c.id%sendGroups]
	old := *grp.Load()
	for _, o := range old {
		if o == c {
			return
		}
	}
	next := append(append(make([]*call, 0, len(old)+1), old...), c)
	grp.Store(&next)
}

// send is the one goroutine that paces every call's packets: tick n (every 2 ms) sends the next
// frame of pacing group n mod 10, so every call sends every 20 ms on an absolute schedule; on
// every tick it also reads what arrived on the lean sockets (leanAPIs.poll). When
// the goroutine runs late (a busy machine) it catches up on the overdue ticks at once, as a
// browser's audio thread does; only past maxBehind does it skip them.
func (g *Generator) send() {
	defer g.wg.Done()
	const (
		tick      = frameDuration / sendGroups
		maxBehind = 10 * frameDuration
	)
	start := time.Now()
	t := time.NewTimer(tick)
	defer t.Stop()
	n := 1
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		g.lean.poll()
		now := time.Now()
		if behind := now.Sub(start.Add(time.Duration(n) * tick)); behind > maxBehind {
			n += int(behind / tick)
		}
		for ; !start.Add(time.Duration(n) * tick).After(now); n++ {
			for _, c := range *g.sending[n%sendGroups].Load() {
				if c.state.Load() > stateEstablished {
					continue
				}
				slot := n / sendGroups
				c.sendFrame(g.sig, now.UnixNano(), slot)
				if g.lean != nil && slot%reportSlots == c.id/sendGroups%reportSlots {
					c.sendReport(now, slot)
				}
				if c.video != nil && slot%videoEvery == 0 {
					c.sendVideo(g.video, slot)
				}
			}
		}
		t.Reset(time.Until(start.Add(time.Duration(n) * tick)))
	}
}

// snapshot is the state of everything measured at one instant.
type snapshot struct {
	at             time.Time
	svcCPU, botCPU time.Duration
	selfCPU        time.Duration
	busy, total    uint64
	rx             histSnap
	lat            histSnap
	bot            botScrape
	botOK          bool
	sent, recv     uint64
	expected       int64
	videoRx        uint64
}

func (g *Generator) snapshot(ctx context.Context) snapshot {
	s := snapshot{at: time.Now(), rx: g.rxGaps.snapshot(), lat: g.lat.snapshot(), videoRx: g.videoRx.Load()}
	if g.cfg.ServicePID > 0 {
		s.svcCPU, _ = procCPU(g.cfg.ServicePID)
	}
	if g.cfg.BotPID > 0 {
		s.botCPU, _ = procCPU(g.cfg.BotPID)
	}
	s.selfCPU, _ = procCPU(os.Getpid())
	s.busy, s.total, _ = machineCPU()
	if g.cfg.BotMetricsURL != "" {
		var err error
		s.bot, err = scrapeBot(ctx, g.http, g.cfg.BotMetricsURL)
		s.botOK = err == nil
	}
	g.mu.Lock()
	for _, c := range g.calls {
		s.sent += c.sent.Load()
		s.recv += c.recv.Load()
		s.expected += c.expected.Load()
	}
	g.mu.Unlock()
	return s
}

// counts returns the calls by state.
func (g *Generator) counts() (placing, established, failed, dropped int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.calls {
		switch c.state.Load() {
		case statePlacing:
			placing++
		case stateEstablished:
			established++
		case stateFailed:
			failed++
		case stateDropped:
			dropped++
		}
	}
	return
}

// watch checks once a second that established sendrecv calls still receive, and prints the
// progress line.
func (g *Generator) watch(ctx context.Context, start time.Time) {
	defer g.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	prev := g.snapshot(ctx)
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		if g.cfg.Mode == Sendrecv {
			cutoff := time.Now().Add(-g.cfg.DropAfter).UnixNano()
			g.mu.Lock()
			calls := append([]*call(nil), g.calls...)
			g.mu.Unlock()
			for _, c := range calls {
				if c.state.Load() == stateEstablished && c.lastRx.Load() < cutoff {
					c.fail(fmt.Sprintf("no audio from the bot for %v", g.cfg.DropAfter))
				}
			}
		}
		cur := g.snapshot(ctx)
		if g.cfg.Progress != nil {
			fmt.Fprintln(g.cfg.Progress, g.progressLine(start, prev, cur))
		}
		prev = cur
	}
}

func (g *Generator) progressLine(start time.Time, prev, cur snapshot) string {
	placing, est, failed, dropped := g.counts()
	var b strings.Builder
	fmt.Fprintf(&b, "%4.0fs calls %d/%d up, %d placing, %d failed, %d dropped", cur.at.Sub(start).Seconds(),
		est, g.cfg.Calls, placing, failed, dropped)
	if cur.botOK && prev.botOK {
		d := cur.bot.sub(prev.bot)
		fmt.Fprintf(&b, " | bot cadence p50 %s p99 %s max %s", ms(d.interval.quantile(0.5)), ms(d.interval.quantile(0.99)), msMax(d.interval.max()))
		if d.events > 0 {
			fmt.Fprintf(&b, ", %.0f%% silent", 100*d.silent/d.events)
		}
	}
	if g.cfg.Mode == Sendrecv {
		rx := cur.rx.sub(prev.rx)
		fmt.Fprintf(&b, " | rx gap p99 %s", ms(rx.quantile(0.99)))
		lat := cur.lat.sub(prev.lat)
		if lat.total() > 0 {
			fmt.Fprintf(&b, " | rtt p50 %s", ms(lat.quantile(0.5)))
		}
		if sent := cur.sent - prev.sent; sent > 0 {
			fmt.Fprintf(&b, " | back %.1f%%", 100*float64(cur.recv-prev.recv)/float64(sent))
		}
	}
	if cur.total > prev.total {
		fmt.Fprintf(&b, " | machine %.0f%% busy", 100*float64(cur.busy-prev.busy)/float64(cur.total-prev.total))
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func msMax(d time.Duration) string {
	if d == time.Duration(1<<63-1) {
		return ">5s"
	}
	return "≤" + ms(d)
}

// Run places the calls, measures the steady window, hangs up and reports. It returns early,
// with what it measured so far, when ctx ends.
func (g *Generator) Run(ctx context.Context) (*Report, error) {
	defer g.close()
	cfg := g.cfg
	start := time.Now()
	var rssBefore [2]int64
	for i, pid := range []int{cfg.ServicePID, cfg.BotPID} {
		if pid > 0 {
			_, rssBefore[i], _ = procMemory(pid)
		}
	}
	load0, _ := loadAverage()
	g.wg.Add(2)
	go g.send()
	go g.watch(ctx, start)

	// Ramp up: call i is placed at start + i/Rate.
	var placing sync.WaitGroup
	for i := 0; i < cfg.Calls; i++ {
		at := start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
		if !sleepUntil(ctx, at) {
			break
		}
		c := g.newCall(i)
		placing.Add(1)
		go func() {
			defer placing.Done()
			if err := c.place(ctx); err != nil {
				c.fail(err.Error())
				c.hangUp() // free what it holds now
			}
		}()
	}
	placing.Wait()
	rampEnd := time.Now()
	sleepUntil(ctx, rampEnd.Add(cfg.Settle))

	if cfg.OnWindow != nil {
		cfg.OnWindow(cfg.Duration)
	}
	w0 := g.snapshot(ctx)
	sleepUntil(ctx, w0.at.Add(cfg.Duration))
	w1 := g.snapshot(ctx)
	load1, _ := loadAverage()
	_, established, failed, dropped := g.counts()

	r := &Report{
		Bot: cfg.Bot, Mode: cfg.Mode.String(), Calls: cfg.Calls, Video: cfg.Video,
		RampSeconds: rampEnd.Sub(start).Seconds(), WindowSeconds: w1.at.Sub(w0.at).Seconds(),
		Established: established, Failed: failed, Dropped: dropped,
		LoadAverage: [2]float64{load0, load1},
		LossPercent: cfg.Loss * 100, JitterMs: float64(cfg.Jitter) / float64(time.Millisecond),
	}
	if w1.total > w0.total {
		r.MachineBusyPercent = 100 * float64(w1.busy-w0.busy) / float64(w1.total-w0.total)
	}
	r.Reasons = g.reasons()
	calls := max(1, established)
	for _, p := range []struct {
		name       string
		pid        int
		cpu0, cpu1 time.Duration
		rss0       int64
	}{
		{"service", cfg.ServicePID, w0.svcCPU, w1.svcCPU, rssBefore[0]},
		{"bot", cfg.BotPID, w0.botCPU, w1.botCPU, rssBefore[1]},
		{"load generator", os.Getpid(), w0.selfCPU, w1.selfCPU, 0},
	} {
		if p.pid > 0 {
			r.Processes = append(r.Processes, processFigures(p.name, p.pid, p.cpu1-p.cpu0, p.rss0, r.WindowSeconds, calls))
		}
	}
	if w0.botOK && w1.botOK {
		d := w1.bot.sub(w0.bot)
		r.Cadence = &Cadence{
			Source: "bot", Intervals: d.interval.count,
			P50Ms: msf(d.interval.quantile(0.5)), P99Ms: msf(d.interval.quantile(0.99)), MaxMs: msf(d.interval.max()),
			Events: uint64(d.events), Silent: uint64(d.silent), Dropped: uint64(d.dropped),
		}
		if d.interval.max() == time.Duration(1<<63-1) {
			r.Cadence.MaxMs = -1
		}
	}
	if cfg.Mode == Sendrecv {
		rx := w1.rx.sub(w0.rx)
		r.RxGap = &Gaps{Intervals: rx.total(), P50Ms: msf(rx.quantile(0.5)), P99Ms: msf(rx.quantile(0.99)), MaxMs: msf(rx.max())}
		lat := w1.lat.sub(w0.lat)
		r.RTT = &RTT{Samples: lat.total(), P50Ms: msf(lat.quantile(0.5)), P99Ms: msf(lat.quantile(0.99)),
			CodecDelayMs: msf(g.sig.PathCodecDelay), SampledCalls: (cfg.Calls + cfg.DecodeEvery - 1) / cfg.DecodeEvery}
		r.Packets = &Packets{Sent: w1.sent - w0.sent, Received: w1.recv - w0.recv,
			LostOnReturn: max(0, (w1.expected-w0.expected)-int64(w1.recv-w0.recv))}
		r.Packets.VideoReceived = w1.videoRx - w0.videoRx
		if r.Packets.Sent > 0 {
			r.Packets.ReceivedPercent = 100 * float64(r.Packets.Received) / float64(r.Packets.Sent)
		}
	} else {
		r.Packets = &Packets{Sent: w1.sent - w0.sent}
	}
	close(g.stop)
	g.wg.Wait()
	g.hangUpAll()
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("loadgen: run interrupted: %w", err)
	}
	return r, nil
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func (g *Generator) newCall(i int) *call {
	c := &call{id: i, g: g, estCh: make(chan struct{}), ended: make(chan struct{})}
	c.pkt.Header.Version = 2
	c.pkt.Header.PayloadType = uint8(rtc.PayloadTypeOpus)
	c.pkt.Header.SequenceNumber = uint16(i * 7919)
	c.tsBase = uint32(i) * 104729
	if g.cfg.Mode == Sendrecv && i%g.cfg.DecodeEvery == 0 {
		if d, err := NewDetector(); err == nil {
			c.det = d
		}
	}
	g.mu.Lock()
	g.calls = append(g.calls, c)
	g.mu.Unlock()
	return c
}

// reasons counts the calls' failure reasons.
func (g *Generator) reasons() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := map[string]int{}
	for _, c := range g.calls {
		if s := c.state.Load(); s == stateFailed || s == stateDropped {
			prefix := "failed: "
			if s == stateDropped {
				prefix = "dropped: "
			}
			r[prefix+c.failReason()]++
		}
	}
	return r
}

// hangUpAll ends every call, a few at a time.
func (g *Generator) hangUpAll() {
	g.mu.Lock()
	calls := append([]*call(nil), g.calls...)
	g.mu.Unlock()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, c := range calls {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.hangUp()
			<-sem
		}()
	}
	wg.Wait()
}

func (g *Generator) close() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	g.wg.Wait()
	g.hangUpAll()
	g.lean.close()
}

// sortedReasons returns the reasons, most frequent first.
func sortedReasons(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}
