package leg

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"
)

// testMux is a mux on a loopback port, closed when the test ends.
func testMux(t testing.TB) *Mux {
	t.Helper()
	mux, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mux.Close() })
	return mux
}

// testCert is a new certificate and its fingerprint.
func testCert(t testing.TB) (tls.Certificate, Fingerprint) {
	t.Helper()
	cert, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	fp, err := CertificateFingerprint(cert)
	if err != nil {
		t.Fatal(err)
	}
	return cert, fp
}

func testConfig(t *testing.T, ufrag string) Config {
	t.Helper()
	cert, fp := testCert(t)
	return Config{LocalUfrag: ufrag, LocalPwd: "legpasswordlegpassword", Certificate: cert, RemoteFingerprints: []Fingerprint{fp}}
}

// TestLife: Close is idempotent and waits, before any peer came; a second leg with the same
// ufrag is refused; Mux.Close closes the legs left and refuses new ones; an unanswered leg's
// handshake times out with context.DeadlineExceeded.
func TestLife(t *testing.T) {
	mux, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := mux.NewLeg(testConfig(t, "one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mux.NewLeg(testConfig(t, "one")); !errors.Is(err, ErrUfragInUse) {
		t.Fatalf("same ufrag twice: %v", err)
	}
	if err := l.WriteRTP(nil); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("write before the handshake: %v", err)
	}
	for range 2 {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("Close returned before the leg's goroutine ended")
	}
	if err := l.Err(); err != nil {
		t.Fatalf("error after Close: %v", err)
	}
	// The ufrag is free again.
	again, err := mux.NewLeg(testConfig(t, "one"))
	if err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t, "two")
	cfg.HandshakeTimeout = 50 * time.Millisecond
	lonely, err := mux.NewLeg(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wait(t, ctx, lonely.Done(), "the handshake to time out")
	if err := lonely.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timed-out handshake: %v", err)
	}

	for range 2 {
		if err := mux.Close(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-again.Done():
	default:
		t.Fatal("Mux.Close left a leg running")
	}
	if _, err := mux.NewLeg(testConfig(t, "three")); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewLeg on a closed Mux: %v", err)
	}
	if _, err := mux.NewLeg(Config{}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("empty config: %v", err)
	}
}
