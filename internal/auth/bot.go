package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BotSigner signs a bot's requests to the service with HS256 and the bot's app secret. It is
// safe for concurrent use.
type BotSigner struct {
	// AppID is the bot's app id, the iss of its tokens.
	AppID string
	// Secret is the app secret, at least MinSecretBytes.
	Secret []byte
	// Audience is the service's issuer URL.
	Audience string
	// TTL is the tokens' lifetime; 0 means one minute. At most MaxTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Sign makes a fresh token (new jti) for one request.
func (s *BotSigner) Sign() (string, error) {
	if s.AppID == "" || s.Audience == "" {
		return "", errors.New("sign bot token: app id and audience are required")
	}
	if len(s.Secret) < MinSecretBytes {
		return "", fmt.Errorf("sign bot token for %s: secret is %d bytes, fewer than %d", s.AppID, len(s.Secret), MinSecretBytes)
	}
	ttl := s.TTL
	if ttl == 0 {
		ttl = time.Minute
	}
	if ttl < 0 || ttl > MaxTTL {
		return "", fmt.Errorf("sign bot token for %s: ttl %v is not in (0, %v]", s.AppID, ttl, MaxTTL)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, newClaims(s.AppID, s.Audience, now(), ttl))
	signed, err := tok.SignedString(s.Secret)
	if err != nil {
		return "", fmt.Errorf("sign bot token for %s: %w", s.AppID, err)
	}
	return signed, nil
}

// BotVerifierConfig configures a BotVerifier.
type BotVerifierConfig struct {
	// Audience is the service's issuer URL, the aud every bot token must carry. Required.
	Audience string
	// Leeway is the clock skew tolerated; 0 means DefaultLeeway, negative means none.
	Leeway time.Duration
	// ReplayCacheSize bounds the remembered jti; 0 means DefaultReplayCacheSize.
	ReplayCacheSize int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// BotVerifier checks bots' HS256 tokens on the service side. It is safe for concurrent use.
type BotVerifier struct {
	cfg    BotVerifierConfig
	replay *replayCache
}

// NewBotVerifier makes a BotVerifier for cfg.
func NewBotVerifier(cfg BotVerifierConfig) (*BotVerifier, error) {
	if cfg.Audience == "" {
		return nil, errors.New("new bot verifier: audience is required")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	} else if cfg.Leeway < 0 {
		cfg.Leeway = 0
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &BotVerifier{cfg: cfg, replay: newReplayCache(cfg.ReplayCacheSize)}, nil
}

// VerifyBotToken checks a bot's token: HS256 only, signed with the secret lookupSecret returns
// for its iss (the app id), aud == the service's issuer, lifetime, and jti not seen before. The
// verified app id is the returned Claims' Issuer. An unknown app id fails with ErrIssuer.
func (v *BotVerifier) VerifyBotToken(token string, lookupSecret func(appID string) (secret []byte, ok bool)) (*Claims, error) {
	keyFunc := func(t *jwt.Token) (any, error) {
		iss, err := t.Claims.GetIssuer()
		if err != nil || iss == "" {
			return nil, fmt.Errorf("%w: iss (the app id) is required", ErrClaims)
		}
		secret, ok := lookupSecret(iss)
		if !ok {
			return nil, fmt.Errorf("%w: unknown app %.60q", ErrIssuer, iss)
		}
		if len(secret) < MinSecretBytes {
			return nil, fmt.Errorf("%w: app %.60q has a secret shorter than %d bytes", ErrIssuer, iss, MinSecretBytes)
		}
		return secret, nil
	}
	c, err := parseChecked(token, "HS256", "", v.cfg.Audience, v.cfg.Leeway, v.cfg.Now, keyFunc)
	if err != nil {
		return nil, err
	}
	if !v.replay.add(c.Issuer+"\x00"+c.ID, c.ExpiresAt.Add(v.cfg.Leeway), v.cfg.Now()) {
		return nil, fmt.Errorf("%w: app %s jti %.40q", ErrReplay, c.Issuer, c.ID)
	}
	return c, nil
}
