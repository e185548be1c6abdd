//go:build load

package signal

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/service/sfu"
)

// TestLoadServer is the service side of TestLoad20, run in its own process: the SFU and the
// signalling server, plus two bot legs (each fed the loudest 3) whose receiving ends run here
// too (they only count packets). It prints its WebSocket URL and runs until stdin closes.
func TestLoadServer(t *testing.T) {
	if os.Getenv("SWITCHBOARD_LOAD_SERVER") == "" {
		t.Skip("run by TestLoad20")
	}
	s, err := sfu.New(sfu.Config{Loopback: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := NewServer(s, Options{Logger: slog.New(slog.DiscardHandler)})
	defer srv.Close()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	conf, _ := s.Conference(RoomConferenceID("load"))
	api, _ := rtc.NewAPI(rtc.ServiceSettingEngine(true))
	var counts [2]int64
	var mu sync.Mutex
	var pcs []*webrtc.PeerConnection
	for i := range 2 {
		p, err := conf.AddBot(fmt.Sprintf("bot%d", i), sfu.BotOptions{DisplayName: "bot"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		offer, err := p.Offer(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pc, _ := api.NewPeerConnection(webrtc.Configuration{})
		pcs = append(pcs, pc)
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			go func() {
				buf := make([]byte, 1500)
				for {
					if _, _, err := tr.Read(buf); err != nil {
						return
					}
					mu.Lock()
					counts[i]++
					mu.Unlock()
				}
			}()
		})
		_ = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer})
		answer, _ := rtc.CompleteAnswer(ctx, pc, nil)
		_ = p.Connect(ctx, answer)
		cancel()
	}
	fmt.Printf("URL %s\n", "ws"+strings.TrimPrefix(hs.URL, "http"))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		mu.Lock()
		fmt.Printf("BOTS %d %d\n", counts[0], counts[1])
		mu.Unlock()
	}
	for _, pc := range pcs {
		_ = pc.Close()
	}
}

// procCPU returns a process's user+system CPU time from /proc.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

// TestLoad20 measures the service alone: 20 audio-only browsers (pion, in this process) in one
// conference with 2 bot legs, the service (SFU, signalling, the bots' receiving ends) in a child
// process. It reports the service process's CPU and the send-to-receive delay of the forwarded
// audio. Run with:
//
//	go test -tags load -run TestLoad20 -v -timeout 10m ./service/signal/
func TestLoad20(t *testing.T) {
	args := []string{"-test.run=^TestLoadServer$", "-test.v"}
	if p := os.Getenv("SWITCHBOARD_LOAD_PROFILE"); p != "" {
		args = append(args, "-test.cpuprofile="+p)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SWITCHBOARD_LOAD_SERVER=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	var url string
	for lines.Scan() {
		if u, ok := strings.CutPrefix(lines.Text(), "URL "); ok {
			url = u
			break
		}
	}
	if url == "" {
		t.Fatal("server did not start")
	}
	e := &env{url: url}
	var clients []*client
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	for i := range 20 {
		c := dial(t, e)
		c.stamp = true
		clients = append(clients, c)
		c.prepare()
		join(c, "load", fmt.Sprintf("p%02d", i))
		c.startMedia(byte('a' + i))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := true
		for i, c := range clients {
			for j := range clients {
				if i != j && c.heard(byte('a'+j)) < 10 {
					ok = false
				}
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("full mesh not reached")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	for _, c := range clients {
		c.mu.Lock()
		c.delays = c.delays[:0]
		c.mu.Unlock()
	}
	bots := func() string {
		fmt.Fprintln(stdin, "count")
		for lines.Scan() {
			if b, ok := strings.CutPrefix(lines.Text(), "BOTS "); ok {
				return b
			}
		}
		return "?"
	}
	b0 := bots()
	cpu0, _ := procCPU(cmd.Process.Pid)
	start := time.Now()
	const window = 10 * time.Second
	time.Sleep(window)
	cpu1, _ := procCPU(cmd.Process.Pid)
	wall := time.Since(start)
	b1 := bots()
	var all []int64
	for _, c := range clients {
		c.mu.Lock()
		all = append(all, c.delays...)
		c.mu.Unlock()
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(q float64) time.Duration { return time.Duration(all[int(q*float64(len(all)-1))]) }
	expected := 20 * 19 * int(window/(20*time.Millisecond))
	cpu := cpu1 - cpu0
	t.Logf("service process (SFU + signalling + 2 bots' receiving ends), 20 audio participants, %v:", wall.Round(time.Millisecond))
	t.Logf("  CPU %v = %.1f%% of one core (%.2f ms per participant-second)", cpu, 100*cpu.Seconds()/wall.Seconds(), float64(cpu.Milliseconds())/20/wall.Seconds())
	t.Logf("  audio packets received by participants: %d (expected about %d)", len(all), expected)
	t.Logf("  send-to-receive delay: p50 %v  p90 %v  p99 %v  max %v", pct(0.5), pct(0.9), pct(0.99), pct(1))
	t.Logf("  bot packet counters before/after: %s / %s (about 1500 each over the window)", b0, b1)
	if len(all) < expected/2 {
		t.Errorf("only %d of about %d packets", len(all), expected)
	}
}
