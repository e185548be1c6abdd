package signal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the browser messages.
const (
	MaxMessageBytes   = 64 << 10 // one WebSocket message
	MaxSDPBytes       = 48 << 10
	MaxCandidateBytes = 1024
	MaxNameRunes      = 64
	MaxTokenBytes     = 128
	MaxScreenTracks   = 4
	MaxVideoDimension = 8192
)

// Message types a browser sends.
const (
	TypeJoin      = "join"      // join a conference by room name
	TypeCallBot   = "callBot"   // call a bot by name
	TypePublish   = "publish"   // the publisher connection's offer
	TypeAnswer    = "answer"    // the answer to the SFU's subscriber offer (also sent by the server for publish)
	TypeCandidate = "candidate" // a trickled ICE candidate (both directions)
	TypeSubscribe = "subscribe" // the layer or size wanted of a video source
	TypeMute      = "mute"      // mute or unmute a stream
	TypeLeave     = "leave"     // leave the conference
	TypeResume    = "resume"    // resume a session on a new connection with its token
	TypePing      = "ping"      // keep-alive; answered with pong
)

// Message types the server sends.
const (
	TypeJoined          = "joined"
	TypeOffer           = "offer"
	TypeRoster          = "roster"
	TypeDominantSpeaker = "dominantSpeaker"
	TypeError           = "error"
	TypeLeft            = "left"
	TypePong            = "pong"
)

// Error codes of error messages.
const (
	CodeBadMessage  = "bad_message"    // not a valid message (the message field says why)
	CodeTooLarge    = "too_large"      // over MaxMessageBytes
	CodeUnknownType = "unknown_type"   // a type this server does not know
	CodeNotJoined   = "not_joined"     // the message needs a joined session
	CodeJoined      = "already_joined" // join or resume on a session that already has a conference
	CodeNotFound    = "not_found"      // unknown bot, source, or expired session
	CodeFailed      = "failed"         // the operation failed (bad SDP, ...)
)

// Join asks to join the conference of a room.
type Join struct {
	Type        string `json:"type"`
	Room        string `json:"room"`
	DisplayName string `json:"displayName"`
}

// CallBot asks to call a bot by its name (a conference with the caller and the bot).
type CallBot struct {
	Type        string `json:"type"`
	Bot         string `json:"bot"`
	DisplayName string `json:"displayName"`
}

// Publish carries the offer of the browser's publisher connection. ScreenTrackIDs lists the
// MediaStreamTrack ids (as in the offer's msid lines) that are a screen share.
type Publish struct {
	Type           string   `json:"type"`
	SDP            string   `json:"sdp"`
	ScreenTrackIDs []string `json:"screenTrackIds,omitempty"`
}

// Answer carries an SDP answer: the browser's to a subscriber offer, or the server's to a
// publish.
type Answer struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

// Candidate is one trickled ICE candidate of the publisher or subscriber connection.
type Candidate struct {
	Type      string        `json:"type"`
	Target    string        `json:"target"` // "publisher" or "subscriber"
	Candidate CandidateInit `json:"candidate"`
}

// CandidateInit is the browser's RTCIceCandidateInit.
type CandidateInit struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// Subscribe sets what the browser receives of a video source: a layer ("q", "h", "f", or
// "off" to pause), or the size it shows it at.
type Subscribe struct {
	Type     string `json:"type"`
	SourceID uint32 `json:"sourceId"`
	Layer    string `json:"layer,omitempty"`
	Width    int    `json:"width,omitempty"`
	Height   int    `json:"height,omitempty"`
}

// Mute mutes or unmutes one of the browser's streams ("audio", "video", "screenShare").
type Mute struct {
	Type  string `json:"type"`
	Kind  string `json:"kind"`
	Muted bool   `json:"muted"`
}

// Leave ends the session.
type Leave struct {
	Type string `json:"type"`
}

// Resume takes over a session (after a dropped connection) within the grace period.
type Resume struct {
	Type  string `json:"type"`
	Token string `json:"token"`
}

// Ping is a keep-alive.
type Ping struct {
	Type string `json:"type"`
}

