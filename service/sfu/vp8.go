package sfu

// vp8Descriptor is what the forwarding path needs from the VP8 payload descriptor (RFC 7741
// section 4.2) at the start of an RTP payload: where the picture id and TL0PICIDX sit (so that
// they can be rewritten in place), whether the packet starts a frame, and whether that frame is a
// key frame.
type vp8Descriptor struct {
	picIDOffset int // byte offset of the picture id, or -1 when absent
	picIDBits   int // 7 or 15
	picID       uint16
	tl0Offset   int // byte offset of TL0PICIDX, or -1 when absent
	tl0         uint8
	start       bool // S bit set and partition index 0: the first packet of a frame
	keyFrame    bool // start && the VP8 payload header's P bit is 0
	headerLen   int  // length of the descriptor
}

// parseVP8 reads the payload descriptor of p. ok is false when p is too short for what its
// own bits announce.
func parseVP8(p []byte) (d vp8Descriptor, ok bool) {
	d.picIDOffset, d.tl0Offset = -1, -1
	if len(p) < 1 {
		return d, false
	}
	x := p[0]&0x80 != 0
	s := p[0]&0x10 != 0
	pid := p[0] & 0x07
	i := 1
	if x {
		if len(p) < 2 {
			return d, false
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: picture id
			if len(p) < i+1 {
				return d, false
			}
			d.picIDOffset = i
			if p[i]&0x80 != 0 { // M: 15 bits
				if len(p) < i+2 {
					return d, false
				}
				d.picIDBits = 15
				d.picID = uint16(p[i]&0x7f)<<8 | uint16(p[i+1])
				i += 2
			} else {
				d.picIDBits = 7
				d.picID = uint16(p[i])
				i++
			}
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			if len(p) < i+1 {
				return d, false
			}
			d.tl0Offset = i
			d.tl0 = p[i]
			i++
		}
		if ext&0x30 != 0 { // T or K: TID/Y/KEYIDX byte
			if len(p) < i+1 {
				return d, false
			}
			i++
		}
	}
	d.headerLen = i
	d.start = s && pid == 0
	if d.start && len(p) > i {
		d.keyFrame = p[i]&0x01 == 0
	}
	return d, true
}

// vp8KeyFrameSize reads the picture size from the first packet of a VP8 key frame (RFC 6386
// section 9.1: a 3-byte frame tag, the start code 9d 01 2a, then 14-bit width and height).
// ok is false when payload is not such a packet.
func vp8KeyFrameSize(payload []byte, d vp8Descriptor) (width, height int, ok bool) {
	if !d.keyFrame {
		return 0, 0, false
	}
	b := payload[d.headerLen:]
	if len(b) < 10 || b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
		return 0, 0, false
	}
	width = int(uint16(b[6])|uint16(b[7])<<8) & 0x3fff
	height = int(uint16(b[8])|uint16(b[9])<<8) & 0x3fff
	return width, height, width > 0 && height > 0
}

// writePicID stores id at the descriptor's picture id field of p, in the field's own width.
func writePicID(p []byte, d vp8Descriptor, id uint16) {
	if d.picIDOffset < 0 {
		return
	}
	if d.picIDBits == 15 {
		p[d.picIDOffset] = 0x80 | byte(id>>8)&0x7f
		p[d.picIDOffset+1] = byte(id)
		return
	}
	p[d.picIDOffset] = byte(id) & 0x7f
}
