// Package signal is the browser's signalling channel to the calling service: a WebSocket that
// carries JSON messages to join a conference (or call a bot), exchange SDP offers and answers and
// trickled ICE candidates with the SFU, receive roster and dominant-speaker events, mute, leave,
// and resume a session after a dropped connection. docs/signalling.md documents the messages.
//
// Every message from a browser goes through Decode, a strict decoder with size limits; a
// message it rejects gets an error message on that browser's connection and changes nothing
// else.
package signal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/service/sfu"
)

// Directory is what the signalling server asks of the call layer: which conference a room is,
// and how to call a bot. A nil Directory maps a room to the conference RoomConferenceID(room) and
// knows no bots.
type Directory interface {
	// Room returns the id of the SFU conference of a room, creating what the call layer needs.
	Room(ctx context.Context, room string, caller Caller) (conferenceID string, err error)
	// CallBot places a call from a browser to the named bot and returns the id of the SFU
	// conference the browser joins (the call layer adds the bot's leg to it). An unknown bot is
	// an error wrapping ErrNotFound.
	CallBot(ctx context.Context, bot string, caller Caller) (conferenceID string, err error)
	// Left tells the call layer that a browser participant left a conference.
	Left(conferenceID, participantID string)
}

// Caller describes the browser participant to the call layer.
type Caller struct {
	ParticipantID string
	DisplayName   string
}

// ErrNotFound is what a Directory wraps for an unknown bot or room.
var ErrNotFound = errors.New("signal: not found")

// Options tune a Server. The zero value works.
type Options struct {
	// Directory resolves rooms and bots; nil: rooms only.
	Directory Directory
	// Grace is how long a session whose connection dropped waits to be resumed. Default 30 s.
	Grace time.Duration
	// OriginPatterns are the extra origins allowed to open the WebSocket (the page's own origin
	// always is).
	OriginPatterns []string
	// SendQueue bounds the messages waiting for a slow or absent connection; past it the
	// session ends. Default 256.
	SendQueue int
	// Logger for session events. Default slog.Default().
	Logger *slog.Logger
}

// Server serves the signalling WebSocket. Mount it on the path the web page dials.
type Server struct {
	sfu  *sfu.SFU
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session // by token
	closed   bool
	wg       sync.WaitGroup
}

// NewServer returns a signalling server for the conferences of s.
func NewServer(s *sfu.SFU, opts Options) *Server {
	if opts.Grace <= 0 {
		opts.Grace = 30 * time.Second
	}
	if opts.SendQueue <= 0 {
		opts.SendQueue = 256
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Server{sfu: s, opts: opts, log: opts.Logger, sessions: make(map[string]*session)}
}

// session is one browser participant, across the connections it resumes on.
type session struct {
	srv   *Server
	token string
	id    string
	log   *slog.Logger

	mu      sync.Mutex
	conn    *websocket.Conn
	out     [][]byte
	conf    *sfu.Conference
	part    *sfu.Participant
	unwatch func()
	grace   *time.Timer
	// Trickled candidates of a connection wait until its description (offer or answer) has been
	// queued, so that the browser never gets a candidate before the description it belongs to.
	descSent  [3]bool // by sfu.Role
	candQueue [3][][]byte
	// While a join is under way, the participant's offers and candidates wait in early until
	// the joined message is queued: the page makes its connections when it is told it joined,
	// and an offer that came first would find none (and the SFU would wait for its answer
	// forever).
	joining bool
	early   [][]byte
	// unanswered is the subscriber offer that waits for the page's answer, with the candidates
	// queued after it: a resumed session gets them again, in case the connection that dropped
	// lost them (the SFU offers nothing more until it has the answer).
	unanswered [][]byte
	ended      bool
	wake       chan struct{}
	done       chan struct{}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) newSession(conn *websocket.Conn) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, sfu.ErrClosed
	}
	ss := &session{srv: s, token: randomHex(16), id: "p-" + randomHex(6), conn: conn,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	ss.log = s.log.With("participant", ss.id)
	s.sessions[ss.token] = ss
	s.wg.Add(1)
	go ss.writeLoop()
	return ss, nil
}

