package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// Key is an ES256 (P-256) signing key and its id, the RFC 7638 thumbprint of its public key.
type Key struct {
	priv *ecdsa.PrivateKey
	id   string
}

// GenerateKey makes a new random ES256 key.
func GenerateKey() (*Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate P-256 key: %w", err)
	}
	return newKey(priv)
}

func newKey(priv *ecdsa.PrivateKey) (*Key, error) {
	if priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("key curve %s: only P-256 (ES256) is supported", priv.Curve.Params().Name)
	}
	j, err := publicJWK(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Key{priv: priv, id: j.thumbprint()}, nil
}

// ParseKeyPEM reads an ES256 private key from PEM: a "PRIVATE KEY" (PKCS #8) or an
// "EC PRIVATE KEY" (SEC 1) block on the P-256 curve.
func ParseKeyPEM(data []byte) (*Key, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("parse key: no PEM block")
	}
	var priv *ecdsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PKCS #8 key: %w", err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("parse key: %T is not an ECDSA key", k)
		}
		priv = ec
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse SEC 1 key: %w", err)
		}
		priv = k
	default:
		return nil, fmt.Errorf("parse key: PEM block %q is not PRIVATE KEY or EC PRIVATE KEY", block.Type)
	}
	return newKey(priv)
}

// LoadKeyFile reads an ES256 private key from a PEM file (see ParseKeyPEM).
func LoadKeyFile(path string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	k, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("load key from %s: %w", path, err)
	}
	return k, nil
}

// MarshalPEM encodes k as a PKCS #8 "PRIVATE KEY" PEM block.
func (k *Key) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, fmt.Errorf("marshal key %s: %w", k.id, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ID is the key's id (the JWT header kid): its RFC 7638 JWK thumbprint, base64url.
func (k *Key) ID() string { return k.id }

// jwk is one JSON Web Key of an EC P-256 public key.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// jwkSet is a JWKS document.
type jwkSet struct {
	Keys []json.RawMessage `json:"keys"`
}

func publicJWK(pub *ecdsa.PublicKey) (jwk, error) {
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil || len(raw) != 65 {
		return jwk{}, fmt.Errorf("encode public key: %w", err)
	}
	enc := base64.RawURLEncoding
	return jwk{Kty: "EC", Crv: "P-256", X: enc.EncodeToString(raw[1:33]), Y: enc.EncodeToString(raw[33:])}, nil
}

// thumbprint is the RFC 7638 thumbprint: SHA-256 over the required members in lexicographic
// order, without whitespace.
func (j jwk) thumbprint() string {
	canon := `{"crv":"` + j.Crv + `","kty":"` + j.Kty + `","x":"` + j.X + `","y":"` + j.Y + `"}`
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// publicKey decodes an ES256 public key from j, checking that the point is on P-256.
func (j jwk) publicKey() (*ecdsa.PublicKey, error) {
	if j.Kty != "EC" || j.Crv != "P-256" {
		return nil, fmt.Errorf("key %q: kty %q crv %q is not EC P-256", j.Kid, j.Kty, j.Crv)
	}
	if j.Alg != "" && j.Alg != "ES256" {
		return nil, fmt.Errorf("key %q: alg %q is not ES256", j.Kid, j.Alg)
	}
	if j.Use != "" && j.Use != "sig" {
		return nil, fmt.Errorf("key %q: use %q is not sig", j.Kid, j.Use)
	}
	x, errX := base64.RawURLEncoding.DecodeString(j.X)
	y, errY := base64.RawURLEncoding.DecodeString(j.Y)
	if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
		return nil, fmt.Errorf("key %q: x and y must be 32-byte base64url", j.Kid)
	}
	raw := make([]byte, 0, 65)
	raw = append(append(append(raw, 4), x...), y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", j.Kid, err)
	}
	return pub, nil
}
