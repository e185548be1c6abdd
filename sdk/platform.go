package sdk

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4" // DTLSFingerprint, the type Fingerprints returns

	"github.com/switchboard-rtc/switchboard/internal/playout"
	"github.com/switchboard-rtc/switchboard/internal/rtc/leg"
)

// Errors of the media platform that callers branch on.
var (
	// ErrPlatformClosed is returned by a MediaPlatform (and the calls it holds) after Close.
	ErrPlatformClosed = errors.New("sdk: media platform closed")
	// ErrSocketInUse is returned when a socket is given to a second media configuration: each
	// socket serves one call.
	ErrSocketInUse = errors.New("sdk: socket already belongs to a call")
	// ErrSocketClosed is returned by the methods of a closed socket.
	ErrSocketClosed = errors.New("sdk: socket closed")
	// ErrNotSending is returned by Send while the socket's send status is Inactive.
	ErrNotSending = errors.New("sdk: socket is not sending (send status inactive)")
	// ErrSendQueueFull is returned by Send when the bot sends faster than real time.
	ErrSendQueueFull = errors.New("sdk: send queue full")
	// ErrSendFormat is returned by VideoSocket.Send for a frame it cannot send: a pixel format
	// other than NV12, RGB24, YUY2 or I420, or a size outside 2×2 to MaxSendDimension².
	ErrSendFormat = errors.New("sdk: video frame format cannot be sent")
	// ErrBadOffer is returned when the service's offer does not have the layout the sockets need.
	ErrBadOffer = errors.New("sdk: media offer does not fit the sockets")
)

// MediaPlatformSettings configure a MediaPlatform. ServiceFQDN and AppID identify the bot; the
// rest has defaults that suit development on one machine.
type MediaPlatformSettings struct {
	// ServiceFQDN is the bot's public host name (used in the DTLS certificate it generates).
	ServiceFQDN string
	// AppID is the bot's application id, as registered with the service.
	AppID string

	// Certificate is the DTLS certificate (ECDSA or RSA key). Its fingerprint goes into every
	// SDP answer, so no certificate authority is involved.
	Certificate tls.Certificate
	// CertificatePEM is the certificate and its private key as PEM blocks, used when
	// Certificate is empty. When both are empty a certificate is generated (fine for
	// development; a bot that restarts then presents a new fingerprint, which is also fine).
	CertificatePEM []byte

	// InternalIP is the address to listen on; empty means every IPv4 address.
	InternalIP string
	// InternalPort is the UDP port every call's media shares; 0 picks a free port (see
	// MediaPlatform.LocalAddr).
	InternalPort int
	// PublicIP is the address the service reaches the bot at, when a 1:1 NAT stands in front of
	// it; empty means the host's own addresses.
	PublicIP string
	// PublicPort is the port the service reaches the bot at; 0 means InternalPort.
	PublicPort int

	// Logger receives the platform's logs (call id and socket as attributes; nothing per
	// packet). Nil means slog.Default().
	Logger *slog.Logger

	// AudioMetrics, when set, records the audio events of every call's audio socket (their
	// cadence, silent and dropped frames) as AudioMetrics.Wrap would: register it with the
	// registry the bot serves. Nil records nothing.
	AudioMetrics *AudioMetrics
}

// MediaPlatform is the bot's media engine: one per process, made once at startup with
// NewMediaPlatform. All calls share its UDP port, read by one goroutine that decrypts each
// packet and hands it to its call's socket (internal/rtc/leg), and its DTLS certificate. Its
// methods are safe for concurrent use.
type MediaPlatform struct {
	settings  MediaPlatformSettings
	log       *slog.Logger
	mux       *leg.Mux
	cert      tls.Certificate
	fp        leg.Fingerprint
	candidate netip.AddrPort // the answers' one ICE candidate

	// A call's media fails after consentTimeout without an ICE check from the service, looked
	// at every consentCheck (tests shorten them).
	consentTimeout, consentCheck time.Duration

	ctx    context.Context // ends at Close
	cancel context.CancelFunc

	// The audio sockets' 20 ms clocks tick at phases spread over the frame (clockStart), from
	// epoch; clocks counts the clocks started.
	epoch  time.Time
	clocks atomic.Uint64

	mu     sync.Mutex
	calls  map[*MediaConfiguration]struct{}
	closed bool
	once   sync.Once
	done   chan struct{}
}

