// Package calls is the calling service's call control: the state machine of each call to a bot
// (incoming → establishing → established → terminated, with answer and media timeouts), the
// conferences those calls belong to, and their rosters.
//
// A Manager is the one entry point. The layers around it call it: the browser signalling layer
// places calls to bots and adds, removes and mutes participants; the REST API forwards the bots'
// requests (end a call, subscribe to video, join a conference, invite another bot); the media
// server reports streams and dominant speakers. The Manager reaches out through three small
// interfaces, all injected, none global:
//
//   - Bus carries a call's requests to its bot, in order per call (the webhook dispatcher in
//     process; a NATS-backed bus routes them between nodes later);
//   - Bots looks registered bots up (the bot registry);
//   - Media is the media server seam: it makes the SDP offer of a call, connects the bot's answer,
//     switches video subscriptions and closes the call's media. Without one every call is
//     signalling-only.
//
// Every state change happens under the Manager's one lock; requests to a bot are enqueued on the
// Bus under that lock (never blocking), so each call's notifications leave in the order their
// sequence numbers say.
package calls

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/internal/webhook"
	"github.com/switchboard-rtc/switchboard/service/bots"
)

// Errors the Manager's methods wrap; callers (the REST API, signalling) branch on them.
var (
	ErrCallNotFound        = errors.New("calls: unknown call")
	ErrConferenceNotFound  = errors.New("calls: unknown conference")
	ErrParticipantNotFound = errors.New("calls: unknown participant")
	ErrConferenceExists    = errors.New("calls: conference already exists")
	ErrConferenceFull      = errors.New("calls: conference full")
	// ErrForbidden: the bot asking does not own the call, or is not in the conference.
	ErrForbidden = errors.New("calls: not allowed for this bot")
	// ErrConflict: the call is not in a state that allows the request, or the participant or
	// bot is already there.
	ErrConflict = errors.New("calls: conflicts with the call's state")
	// ErrInvalid: an argument is malformed (empty id, bad stream).
	ErrInvalid = errors.New("calls: invalid argument")
	// ErrUnknownBot: no bot is registered with the app id.
	ErrUnknownBot = errors.New("calls: unknown bot")
	// ErrClosed: the Manager is shutting down.
	ErrClosed = errors.New("calls: shutting down")
	// ErrNoMedia: the service has no media server (subscribe and unsubscribe fail with it).
	ErrNoMedia = errors.New("calls: no media server")
)

// Termination reasons, sent in the terminated callStateChange notification.
const (
	ReasonNoAnswer        = "noAnswer"        // the bot did not answer within the answer timeout
	ReasonMediaTimeout    = "mediaTimeout"    // answered, but media did not connect in time
	ReasonMediaFailed     = "mediaFailed"     // the media server could not connect the answer
	ReasonRejected        = "rejected"        // the bot rejected the call
	ReasonHangup          = "hangup"          // the bot's workflow hung up
	ReasonBotUnreachable  = "botUnreachable"  // the incoming call could not be delivered
	ReasonBadWorkflow     = "badWorkflow"     // the bot's answer to the incoming call was invalid
	ReasonEndedByBot      = "endedByBot"      // the bot ended the call (DELETE /v1/calls/{id})
	ReasonEndedByService  = "endedByService"  // EndCall without a reason
	ReasonParticipantLeft = "participantLeft" // the caller of a one-to-one call left
	ReasonConferenceEnded = "conferenceEnded" // the last human participant of a room left
	ReasonServiceShutdown = "serviceShutdown" // the service is shutting down
)

// Bus carries a call's requests to its bot: requests with the same Key (the call id) are
// delivered in the order they were enqueued. Enqueue must not block. *webhook.Dispatcher
// implements it in process; this is the seam where routing between nodes goes.
type Bus interface {
	Enqueue(ctx context.Context, req webhook.Request) error
}

// Bots looks registered bots up. *bots.Registry implements it.
type Bots interface {
	Lookup(appID string) (bots.Bot, error)
}

// Media is the media server seam, implemented by the SFU. Its methods are called without the
// Manager's lock held; ctx ends when the call terminates.
type Media interface {
	// Offer makes the SDP offer of a new call (the service is the offerer). "" means
	// signalling-only: the incoming call then carries no media offer.
	Offer(ctx context.Context, call CallRef) (sdp string, err error)
	// Connect applies the bot's SDP answer and returns when media flows (nil), when it cannot
	// (an error), or when ctx ends.
	Connect(ctx context.Context, call CallRef, answerSDP string) error
	// Subscribe puts sourceID's video onto the bot's video socket socketID at about
	// width×height.
	Subscribe(ctx context.Context, call CallRef, req protocol.SubscribeRequest) error
	// Unsubscribe stops the video on socketID.
	Unsubscribe(ctx context.Context, call CallRef, socketID int) error
	// Close releases the call's media. Called once per call that Offer was called for, after
	// it terminated (also when Offer failed).
	Close(call CallRef)
}

// CallRef names a call for the Media seam.
type CallRef struct {
	ID           string
	ConferenceID string
	AppID        string
	// DisplayName is the bot's name as the roster shows it (the registry's; "" then AppID).
	DisplayName string
	// ParticipantID is the bot's id in the conference roster.
	ParticipantID string
}