// ServeHTTP upgrades the request to a WebSocket and runs the session on it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.opts.OriginPatterns})
	if err != nil {
		return // Accept wrote the HTTP error
	}
	// Messages up to MaxMessageBytes are decoded (larger ones get a too_large error); beyond
	// this hard limit the connection closes.
	conn.SetReadLimit(2 * MaxMessageBytes)
	ss, err := s.newSession(conn)
	if err != nil {
		_ = conn.Close(websocket.StatusGoingAway, "server closing")
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	s.readLoop(r.Context(), conn, ss)
}

// readLoop handles the messages of one connection, in order.
func (s *Server) readLoop(ctx context.Context, conn *websocket.Conn, ss *session) {
	errorsInRow := 0
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			ss.detach(conn)
			return
		}
		msg, err := Decode(data)
		if err == nil {
			var next *session
			next, err = s.handle(ctx, conn, ss, msg)
			if next != nil {
				ss = next
			}
		}
		if err != nil {
			errorsInRow++
			ss.sendError(err)
			if errorsInRow > 100 {
				_ = conn.Close(websocket.StatusPolicyViolation, "too many bad messages")
				ss.detach(conn)
				return
			}
			continue
		}
		errorsInRow = 0
		if _, ok := msg.(*Leave); ok {
			_ = conn.Close(websocket.StatusNormalClosure, "left")
			return
		}
	}
}

// opError is an error answered with a code.
type opError struct {
	code, ref string
	err       error
}

