package sdk

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
)

// maxEarlyNotifications bounds the notifications a call holds while waiting for a missing
// sequence number.
const maxEarlyNotifications = 64

// Call is one call the bot takes part in. The handler makes it for an incoming call, hands it to
// HandlerConfig.NewCall, and ends it with the bot's OnCleanup. Its methods are safe for
// concurrent use, from the call's event goroutine (inside CallEvents handlers) or any other.
type Call struct {
	h      *Handler
	id     string
	log    *slog.Logger
	in     *IncomingCall
	offer  string
	ctx    context.Context // done at cleanup
	cancel context.CancelFunc

	inbox   chan callEvent
	stop    chan error // the first reason to end wins; buffered 1
	done    chan struct{}
	decided atomic.Bool // whether the incoming call's HTTP reply is decided
	replyCh chan reply  // the workflow, buffered 1
	ended   atomic.Bool // EndCall was called: no hangup needed at cleanup

	// Owned by the call's goroutine.
	bot       CallEvents
	hasBot    bool
	media     mediaSession
	answered  bool
	nextSeq   uint64
	early     map[uint64]*protocol.Notification
	gap       *time.Timer
	establish *time.Timer
}

type callEvent struct {
	callback     *protocol.Callback
	notification *protocol.Notification
}

// ID is the call's id, as the service names it.
func (c *Call) ID() string { return c.id }

// Incoming describes the call as the service offered it.
func (c *Call) Incoming() *IncomingCall { return c.in }

// Context is done when the call is cleaned up; use it for work that belongs to the call.
func (c *Call) Context() context.Context { return c.ctx }

// Logger is the handler's logger with the call id attached.
func (c *Call) Logger() *slog.Logger { return c.log }

// Done is closed when the call's goroutine has ended (the media closed, then OnCleanup
// returned).
func (c *Call) Done() <-chan struct{} { return c.done }

// Subscribe asks the service to put the video of sourceID (a video or screen-share stream of the
// roster) on socket at about width×height. The outcome arrives later: the returned Operation
// completes, and OnOperationCompleted gets it as an event.
func (c *Call) Subscribe(ctx context.Context, socket *VideoSocket, sourceID uint32, width, height int) (*Operation, error) {
	if socket == nil {
		return nil, fmt.Errorf("sdk: subscribe call %s: socket is nil", c.id)
	}
	req := protocol.SubscribeRequest{SocketID: socket.ID(), SourceID: sourceID, Width: width, Height: height}
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("sdk: subscribe call %s: %w", c.id, err)
	}
	return c.operation(ctx, http.MethodPost, protocol.SubscriptionsPath(c.id), req, OperationSubscribe)
}

// Unsubscribe asks the service to stop sending video to socket.
func (c *Call) Unsubscribe(ctx context.Context, socket *VideoSocket) (*Operation, error) {
	if socket == nil {
		return nil, fmt.Errorf("sdk: unsubscribe call %s: socket is nil", c.id)
	}
	return c.operation(ctx, http.MethodDelete, protocol.SubscriptionPath(c.id, socket.ID()), nil, OperationUnsubscribe)
}

