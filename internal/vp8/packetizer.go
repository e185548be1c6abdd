package vp8

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// descriptorLen is the size of the payload descriptor the Packetizer writes: X=1, then I=1,
// then a 15-bit picture id (as libwebrtc does, so that SFUs can rewrite it in place).
const descriptorLen = 4

// Packetizer splits encoded VP8 frames into RTP payloads (RFC 7741) of at most a given size,
// each with a payload descriptor carrying a 15-bit picture id that increments per frame. The
// first payload of a frame has S=1 (PID 0); the caller sets the RTP marker bit on the last.
type Packetizer struct {
	maxPayload int
	pictureID  uint16
}

// NewPacketizer makes a packetizer whose payloads are at most maxPayload bytes (the MTU less
// the RTP header and SRTP overhead, which are the caller's). The first picture id is random.
func NewPacketizer(maxPayload int) (*Packetizer, error) {
	if maxPayload <= descriptorLen || maxPayload > 1<<16 {
		return nil, fmt.Errorf("vp8: packetizer payload size %d out of range %d..%d", maxPayload, descriptorLen+1, 1<<16)
	}
	return &Packetizer{maxPayload: maxPayload, pictureID: uint16(rand.IntN(1 << 15))}, nil
}

// PictureID is the picture id the next frame will carry.
func (p *Packetizer) PictureID() uint16 { return p.pictureID }

// SetPictureID sets the picture id of the next frame (15 bits are kept).
func (p *Packetizer) SetPictureID(id uint16) { p.pictureID = id & 0x7fff }

// Packetize appends the payloads of frame to buf, one after another, and their slices to
// payloads, and returns both. The payloads share buf's array, so reuse the buffers across calls
// (buf[:0], payloads[:0]) to packetize without allocating. The payload sizes are balanced; the
// last payload is the one that gets the RTP marker bit. An empty frame gives no payloads and
// uses no picture id.
func (p *Packetizer) Packetize(buf []byte, payloads [][]byte, frame []byte) ([]byte, [][]byte) {
	if len(frame) == 0 {
		return buf, payloads
	}
	room := p.maxPayload - descriptorLen
	count := (len(frame) + room - 1) / room
	buf = slices.Grow(buf, len(frame)+count*descriptorLen)
	payloads = slices.Grow(payloads, count)
	size, extra := len(frame)/count, len(frame)%count
	id := p.pictureID
	for i := range count {
		n := size
		if i < extra {
			n++
		}
		start := len(buf)
		b0 := byte(0x80) // X
		if i == 0 {
			b0 |= 0x10 // S, PID 0
		}
		buf = append(buf, b0, 0x80, 0x80|byte(id>>8), byte(id))
		buf = append(buf, frame[:n]...)
		frame = frame[n:]
		payloads = append(payloads, buf[start:len(buf):len(buf)])
	}
	p.pictureID = (id + 1) & 0x7fff
	return buf, payloads
}
