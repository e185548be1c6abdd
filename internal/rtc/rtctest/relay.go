package rtctest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// Relay forwards UDP between one client (the first address that is not the target) and a target
// on 127.0.0.1, impairing RTP and RTCP (never STUN or DTLS, so that connecting stays
// deterministic) with random loss and delay. Point the peer at the relay by rewriting the bot's
// answer with RewriteCandidates.
type Relay struct {
	conn   *net.UDPConn
	target *net.UDPAddr

	mu     sync.Mutex
	client *net.UDPAddr
	loss   float64
	jitter time.Duration
	rng    *rand.Rand
	sent   int
	lost   int

	timers sync.WaitGroup
	done   chan struct{}
	once   sync.Once
}

// NewRelay listens on 127.0.0.1 and forwards to target.
func NewRelay(target *net.UDPAddr) (*Relay, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("rtctest: relay listen: %w", err)
	}
	r := &Relay{conn: conn, target: target, done: make(chan struct{}), rng: rand.New(rand.NewPCG(1, 2))}
	go r.run()
	return r, nil
}

// Addr is the relay's address.
func (r *Relay) Addr() *net.UDPAddr { return r.conn.LocalAddr().(*net.UDPAddr) }

// Impair sets the loss probability (0..1) and the maximum extra delay of each media packet
// (uniform in [0, jitter], so packets reorder), in both directions.
func (r *Relay) Impair(loss float64, jitter time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loss, r.jitter = loss, jitter
}

// Stats returns the media packets forwarded and dropped so far.
func (r *Relay) Stats() (forwarded, dropped int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent, r.lost
}

func (r *Relay) run() {
	defer close(r.done)
	buf := make([]byte, 2048)
	for {
		n, from, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		var to *net.UDPAddr
		if from.IP.Equal(r.target.IP) && from.Port == r.target.Port {
			to = r.client
		} else {
			r.client, to = from, r.target
		}
		media := n > 0 && buf[0] >= 128 && buf[0] <= 191
		var drop bool
		var delay time.Duration
		if media {
			drop = r.loss > 0 && r.rng.Float64() < r.loss
			if r.jitter > 0 {
				delay = time.Duration(r.rng.Int64N(int64(r.jitter) + 1))
			}
			if drop {
				r.lost++
			} else {
				r.sent++
			}
		}
		r.mu.Unlock()
		if to == nil || drop {
			continue
		}
		if delay == 0 {
			_, _ = r.conn.WriteToUDP(buf[:n], to)
			continue
		}
		pkt := append([]byte(nil), buf[:n]...)
		r.timers.Add(1)
		time.AfterFunc(delay, func() {
			defer r.timers.Done()
			_, _ = r.conn.WriteToUDP(pkt, to)
		})
	}
}

// Close stops the relay and waits for its goroutines and pending packets.
func (r *Relay) Close() {
	r.once.Do(func() {
		_ = r.conn.Close()
		<-r.done
		r.timers.Wait()
	})
}

var candidateRE = regexp.MustCompile(`(?m)^(a=candidate:\S+ \d+ udp \d+ )(\S+) (\d+)( typ host.*)$`)

// RewriteCandidates points every UDP host candidate of an SDP at addr.
func RewriteCandidates(sdp string, addr *net.UDPAddr) string {
	return candidateRE.ReplaceAllString(sdp, "${1}"+addr.IP.String()+" "+strconv.Itoa(addr.Port)+"${4}")
}
