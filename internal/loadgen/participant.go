package loadgen

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/opus"
	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/rtc/rtctest"
)

// Call states.
const (
	statePlacing int32 = iota
	stateEstablished
	stateFailed  // never established
	stateDropped // established, then lost
	stateEnded   // hung up by the load generator
)

// wsMsg is every signalling message the participant reads or writes (docs/signalling.md); only
// the fields a message type uses are set.
type wsMsg struct {
	Type         string          `json:"type"`
	Bot          string          `json:"bot,omitempty"`
	DisplayName  string          `json:"displayName,omitempty"`
	SDP          string          `json:"sdp,omitempty"`
	Target       string          `json:"target,omitempty"`
	Candidate    *candidateInit  `json:"candidate,omitempty"`
	Code         string          `json:"code,omitempty"`
	Message      string          `json:"message,omitempty"`
	Reason       string          `json:"reason,omitempty"`
	Participants []rosterEntry   `json:"participants,omitempty"`
	Sources      json.RawMessage `json:"sources,omitempty"`
}

type candidateInit struct {
	Candidate     string  `json:"candidate"`
	SDPMid        *string `json:"sdpMid,omitempty"`
	SDPMLineIndex *uint16 `json:"sdpMLineIndex,omitempty"`
}

type rosterEntry struct {
	ID    string `json:"id"`
	IsBot bool   `json:"isBot"`
}

// call is one participant: a WebSocket to the service's /ws, a publisher peer connection that
// sends the signal and a subscriber one that receives the bot's audio.
type call struct {
	id int
	g  *Generator

	ws       *websocket.Conn
	pub, sub *webrtc.PeerConnection
	audio    *webrtc.TrackLocalStaticRTP
	relays   [2]*rtctest.Relay // publisher, subscriber; with impairment only
	// rx is the subscriber's lean receive side (lean.go); nil with video (pion's full path).
	rx *leanRx

	// Owned by the sender goroutine.
	pkt     rtp.Packet
	level   [1]byte
	levelID uint8
	frame   int
	tsBase  uint32
	// Lean publishers number their packets for transport-cc and send their sender reports
	// themselves (no interceptors): the extension's id and the next number, the SSRC, and the
	// packets and payload octets sent.
	twccID    uint8
	twccSeq   uint16
	twccBuf   [2]byte
	ssrc      uint32
	srPackets uint32
	srOctets  uint32
	sr        rtcp.SenderReport
	srPkts    [1]rtcp.Packet
	// Video, with Config.Video: its packet (sender goroutine) and key frame requests.
	video      *callVideo
	vpkt       rtp.Packet
	keyRequest atomic.Bool
	sent       atomic.Uint64

	// Marker burst send times (unix ns), a ring written by the sender, read by the receiver.
	bursts [4]atomic.Int64
	burstN atomic.Uint32

	// Receive side, owned by the bot-audio reader goroutine except the atomics.
	recv       atomic.Uint64
	expected   atomic.Int64
	lastRx     atomic.Int64 // unix ns
	seqStarted bool
	maxSeq     uint32 // extended
	firstSeq   uint32
	det        *Detector

	state  atomic.Int32
	mu     sync.Mutex
	reason string
	botIn  bool // a bot is in the roster
	pubUp  bool // publisher connected
	estAt  time.Time

	estCh    chan struct{}
	estOnce  sync.Once
	ended    chan struct{} // closed when the call ends for any reason
	endOnce  sync.Once
	hangOnce sync.Once
	wg       sync.WaitGroup
}

// fail ends the call with reason: failed when it never got established, dropped otherwise
// (unless the load generator already hung it up).
func (c *call) fail(reason string) {
	c.mu.Lock()
	if c.reason == "" {
		c.reason = reason
	}
	c.mu.Unlock()
	for {
		s := c.state.Load()
		next := stateFailed
		switch s {
		case stateEstablished:
			next = stateDropped
		case statePlacing:
		default:
			return
		}
		if c.state.CompareAndSwap(s, next) {
			break
		}
	}
	c.endOnce.Do(func() { close(c.ended) })
}

