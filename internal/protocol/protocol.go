// Package protocol defines the service↔bot wire protocol, version 1: the JSON messages the
// service sends to a bot's calling webhook (incoming call, callbacks, notifications), the
// workflow a bot answers with, the REST requests a bot makes to the service, and the error body
// both sides return.
//
// Both halves of Switchboard import this package and nothing else of each other: the service
// encodes what the SDK decodes and the reverse. Every Decode function is strict — it refuses
// unknown fields, trailing data, missing required fields, unknown enumeration values and
// oversized values — so a message that decodes is safe to act on. docs/protocol.md is the
// human-readable contract; a test decodes every example in it with the functions here.
package protocol

import (
	"errors"
	"fmt"
	"net/url"
)

// Version is the protocol version, the first segment of every service REST route.
const Version = "v1"

// Sizes the decoders enforce. A message over a limit is refused, never truncated.
const (
	// MaxBodyBytes bounds every request and response body of the protocol.
	MaxBodyBytes = 1 << 20
	// MaxSDPBytes bounds a session description (an offer or an answer).
	MaxSDPBytes = 64 << 10
	// MaxParticipants bounds the participants of one roster update.
	MaxParticipants = 256
	// MaxStreams bounds the streams of one participant in a roster update.
	MaxStreams = 16
	// MaxActions bounds the actions of one workflow.
	MaxActions = 4
	// MaxIDBytes bounds every identifier (call, operation, conference, app, participant,
	// correlation and socket ids).
	MaxIDBytes = 128
	// MaxTextBytes bounds free text: identities, display names, conference names, reasons and
	// error messages.
	MaxTextBytes = 512
	// MaxURIBytes bounds a callback URI.
	MaxURIBytes = 2048
	// MaxVideoDimension bounds the width and height of a video subscription or of a stream's
	// reported size, in pixels.
	MaxVideoDimension = 4096
)

// Headers of the protocol.
const (
	// HeaderAuthorization carries "Bearer <JWT>" on every request, both directions.
	HeaderAuthorization = "Authorization"
	// HeaderIdempotencyKey carries the delivery's key on every service→bot request; it is the
	// same on every retry of one delivery.
	HeaderIdempotencyKey = "Idempotency-Key"
	// ContentTypeJSON is the content type of every body.
	ContentTypeJSON = "application/json"
)

// Paths of a bot's calling webhook, relative to where the bot mounts it (its webhook base for
// incoming calls, the workflow's callbackUri for everything later in a call).
const (
	PathCall         = "/call"
	PathCallback     = "/callback"
	PathNotification = "/notification"
)

// JWKSPath is where the service publishes the keys of its ES256 tokens, relative to its issuer
// URL.
const JWKSPath = "/.well-known/jwks.json"

// Service REST routes as net/http ServeMux patterns (method and path, with wildcards callId,
// socketId and conferenceId). Build concrete paths with the *Path functions.
const (
	RouteSubscribe   = "POST /v1/calls/{callId}/subscriptions"
	RouteUnsubscribe = "DELETE /v1/calls/{callId}/subscriptions/{socketId}"
	RouteEndCall     = "DELETE /v1/calls/{callId}"
	RouteJoin        = "POST /v1/conferences/{conferenceId}/join"
	RouteInvite      = "POST /v1/conferences/{conferenceId}/invitations"
	RouteJWKS        = "GET " + JWKSPath
)

// SubscriptionsPath is the path of RouteSubscribe for callID.
func SubscriptionsPath(callID string) string {
	return "/" + Version + "/calls/" + url.PathEscape(callID) + "/subscriptions"
}

// SubscriptionPath is the path of RouteUnsubscribe for callID and socketID.
func SubscriptionPath(callID string, socketID int) string {
	return fmt.Sprintf("%s/%d", SubscriptionsPath(callID), socketID)
}

// CallPath is the path of RouteEndCall for callID.
func CallPath(callID string) string {
	return "/" + Version + "/calls/" + url.PathEscape(callID)
}

// JoinPath is the path of RouteJoin for conferenceID.
func JoinPath(conferenceID string) string {
	return "/" + Version + "/conferences/" + url.PathEscape(conferenceID) + "/join"
}

// InvitationsPath is the path of RouteInvite for conferenceID.
func InvitationsPath(conferenceID string) string {
	return "/" + Version + "/conferences/" + url.PathEscape(conferenceID) + "/invitations"
}

// Errors the decoders wrap; callers branch on them with errors.Is (for example to answer 400 or
// 413).
var (
	// ErrMalformed: the body is not one JSON object of the expected shape (syntax error, wrong
	// type, unknown field, trailing data).
	ErrMalformed = errors.New("malformed message")
	// ErrInvalid: the body is well-formed JSON but a field is missing, unknown or out of range.
	ErrInvalid = errors.New("invalid message")
	// ErrTooLarge: the body exceeds MaxBodyBytes.
	ErrTooLarge = errors.New("message too large")
)
