package auth

import (
	"testing"
	"time"
)

// FuzzVerifyBotToken feeds arbitrary tokens to the HS256 verifier: it must never panic and never
// accept a token it did not see signed.
func FuzzVerifyBotToken(f *testing.F) {
	c := newClock()
	s := BotSigner{AppID: testApp, Secret: testSecret, Audience: testIssuer, Now: c.Now}
	for range 3 {
		tok, _ := s.Sign()
		f.Add(tok)
	}
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJlY2hvLWJvdCJ9.")
	f.Add("a.b.c")
	v, _ := NewBotVerifier(BotVerifierConfig{Audience: testIssuer, Now: c.Now, ReplayCacheSize: 64})
	f.Fuzz(func(t *testing.T, tok string) {
		cl, err := v.VerifyBotToken(tok, lookup)
		if err == nil && (cl.Issuer != testApp || cl.ExpiresAt.Sub(cl.IssuedAt) > MaxTTL) {
			t.Fatalf("accepted %+v", cl)
		}
	})
}

// FuzzParseJWKS feeds arbitrary documents to the JWKS parser.
func FuzzParseJWKS(f *testing.F) {
	s, _ := NewSigner(SignerConfig{Issuer: testIssuer, Now: func() time.Time { return time.Unix(0, 0) }})
	f.Add(s.JWKS())
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","kid":"k"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"r"}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		keys, err := parseJWKS(doc)
		if err == nil && len(keys) == 0 {
			t.Fatal("no error and no keys")
		}
	})
}