// CallInfo is a snapshot of a call.
type CallInfo struct {
	CallRef
	State protocol.CallState
	// Reason is why the call terminated ("" before).
	Reason string
	// OneToOne is true for a call placed with PlaceCall (its conference is the call's own).
	OneToOne bool
}

// Participant is a human participant of a conference, as the signalling layer knows it.
type Participant struct {
	// ID is unique within the conference (chosen by the caller).
	ID          string
	Identity    string
	DisplayName string
	// Streams are what the participant sends, with the source ids the media server gave them.
	Streams []protocol.Stream
}

// ConferenceInfo is a snapshot of a conference.
type ConferenceInfo struct {
	ID, Name string
	// Roster is the conference's participants as bots see it: humans, then bots whose calls
	// are established, each in joining order.
	Roster []protocol.Participant
	// Calls are the ids of the conference's bot calls that have not terminated.
	Calls []string
}

// Options configures a Manager.
type Options struct {
	// Bots looks bots up. Required.
	Bots Bots
	// Bus delivers requests to bots. Required.
	Bus Bus
	// Media is the media server; nil makes every call signalling-only.
	Media Media
	// AnswerTimeout bounds the time from placing a call to the bot's answer [20s].
	AnswerTimeout time.Duration
	// MediaTimeout bounds the time from the answer to media connected [15s].
	MediaTimeout time.Duration
	// OnCallState, if set, is called after every state change of a call, in order, from one
	// goroutine the Manager owns. It may call the Manager.
	OnCallState func(CallInfo)
	// Logger receives structured logs [slog.Default()].
	Logger *slog.Logger
	// NewID makes call, operation and correlation ids [random UUIDs].
	NewID func() string
}

// Manager owns the calls and conferences of one service node. It is safe for concurrent use.
type Manager struct {
	opts Options
	log  *slog.Logger

	ctx     context.Context // the Manager's lifetime; parent of every call's context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // timers and media operations
	obsWG   sync.WaitGroup // the observer loop
	obsStop chan struct{}  // closed by Close: the observer loop drains and returns

	mu      sync.Mutex
	calls   map[string]*call
	confs   map[string]*conference
	closing bool
	events  []CallInfo    // for OnCallState, in order
	wake    chan struct{} // signals the observer loop
	closed  sync.Once
}

type conference struct {
	id, name string
	oneToOne bool
	room     bool // opened by EnterRoom: ends when its last human leaves
	ended    bool // removed: its calls' terminations send no roster updates
	humans   []*human
	calls    []*call // bot calls not terminated, in joining order
}

type human struct {
	Participant
	muted bool
}

type call struct {
	ref     CallRef
	bot     bots.Bot // copied when placed: a reload does not affect the call
	conf    *conference
	from    protocol.Identity
	state   protocol.CallState
	reason  string
	base    string // where requests go: the webhook base, then the workflow's callbackUri
	subs    map[protocol.NotificationType]bool
	seq     uint64
	offered bool // Media.Offer was called (so Media.Close is due)

	answerOp string // the answer action's operation id, pending until established
	joinOp   string // a join request's operation id, pending until established
	inviter  string // the inviting call's id, with inviteOp, pending until established
	inviteOp string
	streams  []protocol.Stream // the bot's own streams (SetStreams)

	ctx    context.Context // cancelled when the call terminates
	cancel context.CancelFunc
	timer  *time.Timer
}

