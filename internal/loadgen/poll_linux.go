//go:build linux

package loadgen

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// The lean path's sockets are not Go's: with Go's network poller every packet that arrives
// on an idle socket costs an epoll wake-up, a goroutine wake-up and two reads (the second
// finds the socket empty), which for the generator's thousands of packets a second was most
// of what remained of its CPU. A poller owns the sockets instead: non-blocking UDP sockets in
// one epoll instance that the sender goroutine polls without blocking on each of its 2 ms
// ticks, reading each ready socket's packet with one recvmsg. The kernel stamps each packet's
// arrival (SO_TIMESTAMPNS), so the measurements do not depend on when the poll ran. What the
// lean path does not take (STUN, DTLS) is queued for pion's reader of that socket.

// poller is the epoll instance of the lean path's sockets. poll runs on one goroutine at a
// time (the sender's); open and close may run on any.
type poller struct {
	epfd int

	mu     sync.Mutex
	conns  map[int32]*pollConn // by file descriptor
	closed bool

	// Owned by poll.
	events [128]syscall.EpollEvent
	buf    [1500]byte
	from   syscall.RawSockaddrInet4
	oob    [64]byte
	iov    syscall.Iovec
	msg    syscall.Msghdr
}

func newPoller() (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("loadgen: epoll: %w", err)
	}
	p := &poller{epfd: fd, conns: map[int32]*pollConn{}}
	p.iov.Base = &p.buf[0]
	p.iov.SetLen(len(p.buf))
	p.msg.Name = (*byte)(unsafe.Pointer(&p.from))
	p.msg.Iov = &p.iov
	p.msg.Iovlen = 1
	p.msg.Control = &p.oob[0]
	return p, nil
}

// close closes the epoll instance (after every socket is closed).
func (p *poller) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		_ = syscall.Close(p.epfd)
	}
}

// listen opens a non-blocking UDP socket on laddr whose packets take sees first (with their
// arrival time, unix ns).
func (p *poller) listen(laddr *net.UDPAddr, take func(pkt []byte, at int64) bool) (*pollConn, error) {
	ip4 := laddr.IP.To4()
	if ip4 == nil {
		return nil, fmt.Errorf("loadgen: poller socket on %v: IPv4 only", laddr)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loadgen: socket: %w", err)
	}
	sa := &syscall.SockaddrInet4{Port: laddr.Port}
	copy(sa.Addr[:], ip4)
	if err := syscall.Bind(fd, sa); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("loadgen: bind %v: %w", laddr, err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("loadgen: SO_TIMESTAMPNS: %w", err)
	}
	bound, err := syscall.Getsockname(fd)
	if err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("loadgen: getsockname: %w", err)
	}
	b4, _ := bound.(*syscall.SockaddrInet4)
	if b4 == nil {
		_ = syscall.Close(fd)
		return nil, errors.New("loadgen: getsockname: not IPv4")
	}
	c := &pollConn{p: p, fd: fd, take: take, in: make(chan queued, 64), done: make(chan struct{}),
		laddr: &net.UDPAddr{IP: net.IP(b4.Addr[:]).To4(), Port: b4.Port}}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = syscall.Close(fd)
		return nil, net.ErrClosed
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("loadgen: epoll add: %w", err)
	}
	p.conns[int32(fd)] = c
	return c, nil
}

// poll reads one packet from every socket that has one, without blocking (a few rounds when
// more sockets are ready than one epoll_wait returns). It returns the packets read.
func (p *poller) poll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	read := 0
	for round := 0; round < 8 && !p.closed; round++ {
		n, err := syscall.EpollWait(p.epfd, p.events[:], 0)
		if err != nil {
			return read
		}
		for i := 0; i < n; i++ {
			if c := p.conns[p.events[i].Fd]; c != nil && p.read(c) {
				read++
			}
		}
		if n < len(p.events) {
			break
		}
	}
	return read
}

// read reads one packet from c and hands it to c.take or, if it does not take it, to c's
// reader. It returns whether a packet was read.
func (p *poller) read(c *pollConn) bool {
	p.msg.Namelen = syscall.SizeofSockaddrInet4
	p.msg.SetControllen(len(p.oob))
	p.msg.Flags = 0
	r, _, errno := syscall.Syscall(syscall.SYS_RECVMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&p.msg)), 0)
	if errno != 0 {
		return false
	}
	n := int(r)
	at := arrival(p.oob[:p.msg.Controllen])
	if at == 0 {
		at = time.Now().UnixNano()
	}
	pkt := p.buf[:n]
	if c.take(pkt, at) {
		return true
	}
	port := p.from.Port>>8 | p.from.Port<<8 // network order
	q := queued{pkt: append([]byte(nil), pkt...), from: netip.AddrPortFrom(netip.AddrFrom4(p.from.Addr), port)}
	select {
	case c.in <- q:
	default: // pion's reader is behind: drop, as a full socket buffer would
	}
	return true
}

// arrival reads the SO_TIMESTAMPNS control message (unix ns; 0 if there is none).
func arrival(oob []byte) int64 {
	for len(oob) >= syscall.SizeofCmsghdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < syscall.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SCM_TIMESTAMPNS && l >= syscall.CmsgLen(int(unsafe.Sizeof(syscall.Timespec{}))) {
			ts := (*syscall.Timespec)(unsafe.Pointer(&oob[syscall.CmsgLen(0)]))
			return ts.Nano()
		}
		oob = oob[min(syscall.CmsgSpace(l-syscall.CmsgLen(0)), len(oob)):]
	}
	return 0
}