func (c *call) failReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// checkEstablished marks the call established when its condition holds: for sendrecv, audio
// from the bot arrived; for sendonly, the publisher is connected and the bot is in the roster.
func (c *call) checkEstablished() {
	c.mu.Lock()
	ok := c.pubUp && c.botIn && (c.g.cfg.Mode == Recvonly || c.recv.Load() > 0)
	c.mu.Unlock()
	if !ok {
		return
	}
	c.estOnce.Do(func() {
		if c.state.CompareAndSwap(statePlacing, stateEstablished) {
			c.mu.Lock()
			c.estAt = time.Now()
			c.mu.Unlock()
		}
		close(c.estCh)
	})
}

// place runs the signalling until the call is established, fails or ctx ends. The call's
// goroutines keep running until hangUp.
func (c *call) place(ctx context.Context) error {
	cfg := c.g.cfg
	dctx, cancel := context.WithTimeout(ctx, cfg.EstablishTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, c.g.wsURL, nil)
	if err != nil {
		return fmt.Errorf("dial %s: %w", c.g.wsURL, err)
	}
	ws.SetReadLimit(1 << 20)
	c.ws = ws
	pubAPI, subAPI := c.g.api, c.g.api
	if l := c.g.lean; l != nil {
		pubAPI = l.pub
		c.rx = newLeanRx(c, rand.Uint32())
		c.rx.pass = c.det != nil
		subAPI = l.subscriberAPI(c.rx)
	}
	if c.pub, err = pubAPI.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return fmt.Errorf("publisher peer connection: %w", err)
	}
	if c.sub, err = subAPI.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return fmt.Errorf("subscriber peer connection: %w", err)
	}
	c.audio, err = webrtc.NewTrackLocalStaticRTP(rtc.OpusCodec().RTPCodecCapability, "audio", fmt.Sprintf("load-%d", c.id))
	if err != nil {
		return fmt.Errorf("audio track: %w", err)
	}
	tr, err := c.pub.AddTransceiverFromTrack(c.audio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return fmt.Errorf("add audio track: %w", err)
	}
	if c.g.lean == nil {
		// (On the lean path the publisher's RTCP is taken off its socket.)
		c.wg.Add(1)
		go c.drainRTCP(tr.Sender())
	}
	if c.g.video != nil {
		if err := c.addVideo(); err != nil {
			return err
		}
	}
	c.pub.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			c.mu.Lock()
			c.pubUp = true
			c.mu.Unlock()
			c.g.startSending(c)
			c.checkEstablished()
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			c.fail("publisher connection " + s.String())
		}
	})
	c.sub.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			c.fail("subscriber connection " + s.String())
		}
	})
	c.sub.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		select {
		case <-c.ended:
			return
		default:
		}
		c.wg.Add(1)
		if t.Kind() == webrtc.RTPCodecTypeAudio {
			go c.readAudio(t)
			return
		}
		go c.discard(t)
	})
	if err := c.write(dctx, wsMsg{Type: "callBot", Bot: cfg.Bot, DisplayName: fmt.Sprintf("load %d", c.id)}); err != nil {
		return err
	}
	if c.g.lean != nil {
		if enc := tr.Sender().GetParameters().Encodings; len(enc) > 0 {
			c.ssrc = uint32(enc[0].SSRC)
		}
	}
	c.wg.Add(1)
	go c.signalling(ctx)
	select {
	case <-c.estCh:
		return nil
	case <-c.ended:
		return errors.New(c.failReason())
	case <-dctx.Done():
		c.mu.Lock()
		stage := "the bot's audio"
		switch {
		case !c.botIn:
			stage = "the bot to join"
		case !c.pubUp:
			stage = "the publisher connection"
		}
		c.mu.Unlock()
		return fmt.Errorf("timed out waiting for %s", stage)
	}
}

// write sends one signalling message.
func (c *call) write(ctx context.Context, m wsMsg) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.ws.Write(wctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("send %s: %w", m.Type, err)
	}
	return nil
}

