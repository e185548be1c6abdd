package leg

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v4"
)

// readBufferSize is the largest datagram the reader takes whole.
const readBufferSize = 8192

// batchSize is the most datagrams the reader takes with one system call (recvmmsg, once they
// queue up: see batch).
const batchSize = 16

// Mux owns one UDP socket and the one goroutine that reads it. It sends each datagram to the
// leg of its remote address: STUN to the ICE answerer, DTLS records to the leg's handshake, SRTP
// and SRTCP decrypted inline to the leg's callbacks. A datagram from an address no leg has yet
// must be a STUN binding request whose USERNAME starts with a leg's local ufrag; anything else
// is counted (Stats) and dropped.
type Mux struct {
	conn *net.UDPConn

	mu      sync.RWMutex // guards byAddr, byUfrag; the reader holds it (read) while it hands a packet over
	byAddr  map[netip.AddrPort]*Leg
	byUfrag map[string]*Leg
	closing bool

	// The reader's own state.
	in      *batch
	dec     []byte
	stunIn  stun.Message
	stunOut stun.Message

	stats muxStats

	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

type muxStats struct {
	stun, stunDropped, stunResponses, dtls, dtlsDropped, rtp, rtcp, srtpDropped, unknown atomic.Uint64
}

// Stats counts the datagrams the reader took and dropped.
type Stats struct {
	STUN, STUNDropped uint64 // binding requests answered; STUN dropped (bad, unknown ufrag, no integrity)
	STUNResponses     uint64 // binding success responses an offering leg took (its checks and consent)
	DTLS, DTLSDropped uint64 // records handed to a leg's handshake; dropped (queue full, leg closed)
	RTP, RTCP         uint64 // decrypted and delivered
	SRTPDropped       uint64 // SRTP/SRTCP that failed to decrypt (bad tag, replay) or arrived before the keys
	Unknown           uint64 // from an address no leg has, or of no known kind
}

// Listen opens a UDP socket on addr ("127.0.0.1:0") and starts its Mux.
func Listen(addr string) (*Mux, error) {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("leg: resolve %s: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp4", ua)
	if err != nil {
		return nil, fmt.Errorf("leg: listen on %s: %w", addr, err)
	}
	return NewMux(conn), nil
}

// NewMux starts the reader of conn; the Mux owns conn from now on (Close closes it).
func NewMux(conn *net.UDPConn) *Mux {
	m := newMux(conn)
	m.wg.Add(1)
	go m.read()
	return m
}

// newMux makes a Mux without its reader (tests and the fuzz target call handle themselves).
func newMux(conn *net.UDPConn) *Mux {
	return &Mux{
		conn:    conn,
		byAddr:  map[netip.AddrPort]*Leg{},
		byUfrag: map[string]*Leg{},
		in:      newBatch(conn),
		dec:     make([]byte, readBufferSize+64),
	}
}

// LocalAddr is the socket's address: the host candidate of every leg on this Mux.
func (m *Mux) LocalAddr() netip.AddrPort {
	return m.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Stats returns the reader's counters.
func (m *Mux) Stats() Stats {
	s := &m.stats
	return Stats{
		STUN: s.stun.Load(), STUNDropped: s.stunDropped.Load(), STUNResponses: s.stunResponses.Load(),
		DTLS: s.dtls.Load(), DTLSDropped: s.dtlsDropped.Load(),
		RTP: s.rtp.Load(), RTCP: s.rtcp.Load(), SRTPDropped: s.srtpDropped.Load(),
		Unknown: s.unknown.Load(),
	}
}

// Close closes every leg, then the socket, and waits for the reader to end. It is idempotent.
func (m *Mux) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closing = true
		legs := make([]*Leg, 0, len(m.byUfrag))
		for _, l := range m.byUfrag {
			legs = append(legs, l)
		}
		m.mu.Unlock()
		for _, l := range legs {
			_ = l.Close()
		}
		m.closeErr = m.conn.Close()
		m.wg.Wait()
	})
	return m.closeErr
}

func (m *Mux) read() {
	defer m.wg.Done()
	for {
		if _, err := m.readBatch(); err != nil && errClosed(err) {
			return
		}
		// Other errors (ICMP errors and the like): the socket lives on.
	}
}

// readBatch waits for a datagram, reads it or (when they queue up) up to batchSize of those
// waiting, and handles them in the order they arrived; it returns how many. Only the reader
// calls it.
func (m *Mux) readBatch() (int, error) {
	n, err := m.in.read()
	if err != nil {
		return 0, err
	}
	for i := range n {
		m.handle(m.in.datagram(i))
	}
	return n, nil
}

