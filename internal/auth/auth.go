// Package auth authenticates the two directions of the service↔bot protocol.
//
// Service → bot: the service signs every request with ES256 (Signer); its public keys are
// published as a JWKS at protocol.JWKSPath, each named by its RFC 7638 thumbprint. A bot checks
// the token with a Verifier, which fetches and caches the JWKS, accepts ES256 only, checks the
// issuer, the audience (its app id), the lifetime with a clock-skew leeway, and refuses a
// replayed jti.
//
// Bot → service: the bot signs with HS256 and its app secret (BotSigner; iss = app id, aud = the
// service's issuer); the service checks the token against its bot registry (BotVerifier), also
// refusing replays.
//
// Every failure wraps one of the sentinel errors below, so an HTTP layer can answer 401
// (authentication failed), 403 (ErrAudience, ErrReplay: authenticated but not for this
// receiver, or not again) or 503 (ErrKeysUnavailable).
package auth

import (
	"errors"
	"time"
)

// MaxTTL is the longest lifetime a token may have (exp - iat); longer ones are refused by both
// signers and verifiers.
const MaxTTL = 5 * time.Minute

// DefaultLeeway is the clock skew tolerated on exp, nbf and iat.
const DefaultLeeway = 30 * time.Second

// MinSecretBytes is the shortest HS256 app secret accepted.
const MinSecretBytes = 32

// Errors every verification failure wraps.
var (
	ErrMissing         = errors.New("auth: no bearer token")
	ErrMalformed       = errors.New("auth: malformed token")
	ErrAlgorithm       = errors.New("auth: signing algorithm not accepted")
	ErrUnknownKey      = errors.New("auth: unknown signing key")
	ErrKeysUnavailable = errors.New("auth: signing keys unavailable")
	ErrSignature       = errors.New("auth: invalid signature")
	ErrExpired         = errors.New("auth: token expired")
	ErrNotYetValid     = errors.New("auth: token not valid yet")
	ErrIssuer          = errors.New("auth: wrong issuer")
	ErrAudience        = errors.New("auth: wrong audience")
	ErrClaims          = errors.New("auth: missing or invalid claims")
	ErrReplay          = errors.New("auth: token replayed")
)

// Claims are the verified claims of a token.
type Claims struct {
	Issuer    string
	Audience  string
	ID        string // jti
	IssuedAt  time.Time
	ExpiresAt time.Time
}