// NewMediaPlatform starts the media platform: it listens on the media port and starts its
// reader. Close it when the process shuts down.
func NewMediaPlatform(s MediaPlatformSettings) (*MediaPlatform, error) {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	cert, err := platformCertificate(s)
	if err != nil {
		return nil, err
	}
	fp, err := leg.CertificateFingerprint(cert)
	if err != nil {
		return nil, fmt.Errorf("sdk: media platform certificate: %w", err)
	}
	ip := net.IPv4zero
	if s.InternalIP != "" {
		if ip = net.ParseIP(s.InternalIP); ip == nil || ip.To4() == nil {
			return nil, fmt.Errorf("sdk: media platform internal IP %q is not an IPv4 address", s.InternalIP)
		}
	}
	var public netip.Addr
	if s.PublicIP != "" {
		if public, err = netip.ParseAddr(s.PublicIP); err != nil || !public.Is4() {
			return nil, fmt.Errorf("sdk: media platform public IP %q is not an IPv4 address", s.PublicIP)
		}
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip, Port: s.InternalPort})
	if err != nil {
		return nil, fmt.Errorf("sdk: listen for media on %s:%d: %w", ip, s.InternalPort, err)
	}
	port := conn.LocalAddr().(*net.UDPAddr).Port
	publicPort := s.PublicPort
	if publicPort == 0 {
		publicPort = port
	}
	if !public.IsValid() {
		public = candidateAddr(ip)
	}
	p := &MediaPlatform{
		settings:  s,
		log:       log.With("component", "media"),
		mux:       leg.NewMux(conn),
		cert:      cert,
		fp:        fp,
		candidate: netip.AddrPortFrom(public, uint16(publicPort)),

		consentTimeout: consentTimeout,
		consentCheck:   consentCheckInterval,
		epoch:          time.Now(),
		calls:          map[*MediaConfiguration]struct{}{},
		done:           make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.log.Info("media platform listening", "addr", conn.LocalAddr().String(), "candidate", p.candidate.String())
	return p, nil
}

// candidateAddr is the address of the answers' candidate when no PublicIP is set: the listening
// address, or for every address (0.0.0.0) the host's first IPv4 address that is not loopback
// (127.0.0.1 when it has none).
func candidateAddr(listen net.IP) netip.Addr {
	if a, ok := netip.AddrFromSlice(listen.To4()); ok && !a.IsUnspecified() {
		return a
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !ip.IsUnspecified() {
				return ip
			}
		}
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

func platformCertificate(s MediaPlatformSettings) (tls.Certificate, error) {
	tc := s.Certificate
	if len(tc.Certificate) == 0 && len(s.CertificatePEM) > 0 {
		var err error
		if tc, err = tls.X509KeyPair(s.CertificatePEM, s.CertificatePEM); err != nil {
			return tls.Certificate{}, fmt.Errorf("sdk: media platform certificate PEM: %w", err)
		}
	}
	if len(tc.Certificate) == 0 {
		c, err := leg.NewCertificate()
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("sdk: media platform certificate: %w", err)
		}
		return c, nil
	}
	if tc.Leaf == nil {
		leaf, err := x509.ParseCertificate(tc.Certificate[0])
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("sdk: parse media platform certificate: %w", err)
		}
		tc.Leaf = leaf
	}
	if tc.PrivateKey == nil {
		return tls.Certificate{}, errors.New("sdk: media platform certificate has no private key")
	}
	return tc, nil
}

// LocalAddr is the UDP address the platform listens on.
func (p *MediaPlatform) LocalAddr() *net.UDPAddr { return net.UDPAddrFromAddrPort(p.mux.LocalAddr()) }

// Fingerprints are the DTLS certificate fingerprints every answer carries.
func (p *MediaPlatform) Fingerprints() ([]webrtc.DTLSFingerprint, error) {
	return []webrtc.DTLSFingerprint{{Algorithm: p.fp.Algorithm, Value: p.fp.Value}}, nil
}

// CreateMediaConfiguration binds the sockets a bot made for one call into the call's media
// configuration, which the bot puts in its answer action. Give at most one AudioSocket, any
// number of VideoSockets (each takes the next video slot, in order: its ID) and at most one
// screen-share VideoSocket. A socket serves one call only.
func (p *MediaPlatform) CreateMediaConfiguration(sockets ...MediaSocket) (*MediaConfiguration, error) {
	m := &MediaConfiguration{platform: p}
	for _, s := range sockets {
		switch s := s.(type) {
		case *AudioSocket:
			if s == nil {
				return nil, errors.New("sdk: nil AudioSocket")
			}
			if m.audio != nil {
				return nil, errors.New("sdk: a media configuration takes one AudioSocket")
			}
			m.audio = s
		case *VideoSocket:
			if s == nil {
				return nil, errors.New("sdk: nil VideoSocket")
			}
			if s.settings.ScreenShare {
				if m.screen != nil {
					return nil, errors.New("sdk: a media configuration takes one screen-share VideoSocket")
				}
				m.screen = s
				continue
			}
			m.video = append(m.video, s)
		case nil:
			return nil, errors.New("sdk: nil socket")
		default:
			return nil, fmt.Errorf("sdk: unknown socket type %T", s)
		}
	}
	claimed := make([]socketClaim, 0, len(sockets))
	for _, s := range sockets {
		c := s.claim(m)
		if c == nil {
			for _, c := range claimed {
				c.unclaim()
			}
			return nil, ErrSocketInUse
		}
		claimed = append(claimed, c)
	}
	for i, v := range m.video {
		v.id = i
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range claimed {
			c.unclaim()
		}
		return nil, ErrPlatformClosed
	}
	p.calls[m] = struct{}{}
	return m, nil
}

func (p *MediaPlatform) forget(m *MediaConfiguration) {
	p.mu.Lock()
	delete(p.calls, m)
	p.mu.Unlock()
}