// Joined tells the browser it is in: its ids, the token to resume with, and how long a dropped
// connection may be resumed.
type Joined struct {
	Type          string  `json:"type"`
	ParticipantID string  `json:"participantId"`
	ConferenceID  string  `json:"conferenceId"`
	Token         string  `json:"token"`
	ResumeWithin  int     `json:"resumeWithinMs"`
	Sources       Sources `json:"sources"`
}

// Sources are the source ids of the browser's own streams.
type Sources struct {
	Audio       uint32 `json:"audio"`
	Video       uint32 `json:"video"`
	ScreenShare uint32 `json:"screenShare"`
}

// Offer is the server's offer of the subscriber connection, with what each of its m-lines
// carries.
type Offer struct {
	Type   string  `json:"type"`
	SDP    string  `json:"sdp"`
	Tracks []Track `json:"tracks"`
}

// Track names the stream an m-line of the subscriber connection carries.
type Track struct {
	MID           string `json:"mid"`
	Kind          string `json:"kind"`
	SourceID      uint32 `json:"sourceId"`
	ParticipantID string `json:"participantId"`
}

// Roster is the whole roster after a change.
type Roster struct {
	Type         string        `json:"type"`
	Participants []Participant `json:"participants"`
}

// Participant is one roster entry.
type Participant struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"displayName"`
	IsBot       bool     `json:"isBot"`
	Streams     []Stream `json:"streams"`
}

// Stream is one published stream of a roster entry.
type Stream struct {
	Kind     string `json:"kind"`
	SourceID uint32 `json:"sourceId"`
	Muted    bool   `json:"muted"`
	Width    int    `json:"width,omitempty"`
	Height   int    `json:"height,omitempty"`
}

// DominantSpeaker names the participant who has the floor ("" and 0: nobody).
type DominantSpeaker struct {
	Type          string `json:"type"`
	ParticipantID string `json:"participantId"`
	SourceID      uint32 `json:"sourceId"`
}

// Error answers a message that could not be handled. Ref is the type of that message when
// known.
type Error struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref,omitempty"`
}

// Left tells the browser its session ended, and why.
type Left struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// Pong answers a ping.
type Pong struct {
	Type string `json:"type"`
}

// DecodeError is why a message was rejected; Code is one of the Code constants.
type DecodeError struct {
	Code    string
	Ref     string // the message type, when it could be read
	Message string
}

func (e *DecodeError) Error() string {
	if e.Ref != "" {
		return fmt.Sprintf("signal: %s message: %s", e.Ref, e.Message)
	}
	return "signal: " + e.Message
}

// ErrDecode matches every *DecodeError with errors.Is.
var ErrDecode = errors.New("signal: bad message")

// Is makes errors.Is(err, ErrDecode) true.
func (e *DecodeError) Is(target error) bool { return target == ErrDecode }

func bad(ref, format string, args ...any) *DecodeError {
	return &DecodeError{Code: CodeBadMessage, Ref: ref, Message: fmt.Sprintf(format, args...)}
}