// queued is a packet for pion's reader of a socket.
type queued struct {
	pkt  []byte
	from netip.AddrPort
}

// pollConn is one of the poller's sockets as pion's ICE sees it: a transport.UDPConn and an
// ice.AddrPortReaderWriter. Reads return the packets the lean path did not take; writes go
// straight to the socket.
type pollConn struct {
	p     *poller
	fd    int
	laddr *net.UDPAddr
	take  func(pkt []byte, at int64) bool
	in    chan queued

	once sync.Once
	done chan struct{}
}

var _ transport.UDPConn = (*pollConn)(nil)

// ReadFromAddrPort returns the next packet not taken; net.ErrClosed once the socket is closed.
func (c *pollConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	select {
	case q := <-c.in:
		return copy(b, q.pkt), q.from, nil
	case <-c.done:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

// WriteToAddrPort sends one packet to an IPv4 address (without allocating).
func (c *pollConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	a := addr.Addr().Unmap()
	if !a.Is4() {
		return 0, fmt.Errorf("loadgen: send to %v: IPv4 only", addr)
	}
	select {
	case <-c.done:
		return 0, net.ErrClosed
	default:
	}
	sa := syscall.RawSockaddrInet4{Family: syscall.AF_INET, Port: addr.Port()>>8 | addr.Port()<<8, Addr: a.As4()}
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	_, _, errno := syscall.Syscall6(syscall.SYS_SENDTO, uintptr(c.fd), uintptr(p), uintptr(len(b)), 0,
		uintptr(unsafe.Pointer(&sa)), syscall.SizeofSockaddrInet4)
	if errno != 0 {
		return 0, fmt.Errorf("loadgen: send to %v: %w", addr, errno)
	}
	return len(b), nil
}

// Close removes the socket from the poller and closes it. It is idempotent.
func (c *pollConn) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.p.mu.Lock()
		defer c.p.mu.Unlock()
		delete(c.p.conns, int32(c.fd))
		if !c.p.closed {
			_ = syscall.EpollCtl(c.p.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
		}
		_ = syscall.Close(c.fd)
	})
	return nil
}

// LocalAddr is the socket's address.
func (c *pollConn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr is nil: the socket is not connected.
func (c *pollConn) RemoteAddr() net.Addr { return nil }

// SetDeadline and its kin are not supported (pion's ICE does not set deadlines on its
// sockets); they do nothing.
func (c *pollConn) SetDeadline(time.Time) error { return nil }

// SetReadDeadline does nothing (see SetDeadline).
func (c *pollConn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline does nothing (see SetDeadline).
func (c *pollConn) SetWriteDeadline(time.Time) error { return nil }

// SetReadBuffer sets the socket's receive buffer.
func (c *pollConn) SetReadBuffer(n int) error {
	return syscall.SetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}

// SetWriteBuffer sets the socket's send buffer.
func (c *pollConn) SetWriteBuffer(n int) error {
	return syscall.SetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, n)
}

// Read is ReadFromAddrPort without the address.
func (c *pollConn) Read(b []byte) (int, error) {
	n, _, err := c.ReadFromAddrPort(b)
	return n, err
}

// ReadFrom is ReadFromAddrPort.
func (c *pollConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.ReadFromUDP(b)
	if err != nil {
		return n, nil, err
	}
	return n, a, nil
}

// ReadFromUDP is ReadFromAddrPort.
func (c *pollConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	n, a, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(a), nil
}

// ReadMsgUDP is ReadFromUDP with no control messages.
func (c *pollConn) ReadMsgUDP(b, _ []byte) (int, int, int, *net.UDPAddr, error) {
	n, a, err := c.ReadFromUDP(b)
	return n, 0, 0, a, err
}

// Write fails: the socket is not connected.
func (c *pollConn) Write([]byte) (int, error) {
	return 0, errors.New("loadgen: write on an unconnected socket")
}

// WriteTo sends to a UDP address.
func (c *pollConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	u, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("loadgen: send to %v: not a UDP address", addr)
	}
	return c.WriteToUDP(b, u)
}

// WriteToUDP sends to a UDP address.
func (c *pollConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	return c.WriteToAddrPort(b, addr.AddrPort())
}

// WriteMsgUDP sends to a UDP address; control messages are not supported.
func (c *pollConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (int, int, error) {
	if len(oob) > 0 {
		return 0, 0, errors.New("loadgen: control messages are not supported")
	}
	n, err := c.WriteToUDP(b, addr)
	return n, 0, err
}

// pollNet is the network of a lean peer connection: the standard one, with its UDP sockets
// on the poller.
type pollNet struct {
	*stdnet.Net
	p    *poller
	take func(pkt []byte, at int64) bool
}

// ListenUDP opens a UDP socket on the poller.
func (n *pollNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	if network != "udp4" && network != "udp" {
		return nil, fmt.Errorf("loadgen: %s sockets are not supported", network)
	}
	return n.p.listen(laddr, n.take)
}

// leanNet is the network of a lean peer connection whose packets take sees first.
func (p *poller) leanNet(n *stdnet.Net, take func(pkt []byte, at int64) bool) transport.Net {
	return &pollNet{Net: n, p: p, take: take}
}
