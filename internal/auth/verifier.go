package auth

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/switchboard-rtc/switchboard/internal/protocol"
)

// Defaults of VerifierConfig.
const (
	DefaultRefetchInterval = 10 * time.Second
	DefaultKeysMaxAge      = 10 * time.Minute
	maxJWKSBytes           = 64 << 10
	maxJWKSKeys            = 32
)

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Issuer is the service's issuer URL, the iss every token must carry. Required.
	Issuer string
	// Audience is the bot's app id, the aud every token must carry. Required.
	Audience string
	// JWKSURL is where the keys are fetched; empty means Issuer + protocol.JWKSPath.
	JWKSURL string
	// HTTPClient fetches the keys; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// Leeway is the clock skew tolerated on exp, nbf and iat; 0 means DefaultLeeway, negative
	// means none.
	Leeway time.Duration
	// RefetchInterval is the least time between two fetches of the keys (a token with an unknown
	// kid triggers one at most this often); 0 means DefaultRefetchInterval.
	RefetchInterval time.Duration
	// KeysMaxAge is how long fetched keys are used before they are fetched again; 0 means
	// DefaultKeysMaxAge.
	KeysMaxAge time.Duration
	// ReplayCacheSize bounds the remembered jti; 0 means DefaultReplayCacheSize.
	ReplayCacheSize int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier checks the service's ES256 tokens on the bot side. It is safe for concurrent use.
type Verifier struct {
	cfg    VerifierConfig
	client *http.Client
	replay *replayCache

	fetching chan struct{} // a one-slot semaphore: one fetch at a time

	mu          sync.RWMutex
	keys        map[string]*ecdsa.PublicKey
	fetchedAt   time.Time // last successful fetch
	attemptedAt time.Time // last fetch attempt
}

// NewVerifier makes a Verifier for cfg. It fetches nothing until the first Verify.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("new verifier: issuer and audience are required")
	}
	if cfg.JWKSURL == "" {
		cfg.JWKSURL = strings.TrimSuffix(cfg.Issuer, "/") + protocol.JWKSPath
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	} else if cfg.Leeway < 0 {
		cfg.Leeway = 0
	}
	if cfg.RefetchInterval <= 0 {
		cfg.RefetchInterval = DefaultRefetchInterval
	}
	if cfg.KeysMaxAge <= 0 {
		cfg.KeysMaxAge = DefaultKeysMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Verifier{
		cfg:      cfg,
		client:   client,
		replay:   newReplayCache(cfg.ReplayCacheSize),
		fetching: make(chan struct{}, 1),
		keys:     map[string]*ecdsa.PublicKey{},
	}, nil
}

// Verify checks token (the bearer token without "Bearer ") and records its jti; a second
// Verify of the same token fails with ErrReplay. ctx bounds a key fetch.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	keyFunc := func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, fmt.Errorf("%w: no kid in header", ErrUnknownKey)
		}
		return v.key(ctx, kid)
	}
	c, err := parseChecked(token, "ES256", v.cfg.Issuer, v.cfg.Audience, v.cfg.Leeway, v.cfg.Now, keyFunc)
	if err != nil {
		return nil, err
	}
	if !v.replay.add(c.ID, c.ExpiresAt.Add(v.cfg.Leeway), v.cfg.Now()) {
		return nil, fmt.Errorf("%w: jti %.40q", ErrReplay, c.ID)
	}
	return c, nil
}

// key finds kid, fetching the keys when they are missing, stale, or do not have kid (at most once
// per RefetchInterval).
func (v *Verifier) key(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	now := v.cfg.Now()
	v.mu.RLock()
	k, ok := v.keys[kid]
	fresh := !v.fetchedAt.IsZero() && now.Sub(v.fetchedAt) < v.cfg.KeysMaxAge
	v.mu.RUnlock()
	if ok && fresh {
		return k, nil
	}
	select {
	case v.fetching <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for key fetch: %w", ErrKeysUnavailable, ctx.Err())
	}
	defer func() { <-v.fetching }()

	// Another caller may have fetched while this one waited.
	v.mu.RLock()
	k, ok = v.keys[kid]
	fresh = !v.fetchedAt.IsZero() && now.Sub(v.fetchedAt) < v.cfg.KeysMaxAge
	limited := !v.attemptedAt.IsZero() && now.Sub(v.attemptedAt) < v.cfg.RefetchInterval
	empty := len(v.keys) == 0
	v.mu.RUnlock()
	switch {
	case ok && (fresh || limited):
		return k, nil // stale keys are still better than none while the refetch is rate-limited
	case limited && empty:
		return nil, fmt.Errorf("%w: last fetch from %s failed", ErrKeysUnavailable, v.cfg.JWKSURL)
	case limited:
		return nil, fmt.Errorf("%w: kid %.60q", ErrUnknownKey, kid)
	}

	v.mu.Lock()
	v.attemptedAt = now
	v.mu.Unlock()
	keys, err := v.fetch(ctx)
	if err != nil {
		if ok {
			return k, nil // the key is known, only stale: keep using it
		}
		return nil, err
	}
	v.mu.Lock()
	v.keys, v.fetchedAt = keys, now
	v.mu.Unlock()
	if k, ok := keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: kid %.60q not in %s", ErrUnknownKey, kid, v.cfg.JWKSURL)
}

func (v *Verifier) fetch(ctx context.Context) (map[string]*ecdsa.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: fetch %s: %w", ErrKeysUnavailable, v.cfg.JWKSURL, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: fetch %s: %w", ErrKeysUnavailable, v.cfg.JWKSURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: fetch %s: status %d", ErrKeysUnavailable, v.cfg.JWKSURL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrKeysUnavailable, v.cfg.JWKSURL, err)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeysUnavailable, v.cfg.JWKSURL, err)
	}
	return keys, nil
}

// parseJWKS reads the ES256 keys of a JWKS document; keys of other types are skipped, a set
// with no usable key is an error.
func parseJWKS(body []byte) (map[string]*ecdsa.PublicKey, error) {
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS is more than %d bytes", maxJWKSBytes)
	}
	var set jwkSet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}
	if len(set.Keys) > maxJWKSKeys {
		return nil, fmt.Errorf("JWKS has %d keys, more than %d", len(set.Keys), maxJWKSKeys)
	}
	keys := make(map[string]*ecdsa.PublicKey, len(set.Keys))
	for _, raw := range set.Keys {
		var j jwk
		if json.Unmarshal(raw, &j) != nil || j.Kid == "" {
			continue
		}
		pub, err := j.publicKey()
		if err != nil {
			continue
		}
		keys[j.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS has no ES256 key with a kid")
	}
	return keys, nil
}
