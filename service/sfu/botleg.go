package sfu

import (
	"context"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/rtc/leg"
)

// botLeg is a bot participant's media connection: an offering leg (internal/rtc/leg: ICE
// controlling with consent, DTLS, SRTP inline) on a UDP socket of its own, whose Mux's reader
// hands the bot's packets straight to the SFU's upstreams and its RTCP to the sinks' feedback.
// The participant owns it: shutdown closes the Mux, which closes the leg and waits for the
// reader.
type botLeg struct {
	p          *Participant
	mux        *leg.Mux
	ufrag, pwd string
	offer      string
	lines      []botLine
	out        map[uint32]*botLine // the lines by the SFU's SSRC on each (fixed at creation)
	m          *metrics

	l      atomic.Pointer[leg.Leg] // set by Connect
	mu     sync.Mutex              // guards closed and Connect
	closed bool

	// The reader's own (set by Connect before the leg exists).
	in       []botInbound
	feedback botFeedback // onRTCP's visitor (a field: on the stack it would escape to the heap)
}

// botLine is one m-line of the leg and what the SFU sends on it: the down track, the feedback
// of its sink (key frame requests, estimates and loss reports about it go there) and the
// writer that sends its packets on the leg (and answers NACKs about them).
type botLine struct {
	line  rtc.Line
	ssrc  uint32
	track *downTrack
	fb    feedback
	w     *legWriter
}

// botInbound is one stream the bot announced in its answer: its upstream once its first packet
// came (nil before; refused when the conference would not take it).
type botInbound struct {
	ssrc     uint32
	kind     StreamKind
	levelExt uint8
	u        *upstream
	refused  bool
}

// newBotLeg opens the bot leg's socket and Mux and writes its offer with one SSRC a line
// (tracks: the lines' down tracks, in layout order; fbs: their sinks' feedback).
func (p *Participant) newBotLeg(tracks []*downTrack, fbs []feedback) (*botLeg, error) {
	s := p.conf.sfu
	conn, err := s.botSocket()
	if err != nil {
		return nil, fmt.Errorf("sfu: bot %q: %w", p.id, err)
	}
	b := &botLeg{p: p, mux: leg.NewMux(conn), out: make(map[uint32]*botLine), m: s.metrics}
	fail := func(err error) (*botLeg, error) {
		_ = b.mux.Close()
		return nil, err
	}
	if b.ufrag, b.pwd, err = leg.NewCredentials(); err != nil {
		return fail(fmt.Errorf("sfu: bot %q: %w", p.id, err))
	}
	var offer []leg.OfferLine
	lines := p.layout.Lines()
	b.lines = make([]botLine, 0, len(lines)) // b.out points into it
	for i, line := range lines {
		ssrc, err := leg.NewSSRC(func(s uint32) bool { return b.out[s] != nil })
		if err != nil {
			return fail(fmt.Errorf("sfu: bot %q: %w", p.id, err))
		}
		b.lines = append(b.lines, botLine{line: line, ssrc: ssrc, track: tracks[i], fb: fbs[i],
			w: &legWriter{b: b, video: line.Kind != rtc.KindAudio}})
		b.out[ssrc] = &b.lines[len(b.lines)-1]
		ol := leg.OfferLine{Kind: "video", MID: line.MID, Direction: "sendonly", SSRC: ssrc}
		if line.Kind == rtc.KindAudio {
			ol.Kind = "audio"
		}
		if line.BotSends() {
			ol.Direction = "sendrecv"
		}
		offer = append(offer, ol)
	}
	b.offer, err = leg.BuildOffer(leg.OfferParams{Ufrag: b.ufrag, Pwd: b.pwd, Fingerprint: s.legFP,
		Candidate: s.botCandidate(b.mux.LocalAddr()), Lines: offer})
	if err != nil {
		return fail(fmt.Errorf("sfu: offer for bot %q: %w", p.id, err))
	}
	return b, nil
}