// signalling reads the service's messages until the WebSocket closes.
func (c *call) signalling(ctx context.Context) {
	defer c.wg.Done()
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			c.fail("signalling closed: " + shortErr(err))
			return
		}
		var m wsMsg
		if err := json.Unmarshal(data, &m); err != nil {
			c.fail("bad signalling message: " + err.Error())
			return
		}
		if err := c.handle(ctx, m); err != nil {
			c.fail(err.Error())
			return
		}
	}
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i < 60 {
		return s[i+2:]
	}
	return s
}

func (c *call) handle(ctx context.Context, m wsMsg) error {
	switch m.Type {
	case "joined":
		return c.publish(ctx)
	case "answer":
		sdp := c.toRelay(m.SDP, 0)
		if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
			return fmt.Errorf("publisher answer: %w", err)
		}
	case "offer":
		return c.answer(ctx, m.SDP)
	case "candidate":
		if m.Candidate == nil || m.Candidate.Candidate == "" {
			return nil
		}
		pc, which := c.pub, 0
		if m.Target == "subscriber" {
			pc, which = c.sub, 1
		}
		init := webrtc.ICECandidateInit{Candidate: c.candidateToRelay(m.Candidate.Candidate, which),
			SDPMid: m.Candidate.SDPMid, SDPMLineIndex: m.Candidate.SDPMLineIndex}
		if err := pc.AddICECandidate(init); err != nil {
			return fmt.Errorf("%s candidate: %w", m.Target, err)
		}
	case "roster":
		bot := false
		for _, p := range m.Participants {
			bot = bot || p.IsBot
		}
		c.mu.Lock()
		had := c.botIn
		c.botIn = bot
		c.mu.Unlock()
		if had && !bot {
			return errors.New("the bot left")
		}
		c.checkEstablished()
	case "left":
		return fmt.Errorf("left: %s", m.Reason)
	case "error":
		return fmt.Errorf("service error %s: %s", m.Code, m.Message)
	}
	return nil
}

// publish sends the publisher's offer, its candidates included (no trickle from this side).
func (c *call) publish(ctx context.Context) error {
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("publisher offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pub)
	if err := c.pub.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("publisher offer: %w", err)
	}
	<-gathered
	c.levelID = extensionID(c.pub.LocalDescription().SDP, sdp.AudioLevelURI)
	if c.g.lean != nil {
		c.twccID = extensionID(c.pub.LocalDescription().SDP, sdp.TransportCCURI)
	}
	return c.write(ctx, wsMsg{Type: "publish", SDP: c.ownSDP(c.pub.LocalDescription().SDP)})
}

// answer answers a subscriber offer.
func (c *call) answer(ctx context.Context, offer string) error {
	if c.rx != nil {
		c.rx.twccID.Store(uint32(extensionID(offer, sdp.TransportCCURI)))
	}
	if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: c.toRelay(offer, 1)}); err != nil {
		return fmt.Errorf("subscriber offer: %w", err)
	}
	ans, err := c.sub.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("subscriber answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(c.sub)
	if err := c.sub.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("subscriber answer: %w", err)
	}
	<-gathered
	return c.write(ctx, wsMsg{Type: "answer", SDP: c.ownSDP(c.sub.LocalDescription().SDP)})
}

