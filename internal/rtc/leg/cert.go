package leg

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/pion/dtls/v3/pkg/crypto/fingerprint"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
)

// Fingerprint is a certificate fingerprint as SDP carries it (a=fingerprint): the hash
// function's name (sha-256) and the digest in hex pairs separated by colons.
type Fingerprint struct {
	Algorithm string
	Value     string
}

// NewCertificate makes a self-signed ECDSA P-256 certificate for DTLS from rtc's template
// (rtc.CertificateTemplate): both ends of a leg use it (the bot's media platform when it is given
// none, the service for each bot leg).
func NewCertificate() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("leg: generate DTLS key: %w", err)
	}
	tmpl, err := rtc.CertificateTemplate("switchboard")
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("leg: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("leg: create DTLS certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("leg: parse DTLS certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// CertificateFingerprint returns the SHA-256 fingerprint of cert's leaf, for the answer.
func CertificateFingerprint(cert tls.Certificate) (Fingerprint, error) {
	if len(cert.Certificate) == 0 {
		return Fingerprint{}, fmt.Errorf("leg: fingerprint: %w", ErrNoCertificate)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return Fingerprint{}, fmt.Errorf("leg: parse certificate for its fingerprint: %w", err)
	}
	v, err := fingerprint.Fingerprint(leaf, crypto.SHA256)
	if err != nil {
		return Fingerprint{}, fmt.Errorf("leg: fingerprint: %w", err)
	}
	return Fingerprint{Algorithm: "sha-256", Value: strings.ToUpper(v)}, nil
}

// verifyFingerprint reports whether the peer's certificate (DER) matches one of fps whose hash
// function is known; a fingerprint list with no known hash function fails.
func verifyFingerprint(rawCerts [][]byte, fps []Fingerprint) error {
	if len(rawCerts) == 0 {
		return ErrNoCertificate
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return fmt.Errorf("leg: parse peer certificate: %w", err)
	}
	for _, fp := range fps {
		h, err := fingerprint.HashFromString(fp.Algorithm)
		if err != nil {
			continue
		}
		got, err := fingerprint.Fingerprint(cert, h)
		if err != nil {
			continue
		}
		if strings.EqualFold(got, fp.Value) {
			return nil
		}
	}
	return ErrFingerprint
}
