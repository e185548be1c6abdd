//go:build load

package sfu

import (
	"fmt"
	"runtime"
	"sort"
	"syscall"
	"testing"
	"time"
)

// TestLoad20 runs a conference of 20 audio-only pion participants and 2 bot legs (each fed the
// loudest 3) in this one process on loopback, and reports the process's CPU and the
// sender-to-receiver delay of forwarded audio. Run with:
//
//	go test -tags load -run TestLoad20 -v -timeout 10m ./service/sfu/
func TestLoad20(t *testing.T) {
	s := newTestSFU(t, Config{})
	c, err := s.Conference("load")
	if err != nil {
		t.Fatal(err)
	}
	api := clientAPI(t)
	var peers []*testPeer
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("%c%02d", 'a'+i, i)
		p := joinPeer(t, api, c, name, false)
		p.setLevel(byte(20 + i*4)) // a spread of loudness
		peers = append(peers, p)
	}
	defer func() {
		for _, p := range peers {
			p.close()
		}
	}()
	var bots []*testBot
	for i := 0; i < 2; i++ {
		bp, err := c.AddBot(fmt.Sprintf("bot%d", i), BotOptions{})
		if err != nil {
			t.Fatal(err)
		}
		bots = append(bots, connectBot(t, api, bp))
	}
	defer func() {
		for _, b := range bots {
			b.close()
		}
	}()
	last := peers[len(peers)-1]
	eventually(t, "full mesh", func() bool {
		for _, p := range peers[:len(peers)-1] {
			if rs, ok := last.stream(trackID(StreamAudio, p.p.SourceID(StreamAudio))); !ok || rs.packets < 20 {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // settle
	for _, p := range peers {
		p.mu.Lock()
		p.delays = p.delays[:0]
		p.mu.Unlock()
	}
	botBefore := make([]int, len(bots))
	for i, b := range bots {
		botBefore[i] = b.audioPackets()
	}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	const window = 10 * time.Second
	time.Sleep(window)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	wall := time.Since(start)
	cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())

	var all []int64
	for _, p := range peers {
		p.mu.Lock()
		all = append(all, p.delays...)
		p.mu.Unlock()
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(q float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return time.Duration(all[int(q*float64(len(all)-1))])
	}
	botGot := make([]int, len(bots))
	for i, b := range bots {
		botGot[i] = b.audioPackets() - botBefore[i]
	}
	expected := 20 * 19 * int(window/(20*time.Millisecond))
	t.Logf("20 audio participants + 2 bots (loudest 3), %v window, GOMAXPROCS=%d", wall.Round(time.Millisecond), runtime.GOMAXPROCS(0))
	t.Logf("process CPU (SFU and all 22 pion clients together): %v = %.0f%% of one core", cpu.Round(time.Millisecond), 100*cpu.Seconds()/wall.Seconds())
	t.Logf("audio packets received by participants: %d (expected about %d)", len(all), expected)
	t.Logf("send-to-receive delay through the SFU: p50 %v  p90 %v  p99 %v  max %v", pct(0.5), pct(0.9), pct(0.99), pct(1))
	t.Logf("bot audio packets received: %v (expected about %d each)", botGot, 3*int(window/(20*time.Millisecond)))
	if len(all) < expected/2 {
		t.Errorf("only %d of about %d packets arrived", len(all), expected)
	}
}

// audioPackets counts the packets the bot received on its audio slots.
func (b *testBot) audioPackets() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for mid, rs := range b.byMID {
		if mid[:5] == "audio" {
			n += rs.packets
		}
	}
	return n
}
