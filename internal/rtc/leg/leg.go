// Package leg is the media transport of one service ↔ bot leg without pion/webrtc: ICE with
// pion/stun, DTLS with pion/dtls, and SRTP with pion/srtp, all on one UDP socket a process (Mux)
// read by one goroutine that decrypts each packet and hands it to the leg's callback, with no
// goroutine or channel per packet (docs/transport.md). Both ends of the leg are here and share
// the Mux, its reader, the SRTP path and WalkRTCP (the RTCP feedback both ends read):
//
//   - The answering (bot) end: ParseOffer reads the service's offer, Mux.NewLeg adds an ICE-lite
//     leg with a DTLS server, Offer.Answer writes its answer. It talks to a pion/webrtc offerer
//     too (the SDK's tests drive it with one).
//   - The offering (service) end: BuildOffer writes the service's offer (the leg's ICE
//     credentials, fingerprint and one host candidate, the Mux's address); ParseAnswer reads the answer and
//     Answer.OfferConfig fills an OfferConfig for Mux.NewOfferLeg, which sends ICE checks
//     (controlling, aggressive nomination) to the answer's candidate, runs a DTLS client once
//     one is answered, and keeps consent (a check every ConsentInterval, ErrConsent after
//     ConsentTimeout without a valid response). It talks to a leg or to a pion/webrtc answerer
//     built as the SDK builds it.
//
// Goroutines: the Mux's reader (Mux.Close stops it and waits), and per leg its DTLS goroutine
// (the handshake, then alerts until the session ends) and, on an offering leg, one that sends
// its checks and consent requests on a timer (the reader blocks in its read without a timeout,
// so it cannot drive timers); Leg.Close stops both and waits for them. pion/dtls runs two more
// a leg once the handshake starts (its handshake state machine and its record reader, both
// alive until the session ends): closing the leg's DTLS conn stops them, but pion/dtls gives
// no way to wait for them, so they may still be returning when Close does.
package leg

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"
)

// Errors callers branch on.
var (
	ErrBadOffer        = errors.New("leg: bad offer")
	ErrBadAnswerParams = errors.New("leg: bad answer parameters")
	ErrBadConfig       = errors.New("leg: bad configuration")
	ErrNoCertificate   = errors.New("leg: no certificate")
	ErrFingerprint     = errors.New("leg: peer certificate does not match the offer's fingerprint")
	ErrNotConnected    = errors.New("leg: not connected")
	ErrNoRemote        = errors.New("leg: no remote address yet")
	ErrClosed          = errors.New("leg: closed")
	ErrUfragInUse      = errors.New("leg: local ufrag in use")
	ErrNoSRTPProfile   = errors.New("leg: no SRTP protection profile negotiated")
	ErrBadAnswer       = errors.New("leg: bad answer")
	ErrICE             = errors.New("leg: ICE connectivity checks failed")
	ErrConsent         = errors.New("leg: ICE consent expired")
	ErrAddrInUse       = errors.New("leg: remote address in use by another leg")
)

// DefaultHandshakeTimeout bounds ICE and the DTLS handshake of a leg when Config leaves it 0.
const DefaultHandshakeTimeout = 30 * time.Second

// srtpReplayWindow is the replay window of received SRTP and SRTCP, in packets.
const srtpReplayWindow = 64

