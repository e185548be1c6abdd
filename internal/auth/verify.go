package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// parseChecked parses token with alg as the only accepted algorithm and the standard claim
// checks, maps the library's errors to this package's sentinels, and checks the lifetime and
// jti. It does not check replay.
func parseChecked(token, alg, iss, aud string, leeway time.Duration, now func() time.Time, keyFunc jwt.Keyfunc) (*Claims, error) {
	if token == "" {
		return nil, ErrMissing
	}
	if len(token) > 8<<10 {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(token))
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{alg}),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithAudience(aud),
	}
	if iss != "" {
		opts = append(opts, jwt.WithIssuer(iss))
	}
	var rc jwt.RegisteredClaims
	tok, err := jwt.NewParser(opts...).ParseWithClaims(token, &rc, keyFunc)
	if err != nil {
		return nil, classify(err, tok, alg)
	}
	if rc.ID == "" || len(rc.ID) > 256 {
		return nil, fmt.Errorf("%w: jti is required (at most 256 bytes)", ErrClaims)
	}
	if rc.IssuedAt == nil {
		return nil, fmt.Errorf("%w: iat is required", ErrClaims)
	}
	if life := rc.ExpiresAt.Sub(rc.IssuedAt.Time); life > MaxTTL || life <= 0 {
		return nil, fmt.Errorf("%w: lifetime %v is not in (0, %v]", ErrClaims, life, MaxTTL)
	}
	return &Claims{
		Issuer:    rc.Issuer,
		Audience:  aud,
		ID:        rc.ID,
		IssuedAt:  rc.IssuedAt.Time,
		ExpiresAt: rc.ExpiresAt.Time,
	}, nil
}

// classify maps a jwt error to the sentinel a caller branches on, keeping the detail.
func classify(err error, tok *jwt.Token, alg string) error {
	var sentinel error
	switch {
	case errors.Is(err, ErrUnknownKey), errors.Is(err, ErrKeysUnavailable), errors.Is(err, ErrIssuer), errors.Is(err, ErrClaims):
		return err
	case errors.Is(err, jwt.ErrTokenMalformed):
		sentinel = ErrMalformed
	case tok != nil && tok.Header["alg"] != alg:
		sentinel = ErrAlgorithm
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		sentinel = ErrMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		sentinel = ErrSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		sentinel = ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		sentinel = ErrNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		sentinel = ErrAudience
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		sentinel = ErrIssuer
	default:
		sentinel = ErrClaims
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}
