package loadgen

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
)

// The lean media path. Pion hands every packet a peer connection receives through four
// goroutines (the socket reader, the DTLS/SRTP demultiplexer, the SRTP session, the track
// reader, and for transport-cc a fifth), each a wake-up of the scheduler; for a load generator
// that only counts the bot's audio that is most of its CPU. So, where nothing needs the
// decrypted media (every call without video, except the sampled ones that decode the markers),
// each peer connection's UDP socket is wrapped (takeConn) and the packets are taken off it
// before pion sees them:
//
//   - on the publisher, every RTP/RTCP packet: it only receives the service's RTCP (receiver
//     reports, transport-cc feedback), which nothing here reads;
//   - on the subscriber, the bot's Opus packets and the service's RTCP. RTP headers are not
//     encrypted by SRTP, so sequence number, timestamp, SSRC and the transport-wide sequence
//     number are read from the packet as it comes off the socket; leanRx counts them and sends
//     what a browser sends back: transport-cc feedback every 100 ms and a receiver report every
//     second (loss and jitter from the same headers).
//
// The publisher's interceptors go too (each took a lock or allocated on every packet): the
// generator writes the transport-wide sequence number into each packet next to the audio
// level, and sends a sender report a second from the pacer.
//
// STUN and DTLS still go to pion (connectivity checks, keepalives, the handshake), so the
// service sees the same traffic as before: the same offers and answers, the same RTP, RTCP
// and STUN on the wire.

// isRTPOrRTCP tells RTP and RTCP from STUN and DTLS on a peer connection's socket by the first
// byte (RFC 7983: 128–191).
func isRTPOrRTCP(b []byte) bool { return len(b) >= 2 && b[0] >= 128 && b[0] <= 191 }

// isRTCP tells RTCP from RTP multiplexed on one port by the second byte (RFC 5761: packet
// types 192–223).
func isRTCP(b []byte) bool { return b[1] >= 192 && b[1] <= 223 }

// takeNet is the network of a peer connection whose packets the load generator takes: the
// standard one, with every UDP socket wrapped by takeConn.
type takeNet struct {
	*stdnet.Net
	take func(pkt []byte, at int64) bool
}

// ListenUDP opens a UDP socket whose packets take sees first.
func (n *takeNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return &takeConn{UDPConn: c, take: n.take}, nil
}

// takeConn is a UDP socket whose reads skip the packets take keeps (take returns true). Pion's
// ICE reads through ReadFromAddrPort (takeConn is an ice.AddrPortReaderWriter); ReadFrom is the
// same for any other reader.
type takeConn struct {
	*net.UDPConn
	take func(pkt []byte, at int64) bool
}

// ReadFromAddrPort returns the next packet take does not keep.
func (c *takeConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, addr, err := c.UDPConn.ReadFromUDPAddrPort(b)
		if err != nil || !c.take(b[:n], time.Now().UnixNano()) {
			return n, addr, err
		}
	}
}

// WriteToAddrPort writes one packet.
func (c *takeConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.UDPConn.WriteToUDPAddrPort(b, addr)
}

// ReadFrom returns the next packet take does not keep.
func (c *takeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.UDPConn.ReadFrom(b)
		if err != nil || !c.take(b[:n], time.Now().UnixNano()) {
			return n, addr, err
		}
	}
}

// takePublisher keeps every RTP and RTCP packet a publisher receives (the service's reports
// and feedback on the participant's audio).
func takePublisher(b []byte, _ int64) bool { return isRTPOrRTCP(b) }

// leanAPIs are the pion engines of the lean path: the publishers' (their sockets wrapped) and
// what every lean subscriber's engine shares. Neither has interceptors: a lean publisher
// writes the transport-wide sequence numbers into its packets and sends its sender reports
// itself (call.sendFrame, call.sendReport), and leanRx answers for a lean subscriber. The
// media engine is the service's, so the offers and answers are the same as on the full path.
type leanAPIs struct {
	pub    *webrtc.API
	media  *webrtc.MediaEngine
	net    *stdnet.Net
	poller *poller // nil where there is none (not Linux): Go's sockets, through takeNet
}