// Config configures a leg: its own ICE credentials and certificate, what it knows of the remote
// end from its offer (ParseOffer) or answer (ParseAnswer), and where decrypted packets go.
type Config struct {
	LocalUfrag, LocalPwd string
	// RemoteUfrag is the remote end's ICE ufrag. The answering end, when it is set, takes only
	// binding requests whose USERNAME ends with it; the offering end needs it for its checks'
	// USERNAME (remote:local).
	RemoteUfrag string
	// RemoteFingerprints are the remote end's (the offer's or the answer's); the peer's DTLS
	// certificate must match one of them.
	RemoteFingerprints []Fingerprint
	Certificate        tls.Certificate

	// OnRTP gets every decrypted RTP packet, on the Mux's reader goroutine. pkt and its payload
	// are the leg's and valid only during the call: copy what is kept. It must not block, and
	// must not call the Mux's or a Leg's Close or NewLeg (the reader holds the Mux's table).
	// WriteRTP and WriteRTCP may be called from it.
	OnRTP func(pkt *rtp.Packet)
	// OnRTCP gets every decrypted (compound) RTCP packet, raw, under OnRTP's rules.
	OnRTCP func(buf []byte)

	// HandshakeTimeout bounds the time from NewLeg or NewOfferLeg to the end of the DTLS
	// handshake (the offering end's ICE checks included); 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// LoggerFactory for pion/dtls; nil: pion's default.
	LoggerFactory logging.LoggerFactory
}

// Leg is one end of a leg on a Mux (NewLeg: answering; NewOfferLeg: offering). WriteRTP and
// WriteRTCP may be called from any goroutine (a mutex per leg serialises them); the callbacks
// run on the Mux's reader.
type Leg struct {
	mux       *Mux
	cfg       Config                // its ufrags (the Mux's table keys) too
	integrity stun.MessageIntegrity // with cfg.LocalPwd: binding requests' and our responses'
	ice       *iceClient            // the offering end's ICE checks and consent; nil on the answering end

	remote  atomic.Pointer[netip.AddrPort] // set by the reader on USE-CANDIDATE
	checked atomic.Int64                   // unix ns of the latest valid binding request (answering end)
	keys    atomic.Pointer[srtpKeys]       // set once the handshake is done
	dtls    *dtlsConn

	// The reader's own state for this leg.
	pkt     rtp.Packet
	rtpHdr  rtp.Header
	rtcpHdr rtcp.Header

	sendMu  sync.Mutex
	plain   []byte
	cipher  []byte
	sendHdr rtp.Header
	rtcpOut rtcp.Header

	connected chan struct{}
	done      chan struct{} // closed when the DTLS goroutine ends
	errMu     sync.Mutex
	err       error
	conn      *dtls.Conn
	cancel    context.CancelFunc
	closing   atomic.Bool
	closeOnce sync.Once
}

// srtpKeys are a connected leg's SRTP contexts: remote decrypts (the reader alone), local
// encrypts (under sendMu).
type srtpKeys struct {
	remote, local *srtp.Context
	profile       srtp.ProtectionProfile
}

// NewLeg adds a leg to the Mux and starts its DTLS server, which waits for the offerer's
// handshake once ICE has nominated its address. Close it when done.
func (m *Mux) NewLeg(cfg Config) (*Leg, error) {
	l, err := newLeg(m, cfg)
	if err != nil {
		return nil, err
	}
	opts := []dtls.ServerOption{dtls.WithClientAuth(dtls.RequireAnyClientCert)}
	for _, o := range l.dtlsOptions() {
		opts = append(opts, o)
	}
	conn, err := dtls.ServerWithOptions(l.dtls, &net.UDPAddr{}, opts...)
	if err != nil {
		return nil, fmt.Errorf("leg: DTLS server for ufrag %s: %w", cfg.LocalUfrag, err)
	}
	if err := l.start(conn, false); err != nil {
		return nil, err
	}
	return l, nil
}