// Decode parses and validates one browser message. It returns one of *Join, *CallBot,
// *Publish, *Answer, *Candidate, *Subscribe, *Mute, *Leave, *Resume, *Ping, or a *DecodeError
// that says what is wrong: too large, not one JSON object, an unknown type, an unknown or
// missing field, or a value out of bounds.
func Decode(data []byte) (any, error) {
	if len(data) > MaxMessageBytes {
		return nil, &DecodeError{Code: CodeTooLarge, Message: fmt.Sprintf("message of %d bytes is over the limit of %d", len(data), MaxMessageBytes)}
	}
	if !utf8.Valid(data) {
		return nil, bad("", "message is not valid UTF-8")
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, bad("", "not a JSON object with a string \"type\": %v", cleanJSONError(err))
	}
	var msg any
	switch head.Type {
	case TypeJoin:
		msg = &Join{}
	case TypeCallBot:
		msg = &CallBot{}
	case TypePublish:
		msg = &Publish{}
	case TypeAnswer:
		msg = &Answer{}
	case TypeCandidate:
		msg = &Candidate{}
	case TypeSubscribe:
		msg = &Subscribe{}
	case TypeMute:
		msg = &Mute{}
	case TypeLeave:
		msg = &Leave{}
	case TypeResume:
		msg = &Resume{}
	case TypePing:
		msg = &Ping{}
	case "":
		return nil, bad("", "missing \"type\"")
	default:
		return nil, &DecodeError{Code: CodeUnknownType, Message: fmt.Sprintf("unknown message type %q", truncate(head.Type, 32))}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(msg); err != nil {
		return nil, bad(head.Type, "%v", cleanJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, bad(head.Type, "trailing data after the JSON object")
	}
	if err := validate(msg); err != nil {
		err.Ref = head.Type
		return nil, err
	}
	return msg, nil
}

func cleanJSONError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "json: ")
	return truncate(s, 120)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func validate(msg any) *DecodeError {
	switch m := msg.(type) {
	case *Join:
		if err := checkName("room", m.Room, true); err != nil {
			return err
		}
		return checkName("displayName", m.DisplayName, false)
	case *CallBot:
		if err := checkName("bot", m.Bot, true); err != nil {
			return err
		}
		return checkName("displayName", m.DisplayName, false)
	case *Publish:
		if err := checkSDP(m.SDP); err != nil {
			return err
		}
		if len(m.ScreenTrackIDs) > MaxScreenTracks {
			return bad("", "screenTrackIds has %d entries, at most %d", len(m.ScreenTrackIDs), MaxScreenTracks)
		}
		for _, id := range m.ScreenTrackIDs {
			if id == "" || len(id) > MaxTokenBytes {
				return bad("", "screenTrackIds entry of %d bytes, want 1..%d", len(id), MaxTokenBytes)
			}
		}
	case *Answer:
		return checkSDP(m.SDP)
	case *Candidate:
		if m.Target != "publisher" && m.Target != "subscriber" {
			return bad("", "target %q, want \"publisher\" or \"subscriber\"", truncate(m.Target, 32))
		}
		c := m.Candidate
		if len(c.Candidate) > MaxCandidateBytes {
			return bad("", "candidate of %d bytes, at most %d", len(c.Candidate), MaxCandidateBytes)
		}
		if c.Candidate != "" && !strings.HasPrefix(c.Candidate, "candidate:") {
			return bad("", "candidate does not start with \"candidate:\"")
		}
		if (c.SDPMid != nil && len(*c.SDPMid) > 64) || (c.UsernameFragment != nil && len(*c.UsernameFragment) > 256) {
			return bad("", "sdpMid or usernameFragment too long")
		}
	case *Subscribe:
		if m.SourceID == 0 {
			return bad("", "sourceId must be a positive integer")
		}
		switch m.Layer {
		case "", "q", "h", "f", "off":
		default:
			return bad("", "layer %q, want q, h, f or off", truncate(m.Layer, 16))
		}
		if m.Width < 0 || m.Height < 0 || m.Width > MaxVideoDimension || m.Height > MaxVideoDimension {
			return bad("", "size %dx%d out of 0..%d", m.Width, m.Height, MaxVideoDimension)
		}
		if m.Layer == "" && m.Width == 0 && m.Height == 0 {
			return bad("", "give a layer or a size")
		}
	case *Mute:
		switch m.Kind {
		case "audio", "video", "screenShare":
		default:
			return bad("", "kind %q, want audio, video or screenShare", truncate(m.Kind, 16))
		}
	case *Resume:
		if m.Token == "" || len(m.Token) > MaxTokenBytes {
			return bad("", "token of %d bytes, want 1..%d", len(m.Token), MaxTokenBytes)
		}
	}
	return nil
}

func checkName(field, s string, required bool) *DecodeError {
	if s == "" {
		if required {
			return bad("", "%s is required", field)
		}
		return nil
	}
	if n := utf8.RuneCountInString(s); n > MaxNameRunes {
		return bad("", "%s has %d characters, at most %d", field, n, MaxNameRunes)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return bad("", "%s has a control or invisible character %U", field, r)
		}
	}
	if strings.TrimSpace(s) != s {
		return bad("", "%s has leading or trailing space", field)
	}
	return nil
}

func checkSDP(s string) *DecodeError {
	if len(s) > MaxSDPBytes {
		return bad("", "sdp of %d bytes, at most %d", len(s), MaxSDPBytes)
	}
	if !strings.HasPrefix(s, "v=0") {
		return bad("", "sdp does not start with \"v=0\"")
	}
	return nil
}
