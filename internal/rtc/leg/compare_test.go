package leg

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/rtc/rtctest"
)

// counter counts received packets and wakes the sender when a target is reached.
type counter struct {
	n    atomic.Int64
	want atomic.Int64
	hit  chan struct{}
}

func newCounter() *counter {
	c := &counter{hit: make(chan struct{}, 1)}
	c.want.Store(1 << 62)
	return c
}

func (c *counter) add() {
	if c.n.Add(1) >= c.want.Load() {
		select {
		case c.hit <- struct{}{}:
		default:
		}
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sendAndCount sends b.N packets from the pion offerer in bursts and waits for each burst
// to arrive (lost packets are given up after a while), then reports the process's CPU time
// per delivered packet: the same pion sender in both benchmarks, so the difference is the
// receiving end's.
func sendAndCount(b *testing.B, p *pionOffer, c *counter, burst int) {
	// The stream goes on across b.Run's rounds: a sequence number starting over would be a
	// replay to the receiver.
	pkt := &p.next
	pkt.Version, pkt.PayloadType, pkt.Payload = 2, 111, make([]byte, 60)
	var lost int64
	base := c.n.Load() // the counter lives across b.Run's rounds
	select {
	case <-c.hit:
	default:
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for sent := 0; sent < b.N; {
		for range min(burst, b.N-sent) {
			pkt.SequenceNumber++
			pkt.Timestamp += 960
			if err := p.tracks.Audio[0].WriteRTP(pkt); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		want := base + int64(sent) - lost
		c.want.Store(want)
		if c.n.Load() < want {
			select {
			case <-c.hit:
			case <-time.After(200 * time.Millisecond):
				lost = base + int64(sent) - c.n.Load()
			}
		}
	}
	cpu := cpuTime(b) - cpu0
	b.StopTimer()
	got := c.n.Load() - base
	if got <= 0 {
		b.Fatal("nothing arrived")
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(got), "cpu-ns/pkt")
	b.ReportMetric(float64(int64(b.N)-got)/float64(b.N)*100, "%lost")
}

// BenchmarkLoopbackReceive compares the receiving end of a bot leg on loopback, pion/webrtc
// offerer (as the service builds it) → leg, or → pion/webrtc answerer (as the SDK builds it:
// rtctest.BotAPI, Read into a reused buffer).
func BenchmarkLoopbackReceive(b *testing.B) {
	b.Run("leg", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		mux, err := Listen("127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer mux.Close()
		p := newPionOffer(b, ctx)
		c := newCounter()
		l, answer := answerWithLeg(b, mux, p.offer, Config{OnRTP: func(*rtp.Packet) { c.add() }}, 1)
		if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
			b.Fatal(err)
		}
		wait(b, ctx, p.connected, "pion connected")
		wait(b, ctx, l.Connected(), "leg connected")
		for _, burst := range []int{1, 8} {
			b.Run(fmt.Sprintf("burst=%d", burst), func(b *testing.B) { sendAndCount(b, p, c, burst) })
		}
	})
	b.Run("pion", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		api := rtctest.BotAPI(b)
		p := newPionOffer(b, ctx)
		bot, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			b.Fatal(err)
		}
		var readers sync.WaitGroup
		defer readers.Wait()
		defer bot.Close()
		c := newCounter()
		bot.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			readers.Add(1)
			go func() {
				defer readers.Done()
				buf := make([]byte, 1500)
				var pkt rtp.Packet
				for {
					n, _, err := tr.Read(buf)
					if err != nil {
						return
					}
					if pkt.Unmarshal(buf[:n]) == nil {
						c.add()
					}
				}
			}()
		})
		if err := bot.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: p.offer}); err != nil {
			b.Fatal(err)
		}
		answer, err := rtc.CompleteAnswer(ctx, bot, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
			b.Fatal(err)
		}
		wait(b, ctx, p.connected, "pion connected")
		for _, burst := range []int{1, 8} {
			b.Run(fmt.Sprintf("burst=%d", burst), func(b *testing.B) { sendAndCount(b, p, c, burst) })
		}
	})
}