func (e *opError) Error() string { return e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

func fail(code, ref string, err error) error { return &opError{code: code, ref: ref, err: err} }

func (ss *session) sendError(err error) {
	m := Error{Type: TypeError, Code: CodeFailed, Message: err.Error()}
	var de *DecodeError
	var oe *opError
	switch {
	case errors.As(err, &de):
		m.Code, m.Ref, m.Message = de.Code, de.Ref, de.Error()
	case errors.As(err, &oe):
		m.Code, m.Ref = oe.code, oe.ref
	}
	ss.send(m)
}

// handle applies one decoded message. It returns the session the connection continues with
// when that changes (resume).
func (s *Server) handle(ctx context.Context, conn *websocket.Conn, ss *session, msg any) (*session, error) {
	switch m := msg.(type) {
	case *Ping:
		ss.send(Pong{Type: TypePong})
		return nil, nil
	case *Join:
		return nil, s.join(ctx, ss, TypeJoin, m.DisplayName, func(c Caller) (string, error) {
			if s.opts.Directory == nil {
				return RoomConferenceID(m.Room), nil
			}
			return s.opts.Directory.Room(ctx, m.Room, c)
		})
	case *CallBot:
		return nil, s.join(ctx, ss, TypeCallBot, m.DisplayName, func(c Caller) (string, error) {
			if s.opts.Directory == nil {
				return "", fmt.Errorf("call bot %q: no bots on this server: %w", m.Bot, ErrNotFound)
			}
			return s.opts.Directory.CallBot(ctx, m.Bot, c)
		})
	case *Resume:
		return s.resume(conn, ss, m.Token)
	}
	ref := typeOf(msg)
	ss.mu.Lock()
	part, conf := ss.part, ss.conf
	ss.mu.Unlock()
	if part == nil {
		return nil, fail(CodeNotJoined, ref, fmt.Errorf("%s before join", ref))
	}
	switch m := msg.(type) {
	case *Publish:
		answer, err := part.Publish(ctx, m.SDP, m.ScreenTrackIDs...)
		if err != nil {
			return nil, fail(CodeFailed, ref, err)
		}
		ss.sendDescription(sfu.RolePublisher, Answer{Type: TypeAnswer, SDP: answer})
	case *Answer:
		ss.mu.Lock()
		ss.unanswered = nil // before Answer, which may make the next offer at once
		ss.mu.Unlock()
		if err := part.Answer(m.SDP); err != nil {
			return nil, fail(CodeFailed, ref, err)
		}
	case *Candidate:
		if m.Candidate.Candidate == "" {
			return nil, nil // end of candidates
		}
		role := sfu.RolePublisher
		if m.Target == "subscriber" {
			role = sfu.RoleSubscriber
		}
		init := webrtc.ICECandidateInit{Candidate: m.Candidate.Candidate, SDPMid: m.Candidate.SDPMid,
			SDPMLineIndex: m.Candidate.SDPMLineIndex, UsernameFragment: m.Candidate.UsernameFragment}
		if err := part.AddICECandidate(role, init); err != nil {
			return nil, fail(CodeFailed, ref, err)
		}
	case *Subscribe:
		var err error
		switch m.Layer {
		case "off":
			err = part.Subscribe(m.SourceID, -1)
		case "":
			err = part.SubscribeSize(m.SourceID, m.Width, m.Height)
		default:
			var l int
			if l, err = sfu.ParseLayer(m.Layer); err == nil {
				err = part.Subscribe(m.SourceID, l)
			}
		}
		if errors.Is(err, sfu.ErrSourceNotFound) {
			return nil, fail(CodeNotFound, ref, err)
		}
		if err != nil {
			return nil, fail(CodeFailed, ref, err)
		}
	case *Mute:
		kind := map[string]sfu.StreamKind{"audio": sfu.StreamAudio, "video": sfu.StreamVideo, "screenShare": sfu.StreamScreen}[m.Kind]
		if err := conf.SetMuted(part.ID(), kind, m.Muted); err != nil {
			return nil, fail(CodeFailed, ref, err)
		}
		if mu, ok := s.opts.Directory.(Muter); ok && kind == sfu.StreamAudio {
			_ = mu.SetMuted(conf.ID(), part.ID(), m.Muted)
		}
	case *Leave:
		ss.end("left", true)
	}
	return nil, nil
}

func typeOf(msg any) string {
	switch msg.(type) {
	case *Publish:
		return TypePublish
	case *Answer:
		return TypeAnswer
	case *Candidate:
		return TypeCandidate
	case *Subscribe:
		return TypeSubscribe
	case *Mute:
		return TypeMute
	case *Leave:
		return TypeLeave
	}
	return ""
}

// join puts the session into the conference that resolve names.
func (s *Server) join(ctx context.Context, ss *session, ref, display string, resolve func(Caller) (string, error)) error {
	ss.mu.Lock()
	joined := ss.part != nil
	ss.mu.Unlock()
	if joined {
		return fail(CodeJoined, ref, errors.New("this session is already in a conference"))
	}
	confID, err := resolve(Caller{ParticipantID: ss.id, DisplayName: display})
	if errors.Is(err, ErrNotFound) {
		return fail(CodeNotFound, ref, err)
	}
	if err != nil {
		return fail(CodeFailed, ref, err)
	}
	var conf *sfu.Conference
	var part *sfu.Participant
	var unwatch func()
	ss.mu.Lock()
	ss.joining = true
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		ss.joining, ss.early = false, nil // a failed join: the participant and its offers are gone
		ss.mu.Unlock()
	}()
	for range 2 { // a conference that just emptied closes; the second try gets a new one
		if conf, err = s.sfu.Conference(confID); err != nil {
			s.undoResolve(confID, ss.id)
			return fail(CodeFailed, ref, err)
		}
		ss.mu.Lock()
		ss.conf = conf
		ss.mu.Unlock()
		unwatch = conf.Watch(ss.onEvent)
		part, err = s.joinConference(ss, conf, display)
		if err == nil || !errors.Is(err, sfu.ErrClosed) {
			break
		}
		unwatch()
	}
	if err != nil {
		unwatch()
		s.undoResolve(confID, ss.id)
		return fail(CodeFailed, ref, err)
	}
	joinedMsg, ok := ss.marshal(Joined{Type: TypeJoined, ParticipantID: ss.id, ConferenceID: confID, Token: ss.token,
		ResumeWithin: int(s.opts.Grace / time.Millisecond),
		Sources: Sources{Audio: part.SourceID(sfu.StreamAudio), Video: part.SourceID(sfu.StreamVideo),
			ScreenShare: part.SourceID(sfu.StreamScreen)}})
	rosterMsg, ok2 := ss.marshal(rosterMessage(conf.Roster()))
	ss.mu.Lock()
	ss.part, ss.unwatch = part, unwatch
	if ok && ok2 {
		ss.out = append(ss.out, joinedMsg, rosterMsg)
	}
	ss.out = append(ss.out, ss.early...)
	ss.joining, ss.early = false, nil
	ss.queuedLocked()
	ss.log.Info("joined", "conference", confID)
	return nil
}

