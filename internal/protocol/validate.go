package protocol

import (
	"fmt"
	"net/url"
	"unicode/utf8"
)

// invalid returns an ErrInvalid error naming msg.field and saying what is wrong with it.
func invalid(msg, field, format string, args ...any) error {
	return fmt.Errorf("%w: %s.%s %s", ErrInvalid, msg, field, fmt.Sprintf(format, args...))
}

// ValidID reports whether s is a valid identifier: 1 to MaxIDBytes characters, each an ASCII
// letter, digit, '-', '.', '_' or '~' (URL-unreserved, so an id is safe in a path segment and a
// log line as it is).
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

func checkID(msg, field, s string) error {
	if s == "" {
		return invalid(msg, field, "is required")
	}
	if !ValidID(s) {
		return invalid(msg, field, "%.40q is not an id (1-%d of A-Z a-z 0-9 - . _ ~)", s, MaxIDBytes)
	}
	return nil
}

func checkOptionalID(msg, field, s string) error {
	if s == "" {
		return nil
	}
	return checkID(msg, field, s)
}

// checkText checks optional free text: valid UTF-8, no control characters, bounded.
func checkText(msg, field, s string) error {
	if len(s) > MaxTextBytes {
		return invalid(msg, field, "is %d bytes, more than %d", len(s), MaxTextBytes)
	}
	if !utf8.ValidString(s) {
		return invalid(msg, field, "is not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return invalid(msg, field, "contains control character %U", r)
		}
	}
	return nil
}

func checkRequiredText(msg, field, s string) error {
	if s == "" {
		return invalid(msg, field, "is required")
	}
	return checkText(msg, field, s)
}

func checkSDP(msg, field string, d *SessionDescription) error {
	if d == nil {
		return nil
	}
	if d.SDP == "" {
		return invalid(msg, field+".sdp", "is required")
	}
	if len(d.SDP) > MaxSDPBytes {
		return invalid(msg, field+".sdp", "is %d bytes, more than %d", len(d.SDP), MaxSDPBytes)
	}
	if !utf8.ValidString(d.SDP) {
		return invalid(msg, field+".sdp", "is not valid UTF-8")
	}
	if len(d.SDP) < 4 || d.SDP[:4] != "v=0\r" && d.SDP[:4] != "v=0\n" {
		return invalid(msg, field+".sdp", "does not start with \"v=0\"")
	}
	return nil
}

