// Package sfu is the calling service's selective forwarding unit: it receives each participant's
// media over WebRTC and forwards it, without re-encoding, to the other participants of its
// conference and to the bots in it.
//
// Browsers publish Opus (with the RFC 6464 audio level extension) and VP8 in up to three
// simulcast layers (rids q, h, f), plus an optional screen share, on a publisher peer connection
// they offer; they receive everyone else's audio and the video they subscribe to on a subscriber
// peer connection the SFU offers (pion/webrtc). A bot has one connection that the SFU offers in
// the layout of internal/rtc, without pion/webrtc: a leg of internal/rtc/leg (ICE controlling
// with consent, DTLS, SRTP inline) on a UDP socket of its own, whose one reader goroutine hands
// the bot's packets straight to the forwarding path. Its audio m-lines carry the loudest
// speakers with the source id in CSRC[0], its video m-lines the participants it subscribes to.
//
// A browser's packets are read by one goroutine per incoming track, a bot's by its leg's reader;
// each is written, rewritten (SSRC, sequence number, timestamp, VP8 picture id), straight to the
// receivers' tracks (a browser's pion track, or a bot's leg); the path allocates nothing.
// NACKs from browsers are answered by pion/interceptor's responder from its retransmission
// buffer (a bot leg keeps none: its NACKs are counted, not answered, and it gets no sender or
// receiver reports); PLI and FIR from a receiver reach the publisher, rate-limited. Each conference runs a tick that
// measures loudness, detects the dominant speaker, assigns the loudest speakers to bot slots and
// adapts video layers to the receivers' estimates.
package sfu

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/rtc/leg"
)

// Config configures an SFU. The zero value listens on one ephemeral UDP port on all interfaces.
type Config struct {
	// UDPAddr is the address of the one UDP socket all browser connections share (ICE UDP
	// mux), "host:port". Empty: ":0" (or "127.0.0.1:0" with Loopback). Ignored when PortMin is
	// set. Bot legs then each take a port the system picks, on the same address.
	UDPAddr string
	// PortMin and PortMax, when set, make each peer connection and each bot leg take its own
	// port from the range instead of sharing one (but see BrowserMux).
	PortMin, PortMax uint16
	// BrowserMux, with PortMin and PortMax, puts every browser connection (Join) on one UDP
	// socket, an ICE UDP mux bound to the first free port of the range (on 127.0.0.1 with
	// Loopback), while each bot leg (AddBot) still takes a port of its own from the range.
	// Browsers come from distinct addresses, so one socket tells them apart; a bot process
	// receives all its calls on one port, so two of its legs on one service port could not be.
	BrowserMux bool
	// Loopback restricts ICE to the loopback interface (tests, a service and its bots and
	// browser on one machine).
	Loopback bool
	// PublicIPs, if set, replace the host candidates' addresses (1:1 NAT in front of the service).
	PublicIPs []string
	// BotAudioSlots is the default number of loudest speakers sent to a bot. Default 3.
	BotAudioSlots int
	// Speaker tunes the dominant-speaker detector.
	Speaker SpeakerConfig
	// Tick is the period of each conference's loudness, dominant speaker and layer work. Default
	// 100 ms. Negative: no ticker; the owner calls Conference.Tick (tests in virtual time).
	Tick time.Duration
	// Registerer receives the SFU's metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	// Logger for the SFU's own events (never per packet). Default slog.Default().
	Logger *slog.Logger
	// LoggerFactory for pion's logs (its connections', ICE's and its interceptors'). Default:
	// rtc.NewLoggerFactory(Logger): pion's info and debug at debug level, its warnings and
	// errors at theirs, except the errors of connections that are closing (debug).
	LoggerFactory logging.LoggerFactory
}

