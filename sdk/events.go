package sdk

import (
	"context"
	"errors"
)

// CallEvents are the bot's handlers of one call's events; HandlerConfig.NewCall makes them for
// each new call (typically closures over the bot's per-call state and the *Call). A nil field
// means the bot ignores that event (a nil OnIncomingCall rejects every call); the handler
// subscribes to notifications only the bot handles (and the call's media needs).
//
// Threading: every handler of one call runs on that call's event goroutine, owned by the
// Handler, one at a time, in the order the events happened (notifications in their sequence
// order); none runs after OnCleanup. A handler may block (the call's next event waits; other
// calls and the network do not: the HTTP requests are answered when the event is queued), and
// may call the *Call's methods, including EndCall. It must not call Handler.Close. A panic is
// recovered, logged with the call id and the stack, and ends the call: OnCleanup then gets an
// error wrapping ErrBotPanic.
type CallEvents struct {
	// OnIncomingCall decides what to do with the call: Answer, Reject or Hangup. It runs first,
	// on the call's event goroutine, while the service waits for the HTTP response, so ctx
	// carries the answer deadline (HandlerConfig.AnswerTimeout); past it the handler rejects
	// the call itself. To answer with media, create the call's sockets (at most
	// call.MediaSlots() of each kind) and MediaConfiguration here.
	OnIncomingCall func(ctx context.Context, call *IncomingCall) Workflow
	// OnCallStateChanged reports the call's new state and the service's reason, if any, on the
	// call's event goroutine. StateTerminated is followed by OnCleanup.
	OnCallStateChanged func(state CallState, reason string)
	// OnRosterUpdated reports the whole roster (not a delta), on the call's event goroutine.
	// The slice is the bot's to keep; Roster(participants) looks participants up by source id.
	OnRosterUpdated func(participants []Participant)
	// OnDominantSpeakerChanged reports the audio source id of the loudest participant, 0 when
	// nobody speaks, on the call's event goroutine (Roster.BySource names the speaker, and
	// Roster.VideoSourceOf finds their video). The handler also passes it to the call's
	// MediaConfiguration (and so to the audio socket) whether or not this is set.
	OnDominantSpeakerChanged func(sourceID uint32)
	// OnOperationCompleted reports the outcome of the answer and of the call's subscriptions
	// and unsubscriptions, on the call's event goroutine. The same outcome also completes the
	// *Operation the bot got.
	OnOperationCompleted func(result OperationResult)
	// OnCleanup is called exactly once, last, when the call is over for whatever reason;
	// reason wraps one of this package's Err* sentinels (ErrCallTerminated, ErrCallRejected,
	// ErrCallEnded, ErrAnswerTimeout, ErrAnswerFailed, ErrMediaFailed, ErrEstablishTimeout,
	// ErrBotPanic, ErrHandlerClosed). It runs on the call's event goroutine, and may block
	// (Handler.Close waits for it).
	//
	// Before calling it the handler has cancelled Call.Context and closed the call's
	// MediaConfiguration: every socket has stopped, its goroutines have returned (no socket
	// callback of this call runs during or after OnCleanup), queued received buffers were
	// released and buffers given to Send were handed back through OnSendDone. So OnCleanup may
	// close what the socket callbacks write to (files, encoders) without a lock. The sockets'
	// Send fails from then on. Because the media closes first, a socket callback must never
	// block on something only OnCleanup releases; wait on Call.Context instead.
	OnCleanup func(reason error)
}

// Errors a cleanup reason or an operation error wraps; bots branch on them with errors.Is.
var (
	// ErrCallTerminated: the service terminated the call (a participant hung up, the conference
	// ended...).
	ErrCallTerminated = errors.New("sdk: call terminated by the service")
	// ErrCallRejected: the bot's workflow rejected or hung up the call.
	ErrCallRejected = errors.New("sdk: call rejected by the bot")
	// ErrCallEnded: the bot ended the call with EndCall.
	ErrCallEnded = errors.New("sdk: call ended by the bot")
	// ErrAnswerTimeout: OnIncomingCall did not return within HandlerConfig.AnswerTimeout.
	ErrAnswerTimeout = errors.New("sdk: bot did not answer in time")
	// ErrAnswerFailed: the media answer could not be made, or the service reported that the
	// answer failed.
	ErrAnswerFailed = errors.New("sdk: answer failed")
	// ErrMediaFailed: the call's media failed after it was answered.
	ErrMediaFailed = errors.New("sdk: media failed")
	// ErrEstablishTimeout: the call did not reach StateEstablished within
	// HandlerConfig.EstablishTimeout after it was answered.
	ErrEstablishTimeout = errors.New("sdk: call not established in time")
	// ErrBotPanic: the bot's code panicked in an event method.
	ErrBotPanic = errors.New("sdk: bot panicked")
	// ErrHandlerClosed: the handler was closed.
	ErrHandlerClosed = errors.New("sdk: handler closed")
	// ErrOperationFailed: the service reported an operation's failure.
	ErrOperationFailed = errors.New("sdk: operation failed")
)

// CallState is the state of a call.
type CallState string

// Call states.
const (
	StateIncoming     CallState = "incoming"
	StateEstablishing CallState = "establishing"
	StateEstablished  CallState = "established"
	StateTerminated   CallState = "terminated"
)

