package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	testIssuer = "https://switchboard.test"
	testApp    = "echo-bot"
)

// jwksServer serves s's JWKS on 127.0.0.1 and counts the fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, s *Signer) *jwksServer {
	t.Helper()
	js := &jwksServer{}
	js.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.fetches.Add(1)
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(js.Close)
	return js
}

func newVerifier(t *testing.T, url string, c *clock) *Verifier {
	t.Helper()
	v, err := NewVerifier(VerifierConfig{Issuer: testIssuer, Audience: testApp, JWKSURL: url, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustSigner(t *testing.T, c *clock, key *Key) *Signer {
	t.Helper()
	s, err := NewSigner(SignerConfig{Issuer: testIssuer, Key: key, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustSign(t *testing.T, s *Signer, aud string, ttl time.Duration) string {
	t.Helper()
	tok, err := s.Sign(aud, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// handMade signs arbitrary claims and header fields with method and key.
func handMade(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validClaims(c *clock) jwt.MapClaims {
	now := c.Now().Unix()
	return jwt.MapClaims{"iss": testIssuer, "aud": testApp, "iat": now, "exp": now + 60, "jti": newJTI()}
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestVerifierHostileTokens(t *testing.T) {
	c := newClock()
	key, _ := GenerateKey()
	other, _ := GenerateKey()
	s := mustSigner(t, c, key)
	js := newJWKSServer(t, s)

	past := &clock{t: c.Now().Add(-10 * time.Minute)}
	future := &clock{t: c.Now().Add(5 * time.Minute)}
	wrongIss, _ := NewSigner(SignerConfig{Issuer: "https://evil.test", Key: key, Now: c.Now})
	pubDER, _ := key.priv.PublicKey.Bytes()

	noneTok := b64(map[string]any{"alg": "none", "typ": "JWT", "kid": key.ID()}) + "." + b64(validClaims(c)) + "."
	noneUpper := b64(map[string]any{"alg": "NONE", "typ": "JWT", "kid": key.ID()}) + "." + b64(validClaims(c)) + "."
	good := mustSign(t, s, testApp, time.Minute)
	parts := strings.Split(good, ".")
	tamperedClaims := validClaims(c)
	tamperedClaims["aud"] = "other-app"
	tampered := parts[0] + "." + b64(tamperedClaims) + "." + parts[2]

	nbf := validClaims(c)
	nbf["nbf"] = c.Now().Add(2 * time.Minute).Unix()
	noJTI := validClaims(c)
	delete(noJTI, "jti")
	noExp := validClaims(c)
	delete(noExp, "exp")
	long := validClaims(c)
	long["exp"] = c.Now().Add(time.Hour).Unix()
	kidHdr := map[string]any{"kid": key.ID()}

	cases := []struct {
		name  string
		token string
		want  error
		code  int
	}{
		{"empty", "", ErrMissing, 401},
		{"garbage", "not a token", ErrMalformed, 401},
		{"three dots of garbage", "a.b.c", ErrMalformed, 401},
		{"unsigned alg none", noneTok, ErrAlgorithm, 401},
		{"unsigned alg NONE", noneUpper, ErrAlgorithm, 401},
		{"wrongly signed (other key, our kid)", handMade(t, jwt.SigningMethodES256, other.priv, kidHdr, validClaims(c)), ErrSignature, 401},
		{"tampered payload", tampered, ErrSignature, 401},
		{"unknown kid", handMade(t, jwt.SigningMethodES256, other.priv, map[string]any{"kid": other.ID()}, validClaims(c)), ErrUnknownKey, 401},
		{"no kid", handMade(t, jwt.SigningMethodES256, key.priv, nil, validClaims(c)), ErrUnknownKey, 401},
		{"HS256 with the public key as secret (alg confusion)", handMade(t, jwt.SigningMethodHS256, pubDER, kidHdr, validClaims(c)), ErrAlgorithm, 401},
		{"ES384 alg", handMade(t, jwt.SigningMethodHS384, []byte("k"), kidHdr, validClaims(c)), ErrAlgorithm, 401},
		{"expired", mustSign(t, mustSigner(t, past, key), testApp, time.Minute), ErrExpired, 401},
		{"issued in the future", mustSign(t, mustSigner(t, future, key), testApp, time.Minute), ErrNotYetValid, 401},
		{"not yet valid (nbf)", handMade(t, jwt.SigningMethodES256, key.priv, kidHdr, nbf), ErrNotYetValid, 401},
		{"wrong audience", mustSign(t, s, "other-app", time.Minute), ErrAudience, 403},
		{"wrong issuer", mustSign(t, wrongIss, testApp, time.Minute), ErrIssuer, 401},
		{"no jti", handMade(t, jwt.SigningMethodES256, key.priv, kidHdr, noJTI), ErrClaims, 401},
		{"no exp", handMade(t, jwt.SigningMethodES256, key.priv, kidHdr, noExp), ErrClaims, 401},
		{"lifetime over MaxTTL", handMade(t, jwt.SigningMethodES256, key.priv, kidHdr, long), ErrClaims, 401},
		{"oversized", strings.Repeat("a", 9000), ErrMalformed, 401},
	}
	v := newVerifier(t, js.URL, c)
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(ctx, tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: got %v, want %v", err, tc.want)
			}
			if got := HTTPStatus(err); got != tc.code {
				t.Fatalf("HTTPStatus(%v) = %d, want %d", err, got, tc.code)
			}
		})
	}

	t.Run("valid, then replayed", func(t *testing.T) {
		cl, err := v.Verify(ctx, good)
		if err != nil {
			t.Fatalf("valid token refused: %v", err)
		}
		if cl.Issuer != testIssuer || cl.Audience != testApp || cl.ID == "" {
			t.Fatalf("claims %+v", cl)
		}
		_, err = v.Verify(ctx, good)
		if !errors.Is(err, ErrReplay) || HTTPStatus(err) != 403 {
			t.Fatalf("replay: got %v", err)
		}
	})
	t.Run("within leeway", func(t *testing.T) {
		tok := mustSign(t, s, testApp, time.Minute)
		c.Advance(time.Minute + 20*time.Second)
		defer c.Advance(-(time.Minute + 20*time.Second))
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("token expired 20 s ago (leeway 30 s) refused: %v", err)
		}
	})
}

func TestVerifierConcurrentReplay(t *testing.T) {
	c := newClock()
	s := mustSigner(t, c, nil)
	js := newJWKSServer(t, s)
	v := newVerifier(t, js.URL, c)
	tok := mustSign(t, s, testApp, time.Minute)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), tok); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, ErrReplay) {
				t.Errorf("Verify: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d concurrent verifications of one token succeeded, want 1", ok.Load())
	}
	if js.fetches.Load() != 1 {
		t.Fatalf("%d JWKS fetches, want 1", js.fetches.Load())
	}
}

func TestVerifierRefetchRateLimitedAndRotation(t *testing.T) {
	c := newClock()
	old, _ := GenerateKey()
	s := mustSigner(t, c, old)
	js := newJWKSServer(t, s)
	v := newVerifier(t, js.URL, c)
	ctx := context.Background()
	if _, err := v.Verify(ctx, mustSign(t, s, testApp, time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Tokens with unknown kids: at most one fetch per RefetchInterval.
	stranger, _ := GenerateKey()
	c.Advance(DefaultRefetchInterval)
	for range 5 {
		tok := handMade(t, jwt.SigningMethodES256, stranger.priv, map[string]any{"kid": stranger.ID()}, validClaims(c))
		if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := js.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after 5 unknown kids, want 2 (initial + one refetch)", n)
	}
	// Rotation: the new key is published and activated; once the interval has passed the verifier
	// learns it on first sight.
	fresh, _ := GenerateKey()
	s.AddKey(fresh)
	if err := s.Activate(fresh.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, mustSign(t, s, testApp, time.Minute)); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("new kid within the refetch interval: %v", err)
	}
	c.Advance(DefaultRefetchInterval)
	if _, err := v.Verify(ctx, mustSign(t, s, testApp, time.Minute)); err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}
	// Old key retired: still cached, and still valid until the cache ages out.
	if err := s.RemoveKey(fresh.ID()); err == nil {
		t.Fatal("removing the active key succeeded")
	}
	if err := s.RemoveKey(old.ID()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(s.JWKS()), old.ID()) {
		t.Fatal("removed key still published")
	}
	c.Advance(DefaultKeysMaxAge)
	tok := handMade(t, jwt.SigningMethodES256, old.priv, map[string]any{"kid": old.ID()}, validClaims(c))
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("token of a retired key after the cache aged: %v", err)
	}
}

func TestVerifierKeysUnavailable(t *testing.T) {
	c := newClock()
	s := mustSigner(t, c, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	v := newVerifier(t, srv.URL, c)
	_, err := v.Verify(context.Background(), mustSign(t, s, testApp, time.Minute))
	if !errors.Is(err, ErrKeysUnavailable) || HTTPStatus(err) != 503 {
		t.Fatalf("got %v", err)
	}
	// Rate-limited: the second attempt does not hit the server but still says unavailable.
	_, err = v.Verify(context.Background(), mustSign(t, s, testApp, time.Minute))
	if !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("got %v", err)
	}
}

func TestKeyPEMRoundTripAndThumbprint(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParseKeyPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID() != k2.ID() || len(k.ID()) != 43 {
		t.Fatalf("kid %q vs %q", k.ID(), k2.ID())
	}
	// RFC 7638 section 3.1's example is RSA; check the EC canonical form by hand instead.
	j, _ := publicJWK(&k.priv.PublicKey)
	if !strings.HasPrefix(j.thumbprint(), k.ID()[:4]) {
		t.Fatal("thumbprint unstable")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := newKey(p384); err == nil {
		t.Fatal("P-384 key accepted")
	}
	for _, bad := range []string{"", "-----BEGIN NOTHING-----\nAAAA\n-----END NOTHING-----\n", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		if _, err := ParseKeyPEM([]byte(bad)); err == nil {
			t.Fatalf("ParseKeyPEM(%q) succeeded", bad)
		}
	}
}

func TestSignerRefusesBadTTL(t *testing.T) {
	s := mustSigner(t, newClock(), nil)
	for _, ttl := range []time.Duration{0, -time.Second, MaxTTL + time.Second} {
		if _, err := s.Sign(testApp, ttl); err == nil {
			t.Fatalf("Sign with ttl %v succeeded", ttl)
		}
	}
	if _, err := s.Sign("", time.Minute); err == nil {
		t.Fatal("Sign without audience succeeded")
	}
}

func TestJWKSHandler(t *testing.T) {
	s := mustSigner(t, newClock(), nil)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("status %d type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	keys, err := parseJWKS(rec.Body.Bytes())
	if err != nil || keys[s.ActiveKeyID()] == nil {
		t.Fatalf("JWKS %s: %v", rec.Body, err)
	}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/.well-known/jwks.json", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
}

func TestReplayCacheBounded(t *testing.T) {
	c := newReplayCache(4)
	now := time.Unix(1000, 0)
	for i := range 10 {
		if !c.add(string(rune('a'+i)), now.Add(time.Duration(i+1)*time.Second), now) {
			t.Fatalf("fresh jti %d refused", i)
		}
	}
	if c.len() != 4 {
		t.Fatalf("len %d, want 4", c.len())
	}
	if c.add("j", now.Add(time.Minute), now) {
		t.Fatal("latest jti forgotten")
	}
	// Expired entries are dropped on the next add.
	c.add("z", now.Add(time.Hour), now.Add(30*time.Minute))
	if c.len() != 1 {
		t.Fatalf("len %d after expiry, want 1", c.len())
	}
}

func BenchmarkVerify(b *testing.B) {
	c := newClock()
	s, _ := NewSigner(SignerConfig{Issuer: testIssuer, Now: c.Now})
	srv := httptest.NewServer(s)
	defer srv.Close()
	v, _ := NewVerifier(VerifierConfig{Issuer: testIssuer, Audience: testApp, JWKSURL: srv.URL, Now: c.Now})
	toks := make([]string, b.N)
	for i := range toks {
		toks[i], _ = s.Sign(testApp, time.Minute)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := v.Verify(context.Background(), toks[i]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	s, _ := NewSigner(SignerConfig{Issuer: testIssuer})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(testApp, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}
