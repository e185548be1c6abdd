package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/rtc/leg"
)

// MediaConfiguration binds a call's sockets to the call's media session. A bot makes one with
// MediaPlatform.CreateMediaConfiguration from the sockets it created for the call and puts it in
// its Answer action; the calling handler then answers the service's media offer with it, and
// closes it (with every socket in it) when the call ends.
type MediaConfiguration struct {
	platform *MediaPlatform
	audio    *AudioSocket
	video    []*VideoSocket
	screen   *VideoSocket

	mu       sync.Mutex
	callID   string
	log      *slog.Logger
	leg      *leg.Leg
	answered bool
	closed   bool
	once     sync.Once

	// The media session's routes, set before the leg starts and read by the platform's reader.
	ready atomic.Bool // the sockets have started: the reader may hand them packets
	recv  []rtpRoute  // the offer's SSRCs on the lines the sockets receive
	sent  []rtpRoute  // the SSRCs the sockets send with (RTCP feedback about them)

	watch     sync.WaitGroup // the goroutine that follows the leg's state
	stopWatch chan struct{}

	// sizes maps a video source id to its sender's original picture size, from the latest
	// roster (replaced whole on each update; read per frame without a lock).
	sizes atomic.Pointer[map[uint32][2]int]

	failMu   sync.Mutex
	failed   error       // set once the media connection failed
	onFailFn func(error) // the handler's hook, called once with failed
}

// onFailure registers the calling handler's hook, called once (from the goroutine that follows
// the media connection; it must not block) if the call's media connection fails after the answer.
func (m *MediaConfiguration) onFailure(fn func(error)) {
	m.failMu.Lock()
	m.onFailFn = fn
	failed := m.failed
	m.failMu.Unlock()
	if failed != nil && fn != nil {
		fn(failed)
	}
}

// rosterUpdated takes the senders' original video sizes from a roster update (called on the
// call's event goroutine).
func (m *MediaConfiguration) rosterUpdated(ps []protocol.Participant) {
	sizes := make(map[uint32][2]int)
	for _, p := range ps {
		for _, s := range p.Streams {
			if s.Width > 0 && s.Height > 0 {
				sizes[s.SourceID] = [2]int{s.Width, s.Height}
			}
		}
	}
	m.sizes.Store(&sizes)
}

// originalSize is the original picture size of a video source, if the roster told it.
func (m *MediaConfiguration) originalSize(source uint32) (width, height int, ok bool) {
	if m == nil {
		return 0, 0, false
	}
	sizes := m.sizes.Load()
	if sizes == nil {
		return 0, 0, false
	}
	sz, ok := (*sizes)[source]
	return sz[0], sz[1], ok
}

// fail records the media connection's failure and tells the handler, once.
func (m *MediaConfiguration) fail(err error) {
	m.failMu.Lock()
	if m.failed != nil {
		m.failMu.Unlock()
		return
	}
	m.failed = err
	fn := m.onFailFn
	m.failMu.Unlock()
	if fn != nil {
		fn(err)
	}
}

// sockets lists the configuration's sockets as the media session sees them.
func (m *MediaConfiguration) sockets() []mediaSocket {
	var out []mediaSocket
	if m.audio != nil {
		out = append(out, m.audio)
	}
	for _, v := range m.video {
		out = append(out, v)
	}
	if m.screen != nil {
		out = append(out, m.screen)
	}
	return out
}

// mediaSocket is what the media session needs from a socket.
type mediaSocket interface {
	// want is the direction the socket wants on one of its m-lines.
	want(line rtc.Line) lineDir
	// sendOn makes the socket send on line with ssrc through w (before start).
	sendOn(line rtc.Line, w rtpWriter, ssrc uint32)
	// start prepares the socket for a session whose offer has the given lines of its kind, and
	// starts its goroutines.
	start(call *callMedia) error
	// onRTP takes a received packet of one of the socket's m-lines, on the platform's reader
	// goroutine: it must not block or decode, and keeps nothing of pkt after it returns.
	onRTP(line rtc.Line, pkt *rtp.Packet)
	// onKeyFrameRequest and onEstimate take the far side's feedback (PLI or FIR; REMB, bits a
	// second) about the stream the socket sends, on the reader goroutine.
	onKeyFrameRequest()
	onEstimate(bps int64)
	// connected reports the transport's state changes.
	connected(up bool)
	// close stops the socket's goroutines and waits for them.
	close()
	// lineKind is the kind of m-line the socket binds to.
	lineKind() rtc.Kind
}

// rtpWriter sends on the call's media transport (the leg): WriteRTP from the socket's goroutine
// that sends, WriteRTCP (marshalled, compound or not) from any.
type rtpWriter interface {
	WriteRTP(pkt *rtp.Packet) error
	WriteRTCP(raw []byte) error
}