func (c *Call) operation(ctx context.Context, method, path string, body any, typ OperationType) (*Operation, error) {
	data, err := c.h.do(ctx, method, path, body, http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	resp, err := protocol.DecodeOperationResponse(data)
	if err != nil {
		return nil, fmt.Errorf("sdk: %s %s: %w", method, path, err)
	}
	op := newOperation(resp.OperationID, c.id, typ)
	if err := c.h.register(op); err != nil {
		return nil, err
	}
	return op, nil
}

// EndCall hangs the call up at the service and cleans it up here (OnCleanup gets ErrCallEnded),
// even when the service cannot be reached; the error says whether the service heard it.
func (c *Call) EndCall(ctx context.Context) error {
	c.ended.Store(true)
	_, err := c.h.do(ctx, http.MethodDelete, protocol.CallPath(c.id), nil, http.StatusNoContent)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound {
		err = nil // already over
	}
	c.end(ErrCallEnded)
	return err
}

// end asks the call's goroutine to clean the call up with reason; the first reason wins.
func (c *Call) end(reason error) {
	select {
	case c.stop <- reason:
	default:
	}
}

// enqueue hands ev to the call's goroutine, or reports false when its queue is full.
func (c *Call) enqueue(ev callEvent) bool {
	select {
	case c.inbox <- ev:
		return true
	default:
		return false
	}
}

// startCall registers a call for in and starts its goroutine, or returns the error reply.
func (h *Handler) startCall(in *protocol.IncomingCall) (*Call, reply) {
	ctx, cancel := context.WithCancel(h.ctx)
	c := &Call{
		h:       h,
		id:      in.CallID,
		log:     h.log.With("call_id", in.CallID, "correlation_id", in.CorrelationID),
		in:      incomingFromWire(in),
		ctx:     ctx,
		cancel:  cancel,
		inbox:   make(chan callEvent, h.cfg.EventQueueSize),
		stop:    make(chan error, 1),
		done:    make(chan struct{}),
		replyCh: make(chan reply, 1),
		nextSeq: 1,
		early:   map[uint64]*protocol.Notification{},
	}
	if in.MediaOffer != nil {
		c.offer = in.MediaOffer.SDP
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		cancel()
		return nil, errorReply(protocol.CodeUnavailable, "the bot is shutting down")
	}
	if _, dup := h.calls[c.id]; dup {
		h.mu.Unlock()
		cancel()
		return nil, errorReply(protocol.CodeConflict, "call "+c.id+" is already on this instance")
	}
	h.calls[c.id] = c
	h.wg.Add(1)
	h.mu.Unlock()

	if err := c.safely("NewCall", func() { c.bot = h.cfg.NewCall(c) }); err == nil {
		c.hasBot = true
	}
	go c.run()
	return c, reply{}
}

// awaitWorkflow waits for the call's goroutine to decide the workflow, for at most the answer
// timeout; past it the call is rejected.
func (c *Call) awaitWorkflow(ctx context.Context) reply {
	t := time.NewTimer(c.h.cfg.AnswerTimeout)
	defer t.Stop()
	select {
	case rp := <-c.replyCh:
		return rp
	case <-t.C:
	case <-ctx.Done():
	}
	if c.decided.CompareAndSwap(false, true) {
		c.log.Warn("the bot did not answer in time; rejecting the call", "timeout", c.h.cfg.AnswerTimeout)
		c.end(ErrAnswerTimeout)
		return workflowReply(rejectWorkflow("the bot did not answer in time"))
	}
	return <-c.replyCh // the goroutine decided first; its reply is on the way
}

func rejectWorkflow(reason string) *protocol.Workflow {
	return &protocol.Workflow{Actions: []protocol.Action{{Action: protocol.ActionReject, Reason: reason}}}
}

func workflowReply(wf *protocol.Workflow) reply {
	body, err := json.Marshal(wf)
	if err != nil {
		return errorReply(protocol.CodeInternal, "encode workflow: "+err.Error())
	}
	return reply{status: http.StatusOK, body: body}
}

// run is the call's goroutine: the answer, the events, the cleanup.
func (c *Call) run() {
	defer c.h.wg.Done()
	defer close(c.done)
	reason := c.answer()
	if reason == nil {
		reason = c.loop()
	}
	c.cleanup(reason)
}

// answer asks the bot for its workflow, answers the media offer, and hands the workflow to the
// HTTP request. It returns nil when the call was answered, the cleanup reason otherwise.
func (c *Call) answer() error {
	var (
		wf     Workflow
		reason error
	)
	switch {
	case !c.hasBot:
		wf, reason = Reject("bot error"), fmt.Errorf("%w: in NewCall", ErrBotPanic)
	case c.bot.OnIncomingCall == nil:
		wf = Reject("")
	default:
		ctx, cancel := context.WithTimeout(c.ctx, c.h.cfg.AnswerTimeout)
		if err := c.safely("OnIncomingCall", func() { wf = c.bot.OnIncomingCall(ctx, c.in) }); err != nil {
			wf, reason = Reject("bot error"), err
		} else if ctx.Err() != nil {
			// Returned past the deadline: the HTTP side is rejecting the call, or is about to.
			wf.action, reason = protocol.ActionReject, ErrAnswerTimeout
		}
		cancel()
	}
	c.media = wf.media // the handler owns it from here, whatever happens

	out := &protocol.Workflow{}
	switch {
	case errors.Is(reason, ErrAnswerTimeout):
		out = rejectWorkflow("the bot did not answer in time")
	case reason != nil:
		out = rejectWorkflow("bot error")
	case wf.action == protocol.ActionAnswer:
		out, reason = c.answerWorkflow(wf)
	case wf.action == protocol.ActionHangup:
		out.Actions = []protocol.Action{{Action: protocol.ActionHangup}}
		reason = fmt.Errorf("%w: hangup", ErrCallRejected)
	default:
		out = rejectWorkflow(wf.reason)
		if out.Validate() != nil {
			out = rejectWorkflow("")
		}
		reason = fmt.Errorf("%w: %s", ErrCallRejected, wf.reason)
	}
	if !c.decided.CompareAndSwap(false, true) {
		return ErrAnswerTimeout // the HTTP request has rejected the call already
	}
	c.replyCh <- workflowReply(out)
	if reason == nil {
		c.answered = true
		c.establish = time.NewTimer(c.h.cfg.EstablishTimeout)
		c.log.Info("answered the call", "media", c.media != nil)
	}
	return reason
}

// answerWorkflow builds the answer, with the media answer when the bot gave a media
// configuration.
func (c *Call) answerWorkflow(wf Workflow) (*protocol.Workflow, error) {
	act := protocol.Action{Action: protocol.ActionAnswer, OperationID: "answer-" + randomID()}
	if wf.media != nil {
		if c.offer == "" {
			return rejectWorkflow("no media offered"), fmt.Errorf("%w: the bot answered with media but the call has no media offer", ErrAnswerFailed)
		}
		var (
			sdp string
			err error
		)
		if perr := c.safely("media answer", func() { sdp, err = wf.media.answer(c.id, c.offer) }); perr != nil {
			err = perr
		}
		if err != nil {
			c.log.Error("media answer failed; rejecting the call", "err", err)
			return rejectWorkflow("media answer failed"), fmt.Errorf("%w: %w", ErrAnswerFailed, err)
		}
		act.MediaAnswer = &protocol.SessionDescription{SDP: sdp}
		if hook, ok := any(wf.media).(interface{ onFailure(func(error)) }); ok {
			hook.onFailure(func(err error) { c.end(fmt.Errorf("%w: %w", ErrMediaFailed, err)) })
		}
	}
	subs := []protocol.NotificationType{protocol.NotificationCallStateChange}
	if c.bot.OnRosterUpdated != nil || wf.media != nil {
		// The media needs the roster too: it carries the senders' original video sizes.
		subs = append(subs, protocol.NotificationRosterUpdate)
	}
	if c.bot.OnDominantSpeakerChanged != nil || wf.media != nil {
		subs = append(subs, protocol.NotificationDominantSpeakerChanged)
	}
	out := &protocol.Workflow{Actions: []protocol.Action{act}, NotificationSubscriptions: subs, CallbackURI: c.h.public}
	if err := out.Validate(); err != nil {
		return rejectWorkflow("invalid answer"), fmt.Errorf("%w: %w", ErrAnswerFailed, err)
	}
	return out, nil
}

// loop delivers the call's events until a reason to end it.
func (c *Call) loop() error {
	for {
		var gapC, establishC <-chan time.Time
		if c.gap != nil {
			gapC = c.gap.C
		}
		if c.establish != nil {
			establishC = c.establish.C
		}
		select {
		case reason := <-c.stop:
			return reason
		case ev := <-c.inbox:
			var reason error
			if ev.callback != nil {
				reason = c.onCallback(ev.callback)
			} else {
				reason = c.onNotification(ev.notification)
			}
			if reason != nil {
				return reason
			}
		case <-establishC:
			c.establish = nil
			c.log.Warn("the call was not established in time; ending it", "timeout", c.h.cfg.EstablishTimeout)
			return ErrEstablishTimeout
		case <-gapC:
			c.gap = nil
			skipped := c.nextSeq
			c.nextSeq = slices.Min(mapKeys(c.early))
			c.log.Warn("notifications missing; skipping them", "from", skipped, "to", c.nextSeq-1)
			if reason := c.flushEarly(); reason != nil {
				return reason
			}
		}
	}
}

func mapKeys(m map[uint64]*protocol.Notification) []uint64 {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

func (c *Call) onCallback(cb *protocol.Callback) error {
	res := OperationResult{ID: cb.OperationID, Type: OperationType(cb.Type), Err: callbackErr(cb)}
	if f := c.bot.OnOperationCompleted; f != nil {
		if err := c.safely("OnOperationCompleted", func() { f(res) }); err != nil {
			return err
		}
	}
	if cb.Type == protocol.OperationAnswer && res.Err != nil {
		return fmt.Errorf("%w: %w", ErrAnswerFailed, res.Err)
	}
	return nil
}

// onNotification puts n in sequence order: duplicates are dropped, early ones held until the
// missing ones arrive (or the gap timeout skips them).
func (c *Call) onNotification(n *protocol.Notification) error {
	switch {
	case n.Sequence < c.nextSeq:
		c.log.Debug("dropping a repeated notification", "sequence", n.Sequence)
		return nil
	case n.Sequence > c.nextSeq:
		c.early[n.Sequence] = n
		if len(c.early) > maxEarlyNotifications {
			c.nextSeq = slices.Min(mapKeys(c.early))
			return c.flushEarly()
		}
		if c.gap == nil {
			c.gap = time.NewTimer(c.h.gapTimeout)
		}
		return nil
	}
	c.early[n.Sequence] = n
	return c.flushEarly()
}

// flushEarly delivers the held notifications from nextSeq on, as long as they are consecutive.
func (c *Call) flushEarly() error {
	for {
		n, ok := c.early[c.nextSeq]
		if !ok {
			break
		}
		delete(c.early, c.nextSeq)
		c.nextSeq++
		if reason := c.deliver(n); reason != nil {
			return reason
		}
	}
	if len(c.early) == 0 && c.gap != nil {
		c.gap.Stop()
		c.gap = nil
	}
	return nil
}

func (c *Call) deliver(n *protocol.Notification) error {
	switch n.Type {
	case protocol.NotificationCallStateChange:
		state := CallState(n.State)
		if state == StateEstablished && c.establish != nil {
			c.establish.Stop()
			c.establish = nil
		}
		if f := c.bot.OnCallStateChanged; f != nil {
			if err := c.safely("OnCallStateChanged", func() { f(state, n.Reason) }); err != nil {
				return err
			}
		}
		if state == StateTerminated {
			return fmt.Errorf("%w: %s", ErrCallTerminated, n.Reason)
		}
	case protocol.NotificationRosterUpdate:
		if m, ok := c.media.(interface{ rosterUpdated([]protocol.Participant) }); ok {
			if err := c.safely("media rosterUpdated", func() { m.rosterUpdated(n.Participants) }); err != nil {
				return fmt.Errorf("%w: %w", ErrMediaFailed, err)
			}
		}
		if f := c.bot.OnRosterUpdated; f != nil {
			roster := participantsFromWire(n.Participants)
			if err := c.safely("OnRosterUpdated", func() { f(roster) }); err != nil {
				return err
			}
		}
	case protocol.NotificationDominantSpeakerChanged:
		id := *n.SourceID
		if c.media != nil {
			if err := c.safely("media dominantSpeakerChanged", func() { c.media.dominantSpeakerChanged(id) }); err != nil {
				return fmt.Errorf("%w: %w", ErrMediaFailed, err)
			}
		}
		if f := c.bot.OnDominantSpeakerChanged; f != nil {
			if err := c.safely("OnDominantSpeakerChanged", func() { f(id) }); err != nil {
				return err
			}
		}
	}
	return nil
}

// cleanup ends the call: exactly once, on the call's goroutine.
func (c *Call) cleanup(reason error) {
	for _, t := range []*time.Timer{c.gap, c.establish} {
		if t != nil {
			t.Stop()
		}
	}
	c.h.mu.Lock()
	if c.h.calls[c.id] == c {
		delete(c.h.calls, c.id)
	}
	c.h.mu.Unlock()
	c.cancel()

	if c.answered && !c.ended.Load() && needsHangup(reason) {
		ctx, cancel := context.WithTimeout(c.h.ctx, hangupTimeout)
		if _, err := c.h.do(ctx, http.MethodDelete, protocol.CallPath(c.id), nil, http.StatusNoContent); err != nil {
			c.log.Warn("could not hang the call up at the service", "err", err)
		}
		cancel()
	}
	// The media goes first: once it is closed no socket callback of the call runs again, so
	// OnCleanup may release what those callbacks use (files, encoders) without racing them.
	if c.media != nil {
		_ = c.safely("media close", c.media.close)
	}
	if f := c.bot.OnCleanup; f != nil {
		_ = c.safely("OnCleanup", func() { f(reason) })
	}
	c.h.forget(c.id, reason)
	c.log.Info("call cleaned up", "reason", reason)
}

// needsHangup reports whether the service may not know that the call is over.
func needsHangup(reason error) bool {
	for _, e := range []error{ErrBotPanic, ErrEstablishTimeout, ErrMediaFailed, ErrHandlerClosed} {
		if errors.Is(reason, e) {
			return true
		}
	}
	return false
}

// safely runs the bot's (or the media's) f, turning a panic into an error wrapping ErrBotPanic,
// logged with the call id and the stack.
func (c *Call) safely(what string, f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: in %s: %v", ErrBotPanic, what, r)
			c.log.Error("recovered a panic", "in", what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	f()
	return nil
}

// Operation is an asynchronous request to the service (subscribe, unsubscribe, join, invite)
// whose outcome arrives later as a callback.
type Operation struct {
	id     string
	callID string
	typ    OperationType
	once   sync.Once
	done   chan struct{}
	err    error
}

func newOperation(id, callID string, typ OperationType) *Operation {
	return &Operation{id: id, callID: callID, typ: typ, done: make(chan struct{})}
}

// ID is the operation id the service assigned.
func (o *Operation) ID() string { return o.id }

// CallID is the call the operation belongs to: for a Join, the new call's id ("" for an
// Invite).
func (o *Operation) CallID() string { return o.callID }

// Type is the kind of operation.
func (o *Operation) Type() OperationType { return o.typ }

// Done is closed when the outcome is known.
func (o *Operation) Done() <-chan struct{} { return o.done }

// Err is the outcome once Done is closed: nil for success, an error wrapping
// ErrOperationFailed, or the reason the call or the handler ended first. Before, it is nil.
func (o *Operation) Err() error {
	select {
	case <-o.done:
		return o.err
	default:
		return nil
	}
}

// Wait waits for the outcome, or for ctx.
func (o *Operation) Wait(ctx context.Context) error {
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return fmt.Errorf("sdk: waiting for %s %s: %w", o.typ, o.id, ctx.Err())
	}
}

func (o *Operation) complete(err error) {
	o.once.Do(func() {
		o.err = err
		close(o.done)
	})
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func incomingFromWire(in *protocol.IncomingCall) *IncomingCall {
	out := &IncomingCall{
		CallID:          in.CallID,
		CorrelationID:   in.CorrelationID,
		From:            Identity{Identity: in.From.Identity, DisplayName: in.From.DisplayName},
		HasMedia:        in.MediaOffer != nil,
		JoinOperationID: in.OperationID,
	}
	if in.Conference != nil {
		out.Conference = &Conference{ID: in.Conference.ID, Name: in.Conference.Name}
	}
	if in.MediaOffer != nil {
		if offer, err := parseOffer(in.MediaOffer.SDP); err == nil {
			out.slots = offer.slots
		}
	}
	for _, m := range in.Modalities {
		out.Modalities = append(out.Modalities, Modality(m))
	}
	return out
}

func participantsFromWire(ps []protocol.Participant) []Participant {
	out := make([]Participant, len(ps))
	for i, p := range ps {
		out[i] = Participant{ID: p.ID, Identity: p.Identity, DisplayName: p.DisplayName, IsBot: p.IsBot}
		for _, s := range p.Streams {
			out[i].Streams = append(out[i].Streams, Stream{Kind: StreamKind(s.Kind), Direction: Direction(s.Direction), SourceID: s.SourceID, Width: s.Width, Height: s.Height})
		}
	}
	return out
}