// undoResolve tells the Directory that a participant it admitted never got into the SFU's
// conference (so that the call layer does not keep it, and its room, forever).
func (s *Server) undoResolve(confID, participantID string) {
	if s.opts.Directory != nil {
		s.opts.Directory.Left(confID, participantID)
	}
}

func (s *Server) joinConference(ss *session, conf *sfu.Conference, display string) (*sfu.Participant, error) {
	return conf.Join(ss.id, sfu.ParticipantOptions{
		DisplayName: display,
		OnOffer: func(sdp string, tracks []sfu.TrackInfo) {
			m := Offer{Type: TypeOffer, SDP: sdp, Tracks: make([]Track, 0, len(tracks))}
			for _, tr := range tracks {
				m.Tracks = append(m.Tracks, Track{MID: tr.MID, Kind: tr.Kind.String(), SourceID: tr.SourceID, ParticipantID: tr.ParticipantID})
			}
			ss.sendDescription(sfu.RoleSubscriber, m)
		},
		OnCandidate: func(role sfu.Role, c webrtc.ICECandidateInit) {
			ss.sendCandidate(role, Candidate{Type: TypeCandidate, Target: role.String(), Candidate: CandidateInit{
				Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}})
		},
		OnClosed: func(err error) {
			if err != nil {
				ss.end("media failed: "+err.Error(), false)
			}
		},
	})
}

func (ss *session) onEvent(e sfu.Event) {
	switch e.Kind {
	case sfu.EventRoster:
		ss.send(rosterMessage(e.Roster))
	case sfu.EventDominantSpeaker:
		ss.send(DominantSpeaker{Type: TypeDominantSpeaker, ParticipantID: e.DominantParticipant, SourceID: e.DominantSource})
	}
}

func rosterMessage(r []sfu.ParticipantInfo) Roster {
	m := Roster{Type: TypeRoster, Participants: make([]Participant, 0, len(r))}
	for _, p := range r {
		e := Participant{ID: p.ID, DisplayName: p.DisplayName, IsBot: p.IsBot, Streams: []Stream{}}
		for _, st := range p.Streams {
			e.Streams = append(e.Streams, Stream{Kind: st.Kind.String(), SourceID: st.SourceID, Muted: st.Muted,
				Width: st.Width, Height: st.Height})
		}
		m.Participants = append(m.Participants, e)
	}
	return m
}

