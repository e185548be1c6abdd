package service

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// certificate is the HTTPS listener's certificate. The listener takes it from get on every
// handshake, and reload rereads the files, so that a renewed certificate (certbot,
// cert-manager) is served without a restart. A pair that does not load keeps the one in use.
type certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]

	mu    sync.Mutex   // serialises reloads
	stamp [2]fileStamp // of certFile and keyFile when cur was loaded
}

// fileStamp is what tells a file's change without reading it.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}
}

// loadCertificate loads the pair; the error says which file failed.
func loadCertificate(certFile, keyFile string) (*certificate, error) {
	c := &certificate{certFile: certFile, keyFile: keyFile}
	if _, err := c.reload(true); err != nil {
		return nil, err
	}
	return c, nil
}

// get is the listener's tls.Config.GetCertificate.
func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

// reload rereads the pair when either file changed since the last load (always, with force),
// and reports whether the certificate in use changed. On an error the old one stays.
func (c *certificate) reload(force bool) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp := [2]fileStamp{stampOf(c.certFile), stampOf(c.keyFile)}
	if !force && stamp == c.stamp {
		return false, nil
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	c.stamp = stamp // a bad pair is reported once, not on every check
	if err != nil {
		return false, fmt.Errorf("load TLS certificate %s with key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cur.Store(&pair)
	return true, nil
}
