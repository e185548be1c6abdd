package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/internal/rtc"
)

// answerTimeout bounds answering an offer (ICE-lite on a UDP mux gathers immediately).
const answerTimeout = 10 * time.Second

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
	pc       *webrtc.PeerConnection
	answered bool
	closed   bool
	once     sync.Once

	// sizes maps a video source id to its sender's original picture size, from the latest
	// roster (replaced whole on each update; read per frame without a lock).
	sizes atomic.Pointer[map[uint32][2]int]

	failMu   sync.Mutex
	failed   error       // set once the media connection failed
	onFailFn func(error) // the handler's hook, called once with failed
}

// onFailure registers the calling handler's hook, called once (from a pion goroutine; it must
// not block) if the call's media connection fails after the answer.
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
	want(line rtc.Line) webrtc.RTPTransceiverDirection
	// start prepares the socket for a session whose offer has the given lines of its kind, and
	// starts its goroutines. sender is the track to send on (nil when the socket does not send).
	start(call *callMedia) error
	// remoteTrack hands the socket a remote track of one of its m-lines (pion's OnTrack goroutine).
	remoteTrack(line rtc.Line, t *webrtc.TrackRemote, r *webrtc.RTPReceiver)
	// localTrack attaches the socket's outgoing track's sender (before the answer).
	localTrack(line rtc.Line, s *webrtc.RTPSender, t *webrtc.TrackLocalStaticRTP)
	// connected reports the transport's state changes.
	connected(up bool)
	// close stops the socket's goroutines and waits for them.
	close()
	// lineKind is the kind of m-line the socket binds to.
	lineKind() rtc.Kind
}

