package vp8

// Descriptor is the VP8 payload descriptor at the head of every VP8 RTP payload
// (RFC 7741 §4.2). Only the fields this package uses are kept.
type Descriptor struct {
	Start     bool  // S: the payload begins a VP8 partition
	Partition uint8 // PID: index of that partition
	// PictureID is the 7- or 15-bit picture id, or -1 when the descriptor carries none.
	PictureID int32
	// Len is the descriptor's length in bytes: the VP8 data starts at payload[Len].
	Len int
}

// FrameStart reports whether the payload begins a frame (S=1 and PID=0).
func (d Descriptor) FrameStart() bool { return d.Start && d.Partition == 0 }

// ParseDescriptor reads the payload descriptor of a VP8 RTP payload. ok is false when the
// payload is shorter than the descriptor it announces.
func ParseDescriptor(payload []byte) (d Descriptor, ok bool) {
	d.PictureID = -1
	if len(payload) < 1 {
		return d, false
	}
	b := payload[0]
	d.Start = b&0x10 != 0
	d.Partition = b & 0x07
	n := 1
	if b&0x80 == 0 { // X: no extension
		d.Len = n
		return d, true
	}
	if len(payload) < n+1 {
		return d, false
	}
	x := payload[n]
	n++
	if x&0x80 != 0 { // I: picture id
		if len(payload) < n+1 {
			return d, false
		}
		if payload[n]&0x80 != 0 { // M: 15 bits
			if len(payload) < n+2 {
				return d, false
			}
			d.PictureID = int32(payload[n]&0x7f)<<8 | int32(payload[n+1])
			n += 2
		} else {
			d.PictureID = int32(payload[n])
			n++
		}
	}
	if x&0x40 != 0 { // L: TL0PICIDX
		n++
	}
	if x&0x30 != 0 { // T or K: TID/Y/KEYIDX byte
		n++
	}
	if len(payload) < n {
		return d, false
	}
	d.Len = n
	return d, true
}