// rtpRoute binds an SSRC to the socket and m-line it belongs to.
type rtpRoute struct {
	ssrc uint32
	sock mediaSocket
	line rtc.Line
}

// callMedia is what sockets learn about the call they serve.
type callMedia struct {
	ctx      context.Context // ends when the platform closes
	callID   string
	log      *slog.Logger
	out      rtpWriter        // the call's transport, for RTCP (key frame requests)
	lines    []rtc.Line       // the offer's lines of the socket's kind
	receives bool             // the answer receives on one of them at least
	audio    *AudioMetrics    // the platform's (MediaPlatformSettings.AudioMetrics); nil: none
	clock    func() time.Time // when a socket's 20 ms clock starts (MediaPlatform.clockStart)
}

// lineDir is a direction of an m-line or of a socket on it, from the bot's side: whether it
// sends, receives, both or neither.
type lineDir uint8

// Directions.
const (
	dirInactive lineDir = 0
	dirSendonly lineDir = 1
	dirRecvonly lineDir = 2
	dirSendrecv lineDir = dirSendonly | dirRecvonly
)

func (d lineDir) sends() bool    { return d&dirSendonly != 0 }
func (d lineDir) receives() bool { return d&dirRecvonly != 0 }

// String is the direction's SDP attribute.
func (d lineDir) String() string {
	switch d {
	case dirSendrecv:
		return "sendrecv"
	case dirSendonly:
		return "sendonly"
	case dirRecvonly:
		return "recvonly"
	}
	return "inactive"
}

// parseDir reads an SDP direction attribute; anything unknown is inactive.
func parseDir(s string) lineDir {
	switch s {
	case "sendrecv":
		return dirSendrecv
	case "sendonly":
		return dirSendonly
	case "recvonly":
		return dirRecvonly
	}
	return dirInactive
}

// socketFor returns the socket bound to an m-line, or nil.
func (m *MediaConfiguration) socketFor(line rtc.Line) mediaSocket {
	switch line.Kind {
	case rtc.KindAudio:
		if m.audio != nil {
			return m.audio
		}
	case rtc.KindVideo:
		if line.Index < len(m.video) {
			return m.video[line.Index]
		}
	case rtc.KindScreenShare:
		if m.screen != nil {
			return m.screen
		}
	}
	return nil
}

// answer answers the service's SDP offer for callID and starts the call's media. It returns the
// SDP answer to put in the workflow.
func (m *MediaConfiguration) answer(callID, offerSDP string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return "", fmt.Errorf("sdk: answer call %s: media configuration closed", callID)
	case m.answered:
		return "", fmt.Errorf("sdk: answer call %s: media configuration already answered call %s", callID, m.callID)
	}
	m.answered = true
	m.callID = callID
	m.log = m.platform.log.With("call_id", callID)
	sdpAnswer, err := m.negotiate(offerSDP)
	if err != nil {
		m.log.Warn("media answer failed", "err", err)
		m.shutdown()
		return "", fmt.Errorf("sdk: answer call %s: %w", callID, err)
	}
	return sdpAnswer, nil
}

// offerLayout is what an offer's m-lines of the layout are: the lines by kind, their offered
// directions (the offer's view) and SSRCs by mid, and the slots they make.
type offerLayout struct {
	offer *leg.Offer
	lines map[rtc.Kind][]rtc.Line
	dirs  map[string]lineDir
	ssrcs map[string][]uint32
	slots mediaSlots
}

// mediaSlots counts an offer's slots: audio and video m-lines numbered from 0 with no gap (a
// socket binds to the line of its index), and whether a screen-share line is there.
type mediaSlots struct {
	audio, video int
	screenShare  bool
}

// parseOffer reads the layout of an SDP offer. m-lines with mids outside the layout are left out.
func parseOffer(offerSDP string) (offerLayout, error) {
	offer, err := leg.ParseOffer(offerSDP)
	if err != nil {
		return offerLayout{}, err
	}
	o := offerLayout{offer: offer, lines: map[rtc.Kind][]rtc.Line{}, dirs: map[string]lineDir{}, ssrcs: map[string][]uint32{}}
	var audio, video [100]bool // ParseMID's indexes have at most two digits
	for _, om := range offer.Media {
		line, ok := rtc.ParseMID(om.MID)
		if !ok {
			continue
		}
		if _, dup := o.dirs[om.MID]; dup {
			return offerLayout{}, fmt.Errorf("m-line %s twice", om.MID)
		}
		o.lines[line.Kind] = append(o.lines[line.Kind], line)
		o.dirs[om.MID] = parseDir(om.Direction)
		o.ssrcs[om.MID] = om.SSRCs
		switch {
		case line.Kind == rtc.KindAudio && line.Index < len(audio):
			audio[line.Index] = true
		case line.Kind == rtc.KindVideo && line.Index < len(video):
			video[line.Index] = true
		case line.Kind == rtc.KindScreenShare:
			o.slots.screenShare = true
		}
	}
	for o.slots.audio < len(audio) && audio[o.slots.audio] {
		o.slots.audio++
	}
	for o.slots.video < len(video) && video[o.slots.video] {
		o.slots.video++
	}
	return o, nil
}

