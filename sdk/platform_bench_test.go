package sdk

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/rtc/rtctest"
	"github.com/switchboard-rtc/switchboard/media"
)

// The load benchmarks run the service's side (M test peers) in a child process, so that the
// CPU time measured here with getrusage is the bot's alone. The child is this test binary,
// started with peerProcessEnv set; parent and child speak JSON lines over stdin and stdout.

const peerProcessEnv = "SWITCHBOARD_SDK_PEER_PROCESS"

type peerJob struct {
	Calls   int     `json:"calls"`
	Seconds float64 `json:"seconds"`
}

type peerMsg struct {
	Offers    []string `json:"offers,omitempty"`
	Answers   []string `json:"answers,omitempty"`
	Connected bool     `json:"connected,omitempty"`
	Done      bool     `json:"done,omitempty"`
	Sent      int      `json:"sent,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// TestPeerProcess is the child process of the load benchmarks; it does nothing in a normal run.
func TestPeerProcess(t *testing.T) {
	if os.Getenv(peerProcessEnv) == "" {
		t.Skip("child process of the load benchmarks")
	}
	out := json.NewEncoder(os.Stdout)
	if err := runPeerProcess(os.Stdin, out); err != nil {
		_ = out.Encode(peerMsg{Error: err.Error()})
	}
}

func runPeerProcess(stdin io.Reader, out *json.Encoder) error {
	in := json.NewDecoder(bufio.NewReader(stdin))
	var job peerJob
	if err := in.Decode(&job); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	peers := make([]*rtctest.Peer, job.Calls)
	defer func() {
		for _, p := range peers {
			if p != nil {
				p.Close()
			}
		}
	}()
	offers := make([]string, job.Calls)
	for i := range peers {
		p, err := rtctest.New(rtctest.Config{CountOnly: true})
		if err != nil {
			return err
		}
		peers[i] = p
		if offers[i], err = p.Offer(ctx); err != nil {
			return err
		}
	}
	if err := out.Encode(peerMsg{Offers: offers}); err != nil {
		return err
	}
	var msg peerMsg
	if err := in.Decode(&msg); err != nil {
		return err
	}
	for i, p := range peers {
		if err := p.Accept(msg.Answers[i]); err != nil {
			return err
		}
	}
	for _, p := range peers {
		if err := p.WaitConnected(ctx); err != nil {
			return err
		}
	}
	if err := out.Encode(peerMsg{Connected: true}); err != nil {
		return err
	}
	// One second of encoded audio, sent in a loop: the child must not spend its CPU on Opus.
	packets := encodedSignal(&testing.T{}, 50)
	frames := int(job.Seconds * 50)
	start := time.Now()
	for n := 0; n < frames; n++ {
		time.Sleep(time.Until(start.Add(time.Duration(n) * 20 * time.Millisecond)))
		for i, p := range peers {
			if err := p.SendAudioPayload(0, uint32(1000+i), packets[n%len(packets)]); err != nil {
				return err
			}
		}
	}
	if err := out.Encode(peerMsg{Done: true, Sent: frames}); err != nil {
		return err
	}
	_ = in.Decode(&msg) // wait for the parent to finish measuring
	return nil
}

// loadResult is what one load run measured at the bot.
type loadResult struct {
	cpuPerCallSecond time.Duration // bot CPU (user+system) per call per second of media
	p50, p99, max    time.Duration // interval between consecutive audio events of a socket
	events, expected int
	sentBack         int
}

func rusageCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runLoad runs calls concurrent calls for seconds of media, the bot receiving (and, with
// sendrecv, echoing every frame back).
func runLoad(tb testing.TB, calls int, seconds float64, sendrecv bool) loadResult {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPeerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), peerProcessEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	out := json.NewEncoder(stdin)
	in := json.NewDecoder(stdout)
	read := func() peerMsg {
		var m peerMsg
		if err := in.Decode(&m); err != nil {
			tb.Fatalf("peer process: %v", err)
		}
		if m.Error != "" {
			tb.Fatalf("peer process: %s", m.Error)
		}
		return m
	}
	if err := out.Encode(peerJob{Calls: calls, Seconds: seconds}); err != nil {
		tb.Fatal(err)
	}

	p, err := NewMediaPlatform(MediaPlatformSettings{InternalIP: "127.0.0.1"})
	if err != nil {
		tb.Fatal(err)
	}
	defer p.Close()
	var (
		mu        sync.Mutex
		measuring bool
		intervals []time.Duration
		events    int
	)
	dir := Recvonly
	if sendrecv {
		dir = Sendrecv
	}
	offers := read().Offers
	answers := make([]string, calls)
	for i := range offers {
		var sock *AudioSocket
		var last time.Time
		settings := AudioSocketSettings{Direction: dir}
		settings.OnAudioReceived = func(e AudioReceivedEvent) {
			now := time.Now()
			mu.Lock()
			if measuring {
				if !last.IsZero() {
					intervals = append(intervals, now.Sub(last))
				}
				events++
				last = now
			}
			mu.Unlock()
			if sendrecv && sock.SendStatus() == Active {
				if sock.Send(e.Buffer) == nil {
					return // the platform releases it once sent
				}
			}
			e.Buffer.Release()
		}
		sock, err = NewAudioSocket(settings)
		if err != nil {
			tb.Fatal(err)
		}
		cfg, err := p.CreateMediaConfiguration(sock)
		if err != nil {
			tb.Fatal(err)
		}
		if answers[i], err = cfg.answer(fmt.Sprintf("load-%d", i), offers[i]); err != nil {
			tb.Fatal(err)
		}
	}
	if err := out.Encode(peerMsg{Answers: answers}); err != nil {
		tb.Fatal(err)
	}
	read() // connected
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	measuring = true
	mu.Unlock()
	cpu0, t0 := rusageCPU(), time.Now()
	done := read()
	cpu1, t1 := rusageCPU(), time.Now()
	mu.Lock()
	measuring = false
	mu.Unlock()
	_ = out.Encode(peerMsg{Done: true})

	wall := t1.Sub(t0)
	r := loadResult{
		cpuPerCallSecond: time.Duration(float64(cpu1-cpu0) / float64(calls) / wall.Seconds()),
		events:           events,
		expected:         int(wall.Seconds()*50) * calls,
		sentBack:         done.Sent,
	}
	mu.Lock()
	slices.Sort(intervals)
	if n := len(intervals); n > 0 {
		r.p50, r.p99, r.max = intervals[n/2], intervals[n*99/100], intervals[n-1]
	}
	mu.Unlock()
	return r
}

// BenchmarkCalls measures M concurrent calls on one platform, the service's side in a child
// process: the bot's CPU per call per second of media, and the interval between consecutive
// audio events of a socket (p50, p99). Run it with -benchtime=1x; each case takes about 10 s.
//
//	go test ./sdk -run '^$' -bench 'Calls' -benchtime 1x
func BenchmarkCalls(b *testing.B) {
	if media.DebugChecks {
		b.Skip("measure without the race detector")
	}
	for _, c := range []struct {
		calls    int
		sendrecv bool
	}{{20, false}, {20, true}, {200, false}, {200, true}} {
		name := fmt.Sprintf("recvonly-%d", c.calls)
		if c.sendrecv {
			name = fmt.Sprintf("sendrecv-%d", c.calls)
		}
		b.Run(name, func(b *testing.B) {
			r := runLoad(b, c.calls, 8, c.sendrecv)
			b.ReportMetric(float64(r.cpuPerCallSecond)/float64(time.Millisecond), "cpu-ms/call-s")
			b.ReportMetric(float64(r.p50)/float64(time.Millisecond), "p50-ms")
			b.ReportMetric(float64(r.p99)/float64(time.Millisecond), "p99-ms")
			b.ReportMetric(float64(r.max)/float64(time.Millisecond), "max-ms")
			b.ReportMetric(float64(r.events)/float64(max(1, r.expected)), "events/expected")
		})
	}
}
