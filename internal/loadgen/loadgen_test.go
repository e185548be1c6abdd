package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/sdk"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"), goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
}

// TestRun places 5 sendrecv calls through a spawned service to the echo example bot on
// loopback and checks that all are established, the participants' cadence and the markers'
// round trip are measured, and the processes' CPU is read.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and spawns the service and the echo bot")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sp, err := Spawn(ctx, SpawnConfig{Bot: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.RemoveAll()
	defer sp.Close()
	var progress strings.Builder
	g, err := New(Config{
		ServiceURL: sp.ServiceURL, Bot: "echo", Calls: 5, Rate: 10,
		Settle: 2 * time.Second, Duration: 4 * time.Second, DecodeEvery: 2,
		ServicePID: sp.ServicePID, BotPID: sp.BotPID, BotMetricsURL: sp.BotMetricsURL,
		Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := g.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	_ = r.WriteTable(&table)
	t.Logf("progress:\n%s\n%s", progress.String(), table.String())
	if r.Established != 5 || r.Failed != 0 || r.Dropped != 0 {
		t.Fatalf("established %d, failed %d, dropped %d (%v), want 5, 0, 0", r.Established, r.Failed, r.Dropped, r.Reasons)
	}
	if r.RxGap == nil || r.RxGap.Intervals == 0 || r.RxGap.P50Ms < 10 || r.RxGap.P50Ms > 30 {
		t.Errorf("participant cadence not measured: %+v", r.RxGap)
	}
	if sp.BotMetricsURL != "" && (r.Cadence == nil || r.Cadence.Intervals == 0) {
		t.Errorf("bot cadence not measured: %+v", r.Cadence)
	}
	if r.RTT == nil || r.RTT.Samples == 0 || r.RTT.P50Ms <= r.RTT.CodecDelayMs {
		t.Errorf("markers not detected: %+v", r.RTT)
	}
	if r.Packets.Received == 0 || r.Packets.Sent == 0 {
		t.Errorf("packets %+v", r.Packets)
	}
	if len(r.Processes) != 3 || r.Processes[0].PeakRSSMiB == 0 {
		t.Errorf("processes %+v", r.Processes)
	}
	if !strings.Contains(progress.String(), "calls 5/5 up") {
		t.Errorf("progress lines never showed all calls up")
	}
}

// TestScrapeBotMetrics reads the cadence from a real sdk.AudioMetrics endpoint.
func TestScrapeBotMetrics(t *testing.T) {
	m := sdk.NewAudioMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	ctx := context.Background()
	before, err := scrapeBot(ctx, srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Recorder()
	var b media.AudioBuffer
	for i := 0; i < 101; i++ {
		r.Record(sdk.AudioReceivedEvent{Buffer: &b})
		if i < 100 {
			time.Sleep(time.Millisecond)
		}
	}
	after, err := scrapeBot(ctx, srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	d := after.sub(before)
	if d.interval.count != 100 || d.events != 101 {
		t.Fatalf("intervals %d events %v, want 100 and 101", d.interval.count, d.events)
	}
	// Sleeps of 1 ms last at least 1 ms: the median is past the first bucket's bound.
	if p50 := d.interval.quantile(0.5); p50 < time.Millisecond || p50 > time.Second {
		t.Fatalf("p50 %v", p50)
	}
	if mx := d.interval.max(); mx < d.interval.quantile(0.99) {
		t.Fatalf("max %v below p99 %v", mx, d.interval.quantile(0.99))
	}
	if _, err := scrapeBot(ctx, srv.Client(), srv.URL+"/nothing"); err == nil {
		srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("up 1\n")) }))
		defer srv2.Close()
		if _, err := scrapeBot(ctx, srv2.Client(), srv2.URL); err != ErrNoCadenceMetrics {
			t.Fatalf("metrics without the histogram: %v, want ErrNoCadenceMetrics", err)
		}
	}
}

// TestRunRecvonlyLoadBot places 5 receive-only calls to the instrumented load bot and checks
// that the bot's audio event cadence is read from its sdk.AudioMetrics.
func TestRunRecvonlyLoadBot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and spawns the service and the load bot")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sp, err := Spawn(ctx, SpawnConfig{Bot: "recv", LoadBot: "recvonly"})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.RemoveAll()
	defer sp.Close()
	if sp.BotMetricsURL == "" {
		t.Fatal("the load bot serves no metrics")
	}
	g, err := New(Config{
		ServiceURL: sp.ServiceURL, Bot: "recv", Mode: Recvonly, Calls: 5, Rate: 10,
		Settle: 2 * time.Second, Duration: 3 * time.Second,
		ServicePID: sp.ServicePID, BotPID: sp.BotPID, BotMetricsURL: sp.BotMetricsURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := g.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	_ = r.WriteTable(&table)
	t.Log("\n" + table.String())
	if r.Established != 5 || r.Failed != 0 || r.Dropped != 0 {
		t.Fatalf("established %d, failed %d, dropped %d (%v), want 5, 0, 0", r.Established, r.Failed, r.Dropped, r.Reasons)
	}
	c := r.Cadence
	if c == nil || c.Intervals == 0 || c.P50Ms < 10 || c.P50Ms > 30 || c.Events == 0 {
		t.Fatalf("bot cadence not measured: %+v", c)
	}
	if r.RTT != nil || r.Packets.Sent == 0 {
		t.Fatalf("receive-only report: rtt %+v packets %+v", r.RTT, r.Packets)
	}
}