// connect reads the bot's answer and starts the leg: ICE checks toward the answer's candidate,
// then DTLS. The lines the bot sends on (its answer's sendrecv or sendonly lines of the layout
// where the offer lets it send) become upstreams at their first packet.
func (b *botLeg) connect(answer string) error {
	p := b.p
	ans, err := leg.ParseAnswer(answer)
	if err != nil {
		return fmt.Errorf("sfu: answer of bot %q: %w", p.id, err)
	}
	var in []botInbound
	for _, am := range ans.Media {
		line, ok := rtc.ParseMID(am.MID)
		if !ok || !am.Sends() || !line.BotSends() || !b.hasLine(line.MID) {
			continue
		}
		kind := StreamAudio
		if line.Kind == rtc.KindVideo {
			kind = StreamVideo
		}
		for _, ssrc := range am.SSRCs {
			in = append(in, botInbound{ssrc: ssrc, kind: kind, levelExt: am.AudioLevelID})
		}
	}
	levels := make(map[string]uint8)
	for _, am := range ans.Media {
		levels[am.MID] = am.AudioLevelID
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return fmt.Errorf("sfu: connect bot %q: %w", p.id, ErrClosed)
	case b.l.Load() != nil:
		return fmt.Errorf("sfu: connect bot %q: %w", p.id, ErrAlreadyConnected)
	}
	b.in = in
	cfg := ans.OfferConfig(leg.Config{LocalUfrag: b.ufrag, LocalPwd: b.pwd, Certificate: p.conf.sfu.legCert,
		OnRTP: b.onRTP, OnRTCP: b.onRTCP, LoggerFactory: p.conf.sfu.logs})
	l, err := b.mux.NewOfferLeg(cfg)
	if err != nil {
		return fmt.Errorf("sfu: leg of bot %q: %w", p.id, err)
	}
	b.l.Store(l)
	for _, bl := range b.lines {
		bd := &binding{ssrc: bl.ssrc, pt: leg.PayloadTypeVP8, w: bl.w}
		if bl.line.Kind == rtc.KindAudio {
			bd.pt, bd.levelID = leg.PayloadTypeOpus, levels[bl.line.MID]
		}
		bl.track.b.Store(bd)
	}
	p.wg.Add(1)
	go b.watch(l)
	return nil
}

func (b *botLeg) hasLine(mid string) bool {
	for _, bl := range b.lines {
		if bl.line.MID == mid {
			return true
		}
	}
	return false
}

// watch tells the participant's waiters when the leg connects, and fails the participant when
// the leg ends before the participant does (ICE, DTLS or consent failed: ErrTransportFailed
// wrapping the leg's error; the bot closed it: ErrTransportFailed), as a pion connection's
// failed and closed states do.
func (b *botLeg) watch(l *leg.Leg) {
	p := b.p
	defer p.wg.Done()
	select {
	case <-l.Connected():
		p.signalState()
	case <-l.Done():
	case <-p.done:
		return
	}
	select {
	case <-l.Done():
	case <-p.done:
		return
	}
	p.signalState()
	if err := l.Err(); err != nil {
		p.fail(fmt.Errorf("bot connection of %q failed: %w: %w", p.id, ErrTransportFailed, err))
		return
	}
	p.fail(fmt.Errorf("bot connection of %q closed by the remote: %w", p.id, ErrTransportFailed))
}

// waitConnected returns when the leg is connected, an error when it ended first, or ctx's.
func (b *botLeg) waitConnected(ctx context.Context) error {
	p := b.p
	l := b.l.Load()
	if l == nil {
		return fmt.Errorf("connection of %q: %w", p.id, ErrNotConnected)
	}
	select {
	case <-l.Connected():
		select {
		case <-l.Done():
		default:
			return nil
		}
	case <-l.Done():
	case <-ctx.Done():
		return fmt.Errorf("connection of %q: %w", p.id, ctx.Err())
	case <-p.done:
		return fmt.Errorf("connection of %q: %w", p.id, ErrClosed)
	}
	if err := l.Err(); err != nil {
		return fmt.Errorf("connection of %q failed: %w: %w", p.id, ErrTransportFailed, err)
	}
	return fmt.Errorf("connection of %q closed: %w", p.id, ErrTransportFailed)
}

// close closes the Mux (the leg with it) and waits for its reader; then the bot's upstreams end,
// as a browser's track readers do when its connection closes. Called by shutdown once.
func (b *botLeg) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	_ = b.mux.Close()
	for _, in := range b.in {
		if in.u != nil {
			b.p.conf.removeUpstream(in.u)
		}
	}
}

