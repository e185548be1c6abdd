package sfu

// rewriter maps the packets of a sequence of source streams onto one outgoing stream so that the
// receiver sees a single stream: contiguous sequence numbers, a timestamp that keeps advancing
// with wall-clock time across a source switch, and (for VP8) contiguous picture ids and
// TL0PICIDX. A source switch happens when a packet arrives from a different SSRC than the last
// one; the caller decides when that may happen (a video layer switches only at a key frame).
//
// A rewriter belongs to one sink and is used by one goroutine at a time.
type rewriter struct {
	clock    int64 // RTP clock rate, ticks per second
	started  bool
	src      uint32 // SSRC of the source being forwarded
	firstSeq uint16 // first input sequence number of the current source; older ones are dropped
	seqOff   uint16
	tsOff    uint32
	picOff   uint16
	tl0Off   uint8
	lastSeq  uint16 // highest output sequence number so far
	lastTS   uint32 // output timestamp that went with lastSeq
	lastAt   int64  // arrival time (ns) of the packet that set lastSeq
	lastPic  uint16 // output picture id of the newest picture
	lastTL0  uint8
	// picPending and tl0Pending: the next VP8 packet fixes picOff / tl0Off (after a switch).
	picPending, tl0Pending bool
	picSeen, tl0Seen       bool
}

// rewrite computes the output sequence number and timestamp of a packet of source ssrc with the
// given input sequence number and timestamp that arrived at now (nanoseconds, any epoch). drop is
// true for a packet older than the switch to its source.
func (r *rewriter) rewrite(ssrc uint32, seq uint16, ts uint32, now int64) (outSeq uint16, outTS uint32, drop bool) {
	switch {
	case !r.started:
		r.started = true
		r.src, r.firstSeq = ssrc, seq
		r.seqOff, r.tsOff = 0, 0
		r.picPending, r.tl0Pending = true, true
		r.lastSeq, r.lastTS, r.lastAt = seq, ts, now
		return seq, ts, false
	case ssrc != r.src:
		ticks := (now - r.lastAt) * r.clock / 1e9
		if ticks < 1 {
			ticks = 1
		}
		r.src, r.firstSeq = ssrc, seq
		r.seqOff = r.lastSeq + 1 - seq
		r.tsOff = r.lastTS + uint32(ticks) - ts
		r.picPending, r.tl0Pending = true, true
	case int16(seq-r.firstSeq) < 0:
		return 0, 0, true
	}
	outSeq, outTS = seq+r.seqOff, ts+r.tsOff
	if int16(outSeq-r.lastSeq) > 0 {
		r.lastSeq, r.lastTS, r.lastAt = outSeq, outTS, now
	}
	return outSeq, outTS, false
}

// rewriteVP8 rewrites the picture id and TL0PICIDX of a VP8 payload (a copy owned by the sink)
// after rewrite accepted its packet. The first packet after a source switch fixes the offsets so
// that the new source's first picture follows the last one forwarded.
func (r *rewriter) rewriteVP8(payload []byte, d vp8Descriptor) {
	if d.picIDOffset >= 0 {
		mask := uint16(0x7fff)
		if d.picIDBits == 7 {
			mask = 0x7f
		}
		if r.picPending {
			r.picPending = false
			if r.picSeen {
				r.picOff = r.lastPic + 1 - d.picID
			} else {
				r.picOff = 0
			}
		}
		out := (d.picID + r.picOff) & mask
		if diff := (out - r.lastPic) & mask; !r.picSeen || (diff != 0 && diff <= mask/2) {
			r.lastPic, r.picSeen = out, true
		}
		writePicID(payload, d, out)
	}
	if d.tl0Offset >= 0 {
		if r.tl0Pending {
			r.tl0Pending = false
			if r.tl0Seen {
				r.tl0Off = r.lastTL0 + 1 - d.tl0
			} else {
				r.tl0Off = 0
			}
		}
		out := d.tl0 + r.tl0Off
		if diff := out - r.lastTL0; !r.tl0Seen || (diff != 0 && diff <= 127) {
			r.lastTL0, r.tl0Seen = out, true
		}
		payload[d.tl0Offset] = out
	}
}
