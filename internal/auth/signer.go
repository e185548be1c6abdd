package auth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SignerConfig configures a Signer.
type SignerConfig struct {
	// Issuer is the service's issuer URL, the iss of every token (and the base of the JWKS URL
	// bots fetch). Required.
	Issuer string
	// Key is the active signing key; nil generates one.
	Key *Key
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Signer signs the service's ES256 tokens and publishes their keys. It holds a set of keys of
// which one is active (signs); the others are still published, so a rotation is: AddKey(new),
// wait for in-flight tokens and caches, Activate(new), later RemoveKey(old). A Signer is safe for
// concurrent use.
type Signer struct {
	issuer string
	now    func() time.Time

	mu     sync.RWMutex
	keys   []*Key
	active *Key
	jwks   []byte
}

// NewSigner makes a Signer for cfg.
func NewSigner(cfg SignerConfig) (*Signer, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("new signer: issuer is required")
	}
	key := cfg.Key
	if key == nil {
		var err error
		if key, err = GenerateKey(); err != nil {
			return nil, fmt.Errorf("new signer: %w", err)
		}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	s := &Signer{issuer: cfg.Issuer, now: now, keys: []*Key{key}, active: key}
	s.publish()
	return s, nil
}

// Issuer is the iss of the Signer's tokens.
func (s *Signer) Issuer() string { return s.issuer }

// ActiveKeyID is the kid of the key that signs.
func (s *Signer) ActiveKeyID() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.active.id
}

// AddKey publishes k without making it active. Adding a key already present does nothing.
func (s *Signer) AddKey(k *Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, have := range s.keys {
		if have.id == k.id {
			return
		}
	}
	s.keys = append(s.keys, k)
	s.publish()
}

// Activate makes the published key kid the one that signs.
func (s *Signer) Activate(kid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k.id == kid {
			s.active = k
			return nil
		}
	}
	return fmt.Errorf("activate key %q: %w", kid, ErrUnknownKey)
}

// RemoveKey stops publishing kid; the active key cannot be removed.
func (s *Signer) RemoveKey(kid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active.id == kid {
		return fmt.Errorf("remove key %q: it is the active key", kid)
	}
	for i, k := range s.keys {
		if k.id == kid {
			s.keys = append(s.keys[:i], s.keys[i+1:]...)
			s.publish()
			return nil
		}
	}
	return fmt.Errorf("remove key %q: %w", kid, ErrUnknownKey)
}

// publish rebuilds the JWKS document; s.mu is held.
func (s *Signer) publish() {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(s.keys))}
	for _, k := range s.keys {
		j, err := publicJWK(&k.priv.PublicKey)
		if err != nil {
			continue // cannot happen for a key newKey accepted
		}
		j.Kid, j.Alg, j.Use = k.id, "ES256", "sig"
		set.Keys = append(set.Keys, j)
	}
	s.jwks, _ = json.Marshal(set)
}

// JWKS is the JSON Web Key Set of the published keys.
func (s *Signer) JWKS() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.jwks
}

// ServeHTTP serves the JWKS (mount it at protocol.JWKSPath).
func (s *Signer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body := s.JWKS()
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(body)
}

// Sign makes a token for the bot aud (its app id) valid for ttl (at most MaxTTL), with iat, exp
// and a random jti.
func (s *Signer) Sign(aud string, ttl time.Duration) (string, error) {
	if aud == "" {
		return "", errors.New("sign token: audience is required")
	}
	if ttl <= 0 || ttl > MaxTTL {
		return "", fmt.Errorf("sign token for %s: ttl %v is not in (0, %v]", aud, ttl, MaxTTL)
	}
	s.mu.RLock()
	key := s.active
	s.mu.RUnlock()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, newClaims(s.issuer, aud, s.now(), ttl))
	tok.Header["kid"] = key.id
	signed, err := tok.SignedString(key.priv)
	if err != nil {
		return "", fmt.Errorf("sign token for %s with key %s: %w", aud, key.id, err)
	}
	return signed, nil
}

func newClaims(iss, aud string, now time.Time, ttl time.Duration) jwt.RegisteredClaims {
	now = now.Truncate(time.Second)
	return jwt.RegisteredClaims{
		Issuer:    iss,
		Audience:  jwt.ClaimStrings{aud},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		ID:        newJTI(),
	}
}

// newJTI is 128 random bits, base64url.
func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}
