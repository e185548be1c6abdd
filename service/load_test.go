//go:build load

package service

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/service/internal/servicetest"
	"github.com/switchboard-rtc/switchboard/service/internal/testpeer"
)

// TestLoadConference20 runs one conference of 20 audio-only participants and 2 SDK bots, all in
// this one process, through the whole service: the participants speak real Opus (pre-encoded,
// each at its own loudness) over /ws-signalled pion connections on loopback; the bots are real
// SDK bots (jitter buffer, decoding and mixing of the loudest 3 every 20 ms). It reports the
// process's CPU (service, 20 participants' pion stacks and 2 bots together) and the delay from a
// participant's send to another participant's receipt of the same packet. Run with:
//
//	go test -tags load -run TestLoadConference20 -v -timeout 10m ./service/
//
// SWITCHBOARD_LOAD_CPUPROFILE=<file> writes a CPU profile of the measured window;
// SWITCHBOARD_LOAD_SHARED_PORT=1 puts every connection on one shared UDP port instead of one port
// per connection (the default).
func TestLoadConference20(t *testing.T) {
	const participants, window = 20, 10 * time.Second
	var conf Conferencing
	if os.Getenv("SWITCHBOARD_LOAD_SHARED_PORT") != "" {
		conf.UDPAddr = "127.0.0.1:0"
	}
	s := newConfServer(t, conf)
	stamps := testpeer.NewStamps()
	var peers []*testpeer.Peer
	var joined []testpeer.Joined
	for i := range participants {
		amp := 1000 + 500*float64(i) // a spread of loudness
		p := dialPeer(t, s, testpeer.Config{Name: fmt.Sprintf("p%02d", i), Audio: steady(1+0.05*float64(i), amp),
			Loop: true, CountOnly: true, Stamps: stamps})
		j, err := p.Join(t.Context(), "load")
		if err != nil {
			t.Fatal(err)
		}
		peers, joined = append(peers, p), append(joined, j)
	}
	last := peers[len(peers)-1]
	servicetest.Eventually(t, "full mesh", func() bool {
		for _, j := range joined[:len(joined)-1] {
			if last.Packets(j.Sources.Audio) < 20 {
				return false
			}
		}
		return true
	})
	var bots []*recordingBot
	for i := range 2 {
		id := fmt.Sprintf("bot%d", i)
		b := newRecordingBot(t, s, id)
		if _, err := s.Calls().InviteBot(t.Context(), joined[0].ConferenceID, id, protocol.Identity{DisplayName: "load"}); err != nil {
			t.Fatal(err)
		}
		bots = append(bots, b)
	}
	for _, b := range bots {
		servicetest.Eventually(t, "bots hear the loudest", func() bool { _, n := b.heard(50); return n == 50 })
	}
	time.Sleep(2 * time.Second) // settle
	for _, p := range peers {
		p.Delays()
	}
	botBefore := make([]int, len(bots))
	for i, b := range bots {
		b.mu.Lock()
		botBefore[i] = b.audioTotal
		b.mu.Unlock()
	}
	if path := os.Getenv("SWITCHBOARD_LOAD_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	time.Sleep(window)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	wall := time.Since(start)
	cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())

	var all []time.Duration
	for _, p := range peers {
		all = append(all, p.Delays()...)
	}
	slices.Sort(all)
	pct := func(q float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[int(q*float64(len(all)-1))]
	}
	expected := participants * (participants - 1) * int(window/(20*time.Millisecond))
	ports := "one UDP port per connection"
	if conf.UDPAddr != "" {
		ports = "one shared UDP port"
	}
	t.Logf("%d audio participants + %d SDK bots (loudest 3 each), one process, %s, %v window, GOMAXPROCS=%d",
		participants, len(bots), ports, wall.Round(time.Millisecond), runtime.GOMAXPROCS(0))
	t.Logf("process CPU (service + participants' pion stacks + bots): %v = %.0f%% of one core", cpu.Round(time.Millisecond), 100*cpu.Seconds()/wall.Seconds())
	t.Logf("forwarded audio packets received by participants: %d (expected about %d)", len(all), expected)
	t.Logf("send-to-receive delay through the service: p50 %v  p90 %v  p99 %v  max %v", pct(0.5), pct(0.9), pct(0.99), pct(1))
	for i, b := range bots {
		got, _ := b.heard(50)
		b.mu.Lock()
		n := b.audioTotal - botBefore[i]
		b.mu.Unlock()
		t.Logf("bot%d: %d audio frames in the window (expected about %d), speakers in its last second: %v", i, n, int(window/(20*time.Millisecond)), got)
		if n < int(window/(20*time.Millisecond))*8/10 {
			t.Errorf("bot%d got %d audio frames", i, n)
		}
	}
	if len(all) < expected/2 {
		t.Errorf("only %d of about %d packets arrived", len(all), expected)
	}
}