// newLeg checks cfg and makes a leg of m, not yet added to it.
func newLeg(m *Mux, cfg Config) (*Leg, error) {
	if cfg.LocalUfrag == "" || cfg.LocalPwd == "" {
		return nil, fmt.Errorf("leg: no local ICE credentials: %w", ErrBadConfig)
	}
	if len(cfg.Certificate.Certificate) == 0 {
		return nil, fmt.Errorf("leg: ufrag %s: %w", cfg.LocalUfrag, ErrNoCertificate)
	}
	if len(cfg.RemoteFingerprints) == 0 {
		return nil, fmt.Errorf("leg: ufrag %s: no remote fingerprint: %w", cfg.LocalUfrag, ErrBadConfig)
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	l := &Leg{
		mux:       m,
		cfg:       cfg,
		integrity: stun.NewShortTermIntegrity(cfg.LocalPwd),
		plain:     make([]byte, readBufferSize),
		cipher:    make([]byte, readBufferSize+64),
		connected: make(chan struct{}),
		done:      make(chan struct{}),
	}
	l.dtls = newDTLSConn(l)
	return l, nil
}

// dtlsOptions are what both ends' DTLS sessions share: the certificate, the three SRTP
// profiles, and the peer's certificate checked against the SDP's fingerprints (a mismatch is
// the leg's error, so that Err wraps ErrFingerprint whatever pion/dtls makes of it).
func (l *Leg) dtlsOptions() []dtls.Option {
	cfg := l.cfg
	opts := []dtls.Option{
		dtls.WithCertificates(cfg.Certificate),
		dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_256_GCM, dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80),
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		dtls.WithInsecureSkipVerify(true), // self-signed: the fingerprint below is the check
		dtls.WithVerifyPeerCertificate(func(raw [][]byte, _ [][]*x509.Certificate) error {
			err := verifyFingerprint(raw, cfg.RemoteFingerprints)
			if err != nil {
				l.fail(fmt.Errorf("leg: DTLS peer certificate of ufrag %s: %w", cfg.LocalUfrag, err))
			}
			return err
		}),
	}
	if cfg.LoggerFactory != nil {
		opts = append(opts, dtls.WithLoggerFactory(cfg.LoggerFactory))
	}
	return opts
}

// start adds l to its Mux and starts its DTLS goroutine on conn (client: the offering end).
func (l *Leg) start(conn *dtls.Conn, client bool) error {
	l.conn = conn
	if err := l.mux.add(l); err != nil {
		_ = conn.Close()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.HandshakeTimeout)
	l.cancel = cancel
	go l.run(ctx, client)
	if l.ice != nil {
		go l.ice.run()
	}
	return nil
}

// Connected is closed when the handshake is done and the leg can send and receive SRTP.
func (l *Leg) Connected() <-chan struct{} { return l.connected }

// Done is closed when the leg's DTLS session has ended: a failed handshake, the peer's
// close_notify, Close, or (offering end) failed ICE checks or expired consent.
func (l *Leg) Done() <-chan struct{} { return l.done }

// Err is why the leg's DTLS session ended: nil while it runs, after the peer's close_notify and
// after Close; the handshake's error (a wrong fingerprint wraps ErrFingerprint, the timeout
// context.DeadlineExceeded, and on the offering end also ErrICE when no check was answered)
// or ErrConsent (offering end) otherwise.
func (l *Leg) Err() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.err
}

// LastCheck is when the answering leg last took a valid binding request from its peer (its
// connectivity checks, then its keepalives or consent refreshes); zero before the first. The
// answering end keeps no timer of its own: its owner decides when a silent peer is gone (RFC
// 7675: 30 s without consent).
func (l *Leg) LastCheck() time.Time {
	ns := l.checked.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// LocalUfrag is the leg's ICE ufrag.
func (l *Leg) LocalUfrag() string { return l.cfg.LocalUfrag }

// run is the leg's DTLS goroutine: the handshake, the SRTP keys, then alerts until the session
// ends.
func (l *Leg) run(ctx context.Context, client bool) {
	defer close(l.done)
	defer l.cancel()
	conn := l.conn
	if l.ice != nil {
		select {
		case <-l.ice.ok:
		case <-ctx.Done():
			l.fail(fmt.Errorf("leg: ICE checks from ufrag %s to %s: %w: %w", l.cfg.LocalUfrag, l.ice.to, ErrICE, ctx.Err()))
			_ = conn.Close()
			return
		}
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		l.fail(fmt.Errorf("leg: DTLS handshake for ufrag %s: %w", l.cfg.LocalUfrag, err))
		_ = conn.Close()
		return
	}
	keys, err := srtpKeysFrom(conn, client)
	if err != nil {
		l.fail(fmt.Errorf("leg: SRTP keys for ufrag %s: %w", l.cfg.LocalUfrag, err))
		_ = conn.Close()
		return
	}
	l.keys.Store(keys)
	close(l.connected)
	// Nothing but alerts comes over DTLS on this leg (no data channel); Read returns when the
	// session ends.
	buf := make([]byte, 1500)
	for {
		if _, err := conn.Read(buf); err != nil {
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, dtls.ErrConnClosed) && !errors.Is(err, io.EOF) {
				l.fail(fmt.Errorf("leg: DTLS session of ufrag %s: %w", l.cfg.LocalUfrag, err))
			}
			_ = conn.Close()
			return
		}
	}
}