// Close ends every call's media, stops listening and waits until all the platform's
// goroutines have returned. It is idempotent.
func (p *MediaPlatform) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.cancel()
		calls := make([]*MediaConfiguration, 0, len(p.calls))
		for m := range p.calls {
			calls = append(calls, m)
		}
		p.mu.Unlock()
		for _, m := range calls {
			m.close()
		}
		_ = p.mux.Close() // closes the socket and waits for its reader
		close(p.done)
	})
	<-p.done
	return nil
}

// MediaSocket is an AudioSocket or a VideoSocket, as CreateMediaConfiguration takes them.
type MediaSocket interface {
	// Close stops the socket and, once it belongs to a media configuration, ends that call's
	// media (every socket of it); see AudioSocket.Close. It is idempotent and waits for the
	// socket's goroutines, so an error path can close every socket it made, in any order:
	//
	//	for _, s := range sockets {
	//		s.Close()
	//	}
	Close()
	claim(m *MediaConfiguration) socketClaim
}

// socketClaim undoes a socket's claim when CreateMediaConfiguration fails midway.
type socketClaim interface{ unclaim() }

// eventQueue hands a socket's events to its one event goroutine, in order. Media events (a
// received frame) wait in a bounded ring: when the bot is slow the oldest is dropped (and its
// buffers released) so that neither the network nor the clock ever waits for the bot. Control
// events (send status, dominant speaker) are never dropped and go before waiting media.
type eventQueue[E any] struct {
	mu      sync.Mutex
	ring    []E
	head    int
	n       int
	ctrl    []E
	dropped uint64
	wake    chan struct{}
}

func newEventQueue[E any](depth int) *eventQueue[E] {
	return &eventQueue[E]{ring: make([]E, depth), wake: make(chan struct{}, 1)}
}

func (q *eventQueue[E]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pushMedia queues a media event. When the ring is full it returns the oldest event, which the
// caller discards.
func (q *eventQueue[E]) pushMedia(e E) (old E, dropped bool) {
	q.mu.Lock()
	if q.n == len(q.ring) {
		old, dropped = q.ring[q.head], true
		q.ring[q.head] = e
		q.head = (q.head + 1) % len(q.ring)
		q.dropped++
	} else {
		q.ring[(q.head+q.n)%len(q.ring)] = e
		q.n++
	}
	q.mu.Unlock()
	q.signal()
	return old, dropped
}

// pushControl queues a control event.
func (q *eventQueue[E]) pushControl(e E) {
	q.mu.Lock()
	q.ctrl = append(q.ctrl, e)
	q.mu.Unlock()
	q.signal()
}

// Dropped is the number of media events dropped because the bot was slow.
func (q *eventQueue[E]) droppedCount() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// next returns the next event to deliver: control events first.
func (q *eventQueue[E]) next() (e E, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ctrl) > 0 {
		e = q.ctrl[0]
		var zero E
		q.ctrl[0] = zero
		q.ctrl = q.ctrl[1:]
		if len(q.ctrl) == 0 {
			q.ctrl = q.ctrl[:0:0]
		}
		return e, true
	}
	if q.n == 0 {
		return e, false
	}
	e = q.ring[q.head]
	var zero E
	q.ring[q.head] = zero
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	return e, true
}

// drain hands every queued event to f, in order, until the queue is empty.
func (q *eventQueue[E]) drain(f func(E)) {
	for {
		e, ok := q.next()
		if !ok {
			return
		}
		f(e)
	}
}

// run delivers events until stop closes, then discards what is left.
func (q *eventQueue[E]) run(stop <-chan struct{}, deliver, discard func(E)) {
	for {
		select {
		case <-stop:
			q.drain(discard)
			return
		case <-q.wake:
		}
		for {
			select {
			case <-stop:
			default:
				if e, ok := q.next(); ok {
					deliver(e)
					continue
				}
			}
			break
		}
	}
}

// callBot runs a bot callback, turning a panic into a log line (as net/http does for handlers)
// so that one bad event does not take the process down.
func callBot(log *slog.Logger, event string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("bot event handler panicked", "event", event, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	f()
}

// clockStart is when the next audio socket's 20 ms clock starts: within one frame from now, at
// the next phase of a golden-ratio sequence over the frame (the k-th clock at frac(k/φ) of it,
// counted from the platform's epoch). Calls that start together (a burst of answers, a load
// generator's ramp) would otherwise tick together, and their mixing and decoding would queue
// behind each other on every frame; spread, each tick finds the cores idler. The phase costs no
// latency: packets arrive at any phase of the frame anyway.
func (p *MediaPlatform) clockStart(now time.Time) time.Time {
	const frame = playout.FrameDuration
	k := p.clocks.Add(1)
	phase := time.Duration(math.Mod(float64(k)*goldenFraction, 1) * float64(frame))
	into := now.Sub(p.epoch) % frame
	return now.Add((phase - into + frame) % frame)
}

// goldenFraction is 1/φ: its multiples modulo 1 spread over [0, 1) as evenly as any sequence can.
const goldenFraction = 0.6180339887498949
