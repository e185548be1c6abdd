package auth

import (
	"errors"
	"net/http"
	"strings"
)

// BearerToken returns the token of an "Authorization: Bearer <token>" header, or "" when there
// is none.
func BearerToken(h http.Header) string {
	v := h.Get("Authorization")
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return ""
	}
	return strings.TrimSpace(v[7:])
}

// HTTPStatus is the status to answer a request whose token failed with err: 503 when the keys
// could not be fetched, 403 for a valid token that is not for this receiver or was already used
// (ErrAudience, ErrReplay), 401 otherwise.
func HTTPStatus(err error) int {
	switch {
	case errors.Is(err, ErrKeysUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrAudience), errors.Is(err, ErrReplay):
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}