// handle sorts one datagram by its first byte (RFC 7983): STUN 0..3, DTLS 20..63, SRTP and
// SRTCP 128..191. Only the reader calls it.
func (m *Mux) handle(b []byte, from netip.AddrPort) {
	if len(b) == 0 {
		m.stats.unknown.Add(1)
		return
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if b[0] <= 3 {
		m.handleSTUN(b, from)
		return
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	l := m.byAddr[from]
	if l == nil {
		m.stats.unknown.Add(1)
		return
	}
	switch c := b[0]; {
	case c >= 20 && c <= 63:
		if l.dtls.deliver(b) {
			m.stats.dtls.Add(1)
		} else {
			m.stats.dtlsDropped.Add(1)
		}
	case c >= 128 && c <= 191:
		l.receiveSRTP(b, m.dec, &m.stats)
	default:
		m.stats.unknown.Add(1)
	}
}

// handleSTUN answers a binding request for one of the legs (ICE-lite): it must name the leg's
// local ufrag (and the offer's, when the leg knows it), carry a FINGERPRINT and a
// MESSAGE-INTEGRITY made with the leg's password. USE-CANDIDATE makes the sender's address the
// leg's. Everything else is dropped.
func (m *Mux) handleSTUN(b []byte, from netip.AddrPort) {
	if !stun.IsMessage(b) {
		m.stats.unknown.Add(1)
		return
	}
	in := &m.stunIn
	in.Reset()
	in.Raw = append(in.Raw[:0], b...)
	if err := in.Decode(); err != nil {
		m.stats.stunDropped.Add(1)
		return
	}
	if in.Type == stun.BindingSuccess || in.Type == stun.BindingError {
		m.handleResponse(in, from)
		return
	}
	if in.Type != stun.BindingRequest {
		m.stats.stunDropped.Add(1)
		return
	}
	var user stun.Username
	if err := user.GetFrom(in); err != nil {
		m.stats.stunDropped.Add(1)
		return
	}
	local, remote, _ := strings.Cut(string(user), ":")
	m.mu.RLock()
	l := m.byUfrag[local]
	m.mu.RUnlock()
	if l == nil || (l.cfg.RemoteUfrag != "" && remote != l.cfg.RemoteUfrag) {
		m.stats.stunDropped.Add(1)
		return
	}
	if err := stun.Fingerprint.Check(in); err != nil {
		m.stats.stunDropped.Add(1)
		return
	}
	if err := l.integrity.Check(in); err != nil {
		m.stats.stunDropped.Add(1)
		return
	}
	l.checked.Store(time.Now().UnixNano())
	if in.Contains(stun.AttrUseCandidate) && l.ice == nil && !m.nominate(l, from) {
		m.stats.stunDropped.Add(1)
		return
	}
	out := &m.stunOut
	err := out.Build(stun.NewTransactionIDSetter(in.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())},
		l.integrity, stun.Fingerprint)
	if err != nil {
		m.stats.stunDropped.Add(1)
		return
	}
	// Counted before the write, so that whoever reads the answer also sees it counted.
	m.stats.stun.Add(1)
	if _, err := m.conn.WriteToUDPAddrPort(out.Raw, from); err != nil {
		m.stats.stun.Add(^uint64(0))
		m.stats.stunDropped.Add(1)
	}
}

// handleResponse hands a binding response to the offering leg of its sender's address, which
// checks it against the requests it sent. It holds the table (read) while it does, as handle
// does for records and packets, so that nothing reaches a leg that remove has returned for.
func (m *Mux) handleResponse(in *stun.Message, from netip.AddrPort) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	l := m.byAddr[from]
	if l == nil || l.ice == nil || !l.ice.response(in) {
		m.stats.stunDropped.Add(1)
		return
	}
	m.stats.stunResponses.Add(1)
}

// nominate makes from the address of l (and no longer its previous one). It reports false when
// l is closed. The table has one leg an address: should two legs' peers share one (a service
// sending every leg from one socket), the latest nomination takes the address.
func (m *Mux) nominate(l *Leg, from netip.AddrPort) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byUfrag[l.cfg.LocalUfrag] != l {
		return false
	}
	if old, ok := l.remoteAddr(); ok {
		if old == from {
			return true
		}
		if m.byAddr[old] == l {
			delete(m.byAddr, old)
		}
	}
	m.byAddr[from] = l
	l.setRemote(from)
	return true
}

// add registers l under its local ufrag.
func (m *Mux) add(l *Leg) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return ErrClosed
	}
	if _, dup := m.byUfrag[l.cfg.LocalUfrag]; dup {
		return fmt.Errorf("leg: local ufrag %q: %w", l.cfg.LocalUfrag, ErrUfragInUse)
	}
	if l.ice != nil { // the offering end knows its peer's address from the answer
		if _, dup := m.byAddr[l.ice.to]; dup {
			return fmt.Errorf("leg: remote candidate %s: %w", l.ice.to, ErrAddrInUse)
		}
		m.byAddr[l.ice.to] = l
		l.setRemote(l.ice.to)
	}
	m.byUfrag[l.cfg.LocalUfrag] = l
	return nil
}

// remove forgets l. Once it returns, the reader hands l nothing more.
func (m *Mux) remove(l *Leg) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byUfrag[l.cfg.LocalUfrag] == l {
		delete(m.byUfrag, l.cfg.LocalUfrag)
	}
	if a, ok := l.remoteAddr(); ok && m.byAddr[a] == l {
		delete(m.byAddr, a)
	}
}