// onRTP is the leg's OnRTP, on the Mux's reader: the packet goes to the upstream of its SSRC
// (made at its first packet). Packets of SSRCs the answer did not announce are dropped and
// counted.
func (b *botLeg) onRTP(pkt *rtp.Packet) {
	for i := range b.in {
		in := &b.in[i]
		if in.ssrc != pkt.SSRC {
			continue
		}
		if in.u == nil && !b.publish(in) {
			return
		}
		in.u.handlePacket(pkt, time.Now().UnixNano())
		return
	}
	b.m.unannounced.Inc()
}

// publish makes the upstream of a stream of the bot at its first packet and adds it to the
// conference (once: it reports false, then and afterwards, when the conference would not).
func (b *botLeg) publish(in *botInbound) bool {
	if in.refused {
		return false
	}
	u := &upstream{ssrc: in.ssrc, keyframe: b.sendPLI}
	if in.kind == StreamAudio {
		u.levelExt = in.levelExt
	}
	if !b.p.conf.addUpstream(b.p, in.kind, u) {
		in.refused = true
		return false
	}
	in.u = u
	if in.kind != StreamAudio {
		u.requestKeyframe(nowNanos())
	}
	return true
}

// sendPLI asks the bot for a key frame of its stream ssrc (upstream.requestKeyframe, rate-limited).
func (b *botLeg) sendPLI(ssrc uint32) {
	l := b.l.Load()
	if l == nil {
		return
	}
	var pli [12]byte
	_ = l.WriteRTCP(leg.PLI(&pli, 0, ssrc))
}

// onRTCP is the leg's OnRTCP, on the Mux's reader: key frame requests, estimates and loss
// reports about the streams the SFU sends the bot go to their sinks, as a browser's do
// (readFeedback); NACKs are counted, not answered.
func (b *botLeg) onRTCP(buf []byte) {
	b.feedback = botFeedback{b: b, now: time.Now().UnixNano()}
	if !leg.WalkRTCP(buf, &b.feedback) {
		b.m.malformedRTCP.Inc()
	}
}

// botFeedback is leg.WalkRTCP's visitor for one compound packet.
type botFeedback struct {
	b   *botLeg
	now int64
}

func (v *botFeedback) KeyFrame(ssrc uint32) {
	if bl := v.b.out[ssrc]; bl != nil {
		v.b.m.keyframeRequests.Inc()
		bl.fb.keyframeRequested(v.now)
	}
}

func (v *botFeedback) Estimate(ssrc uint32, bps uint64) {
	if bl := v.b.out[ssrc]; bl != nil && bps > 0 {
		bl.fb.estimate(int64(min(bps, math.MaxInt64)), v.now)
	}
}

func (v *botFeedback) Loss(ssrc uint32, fraction uint8) {
	if bl := v.b.out[ssrc]; bl != nil {
		v.b.m.loss.Observe(float64(fraction) / 256)
		bl.fb.loss(fraction, v.now)
	}
}

// NACK resends what the bot asks for of a video line from the line's retransmission buffer.
func (v *botFeedback) NACK(ssrc uint32, pid, blp uint16) {
	v.b.m.nacks.Inc()
	bl := v.b.out[ssrc]
	l := v.b.l.Load()
	if bl == nil || l == nil {
		return
	}
	if r := bl.w.rtx.Load(); r != nil {
		v.b.m.retransmits.Add(float64(r.resend(l, pid, blp)))
	}
}

// legWriter writes a down track's packets to a bot leg. Only its sink's forward calls it (under
// the sink's lock), so its packet is its own. A video line keeps what it sends for NACKs.
type legWriter struct {
	b     *botLeg
	video bool
	pkt   rtp.Packet
	rtx   atomic.Pointer[rtxBuffer] // a video line's, made at its first packet
}