// callMedia is what sockets learn about the call they serve.
type callMedia struct {
	ctx    context.Context // ends when the platform closes
	callID string
	log    *slog.Logger
	pc     *webrtc.PeerConnection
	lines  []rtc.Line    // the offer's lines of the socket's kind
	audio  *AudioMetrics // the platform's (MediaPlatformSettings.AudioMetrics); nil: none
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
// directions by mid, and the slots they make.
type offerLayout struct {
	lines map[rtc.Kind][]rtc.Line
	dirs  map[string]webrtc.RTPTransceiverDirection
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
	mids, offered, err := rtc.MIDs(offerSDP)
	if err != nil {
		return offerLayout{}, err
	}
	o := offerLayout{lines: map[rtc.Kind][]rtc.Line{}, dirs: map[string]webrtc.RTPTransceiverDirection{}}
	var audio, video [100]bool // ParseMID's indexes have at most two digits
	for i, mid := range mids {
		line, ok := rtc.ParseMID(mid)
		if !ok {
			continue
		}
		o.lines[line.Kind] = append(o.lines[line.Kind], line)
		o.dirs[mid] = offered[i]
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

// negotiate does answer's work with m.mu held.
func (m *MediaConfiguration) negotiate(offerSDP string) (string, error) {
	offer, err := parseOffer(offerSDP)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	lines, offerDir := offer.lines, offer.dirs
	if m.audio != nil && offer.slots.audio == 0 {
		return "", fmt.Errorf("%w: no audio m-line for the AudioSocket", ErrBadOffer)
	}
	if len(m.video) > offer.slots.video {
		return "", fmt.Errorf("%w: %d VideoSockets, %d video slots", ErrBadOffer, len(m.video), offer.slots.video)
	}
	if m.screen != nil && !offer.slots.screenShare {
		return "", fmt.Errorf("%w: no screen-share m-line for the screen-share VideoSocket", ErrBadOffer)
	}

	pc, err := m.platform.api.NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{m.platform.cert}})
	if err != nil {
		return "", fmt.Errorf("new peer connection: %w", err)
	}
	m.pc = pc
	pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		for _, tr := range pc.GetTransceivers() {
			if tr.Receiver() != r {
				continue
			}
			line, ok := rtc.ParseMID(tr.Mid())
			if !ok {
				return
			}
			if s := m.socketFor(line); s != nil {
				s.remoteTrack(line, t, r)
			}
			return
		}
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		m.log.Debug("media connection state", "state", st.String())
		up := st == webrtc.PeerConnectionStateConnected
		for _, s := range m.sockets() {
			s.connected(up)
		}
		if st == webrtc.PeerConnectionStateFailed {
			m.log.Warn("media connection failed")
			m.fail(fmt.Errorf("sdk: media connection of call %s failed", m.callID))
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		return "", fmt.Errorf("%w: set remote description: %w", ErrBadOffer, err)
	}

	dirs := map[string]webrtc.RTPTransceiverDirection{}
	for _, tr := range pc.GetTransceivers() {
		mid := tr.Mid()
		line, ok := rtc.ParseMID(mid)
		dir := webrtc.RTPTransceiverDirectionInactive
		var s mediaSocket
		if ok {
			if s = m.socketFor(line); s != nil {
				dir = intersect(s.want(line), offerDir[mid])
			}
		}
		dirs[mid] = dir
		if dir == webrtc.RTPTransceiverDirectionInactive {
			if err := tr.Stop(); err != nil {
				return "", fmt.Errorf("stop unused m-line %s: %w", mid, err)
			}
			continue
		}
		if dir == webrtc.RTPTransceiverDirectionSendrecv || dir == webrtc.RTPTransceiverDirectionSendonly {
			codec := rtc.OpusCodec().RTPCodecCapability
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				codec = rtc.VP8Codec().RTPCodecCapability
			}
			track, err := webrtc.NewTrackLocalStaticRTP(codec, mid, "bot-"+m.callID)
			if err != nil {
				return "", fmt.Errorf("track for m-line %s: %w", mid, err)
			}
			sender, err := m.platform.api.NewRTPSender(track, pc.SCTP().Transport())
			if err != nil {
				return "", fmt.Errorf("sender for m-line %s: %w", mid, err)
			}
			if err := tr.SetSender(sender, track); err != nil {
				return "", fmt.Errorf("attach sender to m-line %s: %w", mid, err)
			}
			s.localTrack(line, sender, track)
		}
	}
	for _, s := range m.sockets() {
		if err := s.start(&callMedia{ctx: m.platform.ctx, callID: m.callID, log: m.log, pc: pc, lines: lines[s.lineKind()],
			audio: m.platform.settings.AudioMetrics}); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(m.platform.ctx, answerTimeout)
	defer cancel()
	return rtc.CompleteAnswer(ctx, pc, func(sdp string) (string, error) { return rtc.SetDirections(sdp, dirs) })
}

// intersect is the answer's direction for an m-line that the socket wants in direction want
// and the offer proposes in direction offered (the offer's view: sendonly means the service
// only sends).
func intersect(want, offered webrtc.RTPTransceiverDirection) webrtc.RTPTransceiverDirection {
	send := want == webrtc.RTPTransceiverDirectionSendrecv || want == webrtc.RTPTransceiverDirectionSendonly
	recv := want == webrtc.RTPTransceiverDirectionSendrecv || want == webrtc.RTPTransceiverDirectionRecvonly
	send = send && (offered == webrtc.RTPTransceiverDirectionSendrecv || offered == webrtc.RTPTransceiverDirectionRecvonly)
	recv = recv && (offered == webrtc.RTPTransceiverDirectionSendrecv || offered == webrtc.RTPTransceiverDirectionSendonly)
	switch {
	case send && recv:
		return webrtc.RTPTransceiverDirectionSendrecv
	case send:
		return webrtc.RTPTransceiverDirectionSendonly
	case recv:
		return webrtc.RTPTransceiverDirectionRecvonly
	}
	return webrtc.RTPTransceiverDirectionInactive
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
		if m.pc != nil {
			if err := m.pc.Close(); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) && m.log != nil {
				m.log.Debug("close peer connection", "err", err)
			}
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
