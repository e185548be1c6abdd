package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// decodeStrict decodes data, which must be exactly one JSON object, into v, refusing unknown
// fields and trailing data.
func decodeStrict(name string, data []byte, v any) error {
	if len(data) > MaxBodyBytes {
		return fmt.Errorf("decode %s: %w: %d bytes, more than %d", name, ErrTooLarge, len(data), MaxBodyBytes)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return fmt.Errorf("decode %s: %w: body is not a JSON object", name, ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w: %w", name, ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("decode %s: %w: data after the JSON object", name, ErrMalformed)
	}
	return nil
}

// hasKey reports whether the top-level object data (already decoded once) has key.
func hasKey(data []byte, key string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return false
	}
	_, ok := m[key]
	return ok
}

func decodeValidated[T any, P interface {
	*T
	Validate() error
}](name string, data []byte) (*T, error) {
	v := new(T)
	if err := decodeStrict(name, data, v); err != nil {
		return nil, err
	}
	if err := P(v).Validate(); err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	return v, nil
}

// DecodeIncomingCall decodes and validates the body of POST {webhook}/call.
func DecodeIncomingCall(data []byte) (*IncomingCall, error) {
	return decodeValidated[IncomingCall]("IncomingCall", data)
}

// DecodeWorkflow decodes and validates a bot's response to an incoming call.
func DecodeWorkflow(data []byte) (*Workflow, error) {
	return decodeValidated[Workflow]("Workflow", data)
}

// DecodeCallback decodes and validates the body of POST {callbackUri}/callback.
func DecodeCallback(data []byte) (*Callback, error) {
	return decodeValidated[Callback]("Callback", data)
}

// DecodeNotification decodes and validates the body of POST {callbackUri}/notification.
func DecodeNotification(data []byte) (*Notification, error) {
	return decodeValidated[Notification]("Notification", data)
}

// DecodeSubscribeRequest decodes and validates the body of RouteSubscribe.
func DecodeSubscribeRequest(data []byte) (*SubscribeRequest, error) {
	r, err := decodeValidated[SubscribeRequest]("SubscribeRequest", data)
	if err != nil {
		return nil, err
	}
	if !hasKey(data, "socketId") {
		return nil, fmt.Errorf("decode SubscribeRequest: %w", invalid("SubscribeRequest", "socketId", "is required"))
	}
	return r, nil
}

// DecodeOperationResponse decodes and validates the 202 body of subscribe, unsubscribe and
// invite.
func DecodeOperationResponse(data []byte) (*OperationResponse, error) {
	return decodeValidated[OperationResponse]("OperationResponse", data)
}

// DecodeJoinRequest decodes and validates the body of RouteJoin. An empty body is an empty
// request.
func DecodeJoinRequest(data []byte) (*JoinRequest, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return &JoinRequest{}, nil
	}
	return decodeValidated[JoinRequest]("JoinRequest", data)
}

// DecodeJoinResponse decodes and validates the 202 body of a join.
func DecodeJoinResponse(data []byte) (*JoinResponse, error) {
	return decodeValidated[JoinResponse]("JoinResponse", data)
}

// DecodeInviteRequest decodes and validates the body of RouteInvite.
func DecodeInviteRequest(data []byte) (*InviteRequest, error) {
	return decodeValidated[InviteRequest]("InviteRequest", data)
}

// DecodeErrorBody decodes and validates an error response body.
func DecodeErrorBody(data []byte) (*ErrorBody, error) {
	return decodeValidated[ErrorBody]("ErrorBody", data)
}

// ReadBody reads a request or response body of at most MaxBodyBytes. A longer body is an error
// wrapping ErrTooLarge; the reader is not drained.
func ReadBody(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("read body: %w: more than %d bytes", ErrTooLarge, mbe.Limit)
		}
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(data) > MaxBodyBytes {
		return nil, fmt.Errorf("read body: %w: more than %d bytes", ErrTooLarge, MaxBodyBytes)
	}
	return data, nil
}