// resume moves the connection onto the session of token.
func (s *Server) resume(conn *websocket.Conn, tmp *session, token string) (*session, error) {
	tmp.mu.Lock()
	joined := tmp.part != nil
	tmp.mu.Unlock()
	if joined {
		return nil, fail(CodeJoined, TypeResume, errors.New("this connection already has a session"))
	}
	s.mu.Lock()
	old := s.sessions[token]
	s.mu.Unlock()
	if old == nil || old == tmp {
		return nil, fail(CodeNotFound, TypeResume, errors.New("no session with this token (expired or ended)"))
	}
	old.mu.Lock()
	if old.ended || old.part == nil {
		old.mu.Unlock()
		return nil, fail(CodeNotFound, TypeResume, errors.New("the session ended"))
	}
	part, conf := old.part, old.conf
	old.mu.Unlock()
	var first [][]byte // joined and the roster, before anything else on the new connection
	for _, m := range []any{
		Joined{Type: TypeJoined, ParticipantID: old.id, ConferenceID: conf.ID(), Token: old.token,
			ResumeWithin: int(s.opts.Grace / time.Millisecond),
			Sources: Sources{Audio: part.SourceID(sfu.StreamAudio), Video: part.SourceID(sfu.StreamVideo),
				ScreenShare: part.SourceID(sfu.StreamScreen)}},
		rosterMessage(conf.Roster()),
	} {
		if data, ok := old.marshal(m); ok {
			first = append(first, data)
		}
	}
	tmp.mu.Lock()
	tmp.conn = nil // the connection belongs to old from here
	tmp.mu.Unlock()
	// One critical section from the switch of connection to the queue's new order, so that the
	// writer never sends on the new connection what the order below puts later.
	old.mu.Lock()
	if old.ended { // its grace period ran out just now
		old.mu.Unlock()
		tmp.mu.Lock()
		tmp.conn = conn
		tmp.mu.Unlock()
		return nil, fail(CodeNotFound, TypeResume, errors.New("the session ended"))
	}
	if old.grace != nil {
		old.grace.Stop()
		old.grace = nil
	}
	prev := old.conn
	old.conn = conn
	old.out = append(first, old.out...) // then what waited while the page was away
	old.requeueUnansweredLocked()
	old.mu.Unlock()
	if prev != nil && prev != conn {
		_ = prev.Close(websocket.StatusGoingAway, "resumed elsewhere")
	}
	tmp.end("", false)
	old.mu.Lock()
	old.queuedLocked() // wakes the writer
	old.log.Info("resumed")
	return old, nil
}

// requeueUnansweredLocked queues the unanswered subscriber offer again, with all its candidates
// after it, when the page may have missed it: it is no longer queued (written, or lost with the
// connection that dropped). Its candidates that still wait in the queue move with it, so that
// no candidate reaches the page before its offer. An offer still queued is left where it is (a
// page that got it twice would answer twice).
func (ss *session) requeueUnansweredLocked() {
	if len(ss.unanswered) == 0 {
		return
	}
	same := func(a, b []byte) bool { return len(a) > 0 && len(b) > 0 && &a[0] == &b[0] }
	for _, q := range ss.out {
		if same(q, ss.unanswered[0]) {
			return
		}
	}
	ss.out = slices.DeleteFunc(ss.out, func(q []byte) bool {
		return slices.ContainsFunc(ss.unanswered, func(m []byte) bool { return same(q, m) })
	})
	ss.out = append(ss.out, ss.unanswered...)
}

// detach forgets a connection that closed; a joined session then waits Grace to be resumed.
func (ss *session) detach(conn *websocket.Conn) {
	ss.mu.Lock()
	if ss.conn != conn || ss.ended {
		ss.mu.Unlock()
		return
	}
	ss.conn = nil
	joined := ss.part != nil
	if joined {
		ss.grace = time.AfterFunc(ss.srv.opts.Grace, func() { ss.end("connection lost", false) })
	}
	ss.mu.Unlock()
	_ = conn.CloseNow()
	if !joined {
		ss.end("", false)
	}
}

// sendDescription queues an offer or answer of one connection, then the candidates that waited
// for it.
func (ss *session) sendDescription(role sfu.Role, m any) {
	data, ok := ss.marshal(m)
	if !ok {
		return
	}
	ss.mu.Lock()
	ss.descSent[role] = true
	ss.enqueueLocked(data)
	ss.enqueueLocked(ss.candQueue[role]...)
	if role == sfu.RoleSubscriber {
		ss.unanswered = append([][]byte{data}, ss.candQueue[role]...)
	}
	ss.candQueue[role] = nil
	ss.queuedLocked()
}