func (l *Leg) fail(err error) {
	if l.closing.Load() {
		return // what Close caused is no failure
	}
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if l.err == nil {
		l.err = err
	}
}

// srtpKeysFrom makes the two SRTP contexts from a finished handshake (RFC 5764): each end
// writes with its own side's key (client or server) and reads with the other's.
func srtpKeysFrom(conn *dtls.Conn, client bool) (*srtpKeys, error) {
	p, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return nil, ErrNoSRTPProfile
	}
	var profile srtp.ProtectionProfile
	switch p {
	case dtls.SRTP_AEAD_AES_128_GCM:
		profile = srtp.ProtectionProfileAeadAes128Gcm
	case dtls.SRTP_AEAD_AES_256_GCM:
		profile = srtp.ProtectionProfileAeadAes256Gcm
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	default:
		return nil, fmt.Errorf("%w: %#x", ErrNoSRTPProfile, uint16(p))
	}
	state, ok := conn.ConnectionState()
	if !ok {
		return nil, ErrNotConnected
	}
	c := srtp.Config{Profile: profile}
	if err := c.ExtractSessionKeysFromDTLS(&state, client); err != nil {
		return nil, fmt.Errorf("export keying material: %w", err)
	}
	remote, err := srtp.CreateContext(c.Keys.RemoteMasterKey, c.Keys.RemoteMasterSalt, profile,
		srtp.SRTPReplayProtection(srtpReplayWindow), srtp.SRTCPReplayProtection(srtpReplayWindow))
	if err != nil {
		return nil, fmt.Errorf("remote SRTP context: %w", err)
	}
	local, err := srtp.CreateContext(c.Keys.LocalMasterKey, c.Keys.LocalMasterSalt, profile)
	if err != nil {
		return nil, fmt.Errorf("local SRTP context: %w", err)
	}
	return &srtpKeys{remote: remote, local: local, profile: profile}, nil
}

// receiveSRTP decrypts one SRTP or SRTCP packet (RFC 5761: packet types 192..223 are RTCP) into
// dec and hands it to the callback. Only the reader calls it.
func (l *Leg) receiveSRTP(b, dec []byte, st *muxStats) {
	k := l.keys.Load()
	if k == nil || len(b) < 2 {
		st.srtpDropped.Add(1)
		return
	}
	if b[1] >= 192 && b[1] <= 223 {
		out, err := k.remote.DecryptRTCP(dec, b, &l.rtcpHdr)
		if err != nil {
			st.srtpDropped.Add(1)
			return
		}
		st.rtcp.Add(1)
		if l.cfg.OnRTCP != nil {
			l.cfg.OnRTCP(out)
		}
		return
	}
	out, err := k.remote.DecryptRTP(dec, b, &l.rtpHdr)
	if err != nil {
		st.srtpDropped.Add(1)
		return
	}
	if err := l.pkt.Unmarshal(out); err != nil {
		st.srtpDropped.Add(1)
		return
	}
	st.rtp.Add(1)
	if l.cfg.OnRTP != nil {
		l.cfg.OnRTP(&l.pkt)
	}
}

