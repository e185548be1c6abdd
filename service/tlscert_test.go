package service

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/service/config"
)

// writeCertificate writes a self-signed certificate for 127.0.0.1 named cn, and its key.
func writeCertificate(t *testing.T, certFile, keyFile, cn string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// servedName is the common name of the certificate the server at addr presents.
func servedName(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // #nosec: the test reads the certificate
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestTLSCertificateReload: the HTTPS listener serves a renewed certificate without a restart —
// on Reload (SIGHUP) and, with watchConfig, when its files change — and a pair that does not
// load is reported and leaves the one in use.
func TestTLSCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCertificate(t, certFile, keyFile, "first")
	s := newServer(t, func(c *config.Config) {
		c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
		c.WatchConfig = config.Duration(20 * time.Millisecond)
	})
	addr := s.ln.Addr().String()
	if got := servedName(t, addr); got != "first" {
		t.Fatalf("serves %q, want first", got)
	}

	// A broken certificate file: Reload reports it, the old certificate stays.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Error("Reload accepted a broken certificate file")
	}
	if got := servedName(t, addr); got != "first" {
		t.Fatalf("after a broken file, serves %q, want first", got)
	}

	// A renewed pair: the watcher picks it up.
	writeCertificate(t, certFile, keyFile, "second")
	deadline := time.Now().Add(liveness)
	for servedName(t, addr) != "second" {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was never served")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// And Reload (SIGHUP) rereads it at once.
	writeCertificate(t, certFile, keyFile, "third")
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := servedName(t, addr); got != "third" {
		t.Fatalf("after Reload, serves %q, want third", got)
	}
}

// TestTLSCertificateRefusedAtStart: a pair that does not load stops New with the file named.
func TestTLSCertificateRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCertificate(t, certFile, keyFile, "x")
	if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCertificate(certFile, keyFile); err == nil {
		t.Fatal("loaded a pair with a garbage key")
	}
}