func (w *legWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	l := w.b.l.Load()
	if l == nil {
		return 0, leg.ErrNotConnected
	}
	w.pkt.Header = *h
	w.pkt.Payload = payload
	var err error
	switch {
	case !w.video:
		err = l.WriteRTP(&w.pkt)
	default:
		r := w.rtx.Load()
		if r == nil {
			r = new(rtxBuffer) // once a line, at its first packet: audio-only calls never pay for it
			w.rtx.Store(r)
		}
		err = r.send(l, &w.pkt)
	}
	if err != nil {
		return 0, err
	}
	return len(payload), nil
}

// rtxSlots is how many of the latest video packets a bot's line keeps for its NACKs: about
// 0.8 s of 720p at 1.5 Mbit/s, several round trips.
const rtxSlots = 128

// rtxBuffer keeps the latest video packets sent on a bot's line, marshalled, and sends again
// those a NACK of the bot names (RFC 4585 generic NACK, without RTX: the packet goes again as
// it was, encrypted with the same SRTP index, which the bot never received).
type rtxBuffer struct {
	mu    sync.Mutex
	slots [rtxSlots]struct {
		seq uint16
		n   int // bytes kept; 0: none
		buf [1500]byte
	}
}

// send marshals pkt into its slot and sends it from there (too large a packet is sent, not
// kept).
func (r *rtxBuffer) send(l *leg.Leg, pkt *rtp.Packet) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.slots[pkt.SequenceNumber%rtxSlots]
	n, err := pkt.MarshalTo(s.buf[:])
	if err != nil {
		s.n = 0
		return l.WriteRTP(pkt)
	}
	s.seq, s.n = pkt.SequenceNumber, n
	return l.WriteRawRTP(s.buf[:n])
}

// resend sends again the kept packets among pid and the 16 after it whose bits blp sets, and
// returns how many it sent.
func (r *rtxBuffer) resend(l *leg.Leg, pid, blp uint16) (sent int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range 17 {
		if i > 0 && blp&(1<<(i-1)) == 0 {
			continue
		}
		seq := pid + uint16(i)
		s := &r.slots[seq%rtxSlots]
		if s.n == 0 || s.seq != seq {
			continue
		}
		if l.WriteRawRTP(s.buf[:s.n]) == nil {
			sent++
		}
	}
	return sent
}

// botSocket opens a bot leg's UDP socket: a free port of the range, tried from a random one
// (PortMin..PortMax), else a port the system picks, on the media host (127.0.0.1 with Loopback,
// else the shared socket's address, else every interface).
func (s *SFU) botSocket() (*net.UDPConn, error) {
	host := s.botHost.AsSlice()
	if s.cfg.PortMin == 0 {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: host})
		if err != nil {
			return nil, fmt.Errorf("listen UDP on %s for a bot leg: %w", s.botHost, err)
		}
		return conn, nil
	}
	n := int(s.cfg.PortMax) - int(s.cfg.PortMin) + 1
	first := mrand.IntN(n)
	var err error
	for i := range n {
		port := int(s.cfg.PortMin) + (first+i)%n
		var conn *net.UDPConn
		if conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: host, Port: port}); err == nil {
			return conn, nil
		}
	}
	return nil, fmt.Errorf("no free UDP port in %d-%d for a bot leg: %w", s.cfg.PortMin, s.cfg.PortMax, err)
}

// botCandidate is the address a bot leg announces for its socket local: the first public IP
// (1:1 NAT), else the socket's address when it is bound to one, else the host's first IPv4
// address that is not loopback (127.0.0.1 when it has none).
func (s *SFU) botCandidate(local netip.AddrPort) netip.AddrPort {
	if s.publicIP.IsValid() {
		return netip.AddrPortFrom(s.publicIP, local.Port())
	}
	if a := local.Addr().Unmap(); !a.IsUnspecified() {
		return netip.AddrPortFrom(a, local.Port())
	}
	return netip.AddrPortFrom(hostIPv4(), local.Port())
}

// hostIPv4 is the first IPv4 address of an interface that is up and not loopback, or 127.0.0.1.
func hostIPv4() netip.Addr {
	ifs, err := net.Interfaces()
	if err == nil {
		for _, ifc := range ifs {
			if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
				continue
			}
			addrs, err := ifc.Addrs()
			if err != nil {
				continue
			}
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() && !ip.IsLinkLocalUnicast() {
						return ip.Unmap()
					}
				}
			}
		}
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}