// Sentinel errors callers branch on.
var (
	ErrClosed              = errors.New("sfu: closed")
	ErrConferenceNotFound  = errors.New("sfu: conference not found")
	ErrParticipantExists   = errors.New("sfu: participant already in the conference")
	ErrParticipantNotFound = errors.New("sfu: participant not found")
	ErrSourceNotFound      = errors.New("sfu: source not found")
	ErrNotBot              = errors.New("sfu: not a bot participant")
	ErrIsBot               = errors.New("sfu: a bot has no publisher/subscriber pair")
	ErrBadSlot             = errors.New("sfu: no such slot")
	ErrNotConnected        = errors.New("sfu: bot leg not connected (no answer applied)")
	ErrAlreadyConnected    = errors.New("sfu: bot leg already connected")
)

// SFU is a set of conferences sharing one pion API and one UDP port (or a port range).
type SFU struct {
	cfg     Config
	api     *webrtc.API // the browsers' connections'
	conn    net.PacketConn
	mux     ice.UDPMux
	log     *slog.Logger
	logs    logging.LoggerFactory // pion's (connections, ICE, DTLS, interceptors)
	metrics *metrics

	// The bot legs' (botleg.go): their DTLS certificate, its fingerprint, the address their
	// sockets bind to and the public one they announce (invalid: none).
	legCert  tls.Certificate
	legFP    leg.Fingerprint
	botHost  netip.Addr
	publicIP netip.Addr

	mu       sync.Mutex
	confs    map[string]*Conference
	nextID   uint32
	closed   bool
	watchers map[int]func(string, Event)
	nextW    int
	wg       sync.WaitGroup // conferences closing because they emptied
}

// WatchAll calls fn with every later event of every conference (existing and future), on each
// conference's event goroutine after its own watchers. cancel stops the calls.
func (s *SFU) WatchAll(fn func(conferenceID string, e Event)) (cancel func()) {
	s.mu.Lock()
	id := s.nextW
	s.nextW++
	s.watchers[id] = fn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.watchers, id)
		s.mu.Unlock()
	}
}

func (s *SFU) globalWatchers() []func(string, Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int, 0, len(s.watchers))
	for id := range s.watchers {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	fns := make([]func(string, Event), 0, len(ids))
	for _, id := range ids {
		fns = append(fns, s.watchers[id])
	}
	return fns
}

// New starts an SFU: it opens the UDP socket and builds the pion API (internal/rtc's codecs and
// interceptors, with the simulcast header extensions).
func New(cfg Config) (*SFU, error) {
	if cfg.BotAudioSlots <= 0 {
		cfg.BotAudioSlots = rtc.DefaultAudioLines
	}
	if cfg.Tick == 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Speaker = cfg.Speaker.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &SFU{cfg: cfg, log: cfg.Logger, metrics: m, confs: make(map[string]*Conference),
		watchers: make(map[int]func(string, Event))}

	se := rtc.ServiceSettingEngine(cfg.Loopback)
	se.LoggerFactory = cfg.LoggerFactory
	if se.LoggerFactory == nil {
		se.LoggerFactory = rtc.NewLoggerFactory(cfg.Logger)
	}
	s.logs = se.LoggerFactory
	if s.legCert, err = leg.NewCertificate(); err != nil {
		return nil, fmt.Errorf("sfu: bot legs' certificate: %w", err)
	}
	if s.legFP, err = leg.CertificateFingerprint(s.legCert); err != nil {
		return nil, fmt.Errorf("sfu: bot legs' certificate: %w", err)
	}
	for _, ip := range cfg.PublicIPs {
		if a, err := netip.ParseAddr(ip); err == nil && a.Unmap().Is4() {
			s.publicIP = a.Unmap()
			break
		}
	}
	if len(cfg.PublicIPs) > 0 {
		rule := webrtc.ICEAddressRewriteRule{External: cfg.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode: webrtc.ICEAddressRewriteReplace}
		if err := se.SetICEAddressRewriteRules(rule); err != nil {
			return nil, fmt.Errorf("sfu: public addresses %v: %w", cfg.PublicIPs, err)
		}
	}
	host := ""
	if cfg.Loopback {
		host = "127.0.0.1"
	}
	s.botHost = netip.IPv4Unspecified()
	if cfg.Loopback {
		s.botHost = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	switch {
	case cfg.PortMin != 0 && cfg.BrowserMux:
		conn, err := listenFirstFree(host, cfg.PortMin, cfg.PortMax)
		if err != nil {
			return nil, err
		}
		s.shareSocket(&se, conn)
	case cfg.PortMin != 0:
		if err := se.SetEphemeralUDPPortRange(cfg.PortMin, cfg.PortMax); err != nil {
			return nil, fmt.Errorf("sfu: UDP port range %d-%d: %w", cfg.PortMin, cfg.PortMax, err)
		}
	default:
		addr := cfg.UDPAddr
		if addr == "" {
			addr = net.JoinHostPort(host, "0")
		}
		conn, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return nil, fmt.Errorf("sfu: listen UDP %s: %w", addr, err)
		}
		s.shareSocket(&se, conn)
		if a := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(); a.Is4() && !a.IsUnspecified() {
			s.botHost = a // bot legs on the shared socket's address, each on a port the system picks
		}
	}
	me, err := rtc.NewMediaEngine()
	if err != nil {
		s.closeSocket()
		return nil, fmt.Errorf("sfu: media engine: %w", err)
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		s.closeSocket()
		return nil, fmt.Errorf("sfu: simulcast header extensions: %w", err)
	}
	reg, err := rtc.NewInterceptorRegistryWithLogs(se.LoggerFactory)
	if err != nil {
		s.closeSocket()
		return nil, fmt.Errorf("sfu: interceptors: %w", err)
	}
	s.api = webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
	return s, nil
}

