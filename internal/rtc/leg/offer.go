package leg

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"hash"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/stun/v4"
)

// Defaults of the offering end's ICE (RFC 8445, RFC 7675).
const (
	DefaultConsentInterval = 5 * time.Second  // a consent check this often
	DefaultConsentTimeout  = 30 * time.Second // the leg fails after this long without a valid response

	checkRTOMin = 50 * time.Millisecond  // first retransmission of the nominating check
	checkRTOMax = 500 * time.Millisecond // retransmissions grow to this

	// pendingChecks is how many of the latest requests' transaction ids a response may answer.
	pendingChecks = 8
)

// OfferConfig configures the offering (service) end of a leg: Config's local credentials,
// certificate and callbacks, and the answer's side (ParseAnswer): Config.RemoteUfrag and
// Config.RemoteFingerprints, RemotePwd and RemoteCandidate.
type OfferConfig struct {
	Config
	// RemotePwd is the answer's ICE password: the checks' MESSAGE-INTEGRITY and the responses'
	// are made with it.
	RemotePwd string
	// RemoteCandidate is the answer's one host candidate, where the checks go.
	RemoteCandidate netip.AddrPort
	// ConsentInterval and ConsentTimeout: a consent check every ConsentInterval once ICE has
	// succeeded; no valid response for ConsentTimeout fails the leg (ErrConsent). 0 means
	// DefaultConsentInterval and DefaultConsentTimeout.
	ConsentInterval, ConsentTimeout time.Duration
	// DTLSServer makes the leg the DTLS server, for an answer that took the client's role
	// (Answer.DTLSClient); by default the offering leg is the client.
	DTLSServer bool
}

// NewOfferLeg adds the offering end of a leg to the Mux: it sends ICE checks (controlling,
// nominating aggressively) to cfg.RemoteCandidate until one is answered, then runs a DTLS
// client toward it (or a server, with cfg.DTLSServer) and keeps consent. The Mux routes everything from RemoteCandidate to this
// leg, so one Mux has one offering leg a remote address (ErrAddrInUse). Close it when done.
func (m *Mux) NewOfferLeg(cfg OfferConfig) (*Leg, error) {
	if cfg.RemoteUfrag == "" || cfg.RemotePwd == "" || !cfg.RemoteCandidate.IsValid() {
		return nil, fmt.Errorf("leg: ufrag %s: offering leg without the answer's ICE credentials or candidate: %w", cfg.LocalUfrag, ErrBadConfig)
	}
	l, err := newLeg(m, cfg.Config)
	if err != nil {
		return nil, err
	}
	c, err := newICEClient(l, cfg)
	if err != nil {
		return nil, err
	}
	l.ice = c
	var conn *dtls.Conn
	if cfg.DTLSServer {
		opts := []dtls.ServerOption{dtls.WithClientAuth(dtls.RequireAnyClientCert)}
		for _, o := range l.dtlsOptions() {
			opts = append(opts, o)
		}
		conn, err = dtls.ServerWithOptions(l.dtls, net.UDPAddrFromAddrPort(c.to), opts...)
	} else {
		opts := []dtls.ClientOption{}
		for _, o := range l.dtlsOptions() {
			opts = append(opts, o)
		}
		conn, err = dtls.ClientWithOptions(l.dtls, net.UDPAddrFromAddrPort(c.to), opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("leg: DTLS session for ufrag %s: %w", cfg.LocalUfrag, err)
	}
	if err := l.start(conn, !cfg.DTLSServer); err != nil {
		return nil, err
	}
	return l, nil
}

// iceClient is the controlling ICE agent of an offering leg toward the answer's one candidate.
// Its goroutine (run) sends the checks and the consent requests; the Mux's reader hands it the
// responses (response). The reader blocks in its read with no timeout, so it cannot drive
// timers: one goroutine a leg does, woken by its timer only (every 50 to 500 ms while checking,
// every ConsentInterval after).
type iceClient struct {
	leg               *Leg
	to                netip.AddrPort
	user              stun.Username
	remote            stun.MessageIntegrity
	mac               hash.Hash // HMAC-SHA1 with the remote password: the reader's, for responses
	sum               [sha1.Size]byte
	hdr               [20]byte // a response's header as its HMAC covers it
	interval, timeout time.Duration

	// The goroutine's own.
	req         stun.Message
	controlling [8]byte
	priority    [4]byte

	mu        sync.Mutex // guards pending, next, lastValid
	pending   [pendingChecks][stun.TransactionIDSize]byte
	next      int
	lastValid time.Duration // since start, of the latest valid response

	start  time.Time
	ok     chan struct{}
	okOnce sync.Once
	exited chan struct{}
}

func newICEClient(l *Leg, cfg OfferConfig) (*iceClient, error) {
	c := &iceClient{
		leg:      l,
		to:       netip.AddrPortFrom(cfg.RemoteCandidate.Addr().Unmap(), cfg.RemoteCandidate.Port()),
		user:     stun.NewUsername(cfg.RemoteUfrag + ":" + cfg.LocalUfrag),
		remote:   stun.NewShortTermIntegrity(cfg.RemotePwd),
		mac:      hmac.New(sha1.New, []byte(cfg.RemotePwd)),
		interval: cfg.ConsentInterval,
		timeout:  cfg.ConsentTimeout,
		start:    time.Now(),
		ok:       make(chan struct{}),
		exited:   make(chan struct{}),
	}
	if c.interval <= 0 {
		c.interval = DefaultConsentInterval
	}
	if c.timeout <= 0 {
		c.timeout = DefaultConsentTimeout
	}
	if _, err := rand.Read(c.controlling[:]); err != nil {
		return nil, fmt.Errorf("leg: ICE tie-breaker: %w", err)
	}
	// PRIORITY is what a peer-reflexive candidate of this address would have (RFC 8445 7.1.1,
	// 5.1.2.1): type preference 110, local preference 65535, component 1.
	binary.BigEndian.PutUint32(c.priority[:], 110<<24|65535<<8|255)
	return c, nil
}

// run sends the nominating check until it is answered, retransmitted every 50 ms growing to
// 500 ms, then a consent check every interval (±20 %); it fails the leg when no valid response
// came for timeout. It ends when the leg's DTLS session does.
func (c *iceClient) run() {
	defer close(c.exited)
	l := c.leg
	t := time.NewTimer(0)
	defer t.Stop()
	rto := checkRTOMin
	id := stun.NewTransactionID()
	c.expect(id)
checking:
	for {
		select {
		case <-l.done:
			return
		case <-c.ok:
			break checking
		case <-t.C:
			c.send(id, true) // a retransmission keeps its transaction (RFC 8489 6.2.1)
			t.Reset(rto)
			rto = min(2*rto, checkRTOMax)
		}
	}
	t.Reset(c.nextConsent())
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
			if since := c.sinceValid(); since > c.timeout {
				l.fail(fmt.Errorf("leg: ufrag %s: no valid binding response from %s for %v: %w", l.cfg.LocalUfrag, c.to, since, ErrConsent))
				_ = l.conn.Close()
				_ = l.dtls.Close()
				return
			}
			id := stun.NewTransactionID()
			c.expect(id)
			c.send(id, false)
			t.Reset(c.nextConsent())
		}
	}
}

