package protocol

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// ErrorCode is the machine-readable code of an error response.
type ErrorCode string

// Error codes, each with the HTTP status it goes with (see Status).
const (
	CodeBadRequest       ErrorCode = "badRequest"       // 400: malformed or invalid body or path
	CodeUnauthorized     ErrorCode = "unauthorized"     // 401: missing, malformed, badly signed or expired token
	CodeForbidden        ErrorCode = "forbidden"        // 403: valid token, wrong audience, replayed, or not allowed
	CodeNotFound         ErrorCode = "notFound"         // 404: unknown call, conference, operation or socket
	CodeMethodNotAllowed ErrorCode = "methodNotAllowed" // 405
	CodeConflict         ErrorCode = "conflict"         // 409: the call is not in a state that allows it
	CodeTooLarge         ErrorCode = "tooLarge"         // 413: body over MaxBodyBytes
	CodeUnsupportedType  ErrorCode = "unsupportedType"  // 415: body is not application/json
	CodeTooManyRequests  ErrorCode = "tooManyRequests"  // 429
	CodeInternal         ErrorCode = "internal"         // 500
	CodeUnavailable      ErrorCode = "unavailable"      // 503: try again later
)

// Status is the HTTP status that goes with c (500 for an unknown code).
func (c ErrorCode) Status() int {
	switch c {
	case CodeBadRequest:
		return http.StatusBadRequest
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeConflict:
		return http.StatusConflict
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnsupportedType:
		return http.StatusUnsupportedMediaType
	case CodeTooManyRequests:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ErrorDetail is the content of an error body.
type ErrorDetail struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
}

// ErrorBody is the body of every 4xx and 5xx response of the protocol, both directions.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// Validate checks e as DecodeErrorBody does. Unknown codes are accepted (a newer peer may send
// them); the status is what a client branches on.
func (e *ErrorBody) Validate() error {
	if e.Error.Code == "" {
		return invalid("ErrorBody", "error.code", "is required")
	}
	if len(e.Error.Code) > MaxIDBytes {
		return invalid("ErrorBody", "error.code", "is longer than %d bytes", MaxIDBytes)
	}
	if len(e.Error.Message) > MaxTextBytes*8 {
		return invalid("ErrorBody", "error.message", "is longer than %d bytes", MaxTextBytes*8)
	}
	return nil
}

// String formats e as "code: message" for logs and client errors.
func (e *ErrorBody) String() string {
	return fmt.Sprintf("%s: %s", e.Error.Code, e.Error.Message)
}

// WriteJSON writes v as a JSON body with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		WriteError(w, CodeInternal, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteError writes an ErrorBody with code and message, with code's status. The message is
// truncated to a bounded length.
func WriteError(w http.ResponseWriter, code ErrorCode, message string) {
	if len(message) > MaxTextBytes {
		message = strings.ToValidUTF8(message[:MaxTextBytes], "")
	}
	body, _ := json.Marshal(ErrorBody{Error: ErrorDetail{Code: code, Message: message}})
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code.Status())
	_, _ = w.Write(body)
}
