//go:build linux && !386

package leg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"
)

// batch reads what is waiting on the socket into buffers it owns: one datagram with recvfrom
// while they arrive one at a time, up to batchSize with one recvmmsg once two reads in a row
// found one (they are queueing). recvmmsg costs more than recvfrom for a lone datagram (its
// message headers are copied in and out, and it tries again for a second datagram), so a
// reader that keeps up pays what it did without batching, and a reader that fell behind (a
// burst, a busy machine) reads the queue with one call. Its headers, address slots and buffers
// are allocated once and point at each other, so a read allocates nothing. The socket stays on
// Go's network poller (syscall.RawConn), which parks the reader while nothing is waiting and
// makes a read after Close return net.ErrClosed. Only the reader uses it.
type batch struct {
	rc    syscall.RawConn // nil when the socket was nil or zero: reads fail as on a closed one
	hdrs  [batchSize]mmsghdr
	iovs  [batchSize]syscall.Iovec
	addrs [batchSize]syscall.RawSockaddrAny
	bufs  [batchSize][]byte

	// The outcome of the last read, set by recv (a method value made once: a closure per read
	// would allocate).
	n     int
	errno syscall.Errno
	recv  func(fd uintptr) bool
	// hot: the last read found a datagram; queued: so did the one before it, and recvmmsg
	// reads the queue next.
	hot, queued bool

	// The zone of the last IPv6 scope id seen (link-local senders), made once per id.
	scope uint32
	zone  string
}

// batchReads: the reader reads more than one datagram a system call.
const batchReads = true

// mmsghdr is struct mmsghdr: one message header and the length the kernel received into it.
// Go pads it as C does (to the alignment of Msghdr's pointers).
type mmsghdr struct {
	hdr syscall.Msghdr
	len uint32
}

// newBatch makes the batch of conn.
func newBatch(conn *net.UDPConn) *batch {
	b := &batch{}
	if conn != nil {
		b.rc, _ = conn.SyscallConn() // fails only for a zero UDPConn
	}
	for i := range b.hdrs {
		b.bufs[i] = make([]byte, readBufferSize)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(readBufferSize)
		h := &b.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.addrs[i]))
		h.Iov = &b.iovs[i]
		h.Iovlen = 1
	}
	b.recv = b.sysread
	return b
}

// read waits for a datagram and reads it, or up to batchSize of those waiting when they queue
// up. It returns how many it read; an error wraps net.ErrClosed once the socket is closed.
func (b *batch) read() (int, error) {
	b.n, b.errno = 0, 0
	if b.rc == nil {
		return 0, fmt.Errorf("leg: read from no socket: %w", net.ErrClosed)
	}
	if err := b.rc.Read(b.recv); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, fmt.Errorf("leg: read from socket: %w", b.errno)
	}
	return b.n, nil
}

// sysread is the system call on the socket's non-blocking descriptor: false (wait for the
// poller) when nothing is waiting.
func (b *batch) sysread(fd uintptr) bool {
	for {
		var n int
		var errno syscall.Errno
		if b.queued {
			n, errno = b.recvmmsg(fd)
		} else {
			n, errno = b.recvfrom(fd)
		}
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			b.hot, b.queued = false, false
			return false
		case 0:
		default:
			b.n, b.errno = 0, errno
			b.hot, b.queued = false, false
			return true
		}
		b.n = n
		if b.queued {
			// Fewer than asked for: the queue is empty, the next datagram likely alone.
			b.queued = n == batchSize
			b.hot = b.queued
		} else {
			b.queued = b.hot
			b.hot = true
		}
		return true
	}
}

// recvfrom reads one datagram into the first slot. MSG_TRUNC makes it return the datagram's
// whole length, so that one longer than the buffer is marked as recvmmsg marks it.
func (b *batch) recvfrom(fd uintptr) (int, syscall.Errno) {
	h := &b.hdrs[0]
	h.hdr.Namelen = syscall.SizeofSockaddrAny
	r, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b.bufs[0][0])),
		uintptr(len(b.bufs[0])), syscall.MSG_TRUNC, uintptr(unsafe.Pointer(&b.addrs[0])),
		uintptr(unsafe.Pointer(&h.hdr.Namelen)))
	if errno != 0 {
		return 0, errno
	}
	h.hdr.Flags = 0
	h.len = uint32(r)
	if int(r) > len(b.bufs[0]) {
		h.hdr.Flags = syscall.MSG_TRUNC
	}
	return 1, 0
}

// recvmmsg reads up to batchSize datagrams.
func (b *batch) recvmmsg(fd uintptr) (int, syscall.Errno) {
	for i := range b.hdrs {
		b.hdrs[i].hdr.Namelen = syscall.SizeofSockaddrAny
		b.hdrs[i].hdr.Flags = 0
		b.hdrs[i].len = 0
	}
	r, _, errno := syscall.Syscall6(syscall.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])),
		uintptr(len(b.hdrs)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), 0
}

// datagram is the i-th datagram of the last read and its sender. A datagram cut short by the
// buffer (MSG_TRUNC) or from an address that is not IP comes back empty, which handle counts
// as unknown.
func (b *batch) datagram(i int) ([]byte, netip.AddrPort) {
	h := &b.hdrs[i]
	if h.hdr.Flags&syscall.MSG_TRUNC != 0 {
		return nil, netip.AddrPort{}
	}
	from, ok := b.addrPort(&b.addrs[i])
	if !ok {
		return nil, netip.AddrPort{}
	}
	return b.bufs[i][:h.len], from
}

// addrPort reads a sockaddr_in or sockaddr_in6. An IPv6 scope id becomes a numeric zone
// (which the net package accepts for writes), the same string every time for one id.
func (b *batch) addrPort(sa *syscall.RawSockaddrAny) (netip.AddrPort, bool) {
	switch sa.Addr.Family {
	case syscall.AF_INET:
		a := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), ntohs(a.Port)), true
	case syscall.AF_INET6:
		a := (*syscall.RawSockaddrInet6)(unsafe.Pointer(sa))
		addr := netip.AddrFrom16(a.Addr)
		if a.Scope_id != 0 {
			if a.Scope_id != b.scope || b.zone == "" {
				b.scope, b.zone = a.Scope_id, strconv.FormatUint(uint64(a.Scope_id), 10)
			}
			addr = addr.WithZone(b.zone)
		}
		return netip.AddrPortFrom(addr, ntohs(a.Port)), true
	}
	return netip.AddrPort{}, false
}

// ntohs turns a port in network order, as the kernel wrote it, into a number.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// errClosed reports whether err means the socket is closed.
func errClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