func newLeanAPIs() (*leanAPIs, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("loadgen: network interfaces: %w", err)
	}
	m, err := rtc.NewMediaEngine()
	if err != nil {
		return nil, err
	}
	l := &leanAPIs{media: m, net: n}
	if p, err := newPoller(); err == nil {
		l.poller = p
	}
	se := leanSettingEngine()
	se.SetNet(l.netFor(takePublisher))
	pub := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(&interceptor.Registry{}),
		webrtc.WithSettingEngine(se))
	l.pub = pub
	return l, nil
}

// ICE consent on the lean path. With the media taken off the socket, pion's ICE agent hears
// only STUN, so it checks the pair itself once its keepalive interval passes without hearing
// anything (pion's default, 2 s, would be a STUN transaction every 2 s on every peer
// connection). A browser checks consent every 5 s and gives a pair up after 30 s without a
// response (RFC 7675); the lean path does the same.
const (
	leanKeepalive    = 5 * time.Second
	leanDisconnected = 12 * time.Second
	leanFailed       = 30 * time.Second
)

// leanSettingEngine is the setting engine of a lean peer connection (before its network is
// set): the service's, on loopback, with browser-like consent checks.
func leanSettingEngine() webrtc.SettingEngine {
	se := rtc.ServiceSettingEngine(true)
	se.SetICETimeouts(leanDisconnected, leanFailed, leanKeepalive)
	return se
}

// netFor is the network of a lean peer connection whose packets take sees first.
func (l *leanAPIs) netFor(take func(pkt []byte, at int64) bool) transport.Net {
	if l.poller != nil {
		return l.poller.leanNet(l.net, take)
	}
	return &takeNet{Net: l.net, take: take}
}

// poll reads the lean sockets' packets that arrived (the sender goroutine calls it every tick).
func (l *leanAPIs) poll() {
	if l != nil && l.poller != nil {
		l.poller.poll()
	}
}

// close closes the poller, once every peer connection is closed.
func (l *leanAPIs) close() {
	if l != nil && l.poller != nil {
		l.poller.close()
	}
}

// subscriberAPI is the engine of one lean subscriber: its socket's packets go to rx.
func (l *leanAPIs) subscriberAPI(rx *leanRx) *webrtc.API {
	se := leanSettingEngine()
	se.SetNet(l.netFor(rx.take))
	return webrtc.NewAPI(webrtc.WithMediaEngine(l.media), webrtc.WithInterceptorRegistry(&interceptor.Registry{}),
		webrtc.WithSettingEngine(se))
}

// rtpHead is what the lean path reads of an RTP header.
type rtpHead struct {
	pt      uint8
	seq     uint16
	ts      uint32
	ssrc    uint32
	twcc    uint16 // transport-wide sequence number, when hasTWCC
	hasTWCC bool
}

// parseRTPHead reads an RTP header (RFC 3550) and, when twccID is not 0, the transport-wide
// sequence number from its one-byte or two-byte header extension (RFC 8285). It allocates
// nothing; ok is false for anything that is not a well-formed RTP header.
func parseRTPHead(b []byte, twccID uint8) (h rtpHead, ok bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return h, false
	}
	h.pt = b[1] & 0x7f
	h.seq = binary.BigEndian.Uint16(b[2:])
	h.ts = binary.BigEndian.Uint32(b[4:])
	h.ssrc = binary.BigEndian.Uint32(b[8:])
	off := 12 + 4*int(b[0]&0x0f)
	if len(b) < off {
		return h, false
	}
	if b[0]&0x10 == 0 {
		return h, true
	}
	if len(b) < off+4 {
		return h, false
	}
	profile := binary.BigEndian.Uint16(b[off:])
	end := off + 4 + 4*int(binary.BigEndian.Uint16(b[off+2:]))
	if len(b) < end {
		return h, false
	}
	if twccID == 0 {
		return h, true
	}
	ext := b[off+4 : end]
	switch {
	case profile == 0xBEDE: // one-byte elements: id(4) len-1(4)
		for i := 0; i < len(ext); {
			id, n := ext[i]>>4, int(ext[i]&0x0f)+1
			if id == 0 { // padding
				i++
				continue
			}
			if id == 15 || i+1+n > len(ext) {
				break
			}
			if id == twccID { // the first element with the id counts, as pion reads it
				if n >= 2 {
					h.twcc, h.hasTWCC = binary.BigEndian.Uint16(ext[i+1:]), true
				}
				break
			}
			i += 1 + n
		}
	case profile&0xfff0 == 0x1000: // two-byte elements: id(8) len(8)
		for i := 0; i < len(ext); {
			if ext[i] == 0 {
				i++
				continue
			}
			if i+2 > len(ext) {
				break
			}
			id, n := ext[i], int(ext[i+1])
			if i+2+n > len(ext) {
				break
			}
			if id == twccID {
				if n >= 2 {
					h.twcc, h.hasTWCC = binary.BigEndian.Uint16(ext[i+2:]), true
				}
				break
			}
			i += 2 + n
		}
	}
	return h, true
}

