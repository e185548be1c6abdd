package jitter

// packetTicks returns the duration of an Opus packet in 48 kHz ticks from
// its table of contents (RFC 6716, section 3.1), or 0 when the payload is
// too short or the duration is not one Opus allows (at most 120 ms).
// It reads at most two bytes and never decodes audio.
func packetTicks(p []byte) int64 {
	if len(p) == 0 {
		return 0
	}
	toc := p[0]
	config := toc >> 3
	var frame int64 // one frame, in 48 kHz ticks
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		frame = [4]int64{480, 960, 1920, 2880}[config&3]
	case config < 16: // hybrid: 10, 20 ms
		frame = [2]int64{480, 960}[config&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = [4]int64{120, 240, 480, 960}[config&3]
	}
	var frames int64
	switch toc & 3 {
	case 0:
		frames = 1
	case 1, 2:
		frames = 2
	default:
		if len(p) < 2 {
			return 0
		}
		frames = int64(p[1] & 0x3f)
	}
	d := frame * frames
	if d <= 0 || d > maxPacketTicks {
		return 0
	}
	return d
}