// ownSDP is what the service gets of a local description: with relays, the candidates are
// left out, so that the service learns the participant's address only from the relay (a
// peer-reflexive candidate) and every packet crosses it.
func (c *call) ownSDP(s string) string {
	if !c.g.impaired() {
		return s
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if strings.HasPrefix(line, "a=candidate:") || strings.HasPrefix(line, "a=end-of-candidates") {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// toRelay points the service's candidates in a description at relay which (0 publisher, 1
// subscriber).
func (c *call) toRelay(s string, which int) string {
	if !c.g.impaired() {
		return s
	}
	lines := strings.SplitAfter(s, "\n")
	for i, line := range lines {
		if strings.HasPrefix(line, "a=candidate:") {
			end := strings.TrimRight(line[2:], "\r\n")
			lines[i] = "a=" + c.candidateToRelay(end, which) + line[len(strings.TrimRight(line, "\r\n")):]
		}
	}
	return strings.Join(lines, "")
}

// candidateToRelay rewrites one UDP candidate ("candidate:f 1 udp prio ip port typ ...") to the
// connection's relay, made on first use to forward to the address the candidate names (the
// service has one media port, so one relay per connection is enough). Other candidates are
// left as they are.
func (c *call) candidateToRelay(cand string, which int) string {
	if !c.g.impaired() {
		return cand
	}
	target, ok := candidateAddr(cand)
	if !ok {
		return cand
	}
	r := c.relays[which]
	if r == nil {
		var err error
		if r, err = rtctest.NewRelay(target); err != nil {
			return cand
		}
		r.Impair(c.g.cfg.Loss, c.g.cfg.Jitter)
		c.relays[which] = r
	}
	return withAddr(cand, r.Addr())
}

// candidateAddr returns the address of a UDP candidate ("candidate:f 1 udp prio ip port typ
// ..."), ok false for anything else.
func candidateAddr(cand string) (*net.UDPAddr, bool) {
	f := strings.Fields(cand)
	if len(f) < 8 || !strings.EqualFold(f[2], "udp") || f[6] != "typ" {
		return nil, false
	}
	ip, err := netip.ParseAddr(f[4])
	port, perr := strconv.ParseUint(f[5], 10, 16)
	if err != nil || perr != nil || !ip.Is4() || port == 0 {
		return nil, false // names (mDNS) and IPv6 are not relayed
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))), true
}

// withAddr replaces a UDP candidate's address (candidateAddr must have accepted it).
func withAddr(cand string, a *net.UDPAddr) string {
	f := strings.Fields(cand)
	f[4], f[5] = a.IP.String(), strconv.Itoa(a.Port)
	return strings.Join(f, " ")
}

// extensionID finds the id the description gives a header extension (0: none).
func extensionID(desc, uri string) uint8 {
	for _, line := range strings.Split(desc, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "a=extmap:") || !strings.Contains(line, uri) {
			continue
		}
		var id int
		if _, err := fmt.Sscanf(line[len("a=extmap:"):], "%d", &id); err == nil && id > 0 && id < 15 {
			return uint8(id)
		}
	}
	return 0
}

func (c *call) drainRTCP(s *webrtc.RTPSender) {
	defer c.wg.Done()
	buf := make([]byte, 1500)
	for {
		if _, _, err := s.Read(buf); err != nil {
			return
		}
	}
}

// discard reads (and counts) a track other than the bot's audio: the bot's video.
func (c *call) discard(t *webrtc.TrackRemote) {
	defer c.wg.Done()
	buf := make([]byte, 1500)
	for {
		if _, _, err := t.Read(buf); err != nil {
			return
		}
		c.g.videoRx.Add(1)
	}
}

// readAudio reads the bot's audio: on the sampled calls it decodes it to find the markers
// and, on the full path (with video), it counts packets and sequence gaps (the lean path
// counts them as they come off the socket).
func (c *call) readAudio(t *webrtc.TrackRemote) {
	defer c.wg.Done()
	buf := make([]byte, 1500)
	var h rtp.Header
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if n < 12 {
			continue
		}
		seq := binary.BigEndian.Uint16(buf[2:4])
		now := time.Now()
		if c.rx != nil {
			// Counted as it came off the socket; decoded here.
			if at, ok := c.rx.arrival(seq); ok {
				now = time.Unix(0, at)
			}
		} else {
			c.observeSeq(seq)
			if last := c.lastRx.Swap(now.UnixNano()); last != 0 {
				c.g.rxGaps.observe(time.Duration(now.UnixNano() - last))
			}
			if c.recv.Add(1) == 1 {
				c.checkEstablished()
			}
		}
		if c.det == nil {
			continue
		}
		off, err := h.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		end := n
		if h.Padding && end > off {
			end -= int(buf[n-1])
		}
		if end <= off {
			continue
		}
		if onset, ok := c.det.Frame(buf[off:end], now); ok {
			if sent := c.burstBefore(onset); sent > 0 {
				c.g.addLatency(time.Duration(onset.UnixNano() - sent))
			}
		}
	}
}