// Lean receive intervals.
const (
	feedbackInterval = 100 * time.Millisecond // transport-cc feedback, as pion's and Chrome's
	reportInterval   = time.Second            // receiver reports
	leanStreams      = 4                      // RTP streams a lean subscriber tells apart
	opusClockRate    = rtc.OpusClockRate
)

// rxStream is one received RTP stream (one SSRC): RFC 3550's reception statistics.
type rxStream struct {
	ssrc               uint32
	firstSeq, maxSeq   uint32 // maxSeq extended
	received           uint32
	expPrior, recPrior uint32
	transit            int32
	jitter             uint32 // ×16 (RFC 3550 A.8)
	haveTransit        bool
	lastArrival        int64 // unix ns
}

func (s *rxStream) expected() uint32 { return s.maxSeq - s.firstSeq + 1 }

// leanRx is a lean subscriber's receive side. take runs on the goroutine that reads the
// subscriber's socket (pion's ICE reader), which owns everything here but the atomics.
type leanRx struct {
	c      *call
	twccID atomic.Uint32 // the transport-cc header extension's id; set from the offer
	// pass gives the Opus packets to pion too, after counting them: a sampled call decodes
	// them (readAudio) to find the markers, and reads their arrival times from arrivals.
	pass     bool
	arrivals [64]atomic.Uint64 // by sequence number mod 64: seq<<48 | arrival µs since epoch

	epoch   int64 // unix ns: the origin of transport-cc arrival times
	rec     *twcc.Recorder
	ssrc    uint32 // the RTCP sender SSRC
	nextFB  int64  // unix ns
	nextRR  int64
	streams [leanStreams]rxStream
	n       int   // streams in use
	expSum  int64 // sum of the streams' expected packets

	// Reused for every receiver report.
	rr      rtcp.ReceiverReport
	reports [leanStreams]rtcp.ReceptionReport
	pkts    [1]rtcp.Packet
	// write sends RTCP (the subscriber's WriteRTCP; tests replace it).
	write func([]rtcp.Packet) error
}

func newLeanRx(c *call, ssrc uint32) *leanRx {
	r := &leanRx{c: c, epoch: time.Now().UnixNano(), rec: twcc.NewRecorder(ssrc), ssrc: ssrc}
	r.rr.SSRC = ssrc
	r.pkts[0] = &r.rr
	r.write = func(p []rtcp.Packet) error { return c.sub.WriteRTCP(p) }
	return r
}

// take keeps the subscriber's Opus RTP (counted, fed to the feedback) and RTCP (the service's
// sender reports, which nothing here reads); pion gets the rest.
func (r *leanRx) take(b []byte, at int64) bool {
	if !isRTPOrRTCP(b) {
		return false
	}
	if isRTCP(b) {
		return true
	}
	h, ok := parseRTPHead(b, uint8(r.twccID.Load()))
	if !ok {
		return true // not RTP after all: nothing pion could use either
	}
	if h.pt != uint8(rtc.PayloadTypeOpus) {
		return false
	}
	r.receive(h, at)
	if r.pass {
		r.arrivals[h.seq%uint16(len(r.arrivals))].Store(uint64(h.seq)<<48 | uint64((at-r.epoch)/1000)&(1<<48-1))
		return false
	}
	return true
}