// shareSocket makes conn the one socket of every connection se makes (an ICE UDP mux).
func (s *SFU) shareSocket(se *webrtc.SettingEngine, conn net.PacketConn) {
	s.conn = conn
	s.mux = webrtc.NewICEUDPMux(se.LoggerFactory.NewLogger("ice"), conn)
	se.SetICEUDPMux(s.mux)
}

// listenFirstFree binds a UDP socket to the first free port of min..max on host.
func listenFirstFree(host string, minPort, maxPort uint16) (net.PacketConn, error) {
	var err error
	for port := int(minPort); port <= int(maxPort); port++ {
		var conn net.PacketConn
		if conn, err = net.ListenPacket("udp4", net.JoinHostPort(host, strconv.Itoa(port))); err == nil {
			return conn, nil
		}
	}
	return nil, fmt.Errorf("sfu: no free UDP port in %d-%d for the browsers' socket: %w", minPort, maxPort, err)
}

func (s *SFU) closeSocket() {
	if s.mux != nil {
		_ = s.mux.Close()
	}
	if s.conn != nil {
		_ = s.conn.Close()
	}
}

// UDPAddr is the address of the shared UDP socket (the browsers' one with BrowserMux), nil
// when every connection takes its own port.
func (s *SFU) UDPAddr() net.Addr {
	if s.conn == nil {
		return nil
	}
	return s.conn.LocalAddr()
}

// Conference returns the conference with this id, creating it if needed. A conference closes
// by itself when its last participant leaves; the next call makes a new one (a Join on the old
// one fails with ErrClosed: get the conference again).
func (s *SFU) Conference(id string) (*Conference, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if c, ok := s.confs[id]; ok {
		return c, nil
	}
	c := newConference(s, id)
	s.confs[id] = c
	s.metrics.conferences.Inc()
	return c, nil
}

// Lookup returns an existing conference.
func (s *SFU) Lookup(id string) (*Conference, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.confs[id]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("conference %q: %w", id, ErrConferenceNotFound)
}

func (s *SFU) forget(c *Conference) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.confs[c.id] == c {
		delete(s.confs, c.id)
		s.metrics.conferences.Dec()
	}
}

// newSourceIDs reserves n consecutive source ids (never 0).
func (s *SFU) newSourceIDs(n uint32) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.nextID + 1
	s.nextID += n
	return first
}

// Close closes every conference and the UDP socket. It is idempotent and returns after every
// goroutine of the SFU has ended.
func (s *SFU) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	confs := make([]*Conference, 0, len(s.confs))
	for _, c := range s.confs {
		confs = append(confs, c)
	}
	s.mu.Unlock()
	for _, c := range confs {
		c.Close()
	}
	s.wg.Wait()
	s.closeSocket()
	return nil
}
