package leg

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

// NewCredentials returns fresh ICE credentials for a leg: a ufrag of 16 and a password of 32
// random letters (RFC 8445 asks for at least 24 and 128 bits of randomness; these carry about
// 91 and 182).
func NewCredentials() (ufrag, pwd string, err error) {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var b [16 + 32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("leg: ICE credentials: %w", err)
	}
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b[:16]), string(b[16:]), nil
}

// NewSSRC returns a random SSRC that is not 0 and that taken (nil: none) does not report taken.
func NewSSRC(taken func(uint32) bool) (uint32, error) {
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("leg: random SSRC: %w", err)
		}
		if s := binary.BigEndian.Uint32(b[:]); s != 0 && (taken == nil || !taken(s)) {
			return s, nil
		}
	}
}