// New makes a Manager. Call Shutdown, then Close, when done.
func New(opts Options) (*Manager, error) {
	if opts.Bots == nil || opts.Bus == nil {
		return nil, errors.New("calls: new manager: Bots and Bus are required")
	}
	if opts.AnswerTimeout <= 0 {
		opts.AnswerTimeout = 20 * time.Second
	}
	if opts.MediaTimeout <= 0 {
		opts.MediaTimeout = 15 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.NewID == nil {
		opts.NewID = uuid.NewString
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		opts: opts, log: opts.Logger, ctx: ctx, cancel: cancel,
		calls: make(map[string]*call), confs: make(map[string]*conference),
		wake: make(chan struct{}, 1), obsStop: make(chan struct{}),
	}
	if opts.OnCallState != nil {
		m.obsWG.Add(1)
		go m.observe()
	}
	return m, nil
}

// ---- the API of the signalling layer and the media server ----

// PlaceCall places a one-to-one call from a participant to the bot appID: the call gets a
// conference of its own (hidden from the bot: its incoming call has no conference) holding
// from and the bot. modalities are what the caller offers (default audio). It returns once the
// incoming call is queued for the bot; the answer arrives asynchronously (OnCallState).
func (m *Manager) PlaceCall(ctx context.Context, appID string, from Participant, modalities ...protocol.Modality) (CallInfo, error) {
	if err := checkParticipant(from); err != nil {
		return CallInfo{}, fmt.Errorf("place call to %s: %w", appID, err)
	}
	conf := &conference{id: m.opts.NewID(), oneToOne: true, humans: []*human{{Participant: cloneParticipant(from)}}}
	return m.startCall(ctx, conf, appID, from, modalities, startOpts{})
}

// CreateConference opens a conference. id "" picks a random one; the id is returned.
func (m *Manager) CreateConference(id, name string) (string, error) {
	if id == "" {
		id = m.opts.NewID()
	}
	if len(id) > protocol.MaxIDBytes || len(name) > protocol.MaxTextBytes {
		return "", fmt.Errorf("create conference %.40q: id or name too long: %w", id, ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return "", ErrClosed
	}
	if _, ok := m.confs[id]; ok {
		return "", fmt.Errorf("create conference %q: %w", id, ErrConferenceExists)
	}
	m.confs[id] = &conference{id: id, name: name}
	return id, nil
}

// EndConference terminates every bot call of the conference (reason, ReasonEndedByService when
// empty; each bot gets its terminated notification) and removes it.
func (m *Manager) EndConference(id, reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	conf, ok := m.confs[id]
	if !ok {
		return fmt.Errorf("end conference %q: %w", id, ErrConferenceNotFound)
	}
	if reason == "" {
		reason = ReasonEndedByService
	}
	m.endConference(conf, reason)
	return nil
}

// endConference removes conf and terminates its bot calls, under the lock.
func (m *Manager) endConference(conf *conference, reason string) {
	conf.ended = true
	if m.confs[conf.id] == conf {
		delete(m.confs, conf.id)
	}
	for _, c := range append([]*call(nil), conf.calls...) {
		m.terminate(c, reason)
	}
	m.log.Info("conference ended", "conference_id", conf.id, "reason", reason)
}

// EnterRoom adds a human participant to the conference id, opening it first (named name) when
// it is not open. A conference opened this way is a room: it lives while humans are in it.
// When its last human leaves (RemoveParticipant) it ends: its bots' calls terminate with
// ReasonConferenceEnded (each bot gets its terminated notification) and it is removed.
func (m *Manager) EnterRoom(id, name string, p Participant) error {
	if err := checkParticipant(p); err != nil {
		return fmt.Errorf("enter room %.40q: %w", id, err)
	}
	if id == "" || len(id) > protocol.MaxIDBytes || len(name) > protocol.MaxTextBytes {
		return fmt.Errorf("enter room %.40q: id or name empty or too long: %w", id, ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return ErrClosed
	}
	conf, ok := m.confs[id]
	if !ok {
		conf = &conference{id: id, name: name, room: true}
		m.confs[id] = conf
	}
	if err := m.addHuman(conf, p); err != nil {
		if !ok {
			delete(m.confs, id)
		}
		return fmt.Errorf("enter room: %w", err)
	}
	return nil
}

// AddParticipant adds a human participant to a conference; the bots get a roster update.
func (m *Manager) AddParticipant(confID string, p Participant) error {
	if err := checkParticipant(p); err != nil {
		return fmt.Errorf("add participant to %s: %w", confID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	conf, err := m.conference(confID)
	if err != nil {
		return fmt.Errorf("add participant %s: %w", p.ID, err)
	}
	return m.addHuman(conf, p)
}

// addHuman adds a human participant to conf and sends the roster, under the lock.
func (m *Manager) addHuman(conf *conference, p Participant) error {
	if conf.find(p.ID) >= 0 || conf.botByParticipant(p.ID) != nil {
		return fmt.Errorf("add participant %s to %s: already there: %w", p.ID, conf.id, ErrConflict)
	}
	if len(conf.humans)+len(conf.calls) >= protocol.MaxParticipants {
		return fmt.Errorf("add participant %s to %s: %w", p.ID, conf.id, ErrConferenceFull)
	}
	conf.humans = append(conf.humans, &human{Participant: cloneParticipant(p)})
	m.rosterChanged(conf)
	return nil
}

// RemoveParticipant removes a human participant; the bots get a roster update. When the caller
// of a one-to-one call leaves, the call ends (ReasonParticipantLeft); when the last human of a
// room (EnterRoom) leaves, the room ends (ReasonConferenceEnded).
func (m *Manager) RemoveParticipant(confID, participantID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	conf, err := m.conference(confID)
	if err != nil {
		return fmt.Errorf("remove participant %s: %w", participantID, err)
	}
	i := conf.find(participantID)
	if i < 0 {
		return fmt.Errorf("remove participant %s from %s: %w", participantID, confID, ErrParticipantNotFound)
	}
	conf.humans = append(conf.humans[:i], conf.humans[i+1:]...)
	if conf.oneToOne {
		for _, c := range append([]*call(nil), conf.calls...) {
			m.terminate(c, ReasonParticipantLeft)
		}
		return nil
	}
	if conf.room && len(conf.humans) == 0 {
		m.endConference(conf, ReasonConferenceEnded)
		return nil
	}
	m.rosterChanged(conf)
	return nil
}

// SetMuted mutes or unmutes a human participant's audio: while muted, its audio streams are
// announced without their send direction (sendrecv → recvonly, sendonly → inactive).
func (m *Manager) SetMuted(confID, participantID string, muted bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	conf, err := m.conference(confID)
	if err != nil {
		return fmt.Errorf("mute participant %s: %w", participantID, err)
	}
	i := conf.find(participantID)
	if i < 0 {
		return fmt.Errorf("mute participant %s in %s: %w", participantID, confID, ErrParticipantNotFound)
	}
	if conf.humans[i].muted != muted {
		conf.humans[i].muted = muted
		m.rosterChanged(conf)
	}
	return nil
}

// SetStreams replaces what a participant sends (a human's, or a bot's by its roster id); the
// bots get a roster update.
func (m *Manager) SetStreams(confID, participantID string, streams []protocol.Stream) error {
	if err := checkStreams(streams); err != nil {
		return fmt.Errorf("set streams of %s: %w", participantID, err)
	}
	streams = append([]protocol.Stream(nil), streams...)
	m.mu.Lock()
	defer m.mu.Unlock()
	conf, err := m.conference(confID)
	if err != nil {
		return fmt.Errorf("set streams of %s: %w", participantID, err)
	}
	if i := conf.find(participantID); i >= 0 {
		conf.humans[i].Streams = streams
	} else if c := conf.botByParticipant(participantID); c != nil {
		c.streams = streams
	} else {
		return fmt.Errorf("set streams of %s in %s: %w", participantID, confID, ErrParticipantNotFound)
	}
	m.rosterChanged(conf)
	return nil
}

// SetDominantSpeaker announces the conference's dominant speaker (its audio source id, 0 for
// nobody) to the bots that subscribed to dominantSpeakerChanged.
func (m *Manager) SetDominantSpeaker(confID string, sourceID uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	conf, err := m.conference(confID)
	if err != nil {
		return fmt.Errorf("set dominant speaker: %w", err)
	}
	for _, c := range conf.calls {
		if c.state == protocol.StateEstablished && c.subs[protocol.NotificationDominantSpeakerChanged] {
			id := sourceID
			m.notify(c, protocol.Notification{Type: protocol.NotificationDominantSpeakerChanged, SourceID: &id})
		}
	}
	return nil
}

// InviteBot calls the bot appID into a conference (the service's own invitation; a bot's goes
// through Invite).
func (m *Manager) InviteBot(ctx context.Context, confID, appID string, by protocol.Identity) (CallInfo, error) {
	m.mu.Lock()
	conf, err := m.conference(confID)
	m.mu.Unlock()
	if err != nil {
		return CallInfo{}, fmt.Errorf("invite %s: %w", appID, err)
	}
	if by.Identity == "" {
		by.Identity = "switchboard"
	}
	return m.startCall(ctx, conf, appID, Participant{Identity: by.Identity, DisplayName: by.DisplayName}, nil, startOpts{})
}

// EndCall terminates a call with reason (ReasonEndedByService when empty); the bot gets the
// terminated notification.
func (m *Manager) EndCall(callID, reason string) error {
	if reason == "" {
		reason = ReasonEndedByService
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.calls[callID]
	if !ok {
		return fmt.Errorf("end call %q: %w", callID, ErrCallNotFound)
	}
	m.terminate(c, reason)
	return nil
}

// Call returns a snapshot of a call that has not terminated.
func (m *Manager) Call(callID string) (CallInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.calls[callID]
	if !ok {
		return CallInfo{}, fmt.Errorf("call %q: %w", callID, ErrCallNotFound)
	}
	return c.info(), nil
}

// Conference returns a snapshot of a conference (also of a one-to-one call's own conference).
func (m *Manager) Conference(confID string) (ConferenceInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	conf, err := m.conference(confID)
	if err != nil {
		return ConferenceInfo{}, err
	}
	info := ConferenceInfo{ID: conf.id, Name: conf.name, Roster: conf.roster()}
	for _, c := range conf.calls {
		info.Calls = append(info.Calls, c.ref.ID)
	}
	return info, nil
}

// ---- the API of the bots' REST requests (appID is the authenticated bot) ----

// BotEndCall ends appID's call callID (ReasonEndedByBot).
func (m *Manager) BotEndCall(appID, callID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.ownCall(appID, callID)
	if err != nil {
		return fmt.Errorf("end call: %w", err)
	}
	m.terminate(c, ReasonEndedByBot)
	return nil
}

// Subscribe asks the media server to put a participant's video onto one of appID's video
// sockets of an established call. It returns the operation id; the outcome reaches the bot as
// a subscribe callback.
func (m *Manager) Subscribe(appID, callID string, req protocol.SubscribeRequest) (string, error) {
	return m.mediaOperation(appID, callID, protocol.OperationSubscribe, func(ctx context.Context, ref CallRef) error {
		return m.opts.Media.Subscribe(ctx, ref, req)
	})
}

// Unsubscribe asks the media server to stop the video on one of appID's video sockets. The
// outcome reaches the bot as an unsubscribe callback.
func (m *Manager) Unsubscribe(appID, callID string, socketID int) (string, error) {
	return m.mediaOperation(appID, callID, protocol.OperationUnsubscribe, func(ctx context.Context, ref CallRef) error {
		return m.opts.Media.Unsubscribe(ctx, ref, socketID)
	})
}

// Join starts a call from a conference to appID, which asked to join it: the bot gets an
// incoming call carrying the returned operation id, at callbackURI (its registered webhook
// when empty), and a join callback once the call is established (or has failed).
func (m *Manager) Join(ctx context.Context, appID, confID, callbackURI string) (callID, operationID string, err error) {
	m.mu.Lock()
	conf, err := m.conference(confID)
	m.mu.Unlock()
	if err != nil || conf.oneToOne {
		return "", "", fmt.Errorf("join %s: conference %q: %w", appID, confID, ErrConferenceNotFound)
	}
	op := m.opts.NewID()
	info, err := m.startCall(ctx, conf, appID, Participant{Identity: conf.name}, nil, startOpts{joinOp: op, base: callbackURI})
	if err != nil {
		return "", "", err
	}
	return info.ID, op, nil
}

// Invite lets appID, which has an established call in the conference, invite the bot invitee.
// The outcome reaches appID as an invite callback on its own call once the invitee's call is
// established or has failed.
func (m *Manager) Invite(ctx context.Context, appID, confID, invitee string) (string, error) {
	m.mu.Lock()
	conf, err := m.conference(confID)
	var inviter *call
	if err == nil {
		for _, c := range conf.calls {
			if c.bot.AppID == appID && c.state == protocol.StateEstablished {
				inviter = c
			}
		}
	}
	m.mu.Unlock()
	if err != nil || conf.oneToOne {
		return "", fmt.Errorf("invite %s: conference %q: %w", invitee, confID, ErrConferenceNotFound)
	}
	if inviter == nil {
		return "", fmt.Errorf("invite %s into %s: %s has no established call there: %w", invitee, confID, appID, ErrForbidden)
	}
	op := m.opts.NewID()
	_, err = m.startCall(ctx, conf, invitee, Participant{Identity: inviter.bot.AppID, DisplayName: inviter.bot.DisplayName}, nil,
		startOpts{inviter: inviter.ref.ID, inviteOp: op})
	if err != nil {
		return "", err
	}
	return op, nil
}

// ---- lifetime ----

// Shutdown terminates every call (ReasonServiceShutdown; the bots get their notifications on
// the Bus) and waits for the Manager's timers and media operations, or for ctx. New calls are
// refused from then on. Drain the Bus after it, then call Close.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closing = true
	for _, c := range m.calls {
		m.terminate(c, ReasonServiceShutdown)
	}
	m.mu.Unlock()
	return m.waitCtx(ctx)
}

// Close ends every call (as Shutdown does), cancels what is still in flight and waits for the
// Manager's goroutines. It is idempotent.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closing = true
	for _, c := range m.calls {
		m.terminate(c, ReasonServiceShutdown)
	}
	m.mu.Unlock()
	m.closed.Do(func() {
		m.cancel()
		m.wg.Wait()
		close(m.obsStop)
	})
	m.wg.Wait()
	m.obsWG.Wait()
}

func (m *Manager) waitCtx(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("calls shutdown: %w", ctx.Err())
	}
}

// ---- internals ----

type startOpts struct {
	joinOp   string
	base     string
	inviter  string
	inviteOp string
}

// startCall creates a bot call in conf (registering conf when it is a new one-to-one
// conference), asks Media for an offer, and queues the incoming call.
func (m *Manager) startCall(ctx context.Context, conf *conference, appID string, from Participant, modalities []protocol.Modality, so startOpts) (CallInfo, error) {
	bot, err := m.opts.Bots.Lookup(appID)
	if err != nil {
		return CallInfo{}, fmt.Errorf("call %s: %w: %w", appID, ErrUnknownBot, err)
	}
	if len(modalities) == 0 {
		modalities = []protocol.Modality{protocol.ModalityAudio}
	}
	for _, mod := range modalities {
		if !mod.Valid() {
			return CallInfo{}, fmt.Errorf("call %s: modality %q: %w", appID, mod, ErrInvalid)
		}
	}
	if so.base == "" {
		so.base = bot.WebhookURL
	} else if err := protocol.ValidCallbackURI(so.base); err != nil {
		return CallInfo{}, fmt.Errorf("call %s: %w: %w", appID, ErrInvalid, err)
	}
	id := m.opts.NewID()
	ref := CallRef{ID: id, ConferenceID: conf.id, AppID: bot.AppID, DisplayName: bot.DisplayName, ParticipantID: "bot-" + id}

	// Refuse early what the lock will refuse anyway, before the media server does any work.
	m.mu.Lock()
	err = m.admit(conf, bot.AppID)
	m.mu.Unlock()
	if err != nil {
		return CallInfo{}, err
	}
	var offer string
	if m.opts.Media != nil {
		offer, err = m.opts.Media.Offer(ctx, ref)
		if err != nil {
			m.opts.Media.Close(ref)
			return CallInfo{}, fmt.Errorf("call %s: media offer: %w", appID, err)
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.admit(conf, bot.AppID); err != nil {
		if m.opts.Media != nil {
			m.goTracked(func() { m.opts.Media.Close(ref) })
		}
		return CallInfo{}, err
	}
	cctx, cancel := context.WithCancel(m.ctx)
	c := &call{
		ref: ref, bot: bot, conf: conf, state: protocol.StateIncoming, base: strings.TrimSuffix(so.base, "/"),
		from:    protocol.Identity{Identity: from.Identity, DisplayName: from.DisplayName},
		offered: m.opts.Media != nil, joinOp: so.joinOp, inviter: so.inviter, inviteOp: so.inviteOp,
		ctx: cctx, cancel: cancel,
	}
	if c.from.Identity == "" {
		c.from.Identity = "switchboard"
	}
	in := protocol.IncomingCall{
		CallID: id, CorrelationID: m.opts.NewID(), From: c.from, To: protocol.Target{AppID: bot.AppID},
		Modalities: modalities, OperationID: so.joinOp,
	}
	if !conf.oneToOne {
		in.Conference = &protocol.Conference{ID: conf.id, Name: conf.name}
	}
	if offer != "" {
		in.MediaOffer = &protocol.SessionDescription{SDP: offer}
	}
	if err := in.Validate(); err != nil {
		cancel()
		if c.offered {
			m.goTracked(func() { m.opts.Media.Close(ref) })
		}
		return CallInfo{}, fmt.Errorf("call %s: %w: %w", appID, ErrInvalid, err)
	}
	body, err := marshal(in)
	if err == nil {
		err = m.opts.Bus.Enqueue(cctx, webhook.Request{
			Key: id, URL: c.base + protocol.PathCall, Audience: bot.AppID, Kind: webhook.KindCall, Body: body,
			Done: func(r webhook.Result) { m.onWorkflow(c, r) },
		})
	}
	if err != nil {
		cancel()
		if c.offered {
			m.goTracked(func() { m.opts.Media.Close(ref) })
		}
		return CallInfo{}, fmt.Errorf("call %s: queue incoming call: %w", appID, err)
	}
	if conf.oneToOne {
		m.confs[conf.id] = conf
	}
	m.calls[id] = c
	conf.calls = append(conf.calls, c)
	m.startTimer(c, m.opts.AnswerTimeout, protocol.StateIncoming, ReasonNoAnswer)
	m.log.Info("call placed", "call_id", id, "app_id", bot.AppID, "conference_id", conf.id, "media", offer != "")
	m.emit(c)
	return c.info(), nil
}

// admit checks, under the lock, that a new call of appID may enter conf.
func (m *Manager) admit(conf *conference, appID string) error {
	if m.closing {
		return ErrClosed
	}
	if !conf.oneToOne && m.confs[conf.id] != conf {
		return fmt.Errorf("call %s: conference %q: %w", appID, conf.id, ErrConferenceNotFound)
	}
	for _, c := range conf.calls {
		if c.bot.AppID == appID {
			return fmt.Errorf("call %s: already in conference %q: %w", appID, conf.id, ErrConflict)
		}
	}
	if len(conf.humans)+len(conf.calls) >= protocol.MaxParticipants {
		return fmt.Errorf("call %s into %q: %w", appID, conf.id, ErrConferenceFull)
	}
	return nil
}

// onWorkflow handles the bot's response to the incoming call (from the Bus's goroutine).
func (m *Manager) onWorkflow(c *call, r webhook.Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	log := m.log.With("call_id", c.ref.ID, "app_id", c.bot.AppID)
	if c.state != protocol.StateIncoming {
		if r.Err == nil {
			log.Info("late answer ignored", "state", c.state)
		}
		return
	}
	if r.Err != nil {
		log.Warn("incoming call not delivered", "err", r.Err)
		m.terminate(c, ReasonBotUnreachable)
		return
	}
	wf, err := protocol.DecodeWorkflow(r.Body)
	if err != nil {
		log.Warn("bad workflow", "err", err)
		m.terminate(c, ReasonBadWorkflow)
		return
	}
	if wf.CallbackURI != "" {
		c.base = strings.TrimSuffix(wf.CallbackURI, "/")
	}
	c.subs = make(map[protocol.NotificationType]bool, len(wf.NotificationSubscriptions))
	for _, n := range wf.NotificationSubscriptions {
		c.subs[n] = true
	}
	for _, a := range wf.Actions {
		if c.state == protocol.StateTerminated {
			return
		}
		switch a.Action {
		case protocol.ActionReject:
			log.Info("call rejected", "reason", a.Reason)
			m.terminate(c, ReasonRejected)
		case protocol.ActionHangup:
			m.terminate(c, ReasonHangup)
		case protocol.ActionAnswer:
			m.answer(c, a)
		}
	}
}

// answer moves an incoming call to establishing and connects its media (or, for a
// signalling-only answer, establishes it at once).
func (m *Manager) answer(c *call, a protocol.Action) {
	if c.state != protocol.StateIncoming {
		return
	}
	c.answerOp = a.OperationID
	m.stopTimer(c)
	m.setState(c, protocol.StateEstablishing, "")
	switch {
	case a.MediaAnswer == nil:
		if c.offered {
			ref := c.ref
			c.offered = false
			m.goTracked(func() { m.opts.Media.Close(ref) })
		}
		m.established(c)
	case !c.offered:
		m.terminate(c, ReasonMediaFailed)
	default:
		m.startTimer(c, m.opts.MediaTimeout, protocol.StateEstablishing, ReasonMediaTimeout)
		ref, ctx, sdp := c.ref, c.ctx, a.MediaAnswer.SDP
		m.goTracked(func() {
			err := m.opts.Media.Connect(ctx, ref, sdp)
			m.mu.Lock()
			defer m.mu.Unlock()
			if c.state != protocol.StateEstablishing {
				return
			}
			if err != nil {
				m.log.Warn("media connect failed", "call_id", ref.ID, "err", err)
				m.terminate(c, ReasonMediaFailed)
				return
			}
			m.stopTimer(c)
			m.established(c)
		})
	}
}

// established completes a call: callbacks for the answer (and a join or invite), the state
// notification, and roster updates.
func (m *Manager) established(c *call) {
	m.setState(c, protocol.StateEstablished, "")
	m.callback(c, c.answerOp, protocol.OperationAnswer, "")
	c.answerOp = ""
	if c.joinOp != "" {
		m.callback(c, c.joinOp, protocol.OperationJoin, "")
		c.joinOp = ""
	}
	m.inviteOutcome(c, "")
	m.log.Info("call established", "call_id", c.ref.ID, "app_id", c.bot.AppID)
	m.rosterChanged(c.conf)
}

// inviteOutcome tells the inviting call how the invitation went (failure "" means success).
func (m *Manager) inviteOutcome(c *call, failure string) {
	if c.inviteOp == "" {
		return
	}
	if inv, ok := m.calls[c.inviter]; ok && inv.state != protocol.StateTerminated {
		m.callback(inv, c.inviteOp, protocol.OperationInvite, failure)
	}
	c.inviteOp = ""
}

// terminate ends a call (idempotent), under the lock.
func (m *Manager) terminate(c *call, reason string) {
	if c.state == protocol.StateTerminated {
		return
	}
	wasEstablished := c.state == protocol.StateEstablished
	m.stopTimer(c)
	c.cancel()
	if c.answerOp != "" {
		m.callback(c, c.answerOp, protocol.OperationAnswer, reason)
		c.answerOp = ""
	}
	if c.joinOp != "" {
		m.callback(c, c.joinOp, protocol.OperationJoin, reason)
		c.joinOp = ""
	}
	m.inviteOutcome(c, reason)
	// The terminated notification goes whether or not the bot subscribed: it is how the bot
	// learns to release the call.
	c.state, c.reason = protocol.StateTerminated, reason
	m.notify(c, protocol.Notification{Type: protocol.NotificationCallStateChange, State: protocol.StateTerminated, Reason: reason})
	delete(m.calls, c.ref.ID)
	conf := c.conf
	for i, cc := range conf.calls {
		if cc == c {
			conf.calls = append(conf.calls[:i], conf.calls[i+1:]...)
			break
		}
	}
	if c.offered {
		ref := c.ref
		c.offered = false
		m.goTracked(func() { m.opts.Media.Close(ref) })
	}
	if conf.oneToOne {
		delete(m.confs, conf.id)
	} else if wasEstablished && !conf.ended {
		m.rosterChanged(conf)
	}
	m.log.Info("call terminated", "call_id", c.ref.ID, "app_id", c.bot.AppID, "reason", reason)
	m.emit(c)
}

// setState moves a live call to state and notifies the bot if it subscribed.
func (m *Manager) setState(c *call, state protocol.CallState, reason string) {
	c.state, c.reason = state, reason
	if c.subs[protocol.NotificationCallStateChange] {
		m.notify(c, protocol.Notification{Type: protocol.NotificationCallStateChange, State: state, Reason: reason})
	}
	m.emit(c)
}

// rosterChanged sends the conference's roster to its established bots that subscribed.
func (m *Manager) rosterChanged(conf *conference) {
	var roster []protocol.Participant
	for _, c := range conf.calls {
		if c.state != protocol.StateEstablished || !c.subs[protocol.NotificationRosterUpdate] {
			continue
		}
		if roster == nil {
			roster = conf.roster()
		}
		m.notify(c, protocol.Notification{Type: protocol.NotificationRosterUpdate, Participants: roster})
	}
}

// notify queues a notification with the call's next sequence number.
func (m *Manager) notify(c *call, n protocol.Notification) {
	c.seq++
	n.CallID, n.Sequence = c.ref.ID, c.seq
	m.send(c, webhook.KindNotification, protocol.PathNotification, n)
}

// callback queues the outcome of an operation (failure "" means success).
func (m *Manager) callback(c *call, op string, typ protocol.OperationType, failure string) {
	if op == "" {
		return
	}
	cb := protocol.Callback{CallID: c.ref.ID, OperationID: op, Type: typ, Outcome: protocol.OutcomeSuccess}
	if failure != "" {
		cb.Outcome, cb.FailureReason = protocol.OutcomeFailure, failure
	}
	m.send(c, webhook.KindCallback, protocol.PathCallback, cb)
}

func (m *Manager) send(c *call, kind, path string, v any) {
	body, err := marshal(v)
	if err == nil {
		// m.ctx, not the call's: a terminated call's last notifications must still go out.
		err = m.opts.Bus.Enqueue(m.ctx, webhook.Request{Key: c.ref.ID, URL: c.base + path, Audience: c.bot.AppID, Kind: kind, Body: body})
	}
	if err != nil {
		m.log.Warn("request to bot dropped", "call_id", c.ref.ID, "kind", kind, "err", err)
	}
}

// mediaOperation runs a subscribe or unsubscribe for an established call of appID.
func (m *Manager) mediaOperation(appID, callID string, typ protocol.OperationType, op func(context.Context, CallRef) error) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.ownCall(appID, callID)
	if err != nil {
		return "", fmt.Errorf("%s: %w", typ, err)
	}
	if c.state != protocol.StateEstablished {
		return "", fmt.Errorf("%s on call %s in state %s: %w", typ, callID, c.state, ErrConflict)
	}
	opID := m.opts.NewID()
	if m.opts.Media == nil {
		m.callback(c, opID, typ, "noMedia")
		return opID, nil
	}
	ctx, ref := c.ctx, c.ref
	m.goTracked(func() {
		err := op(ctx, ref)
		m.mu.Lock()
		defer m.mu.Unlock()
		if c.state == protocol.StateTerminated {
			return
		}
		failure := ""
		if err != nil {
			m.log.Warn("media operation failed", "call_id", ref.ID, "op", typ, "err", err)
			failure = "mediaFailed"
		}
		m.callback(c, opID, typ, failure)
	})
	return opID, nil
}

// ownCall finds appID's live call callID, under the lock.
func (m *Manager) ownCall(appID, callID string) (*call, error) {
	c, ok := m.calls[callID]
	if !ok {
		return nil, fmt.Errorf("call %q: %w", callID, ErrCallNotFound)
	}
	if c.bot.AppID != appID {
		return nil, fmt.Errorf("call %q belongs to another bot: %w", callID, ErrForbidden)
	}
	return c, nil
}

func (m *Manager) conference(id string) (*conference, error) {
	conf, ok := m.confs[id]
	if !ok {
		return nil, fmt.Errorf("conference %q: %w", id, ErrConferenceNotFound)
	}
	return conf, nil
}

// startTimer arms the call's timer: if the call is still in state when it fires, it
// terminates with reason.
func (m *Manager) startTimer(c *call, d time.Duration, state protocol.CallState, reason string) {
	m.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		defer m.wg.Done()
		m.mu.Lock()
		defer m.mu.Unlock()
		if c.timer == t && c.state == state {
			c.timer = nil
			m.log.Info("call timed out", "call_id", c.ref.ID, "state", state, "reason", reason)
			m.terminate(c, reason)
		}
	})
	c.timer = t
}

func (m *Manager) stopTimer(c *call) {
	if c.timer != nil && c.timer.Stop() {
		m.wg.Done()
	}
	c.timer = nil
}

// goTracked runs f on a goroutine the Manager waits for.
func (m *Manager) goTracked(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// emit queues a state snapshot for OnCallState.
func (m *Manager) emit(c *call) {
	if m.opts.OnCallState == nil {
		return
	}
	m.events = append(m.events, c.info())
	m.wakeObserver()
}

func (m *Manager) wakeObserver() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// observe delivers OnCallState events in order until Close.
func (m *Manager) observe() {
	defer m.obsWG.Done()
	for {
		stop := false
		select {
		case <-m.wake:
		case <-m.obsStop:
			stop = true
		}
		m.mu.Lock()
		batch := m.events
		m.events = nil
		m.mu.Unlock()
		for _, e := range batch {
			m.opts.OnCallState(e)
		}
		if stop {
			return
		}
	}
}

func (c *call) info() CallInfo {
	return CallInfo{CallRef: c.ref, State: c.state, Reason: c.reason, OneToOne: c.conf.oneToOne}
}

func (conf *conference) find(participantID string) int {
	for i, h := range conf.humans {
		if h.ID == participantID {
			return i
		}
	}
	return -1
}

func (conf *conference) botByParticipant(participantID string) *call {
	for _, c := range conf.calls {
		if c.ref.ParticipantID == participantID {
			return c
		}
	}
	return nil
}

// roster lists the humans, then the established bots.
func (conf *conference) roster() []protocol.Participant {
	out := make([]protocol.Participant, 0, len(conf.humans)+len(conf.calls))
	for _, h := range conf.humans {
		streams := make([]protocol.Stream, len(h.Streams))
		copy(streams, h.Streams)
		if h.muted {
			for i := range streams {
				if streams[i].Kind == protocol.StreamAudio {
					streams[i].Direction = withoutSend(streams[i].Direction)
				}
			}
		}
		out = append(out, protocol.Participant{ID: h.ID, Identity: h.Identity, DisplayName: h.DisplayName, Streams: streams})
	}
	for _, c := range conf.calls {
		if c.state != protocol.StateEstablished {
			continue
		}
		streams := append([]protocol.Stream{}, c.streams...)
		out = append(out, protocol.Participant{ID: c.ref.ParticipantID, Identity: c.bot.AppID, DisplayName: c.bot.DisplayName, IsBot: true, Streams: streams})
	}
	return out
}

func withoutSend(d protocol.Direction) protocol.Direction {
	switch d {
	case protocol.DirectionSendRecv:
		return protocol.DirectionRecvOnly
	case protocol.DirectionSendOnly:
		return protocol.DirectionInactive
	}
	return d
}

func marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return b, nil
}

func cloneParticipant(p Participant) Participant {
	p.Streams = append([]protocol.Stream(nil), p.Streams...)
	return p
}

func checkParticipant(p Participant) error {
	pp := protocol.Participant{ID: p.ID, Identity: p.Identity, DisplayName: p.DisplayName, Streams: p.Streams}
	if err := pp.Validate(); err != nil {
		return fmt.Errorf("participant %.40q: %w: %w", p.ID, ErrInvalid, err)
	}
	return nil
}

func checkStreams(streams []protocol.Stream) error {
	pp := protocol.Participant{ID: "x", Identity: "x", Streams: streams}
	if err := pp.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// Stats returns the number of calls that have not terminated and of open conferences.
func (m *Manager) Stats() (activeCalls, conferences int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.calls), len(m.confs)
}
