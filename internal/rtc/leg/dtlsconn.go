package leg

import (
	"net"
	"os"
	"sync"
	"time"

	"github.com/pion/transport/v5/deadline"
)

// dtlsConn is the net.PacketConn pion/dtls reads and writes for one leg: the mux's reader feeds
// it the leg's DTLS records (a copy each; DTLS is the handshake and alerts, not media) and its
// writes go out of the mux's socket to the leg's remote address.
type dtlsConn struct {
	leg          *Leg
	in           chan []byte
	readDeadline *deadline.Deadline
	closed       chan struct{}
	closeOnce    sync.Once
}

// dtlsQueue bounds the records waiting for the DTLS goroutine; more are dropped (DTLS
// retransmits).
const dtlsQueue = 64

func newDTLSConn(l *Leg) *dtlsConn {
	return &dtlsConn{leg: l, in: make(chan []byte, dtlsQueue), readDeadline: deadline.New(), closed: make(chan struct{})}
}

// deliver queues a copy of one record; it never blocks (the reader calls it). It reports
// whether the record was queued.
func (c *dtlsConn) deliver(b []byte) bool {
	select {
	case <-c.closed:
		return false
	default:
	}
	select {
	case c.in <- append([]byte(nil), b...):
		return true
	default:
		return false
	}
}

func (c *dtlsConn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case r := <-c.in:
		a, _ := c.leg.remoteAddr()
		return copy(p, r), net.UDPAddrFromAddrPort(a), nil
	case <-c.readDeadline.Done():
		return 0, nil, os.ErrDeadlineExceeded
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *dtlsConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	to, ok := c.leg.remoteAddr()
	if !ok {
		return 0, ErrNoRemote
	}
	return c.leg.mux.conn.WriteToUDPAddrPort(p, to)
}

func (c *dtlsConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *dtlsConn) LocalAddr() net.Addr { return c.leg.mux.conn.LocalAddr() }

func (c *dtlsConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *dtlsConn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Set(t)
	return nil
}

func (c *dtlsConn) SetWriteDeadline(time.Time) error { return nil }
