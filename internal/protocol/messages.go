package protocol

import "encoding/json"

// Modality is a kind of media a call offers.
type Modality string

// Modalities.
const (
	ModalityAudio       Modality = "audio"
	ModalityVideo       Modality = "video"
	ModalityScreenShare Modality = "screenShare"
)

// Valid reports whether m is a known modality.
func (m Modality) Valid() bool {
	return m == ModalityAudio || m == ModalityVideo || m == ModalityScreenShare
}

// ActionType names a workflow action.
type ActionType string

// Workflow actions.
const (
	// ActionAnswer accepts the call, with or without media.
	ActionAnswer ActionType = "answer"
	// ActionReject declines the call before it is established.
	ActionReject ActionType = "reject"
	// ActionHangup ends the call.
	ActionHangup ActionType = "hangup"
)

// Valid reports whether a is a known action.
func (a ActionType) Valid() bool {
	return a == ActionAnswer || a == ActionReject || a == ActionHangup
}

// OperationType names the asynchronous operation a callback reports on.
type OperationType string

// Operations.
const (
	OperationAnswer      OperationType = "answer"
	OperationSubscribe   OperationType = "subscribe"
	OperationUnsubscribe OperationType = "unsubscribe"
	OperationJoin        OperationType = "join"
	OperationInvite      OperationType = "invite"
)

// Valid reports whether o is a known operation.
func (o OperationType) Valid() bool {
	switch o {
	case OperationAnswer, OperationSubscribe, OperationUnsubscribe, OperationJoin, OperationInvite:
		return true
	}
	return false
}

// Outcome is the result of an operation.
type Outcome string

// Outcomes.
const (
	OutcomeSuccess Outcome = "success"
	OutcomeFailure Outcome = "failure"
)

// Valid reports whether o is a known outcome.
func (o Outcome) Valid() bool { return o == OutcomeSuccess || o == OutcomeFailure }

// NotificationType names a notification, and is what a workflow subscribes to.
type NotificationType string

// Notifications.
const (
	NotificationCallStateChange        NotificationType = "callStateChange"
	NotificationRosterUpdate           NotificationType = "rosterUpdate"
	NotificationDominantSpeakerChanged NotificationType = "dominantSpeakerChanged"
)

// Valid reports whether n is a known notification type.
func (n NotificationType) Valid() bool {
	switch n {
	case NotificationCallStateChange, NotificationRosterUpdate, NotificationDominantSpeakerChanged:
		return true
	}
	return false
}

// CallState is the state of a call as the service sees it.
type CallState string

// Call states, in the order a call goes through them; terminated is final and may follow any.
const (
	StateIncoming     CallState = "incoming"
	StateEstablishing CallState = "establishing"
	StateEstablished  CallState = "established"
	StateTerminated   CallState = "terminated"
)

// Valid reports whether s is a known call state.
func (s CallState) Valid() bool {
	switch s {
	case StateIncoming, StateEstablishing, StateEstablished, StateTerminated:
		return true
	}
	return false
}

// StreamKind is the kind of one participant stream.
type StreamKind string

// Stream kinds.
const (
	StreamAudio       StreamKind = "audio"
	StreamVideo       StreamKind = "video"
	StreamScreenShare StreamKind = "screenShare"
)

// Valid reports whether k is a known stream kind.
func (k StreamKind) Valid() bool {
	return k == StreamAudio || k == StreamVideo || k == StreamScreenShare
}

// Direction is the direction of a stream as seen from its participant.
type Direction string

// Directions.
const (
	DirectionSendRecv Direction = "sendrecv"
	DirectionSendOnly Direction = "sendonly"
	DirectionRecvOnly Direction = "recvonly"
	DirectionInactive Direction = "inactive"
)

// Valid reports whether d is a known direction.
func (d Direction) Valid() bool {
	switch d {
	case DirectionSendRecv, DirectionSendOnly, DirectionRecvOnly, DirectionInactive:
		return true
	}
	return false
}

// Identity names the caller of a call.
type Identity struct {
	// Identity is the caller's stable identity (user name, or app id for a bot). Required.
	Identity string `json:"identity"`
	// DisplayName is the caller's human-readable name. Optional.
	DisplayName string `json:"displayName,omitempty"`
}

// Target names the callee of a call: the bot.
type Target struct {
	// AppID is the bot's app id. Required.
	AppID string `json:"appId"`
}

// Conference names the conference a call belongs to.
type Conference struct {
	// ID is the conference id. Required.
	ID string `json:"id"`
	// Name is the conference's human-readable name. Optional.
	Name string `json:"name,omitempty"`
}

// SessionDescription carries one SDP (offer or answer); the layout is in docs/media.md.
type SessionDescription struct {
	// SDP is the session description, at most MaxSDPBytes. Required.
	SDP string `json:"sdp"`
}

// IncomingCall is the body of POST {webhook}/call: the service offers a call to the bot. The bot
// answers 200 with a Workflow.
type IncomingCall struct {
	// CallID identifies the call in every later message. Required.
	CallID string `json:"callId"`
	// CorrelationID ties the call to the service's logs. Required.
	CorrelationID string `json:"correlationId"`
	// From is the caller. Required.
	From Identity `json:"from"`
	// To is the bot. Required.
	To Target `json:"to"`
	// Conference is the conference the call joins the bot to, or nil for a one-to-one call.
	Conference *Conference `json:"conference"`
	// Modalities are the kinds of media offered; at least one, no duplicates.
	Modalities []Modality `json:"modalities"`
	// MediaOffer is the service's SDP offer, or nil for a signalling-only call.
	MediaOffer *SessionDescription `json:"mediaOffer"`
	// OperationID is set when the call is the result of a join the bot asked for: the
	// operationId the join request returned.
	OperationID string `json:"operationId,omitempty"`
}