// sendCandidate queues a candidate, or keeps it until its connection's description is queued.
func (ss *session) sendCandidate(role sfu.Role, m any) {
	data, ok := ss.marshal(m)
	if !ok {
		return
	}
	ss.mu.Lock()
	if !ss.descSent[role] {
		ss.candQueue[role] = append(ss.candQueue[role], data)
		ss.mu.Unlock()
		return
	}
	if role == sfu.RoleSubscriber && ss.unanswered != nil {
		ss.unanswered = append(ss.unanswered, data)
	}
	ss.enqueueLocked(data)
	ss.queuedLocked()
}

// enqueueLocked queues messages of the participant's connections: for the connection, or, while
// the join is under way, until the joined message is queued.
func (ss *session) enqueueLocked(msgs ...[]byte) {
	if ss.joining {
		ss.early = append(ss.early, msgs...)
		return
	}
	ss.out = append(ss.out, msgs...)
}

// send queues a message for the connection.
func (ss *session) send(m any) {
	data, ok := ss.marshal(m)
	if !ok {
		return
	}
	ss.mu.Lock()
	ss.out = append(ss.out, data)
	ss.queuedLocked()
}

func (ss *session) marshal(m any) ([]byte, bool) {
	data, err := json.Marshal(m)
	if err != nil {
		ss.log.Error("marshal signalling message", "err", err)
		return nil, false
	}
	return data, true
}

// queuedLocked unlocks ss.mu after messages were queued and wakes the writer; a session that
// ended drops them, one whose queue overflows ends.
func (ss *session) queuedLocked() {
	if ss.ended {
		ss.out = nil
		ss.mu.Unlock()
		return
	}
	over := len(ss.out) > ss.srv.opts.SendQueue
	ss.mu.Unlock()
	if over {
		ss.srv.wg.Add(1)
		go func() {
			defer ss.srv.wg.Done()
			ss.end("too many messages waiting", false)
		}()
		return
	}
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes queued messages to the session's current connection.
func (ss *session) writeLoop() {
	defer ss.srv.wg.Done()
	for {
		select {
		case <-ss.done:
			return
		case <-ss.wake:
		}
		for {
			ss.mu.Lock()
			conn := ss.conn
			if conn == nil || len(ss.out) == 0 {
				ss.mu.Unlock()
				break
			}
			data := ss.out[0]
			ss.out = ss.out[1:]
			ss.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := conn.Write(ctx, websocket.MessageText, data)
			cancel()
			if err != nil {
				ss.detach(conn)
				break
			}
		}
	}
}

// end finishes the session: the participant leaves its conference. With a reason, the browser
// is told (when tell is true the message is flushed before the connection closes).
func (ss *session) end(reason string, tell bool) {
	ss.mu.Lock()
	if ss.ended {
		ss.mu.Unlock()
		return
	}
	if reason != "" {
		data, _ := json.Marshal(Left{Type: TypeLeft, Reason: reason})
		ss.out = append(ss.out, data)
	}
	out, conn := ss.out, ss.conn
	ss.ended = true
	ss.out = nil
	if ss.grace != nil {
		ss.grace.Stop()
	}
	part, conf, unwatch := ss.part, ss.conf, ss.unwatch
	ss.mu.Unlock()
	if unwatch != nil {
		unwatch()
	}
	if conn != nil && (tell || reason != "") {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		for _, d := range out {
			if conn.Write(ctx, websocket.MessageText, d) != nil {
				break
			}
		}
		cancel()
		if !tell {
			_ = conn.Close(websocket.StatusNormalClosure, reason)
		}
	}
	close(ss.done)
	s := ss.srv
	s.mu.Lock()
	if s.sessions[ss.token] == ss {
		delete(s.sessions, ss.token)
	}
	s.mu.Unlock()
	if part != nil {
		_ = part.Close()
		if s.opts.Directory != nil {
			s.opts.Directory.Left(conf.ID(), ss.id)
		}
		ss.log.Info("left", "conference", conf.ID(), "reason", reason)
	}
}

// Close ends every session and waits for the server's goroutines. Handlers still reading return
// when their connections close.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	all := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		all = append(all, ss)
	}
	s.mu.Unlock()
	for _, ss := range all {
		ss.end("server closing", false)
	}
	s.wg.Wait()
	return nil
}