// observeSeq tracks the extended highest sequence number: expected packets minus received
// ones are the packets lost on the way back (RFC 3550).
func (c *call) observeSeq(seq uint16) {
	if !c.seqStarted {
		c.seqStarted = true
		c.firstSeq, c.maxSeq = uint32(seq), uint32(seq)
		c.expected.Store(1)
		return
	}
	if d := seq - uint16(c.maxSeq); d != 0 && d < 0x8000 {
		c.maxSeq += uint32(d)
		c.expected.Store(int64(c.maxSeq-c.firstSeq) + 1)
	}
}

// noteBurst records that a marker burst was sent now.
func (c *call) noteBurst(now int64) {
	n := c.burstN.Add(1)
	c.bursts[n%uint32(len(c.bursts))].Store(now)
}

// burstBefore is the latest marker burst sent before t (unix ns), 0 if none.
func (c *call) burstBefore(t time.Time) int64 {
	var best int64
	tn := t.UnixNano()
	for i := range c.bursts {
		if b := c.bursts[i].Load(); b != 0 && b < tn && b > best {
			best = b
		}
	}
	return best
}

// sendFrame writes the next packet of the signal for frame slot (the sender goroutine calls it
// every 20 ms, slot counting up from 0 in 20 ms steps of the run's clock). The RTP timestamp
// follows the slot, so frames the sender skipped while far behind show as a gap in timestamps
// (as a sender that lost captured audio shows it), not as a clock that runs slow.
func (c *call) sendFrame(sig *Signal, now int64, slot int) {
	p := &sig.Packets[c.frame%len(sig.Packets)]
	c.frame++
	c.pkt.Marker = c.frame == 1
	c.pkt.Timestamp = c.tsBase + uint32(slot)*opus.RTPFrameTicks
	c.pkt.Payload = p.Payload
	if c.levelID != 0 {
		c.level[0] = 0x80 | p.Level
		_ = c.pkt.Header.SetExtension(c.levelID, c.level[:])
	}
	if c.twccID != 0 {
		binary.BigEndian.PutUint16(c.twccBuf[:], c.twccSeq)
		c.twccSeq++
		_ = c.pkt.Header.SetExtension(c.twccID, c.twccBuf[:])
	}
	if p.Marker {
		c.noteBurst(now)
	}
	if err := c.audio.WriteRTP(&c.pkt); err == nil {
		c.sent.Add(1)
		c.srPackets++
		c.srOctets += uint32(len(p.Payload))
	}
	c.pkt.SequenceNumber++
}

// sendReport sends the lean publisher's sender report (RFC 3550 6.4.1) for slot: the sender
// goroutine calls it once a second. The RTP time is the slot's, as the packets', at now.
func (c *call) sendReport(now time.Time, slot int) {
	if c.ssrc == 0 {
		return
	}
	c.sr.SSRC = c.ssrc
	c.sr.NTPTime = ntpTime(now)
	c.sr.RTPTime = c.tsBase + uint32(slot)*opus.RTPFrameTicks
	c.sr.PacketCount, c.sr.OctetCount = c.srPackets, c.srOctets
	c.srPkts[0] = &c.sr
	_ = c.pub.WriteRTCP(c.srPkts[:])
}

// ntpTime is t as a 64-bit NTP timestamp (seconds since 1900, 32.32 fixed point).
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800
	ns := t.UnixNano()
	sec := uint64(ns/1e9) + unixToNTP
	frac := uint64(ns%1e9) << 32 / 1e9
	return sec<<32 | frac
}

// hangUp leaves the call and stops its goroutines. It is idempotent.
func (c *call) hangUp() {
	c.hangOnce.Do(c.doHangUp)
}

func (c *call) doHangUp() {
	if c.state.CompareAndSwap(stateEstablished, stateEnded) || c.state.CompareAndSwap(statePlacing, stateEnded) {
		c.endOnce.Do(func() { close(c.ended) })
	}
	if c.ws != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = c.write(ctx, wsMsg{Type: "leave"})
		cancel()
		_ = c.ws.CloseNow()
	}
	if c.pub != nil {
		_ = c.pub.Close()
	}
	if c.sub != nil {
		_ = c.sub.Close()
	}
	c.wg.Wait()
	for _, r := range c.relays {
		if r != nil {
			r.Close()
		}
	}
	if c.det != nil {
		c.det.Close()
	}
}