// Action is one step of a workflow. Which fields it carries depends on Action.
type Action struct {
	// Action is the action's type. Required.
	Action ActionType `json:"action"`
	// OperationID names the answer, so its outcome callback can be matched. Required for answer,
	// absent otherwise.
	OperationID string `json:"operationId,omitempty"`
	// MediaAnswer is the bot's SDP answer to the call's media offer, or nil to answer without
	// media. Answer only.
	MediaAnswer *SessionDescription `json:"mediaAnswer,omitempty"`
	// Reason says why the bot rejects the call. Optional, reject only.
	Reason string `json:"reason,omitempty"`
}

// Workflow is the bot's 200 response to an IncomingCall.
type Workflow struct {
	// Actions are performed in order; one to MaxActions, at most one of answer and reject.
	Actions []Action `json:"actions"`
	// NotificationSubscriptions lists the notifications the bot wants for the call. Optional.
	NotificationSubscriptions []NotificationType `json:"notificationSubscriptions,omitempty"`
	// CallbackURI is the base URL every later request for the call goes to (POST
	// {callbackUri}/callback and {callbackUri}/notification): the bot instance that holds the
	// call's media. Absolute http or https URL; required when the workflow answers.
	CallbackURI string `json:"callbackUri,omitempty"`
}

// Callback is the body of POST {callbackUri}/callback: the outcome of an operation.
type Callback struct {
	CallID      string        `json:"callId"`
	OperationID string        `json:"operationId"`
	Type        OperationType `json:"type"`
	Outcome     Outcome       `json:"outcome"`
	// FailureReason says why the operation failed. Optional, failure only.
	FailureReason string `json:"failureReason,omitempty"`
}

// Stream is one media stream of a participant.
type Stream struct {
	Kind      StreamKind `json:"kind"`
	Direction Direction  `json:"direction"`
	// SourceID identifies the stream in media (CSRC[0] of forwarded RTP) and in subscriptions;
	// nonzero.
	SourceID uint32 `json:"sourceId"`
	// Width and Height are the sender's original picture size of a video or screen-share
	// stream, when known (0 otherwise). A bot may receive a smaller simulcast layer; this is
	// the size the sender captures.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
}

// Participant is one member of a call's roster.
type Participant struct {
	ID          string   `json:"id"`
	Identity    string   `json:"identity"`
	DisplayName string   `json:"displayName,omitempty"`
	IsBot       bool     `json:"isBot"`
	Streams     []Stream `json:"streams"`
}

// Notification is the body of POST {callbackUri}/notification. Which fields it carries depends
// on Type: State and Reason for callStateChange, Participants for rosterUpdate (the whole
// roster, not a delta), SourceID for dominantSpeakerChanged.
type Notification struct {
	CallID string `json:"callId"`
	// Sequence increases by one per notification of the call, from 1.
	Sequence uint64           `json:"sequence"`
	Type     NotificationType `json:"type"`

	State  CallState `json:"state,omitempty"`
	Reason string    `json:"reason,omitempty"`

	Participants []Participant `json:"participants,omitempty"`

	// SourceID is the audio source id of the new dominant speaker, or 0 when nobody is
	// speaking. Required for dominantSpeakerChanged (a pointer so that absence is detected).
	SourceID *uint32 `json:"sourceId,omitempty"`
}

// SubscribeRequest is the body of POST /v1/calls/{callId}/subscriptions: put sourceId's video
// onto the bot's video socket socketId at about width×height.
type SubscribeRequest struct {
	// SocketID is the index of the bot's video socket (0 is the first). Required.
	SocketID int `json:"socketId"`
	// SourceID is the participant's video source id, from a roster update. Required, nonzero.
	SourceID uint32 `json:"sourceId"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
}

// OperationResponse is the 202 body of subscribe, unsubscribe and invite: the operation's
// outcome arrives later as a Callback with this id.
type OperationResponse struct {
	OperationID string `json:"operationId"`
}

// JoinRequest is the body of POST /v1/conferences/{conferenceId}/join.
type JoinRequest struct {
	// CallbackURI is the webhook base the incoming call for the join is sent to; empty means the
	// bot's registered webhook.
	CallbackURI string `json:"callbackUri,omitempty"`
}

// JoinResponse is the 202 body of a join: the call the service will offer with an IncomingCall
// carrying OperationID.
type JoinResponse struct {
	CallID      string `json:"callId"`
	OperationID string `json:"operationId"`
}

// InviteRequest is the body of POST /v1/conferences/{conferenceId}/invitations: invite another
// bot into the conference.
type InviteRequest struct {
	AppID string `json:"appId"`
}

// MarshalJSON encodes n with only the fields of its type; a rosterUpdate always carries its
// participants array, even when the roster is empty.
func (n Notification) MarshalJSON() ([]byte, error) {
	type plain Notification
	if n.Type == NotificationRosterUpdate {
		p := n.Participants
		if p == nil {
			p = []Participant{}
		}
		return json.Marshal(struct {
			plain
			Participants []Participant `json:"participants"`
		}{plain(n), p})
	}
	return json.Marshal(plain(n))
}