// negotiate does answer's work with m.mu held: it checks the offer's layout against the
// sockets, chooses each m-line's direction, routes the offer's SSRCs to the sockets, starts
// the leg and the sockets, and writes the answer.
func (m *MediaConfiguration) negotiate(offerSDP string) (string, error) {
	offer, err := parseOffer(offerSDP)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	if m.audio != nil && offer.slots.audio == 0 {
		return "", fmt.Errorf("%w: no audio m-line for the AudioSocket", ErrBadOffer)
	}
	if len(m.video) > offer.slots.video {
		return "", fmt.Errorf("%w: %d VideoSockets, %d video slots", ErrBadOffer, len(m.video), offer.slots.video)
	}
	if m.screen != nil && !offer.slots.screenShare {
		return "", fmt.Errorf("%w: no screen-share m-line for the screen-share VideoSocket", ErrBadOffer)
	}

	p := m.platform
	params := leg.AnswerParams{
		Fingerprint: p.fp,
		Candidate:   p.candidate,
		SSRC:        map[string]uint32{},
		Directions:  map[string]string{},
		CNAME:       "bot-" + m.callID,
	}
	receives := map[mediaSocket]bool{}
	type sender struct {
		sock mediaSocket
		line rtc.Line
		ssrc uint32
	}
	var senders []sender
	for _, om := range offer.offer.Media {
		line, ok := rtc.ParseMID(om.MID)
		dir := dirInactive
		var s mediaSocket
		if ok {
			if s = m.socketFor(line); s != nil {
				dir = intersect(s.want(line), offer.dirs[om.MID])
			}
		}
		params.Directions[om.MID] = dir.String()
		if dir.receives() {
			receives[s] = true
			for _, ssrc := range offer.ssrcs[om.MID] {
				m.recv = append(m.recv, rtpRoute{ssrc: ssrc, sock: s, line: line})
			}
		}
		if dir.sends() {
			ssrc, err := leg.NewSSRC(func(s uint32) bool { return m.sender(s) != nil })
			if err != nil {
				return "", err
			}
			params.SSRC[om.MID] = ssrc
			senders = append(senders, sender{s, line, ssrc})
			m.sent = append(m.sent, rtpRoute{ssrc: ssrc, sock: s, line: line})
		}
	}
	if params.Ufrag, params.Pwd, err = leg.NewCredentials(); err != nil {
		return "", err
	}
	answer, err := offer.offer.Answer(params)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	l, err := p.mux.NewLeg(leg.Config{
		LocalUfrag: params.Ufrag, LocalPwd: params.Pwd,
		RemoteUfrag: offer.offer.Ufrag, RemoteFingerprints: offer.offer.Fingerprints,
		Certificate: p.cert,
		OnRTP:       m.onRTP,
		OnRTCP:      m.onRTCP,
	})
	if err != nil {
		return "", fmt.Errorf("media transport: %w", err)
	}
	m.leg, m.stopWatch = l, make(chan struct{})
	for _, sd := range senders {
		sd.sock.sendOn(sd.line, l, sd.ssrc)
	}
	for _, s := range m.sockets() {
		if err := s.start(&callMedia{ctx: p.ctx, callID: m.callID, log: m.log, out: l, lines: offer.lines[s.lineKind()],
			receives: receives[s], audio: p.settings.AudioMetrics, clock: func() time.Time { return p.clockStart(time.Now()) }}); err != nil {
			return "", err
		}
	}
	m.ready.Store(true)
	m.watch.Add(1)
	go m.follow(l)
	return answer, nil
}

// Consent on the answering side (RFC 7675): the service's ICE agent keeps checking the bot's
// candidate (pion every 2 s, an offering leg every 5 s); a leg without a valid check for
// consentTimeout has lost its peer, as pion's ICE agent decided with its failed state.
const (
	consentTimeout       = 30 * time.Second
	consentCheckInterval = 5 * time.Second
)