// ValidCallbackURI reports whether s is usable as a callback URI: an absolute http or https
// URL with a host, no user info, query or fragment, at most MaxURIBytes.
func ValidCallbackURI(s string) error {
	if len(s) > MaxURIBytes {
		return fmt.Errorf("callback URI is %d bytes, more than %d", len(s), MaxURIBytes)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("callback URI: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("callback URI %.60q: scheme must be http or https", s)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("callback URI %.60q: must be scheme://host[/path] with no user, query or fragment", s)
	}
	return nil
}

// Validate checks c as DecodeIncomingCall does.
func (c *IncomingCall) Validate() error {
	const m = "IncomingCall"
	if err := checkID(m, "callId", c.CallID); err != nil {
		return err
	}
	if err := checkID(m, "correlationId", c.CorrelationID); err != nil {
		return err
	}
	if err := checkRequiredText(m, "from.identity", c.From.Identity); err != nil {
		return err
	}
	if err := checkText(m, "from.displayName", c.From.DisplayName); err != nil {
		return err
	}
	if err := checkID(m, "to.appId", c.To.AppID); err != nil {
		return err
	}
	if c.Conference != nil {
		if err := checkID(m, "conference.id", c.Conference.ID); err != nil {
			return err
		}
		if err := checkText(m, "conference.name", c.Conference.Name); err != nil {
			return err
		}
	}
	if len(c.Modalities) == 0 {
		return invalid(m, "modalities", "is required (at least one)")
	}
	if len(c.Modalities) > 3 {
		return invalid(m, "modalities", "has %d entries, more than 3", len(c.Modalities))
	}
	for i, mod := range c.Modalities {
		if !mod.Valid() {
			return invalid(m, fmt.Sprintf("modalities[%d]", i), "%.40q is not audio, video or screenShare", mod)
		}
		for _, prev := range c.Modalities[:i] {
			if prev == mod {
				return invalid(m, fmt.Sprintf("modalities[%d]", i), "repeats %q", mod)
			}
		}
	}
	if err := checkSDP(m, "mediaOffer", c.MediaOffer); err != nil {
		return err
	}
	return checkOptionalID(m, "operationId", c.OperationID)
}

// Validate checks a as part of a workflow.
func (a *Action) Validate() error {
	const m = "Action"
	switch a.Action {
	case ActionAnswer:
		if err := checkID(m, "operationId", a.OperationID); err != nil {
			return err
		}
		if err := checkSDP(m, "mediaAnswer", a.MediaAnswer); err != nil {
			return err
		}
		if a.Reason != "" {
			return invalid(m, "reason", "is only for reject")
		}
	case ActionReject, ActionHangup:
		if a.OperationID != "" {
			return invalid(m, "operationId", "is only for answer")
		}
		if a.MediaAnswer != nil {
			return invalid(m, "mediaAnswer", "is only for answer")
		}
		if a.Action == ActionHangup && a.Reason != "" {
			return invalid(m, "reason", "is only for reject")
		}
		if err := checkText(m, "reason", a.Reason); err != nil {
			return err
		}
	case "":
		return invalid(m, "action", "is required")
	default:
		return invalid(m, "action", "%.40q is not answer, reject or hangup", a.Action)
	}
	return nil
}

// Validate checks w as DecodeWorkflow does.
func (w *Workflow) Validate() error {
	const m = "Workflow"
	if len(w.Actions) == 0 {
		return invalid(m, "actions", "is required (at least one)")
	}
	if len(w.Actions) > MaxActions {
		return invalid(m, "actions", "has %d entries, more than %d", len(w.Actions), MaxActions)
	}
	answers, rejects := 0, 0
	for i := range w.Actions {
		if err := w.Actions[i].Validate(); err != nil {
			return fmt.Errorf("actions[%d]: %w", i, err)
		}
		switch w.Actions[i].Action {
		case ActionAnswer:
			answers++
		case ActionReject:
			rejects++
		}
	}
	if answers+rejects > 1 {
		return invalid(m, "actions", "has more than one answer or reject")
	}
	if len(w.NotificationSubscriptions) > 3 {
		return invalid(m, "notificationSubscriptions", "has %d entries, more than 3", len(w.NotificationSubscriptions))
	}
	for i, n := range w.NotificationSubscriptions {
		if !n.Valid() {
			return invalid(m, fmt.Sprintf("notificationSubscriptions[%d]", i), "%.40q is not a notification type", n)
		}
		for _, prev := range w.NotificationSubscriptions[:i] {
			if prev == n {
				return invalid(m, fmt.Sprintf("notificationSubscriptions[%d]", i), "repeats %q", n)
			}
		}
	}
	if w.CallbackURI == "" {
		if answers > 0 {
			return invalid(m, "callbackUri", "is required when the workflow answers")
		}
		return nil
	}
	if err := ValidCallbackURI(w.CallbackURI); err != nil {
		return fmt.Errorf("%w: Workflow.callbackUri: %w", ErrInvalid, err)
	}
	return nil
}

// Validate checks c as DecodeCallback does.
func (c *Callback) Validate() error {
	const m = "Callback"
	if err := checkID(m, "callId", c.CallID); err != nil {
		return err
	}
	if err := checkID(m, "operationId", c.OperationID); err != nil {
		return err
	}
	if c.Type == "" {
		return invalid(m, "type", "is required")
	}
	if !c.Type.Valid() {
		return invalid(m, "type", "%.40q is not an operation type", c.Type)
	}
	if c.Outcome == "" {
		return invalid(m, "outcome", "is required")
	}
	if !c.Outcome.Valid() {
		return invalid(m, "outcome", "%.40q is not success or failure", c.Outcome)
	}
	if c.Outcome == OutcomeSuccess && c.FailureReason != "" {
		return invalid(m, "failureReason", "is only for failure")
	}
	return checkText(m, "failureReason", c.FailureReason)
}

// Validate checks p as part of a roster update.
func (p *Participant) Validate() error {
	const m = "Participant"
	if err := checkID(m, "id", p.ID); err != nil {
		return err
	}
	if err := checkRequiredText(m, "identity", p.Identity); err != nil {
		return err
	}
	if err := checkText(m, "displayName", p.DisplayName); err != nil {
		return err
	}
	if len(p.Streams) > MaxStreams {
		return invalid(m, "streams", "has %d entries, more than %d", len(p.Streams), MaxStreams)
	}
	for i, s := range p.Streams {
		f := fmt.Sprintf("streams[%d]", i)
		if !s.Kind.Valid() {
			return invalid(m, f+".kind", "%.40q is not audio, video or screenShare", s.Kind)
		}
		if !s.Direction.Valid() {
			return invalid(m, f+".direction", "%.40q is not sendrecv, sendonly, recvonly or inactive", s.Direction)
		}
		if s.SourceID == 0 {
			return invalid(m, f+".sourceId", "is required (nonzero)")
		}
		if s.Width < 0 || s.Height < 0 || s.Width > MaxVideoDimension || s.Height > MaxVideoDimension {
			return invalid(m, f+".width/height", "%dx%d is outside 0..%d", s.Width, s.Height, MaxVideoDimension)
		}
		if (s.Width == 0) != (s.Height == 0) || (s.Width != 0 && s.Kind == StreamAudio) {
			return invalid(m, f+".width/height", "%dx%d: both or neither, and only for video", s.Width, s.Height)
		}
	}
	return nil
}

// Validate checks n as DecodeNotification does.
func (n *Notification) Validate() error {
	const m = "Notification"
	if err := checkID(m, "callId", n.CallID); err != nil {
		return err
	}
	if n.Sequence == 0 {
		return invalid(m, "sequence", "is required (from 1)")
	}
	stateFields := n.State != "" || n.Reason != ""
	rosterFields := n.Participants != nil
	speakerFields := n.SourceID != nil
	switch n.Type {
	case NotificationCallStateChange:
		if rosterFields || speakerFields {
			return invalid(m, "type", "callStateChange carries only state and reason")
		}
		if n.State == "" {
			return invalid(m, "state", "is required for callStateChange")
		}
		if !n.State.Valid() {
			return invalid(m, "state", "%.40q is not a call state", n.State)
		}
		return checkText(m, "reason", n.Reason)
	case NotificationRosterUpdate:
		if stateFields || speakerFields {
			return invalid(m, "type", "rosterUpdate carries only participants")
		}
		if n.Participants == nil {
			return invalid(m, "participants", "is required for rosterUpdate")
		}
		if len(n.Participants) > MaxParticipants {
			return invalid(m, "participants", "has %d entries, more than %d", len(n.Participants), MaxParticipants)
		}
		for i := range n.Participants {
			if err := n.Participants[i].Validate(); err != nil {
				return fmt.Errorf("participants[%d]: %w", i, err)
			}
			for j := range i {
				if n.Participants[j].ID == n.Participants[i].ID {
					return invalid(m, fmt.Sprintf("participants[%d].id", i), "repeats %q", n.Participants[i].ID)
				}
			}
		}
		return nil
	case NotificationDominantSpeakerChanged:
		if stateFields || rosterFields {
			return invalid(m, "type", "dominantSpeakerChanged carries only sourceId")
		}
		if n.SourceID == nil {
			return invalid(m, "sourceId", "is required for dominantSpeakerChanged (0 for nobody)")
		}
		return nil
	case "":
		return invalid(m, "type", "is required")
	default:
		return invalid(m, "type", "%.40q is not a notification type", n.Type)
	}
}

// Validate checks r as DecodeSubscribeRequest does (except the presence of socketId, which only
// the decoder can see).
func (r *SubscribeRequest) Validate() error {
	const m = "SubscribeRequest"
	if r.SocketID < 0 || r.SocketID > 255 {
		return invalid(m, "socketId", "%d is not a socket index (0-255)", r.SocketID)
	}
	if r.SourceID == 0 {
		return invalid(m, "sourceId", "is required (nonzero)")
	}
	if r.Width <= 0 || r.Width > MaxVideoDimension {
		return invalid(m, "width", "%d is not in 1-%d", r.Width, MaxVideoDimension)
	}
	if r.Height <= 0 || r.Height > MaxVideoDimension {
		return invalid(m, "height", "%d is not in 1-%d", r.Height, MaxVideoDimension)
	}
	return nil
}

// Validate checks r as DecodeOperationResponse does.
func (r *OperationResponse) Validate() error {
	return checkID("OperationResponse", "operationId", r.OperationID)
}

// Validate checks r as DecodeJoinRequest does.
func (r *JoinRequest) Validate() error {
	if r.CallbackURI == "" {
		return nil
	}
	if err := ValidCallbackURI(r.CallbackURI); err != nil {
		return fmt.Errorf("%w: JoinRequest.callbackUri: %w", ErrInvalid, err)
	}
	return nil
}

// Validate checks r as DecodeJoinResponse does.
func (r *JoinResponse) Validate() error {
	if err := checkID("JoinResponse", "callId", r.CallID); err != nil {
		return err
	}
	return checkID("JoinResponse", "operationId", r.OperationID)
}

// Validate checks r as DecodeInviteRequest does.
func (r *InviteRequest) Validate() error {
	return checkID("InviteRequest", "appId", r.AppID)
}
