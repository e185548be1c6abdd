//go:build !linux || 386

package leg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// batchReads: the reader reads more than one datagram a system call.
const batchReads = false

// batch reads one datagram at a time where the reader does not use recvmmsg.
type batch struct {
	conn *net.UDPConn
	buf  []byte
	n    int
	from netip.AddrPort
}

func newBatch(conn *net.UDPConn) *batch {
	return &batch{conn: conn, buf: make([]byte, readBufferSize)}
}

func (b *batch) read() (int, error) {
	if b.conn == nil {
		return 0, fmt.Errorf("leg: read from no socket: %w", net.ErrClosed)
	}
	n, from, err := b.conn.ReadFromUDPAddrPort(b.buf)
	if err != nil {
		return 0, err
	}
	b.n, b.from = n, from
	return 1, nil
}

func (b *batch) datagram(int) ([]byte, netip.AddrPort) { return b.buf[:b.n], b.from }

func errClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