// Modality is a kind of media a call offers.
type Modality string

// Modalities.
const (
	ModalityAudio       Modality = "audio"
	ModalityVideo       Modality = "video"
	ModalityScreenShare Modality = "screenShare"
)

// StreamKind is the kind of a participant's stream.
type StreamKind string

// Stream kinds.
const (
	StreamAudio       StreamKind = "audio"
	StreamVideo       StreamKind = "video"
	StreamScreenShare StreamKind = "screenShare"
)

// Direction is a stream's direction, seen from its participant.
type Direction string

// Directions.
const (
	DirectionSendRecv Direction = "sendrecv"
	DirectionSendOnly Direction = "sendonly"
	DirectionRecvOnly Direction = "recvonly"
	DirectionInactive Direction = "inactive"
)

// OperationType names an operation.
type OperationType string

// Operations.
const (
	OperationAnswer      OperationType = "answer"
	OperationSubscribe   OperationType = "subscribe"
	OperationUnsubscribe OperationType = "unsubscribe"
	OperationJoin        OperationType = "join"
	OperationInvite      OperationType = "invite"
)

// Identity names a caller.
type Identity struct {
	Identity    string
	DisplayName string
}

// Conference names a conference.
type Conference struct {
	ID   string
	Name string
}

// IncomingCall describes a call the service offers to the bot.
type IncomingCall struct {
	CallID        string
	CorrelationID string
	From          Identity
	// Conference is the conference the call is in, or nil for a one-to-one call.
	Conference *Conference
	Modalities []Modality
	// HasMedia reports whether the service offered media. Without it, a MediaConfiguration in
	// the Answer is refused.
	HasMedia bool
	// JoinOperationID is the id of the Join that asked for this call, or "".
	JoinOperationID string

	slots mediaSlots // parsed once from the offer
}

// MediaSlots is the layout of the service's media offer, for sizing the call's sockets before
// creating them:
//   - audio is the number of audio m-lines: the loudest speakers the service forwards (3 by
//     default). One AudioSocket receives them all, mixed; the first also carries what it sends.
//   - video is the number of video slots (4 by default): give CreateMediaConfiguration at most
//     this many VideoSockets (each takes the next slot; the first also carries what the bot
//     sends). One more, and the answer fails with ErrBadOffer and the call is rejected.
//   - screenShare reports the screen-share m-line, which one ScreenShare VideoSocket receives.
//
// All are zero without a media offer (HasMedia false) or when the offer cannot be read.
func (c *IncomingCall) MediaSlots() (audio, video int, screenShare bool) {
	return c.slots.audio, c.slots.video, c.slots.screenShare
}

// Stream is one stream of a participant.
type Stream struct {
	Kind      StreamKind
	Direction Direction
	// SourceID names the stream in media (the CSRC of forwarded RTP) and in Subscribe.
	SourceID uint32
	// Width and Height are the sender's original size of a video or screen-share stream, when
	// the service knows it (0 otherwise).
	Width, Height int
}

// Participant is one member of a call's roster.
type Participant struct {
	ID          string
	Identity    string
	DisplayName string
	IsBot       bool
	Streams     []Stream
}

// Source returns the source id of the participant's first stream of kind (StreamAudio,
// StreamVideo or StreamScreenShare), and whether they have one.
func (p Participant) Source(kind StreamKind) (uint32, bool) {
	for _, s := range p.Streams {
		if s.Kind == kind {
			return s.SourceID, true
		}
	}
	return 0, false
}

// Roster is a call's roster with lookups by the ids that media and notifications carry: make
// one from what OnRosterUpdated reports, Roster(participants). The dominant speaker is an audio
// source id, and media buffers carry source ids too (AudioBuffer.ActiveSpeakers,
// VideoBuffer.SourceID); BySource finds whose they are, and VideoSourceOf finds the video to
// Subscribe to:
//
//	if p, ok := roster.BySource(dominant); ok {
//		if video, ok := roster.VideoSourceOf(p.ID); ok {
//			call.Subscribe(ctx, socket, video, 640, 360)
//		}
//	}
type Roster []Participant

// BySource returns the participant one of whose streams (audio, video or screen share) has
// the source id, and whether there is one. Source id 0 (nobody) finds nobody.
func (r Roster) BySource(sourceID uint32) (Participant, bool) {
	if sourceID == 0 {
		return Participant{}, false
	}
	for _, p := range r {
		for _, s := range p.Streams {
			if s.SourceID == sourceID {
				return p, true
			}
		}
	}
	return Participant{}, false
}

// ByID returns the participant with the given participant id, and whether there is one.
func (r Roster) ByID(participantID string) (Participant, bool) {
	for _, p := range r {
		if p.ID == participantID {
			return p, true
		}
	}
	return Participant{}, false
}

// VideoSourceOf returns the source id of the participant's camera video (StreamVideo, not the
// screen share), and whether they are in the roster and send one.
func (r Roster) VideoSourceOf(participantID string) (uint32, bool) {
	p, ok := r.ByID(participantID)
	if !ok {
		return 0, false
	}
	return p.Source(StreamVideo)
}

// OperationResult is the outcome of an operation.
type OperationResult struct {
	// ID is the operation's id.
	ID   string
	Type OperationType
	// Err is nil on success, or wraps ErrOperationFailed with the service's reason.
	Err error
}
