package leg

import "encoding/binary"

// RTCP packet types and feedback formats the bot leg reads (RFC 3550, 4585, 5104, REMB draft).
const (
	rtcpSR    = 200
	rtcpRR    = 201
	rtcpRTPFB = 205
	rtcpPSFB  = 206

	fmtNACK = 1  // RTPFB
	fmtPLI  = 1  // PSFB
	fmtFIR  = 4  // PSFB
	fmtAFB  = 15 // PSFB: application layer feedback (REMB)
)

// RTCPVisitor gets what WalkRTCP finds, stream by stream (ssrc: the media SSRC the feedback is
// about, one of the streams the receiver of the RTCP sends).
type RTCPVisitor interface {
	KeyFrame(ssrc uint32)              // PLI or FIR
	Estimate(ssrc uint32, bps uint64)  // REMB, once per SSRC it names
	Loss(ssrc uint32, fraction uint8)  // a report block of an SR or RR
	NACK(ssrc uint32, pid, blp uint16) // an entry of a generic NACK: packet pid and the 16 after it whose bits blp sets
}

// WalkRTCP reads a compound RTCP packet (a leg's OnRTCP buffer) without allocating and tells v
// what it carries. It stops at the first malformed packet and reports false (what came before
// it was told).
func WalkRTCP(b []byte, v RTCPVisitor) bool {
	if len(b) == 0 {
		return false
	}
	for len(b) > 0 {
		if len(b) < 4 || b[0]>>6 != 2 {
			return false
		}
		n := (int(binary.BigEndian.Uint16(b[2:])) + 1) * 4
		if n > len(b) {
			return false
		}
		pkt := b[:n]
		b = b[n:]
		count := int(pkt[0] & 0x1f)
		if pkt[0]&0x20 != 0 { // padding: its last byte says how much
			pad := int(pkt[n-1])
			if pad == 0 || pad > n-4 {
				return false
			}
			pkt = pkt[:n-pad]
		}
		switch pkt[1] {
		case rtcpSR, rtcpRR:
			off := 8
			if pkt[1] == rtcpSR {
				off = 28
			}
			if off+24*count > len(pkt) {
				return false
			}
			for i := range count {
				blk := pkt[off+24*i:]
				v.Loss(binary.BigEndian.Uint32(blk), blk[4])
			}
		case rtcpRTPFB:
			if count == fmtNACK {
				if len(pkt) < 16 {
					return false
				}
				media := binary.BigEndian.Uint32(pkt[8:])
				for fci := pkt[12:]; len(fci) >= 4; fci = fci[4:] {
					v.NACK(media, binary.BigEndian.Uint16(fci), binary.BigEndian.Uint16(fci[2:]))
				}
			}
		case rtcpPSFB:
			if len(pkt) < 12 {
				return false
			}
			switch count {
			case fmtPLI:
				v.KeyFrame(binary.BigEndian.Uint32(pkt[8:]))
			case fmtFIR:
				fci := pkt[12:]
				if len(fci)%8 != 0 {
					return false
				}
				for ; len(fci) >= 8; fci = fci[8:] {
					v.KeyFrame(binary.BigEndian.Uint32(fci))
				}
			case fmtAFB:
				// REMB: "REMB", the SSRC count, 6 bits of exponent and 18 of mantissa, the SSRCs.
				fci := pkt[12:]
				if len(fci) < 8 || string(fci[:4]) != "REMB" {
					continue // another application's feedback
				}
				ssrcs := int(fci[4])
				if 8+4*ssrcs > len(fci) {
					return false
				}
				exp := fci[5] >> 2
				mantissa := uint64(fci[5]&3)<<16 | uint64(fci[6])<<8 | uint64(fci[7])
				bps := mantissa << exp
				if exp > 46 { // saturate: no link is faster than 2^64 bit/s anyway
					bps = 1<<64 - 1
				}
				for i := range ssrcs {
					v.Estimate(binary.BigEndian.Uint32(fci[8+4*i:]), bps)
				}
			}
		}
	}
	return true
}

// PLI writes a picture loss indication (RFC 4585 6.3.1) from senderSSRC about mediaSSRC into b
// and returns it, ready for WriteRTCP.
func PLI(b *[12]byte, senderSSRC, mediaSSRC uint32) []byte {
	b[0], b[1], b[2], b[3] = 0x80|fmtPLI, rtcpPSFB, 0, 2 // V=2, FMT=1, PT=206, 2 words after the first
	binary.BigEndian.PutUint32(b[4:], senderSSRC)
	binary.BigEndian.PutUint32(b[8:], mediaSSRC)
	return b[:]
}