// sendTarget is what a write needs, with l.sendMu held: the keys and the remote address, or
// ErrClosed, ErrNotConnected or ErrNoRemote.
func (l *Leg) sendTarget() (*srtpKeys, netip.AddrPort, error) {
	select {
	case <-l.done:
		return nil, netip.AddrPort{}, ErrClosed
	default:
	}
	k := l.keys.Load()
	if k == nil {
		return nil, netip.AddrPort{}, ErrNotConnected
	}
	to, ok := l.remoteAddr()
	if !ok {
		return nil, netip.AddrPort{}, ErrNoRemote
	}
	return k, to, nil
}

// WriteRTP encrypts pkt and sends it to the leg's remote address. It may be called from any
// goroutine, the reader's callbacks included; calls are serialised per leg. pkt is not kept.
// Before the handshake is done it fails with ErrNotConnected, once the DTLS session has ended
// (Done) with ErrClosed.
func (l *Leg) WriteRTP(pkt *rtp.Packet) error {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	k, to, err := l.sendTarget()
	if err != nil {
		return err
	}
	n, err := pkt.MarshalTo(l.plain)
	if err != nil {
		return fmt.Errorf("leg: marshal RTP (SSRC %d, seq %d): %w", pkt.SSRC, pkt.SequenceNumber, err)
	}
	return l.sendRTP(k, to, l.plain[:n])
}

// WriteRawRTP is WriteRTP for a packet already marshalled (a retransmission, say): b is not
// kept.
func (l *Leg) WriteRawRTP(b []byte) error {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	k, to, err := l.sendTarget()
	if err != nil {
		return err
	}
	return l.sendRTP(k, to, b)
}

// sendRTP encrypts the marshalled packet plain and sends it to to, with l.sendMu held.
func (l *Leg) sendRTP(k *srtpKeys, to netip.AddrPort, plain []byte) error {
	out, err := k.local.EncryptRTP(l.cipher, plain, &l.sendHdr)
	if err != nil {
		return fmt.Errorf("leg: encrypt RTP (%d bytes): %w", len(plain), err)
	}
	if _, err := l.mux.conn.WriteToUDPAddrPort(out, to); err != nil {
		return fmt.Errorf("leg: send RTP to %s: %w", to, err)
	}
	return nil
}

// WriteRTCP encrypts one marshalled (compound) RTCP packet and sends it, as WriteRTP.
func (l *Leg) WriteRTCP(raw []byte) error {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	k, to, err := l.sendTarget()
	if err != nil {
		return err
	}
	out, err := k.local.EncryptRTCP(l.cipher, raw, &l.rtcpOut)
	if err != nil {
		return fmt.Errorf("leg: encrypt RTCP (%d bytes): %w", len(raw), err)
	}
	if _, err := l.mux.conn.WriteToUDPAddrPort(out, to); err != nil {
		return fmt.Errorf("leg: send RTCP to %s: %w", to, err)
	}
	return nil
}

// Close removes the leg from its Mux (no callback runs after it returns), ends its DTLS session
// (close_notify when connected) and waits for its goroutines (the DTLS one and, offering end,
// the ICE timer's). It is idempotent; it must not be called from the leg's callbacks.
func (l *Leg) Close() error {
	l.closeOnce.Do(func() {
		l.closing.Store(true)
		l.mux.remove(l)
		l.cancel()
		_ = l.conn.Close()
		_ = l.dtls.Close()
		<-l.done
		if l.ice != nil {
			<-l.ice.exited
		}
	})
	return nil
}

func (l *Leg) remoteAddr() (netip.AddrPort, bool) {
	p := l.remote.Load()
	if p == nil {
		return netip.AddrPort{}, false
	}
	return *p, true
}

func (l *Leg) setRemote(a netip.AddrPort) { l.remote.Store(&a) }