// arrival is when the packet with sequence number seq came off the socket (unix ns), if it is
// among the last few.
func (r *leanRx) arrival(seq uint16) (int64, bool) {
	v := r.arrivals[seq%uint16(len(r.arrivals))].Load()
	if v == 0 || uint16(v>>48) != seq {
		return 0, false
	}
	return r.epoch + int64(v&(1<<48-1))*1000, true
}

// receive counts one Opus packet that arrived at at (unix ns) and sends the RTCP that is due.
func (r *leanRx) receive(h rtpHead, at int64) {
	c := r.c
	if s := r.stream(h.ssrc); s != nil {
		r.observe(s, h, at)
	}
	c.lastRx.Store(at)
	if c.recv.Add(1) == 1 {
		c.checkEstablished()
	}
	if h.hasTWCC {
		r.rec.Record(h.ssrc, h.twcc, (at-r.epoch)/1000)
	}
	if at >= r.nextFB {
		r.nextFB = at + int64(feedbackInterval)
		if pkts := r.rec.BuildFeedbackPacket(); len(pkts) > 0 {
			_ = r.write(pkts)
		}
	}
	if at >= r.nextRR {
		if r.nextRR != 0 {
			r.sendReport(at)
		}
		r.nextRR = at + int64(reportInterval)
	}
}

// stream finds or adds h's stream; nil when leanStreams are in use.
func (r *leanRx) stream(ssrc uint32) *rxStream {
	for i := 0; i < r.n; i++ {
		if r.streams[i].ssrc == ssrc {
			return &r.streams[i]
		}
	}
	if r.n == len(r.streams) {
		return nil
	}
	s := &r.streams[r.n]
	r.n++
	*s = rxStream{ssrc: ssrc}
	return s
}

// observe updates a stream's statistics and the call's counters with one packet.
func (r *leanRx) observe(s *rxStream, h rtpHead, at int64) {
	c := r.c
	if s.received == 0 {
		s.firstSeq, s.maxSeq = uint32(h.seq), uint32(h.seq)
		r.expSum++
	} else if d := h.seq - uint16(s.maxSeq); d != 0 && d < 0x8000 {
		s.maxSeq += uint32(d)
		r.expSum += int64(d)
	}
	c.expected.Store(r.expSum)
	s.received++
	if s.lastArrival != 0 {
		c.g.rxGaps.observe(time.Duration(at - s.lastArrival))
	}
	s.lastArrival = at
	// Interarrival jitter in RTP units (RFC 3550 A.8).
	arrival := uint32((at - r.epoch) / 1000 * opusClockRate / 1e6)
	transit := int32(arrival - h.ts)
	if s.haveTransit {
		d := transit - s.transit
		if d < 0 {
			d = -d
		}
		s.jitter += uint32(d) - ((s.jitter + 8) >> 4)
	}
	s.transit, s.haveTransit = transit, true
}

// sendReport sends a receiver report on every stream (RFC 3550 6.4.2; no sender report was
// read, so LSR and DLSR are 0, as pion's receiver sends them when nobody reads its RTCP).
func (r *leanRx) sendReport(at int64) {
	r.rr.Reports = r.reports[:0]
	for i := 0; i < r.n; i++ {
		s := &r.streams[i]
		exp := s.expected()
		lost := int64(exp) - int64(s.received)
		lost = min(max(lost, -(1<<23)), 1<<23-1)
		expInt, recInt := exp-s.expPrior, s.received-s.recPrior
		s.expPrior, s.recPrior = exp, s.received
		var fraction uint8
		if lostInt := int64(expInt) - int64(recInt); expInt > 0 && lostInt > 0 {
			fraction = uint8(min(lostInt<<8/int64(expInt), 255))
		}
		r.rr.Reports = append(r.rr.Reports, rtcp.ReceptionReport{
			SSRC: s.ssrc, FractionLost: fraction, TotalLost: uint32(lost) & 0xffffff,
			LastSequenceNumber: s.maxSeq, Jitter: s.jitter >> 4,
		})
	}
	if len(r.rr.Reports) > 0 {
		_ = r.write(r.pkts[:])
	}
}