// follow is the goroutine that follows the leg's state: the sockets learn when it connects and
// when it ends, and a leg that fails (a failed handshake, a DTLS error, no ICE check from the
// service for the platform's consent timeout) fails the call's media.
func (m *MediaConfiguration) follow(l *leg.Leg) {
	defer m.watch.Done()
	select {
	case <-l.Connected():
		m.log.Debug("media connection state", "state", "connected")
		for _, s := range m.sockets() {
			s.connected(true)
		}
	case <-l.Done():
	case <-m.stopWatch:
		return
	}
	timeout, every := m.platform.consentTimeout, m.platform.consentCheck
	tick := time.NewTicker(every)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case <-l.Done():
			err = l.Err()
			break wait
		case <-m.stopWatch:
			return
		case now := <-tick.C:
			if last := l.LastCheck(); now.Sub(last) > timeout {
				err = fmt.Errorf("no ICE check from the service since %s: %w", last.Format(time.RFC3339), leg.ErrConsent)
				break wait
			}
		}
	}
	for _, s := range m.sockets() {
		s.connected(false)
	}
	if err != nil {
		m.log.Warn("media connection failed", "err", err)
		m.fail(fmt.Errorf("sdk: media connection of call %s failed: %w", m.callID, err))
		return
	}
	m.log.Debug("media connection state", "state", "closed")
}

// onRTP hands a received packet to the socket of its SSRC's m-line (the platform's reader).
func (m *MediaConfiguration) onRTP(pkt *rtp.Packet) {
	if !m.ready.Load() {
		return
	}
	for i := range m.recv {
		if r := &m.recv[i]; r.ssrc == pkt.SSRC {
			r.sock.onRTP(r.line, pkt)
			return
		}
	}
}

// onRTCP reads the far side's RTCP (the platform's reader): key frame requests (PLI, FIR) and
// bandwidth estimates (REMB) go to the socket that sends the stream they name; reports and
// NACKs are not used. leg.WalkRTCP walks the compound packet without allocating.
func (m *MediaConfiguration) onRTCP(buf []byte) {
	if !m.ready.Load() {
		return
	}
	leg.WalkRTCP(buf, (*rtcpFeedback)(m))
}

// rtcpFeedback is a MediaConfiguration as leg.WalkRTCP's visitor.
type rtcpFeedback MediaConfiguration

func (f *rtcpFeedback) KeyFrame(ssrc uint32) {
	if s := (*MediaConfiguration)(f).sender(ssrc); s != nil {
		s.onKeyFrameRequest()
	}
}

func (f *rtcpFeedback) Estimate(ssrc uint32, bps uint64) {
	if s := (*MediaConfiguration)(f).sender(ssrc); s != nil {
		s.onEstimate(int64(min(bps, math.MaxInt64))) // the socket caps it at MaxBitrateKbps
	}
}

func (f *rtcpFeedback) Loss(uint32, uint8)          {}
func (f *rtcpFeedback) NACK(uint32, uint16, uint16) {}

// sender is the socket that sends with ssrc, or nil.
func (m *MediaConfiguration) sender(ssrc uint32) mediaSocket {
	for i := range m.sent {
		if m.sent[i].ssrc == ssrc {
			return m.sent[i].sock
		}
	}
	return nil
}

// intersect is the answer's direction for an m-line that the socket wants in direction want
// and the offer proposes in direction offered (the offer's view: sendonly means the service
// only sends).
func intersect(want, offered lineDir) lineDir {
	send := want.sends() && offered.receives()
	recv := want.receives() && offered.sends()
	switch {
	case send && recv:
		return dirSendrecv
	case send:
		return dirSendonly
	case recv:
		return dirRecvonly
	}
	return dirInactive
}

// dominantSpeakerChanged delivers the service's announcement to the audio socket.
func (m *MediaConfiguration) dominantSpeakerChanged(sourceID uint32) {
	if m.audio != nil {
		m.audio.dominantSpeakerChanged(sourceID)
	}
}

// close releases every socket and the media session. It is idempotent and waits for the
// goroutines to end. Do not call it from a socket's event callback (it waits for that
// callback to return).
func (m *MediaConfiguration) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shutdown()
}

// shutdown is close with m.mu held.
func (m *MediaConfiguration) shutdown() {
	m.once.Do(func() {
		m.closed = true
		if m.leg != nil {
			_ = m.leg.Close() // no callback runs after it returns
			close(m.stopWatch)
			m.watch.Wait()
		}
		for _, s := range m.sockets() {
			s.close()
		}
		m.platform.forget(m)
	})
}

// Close is close for the bot: it ends the call's media (normally the calling handler does so
// when the call terminates or is cleaned up).
func (m *MediaConfiguration) Close() { m.close() }
