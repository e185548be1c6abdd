package browsertest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Relay forwards TCP connections from a loopback listener of its own to a target address. A
// page loaded through it keeps its WebSocket on it, so Cut drops that connection the way a
// network failure would: both ends see it close. Media (UDP) does not pass through it.
type Relay struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closed  bool
	refused bool
}

// Refuse makes the relay close the connections it accepts from now on (the service seems
// down), or, with false, relay them again.
func (r *Relay) Refuse(refuse bool) {
	r.mu.Lock()
	r.refused = refuse
	r.mu.Unlock()
}

// NewRelay starts a relay to target (host:port); it stops when the test ends.
func NewRelay(t *testing.T, target string) *Relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.close)
	return r
}

// Addr is the relay's host:port.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Cut closes every connection passing through the relay now; new ones are still accepted. It
// returns how many it closed.
func (r *Relay) Cut() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for c := range r.conns {
		_ = c.Close()
		delete(r.conns, c)
		n++
	}
	return n / 2 // each relayed connection is two sockets
}

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		refused := r.refused
		r.mu.Unlock()
		if refused {
			_ = in.Close()
			continue
		}
		out, err := net.Dial("tcp", r.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		if !r.track(in, out) {
			return
		}
		r.wg.Add(2)
		go r.pipe(in, out)
		go r.pipe(out, in)
	}
}

// track remembers a pair of sockets; false (and both closed) when the relay is closing.
func (r *Relay) track(in, out net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		_ = in.Close()
		_ = out.Close()
		return false
	}
	r.conns[in] = struct{}{}
	r.conns[out] = struct{}{}
	return true
}

// pipe copies from src to dst, then closes both (so the other direction ends too).
func (r *Relay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	_, _ = io.Copy(dst, src)
	r.mu.Lock()
	delete(r.conns, src)
	delete(r.conns, dst)
	r.mu.Unlock()
	_ = src.Close()
	_ = dst.Close()
}

// close stops accepting, cuts every connection and waits for the relay's goroutines.
func (r *Relay) close() {
	_ = r.ln.Close()
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.Cut()
	r.wg.Wait()
}
