package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-secret")

func lookup(appID string) ([]byte, bool) {
	if appID == testApp {
		return testSecret, true
	}
	return nil, false
}

func newBotVerifier(t *testing.T, c *clock) *BotVerifier {
	t.Helper()
	v, err := NewBotVerifier(BotVerifierConfig{Audience: testIssuer, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func botSign(t *testing.T, s BotSigner) string {
	t.Helper()
	tok, err := s.Sign()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestBotTokenHostile(t *testing.T) {
	c := newClock()
	base := BotSigner{AppID: testApp, Secret: testSecret, Audience: testIssuer, Now: c.Now}
	key, _ := GenerateKey()
	botClaims := func() jwt.MapClaims {
		now := c.Now().Unix()
		return jwt.MapClaims{"iss": testApp, "aud": testIssuer, "iat": now, "exp": now + 60, "jti": newJTI()}
	}
	with := func(f func(*BotSigner)) string {
		s := base
		f(&s)
		return botSign(t, s)
	}
	noneTok := b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64(botClaims()) + "."

	cases := []struct {
		name  string
		token string
		want  error
		code  int
	}{
		{"empty", "", ErrMissing, 401},
		{"garbage", "garbage", ErrMalformed, 401},
		{"unsigned alg none", noneTok, ErrAlgorithm, 401},
		{"wrong secret", with(func(s *BotSigner) { s.Secret = []byte(strings.Repeat("x", 32)) }), ErrSignature, 401},
		{"unknown app", with(func(s *BotSigner) { s.AppID = "stranger" }), ErrIssuer, 401},
		{"expired", with(func(s *BotSigner) { s.Now = func() time.Time { return c.Now().Add(-10 * time.Minute) } }), ErrExpired, 401},
		{"issued in the future", with(func(s *BotSigner) { s.Now = func() time.Time { return c.Now().Add(5 * time.Minute) } }), ErrNotYetValid, 401},
		{"wrong audience", with(func(s *BotSigner) { s.Audience = "https://other.test" }), ErrAudience, 403},
		{"ES256 token (alg confusion)", handMade(t, jwt.SigningMethodES256, key.priv, nil, botClaims()), ErrAlgorithm, 401},
	}
	v := newBotVerifier(t, c)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.VerifyBotToken(tc.token, lookup)
			if !errors.Is(err, tc.want) || HTTPStatus(err) != tc.code {
				t.Fatalf("got %v (status %d), want %v (%d)", err, HTTPStatus(err), tc.want, tc.code)
			}
		})
	}
	t.Run("valid, then replayed", func(t *testing.T) {
		tok := botSign(t, base)
		cl, err := v.VerifyBotToken(tok, lookup)
		if err != nil || cl.Issuer != testApp {
			t.Fatalf("valid: %+v %v", cl, err)
		}
		if _, err := v.VerifyBotToken(tok, lookup); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay: %v", err)
		}
	})
	t.Run("signer refuses a short secret and a long ttl", func(t *testing.T) {
		s := base
		s.Secret = []byte("short")
		if _, err := s.Sign(); err == nil {
			t.Fatal("short secret accepted")
		}
		s = base
		s.TTL = time.Hour
		if _, err := s.Sign(); err == nil {
			t.Fatal("1 h ttl accepted")
		}
	})
}