// nextConsent is the wait before the next consent check: the interval, randomised by ±20 %
// (RFC 7675 5.1) so that legs started together do not check together.
func (c *iceClient) nextConsent() time.Duration {
	return time.Duration(float64(c.interval) * (0.8 + 0.4*mrand.Float64()))
}

func (c *iceClient) sinceValid() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Since(c.start) - c.lastValid
}

// expect makes id one a response may answer (the latest pendingChecks are).
func (c *iceClient) expect(id [stun.TransactionIDSize]byte) {
	c.mu.Lock()
	c.pending[c.next] = id
	c.next = (c.next + 1) % pendingChecks
	c.mu.Unlock()
}

// send writes one binding request: USERNAME, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE when
// nominating, MESSAGE-INTEGRITY with the remote password, FINGERPRINT. A failed write is
// retried by the timer. Only the goroutine calls it.
func (c *iceClient) send(id [stun.TransactionIDSize]byte, nominate bool) {
	if err := c.build(id, nominate); err != nil {
		return
	}
	_, _ = c.leg.mux.conn.WriteToUDPAddrPort(c.req.Raw, c.to)
}

func (c *iceClient) build(id [stun.TransactionIDSize]byte, nominate bool) error {
	m := &c.req
	m.Reset()
	m.SetType(stun.BindingRequest)
	m.TransactionID = id
	m.WriteHeader()
	if err := c.user.AddTo(m); err != nil {
		return err
	}
	m.Add(stun.AttrPriority, c.priority[:])
	m.Add(stun.AttrICEControlling, c.controlling[:])
	if nominate {
		m.Add(stun.AttrUseCandidate, nil)
	}
	if err := c.remote.AddTo(m); err != nil {
		return err
	}
	return stun.Fingerprint.AddTo(m)
}

// response takes a binding response from the leg's remote address: valid when it answers one
// of the latest requests, is a success, and carries a FINGERPRINT and a MESSAGE-INTEGRITY made
// with the remote password. It reports whether it was valid. Only the reader calls it.
func (c *iceClient) response(in *stun.Message) bool {
	if in.Type != stun.BindingSuccess {
		return false // an error response (a role conflict, say) nominates nothing
	}
	c.mu.Lock()
	known := false
	for _, id := range c.pending {
		if id == in.TransactionID && id != ([stun.TransactionIDSize]byte{}) {
			known = true
			break
		}
	}
	c.mu.Unlock()
	if !known {
		return false
	}
	if err := stun.Fingerprint.Check(in); err != nil {
		return false
	}
	if !c.checkIntegrity(in.Raw) {
		return false
	}
	c.mu.Lock()
	c.lastValid = time.Since(c.start)
	c.mu.Unlock()
	c.okOnce.Do(func() { close(c.ok) })
	return true
}

// checkIntegrity reports whether raw's MESSAGE-INTEGRITY is the HMAC-SHA1 with the remote
// password of the message before it, the header's length counting up to it (RFC 8489 14.5), as
// stun.MessageIntegrity.Check does, without its allocation per message. Only the reader calls
// it.
func (c *iceClient) checkIntegrity(raw []byte) bool {
	const header, attrHeader = 20, 4
	for off := header; off+attrHeader <= len(raw); {
		typ := stun.AttrType(binary.BigEndian.Uint16(raw[off:]))
		n := int(binary.BigEndian.Uint16(raw[off+2:]))
		if typ != stun.AttrMessageIntegrity {
			off += attrHeader + (n+3)&^3
			continue
		}
		end := off + attrHeader + sha1.Size
		if n != sha1.Size || end > len(raw) {
			return false
		}
		h := c.hdr[:]
		copy(h, raw[:header])
		binary.BigEndian.PutUint16(h[2:], uint16(end-header))
		c.mac.Reset()
		c.mac.Write(h)
		c.mac.Write(raw[header:off])
		return hmac.Equal(c.mac.Sum(c.sum[:0]), raw[off+attrHeader:end])
	}
	return false
}
