package testpeer

import "math"

// Correlation returns the highest normalised correlation of want against a stretch of got, over
// every alignment, and the offset in got where want starts then. It searches a 4:1 decimated
// signal first and refines around the best coarse offsets, so that seconds of audio take
// milliseconds.
func Correlation(want, got []int16) (corr float64, lag int) {
	if len(want) == 0 || len(got) < len(want) {
		return 0, 0
	}
	const dec = 4
	w4, g4 := decimate(want, dec), decimate(got, dec)
	type cand struct {
		c   float64
		lag int
	}
	var best [4]cand // the best few coarse offsets
	for i := range best {
		best[i].c = -2
	}
	for l := 0; l+len(w4) <= len(g4); l++ {
		c := ncc(w4, g4[l:l+len(w4)])
		if c > best[len(best)-1].c {
			best[len(best)-1] = cand{c, l * dec}
			for i := len(best) - 1; i > 0 && best[i].c > best[i-1].c; i-- {
				best[i], best[i-1] = best[i-1], best[i]
			}
		}
	}
	corr, lag = -2, 0
	for _, b := range best {
		if b.c < -1 {
			continue
		}
		for l := max(0, b.lag-2*dec); l <= b.lag+2*dec && l+len(want) <= len(got); l++ {
			if c := ncc(want, got[l:l+len(want)]); c > corr {
				corr, lag = c, l
			}
		}
	}
	return corr, lag
}

// decimate averages every n samples.
func decimate(x []int16, n int) []float64 {
	out := make([]float64, len(x)/n)
	for i := range out {
		var s float64
		for _, v := range x[i*n : i*n+n] {
			s += float64(v)
		}
		out[i] = s / float64(n)
	}
	return out
}

// ncc is the normalised cross-correlation of two equal-length signals.
func ncc[T int16 | float64](a, b []T) float64 {
	var dot, ea, eb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		ea += x * x
		eb += y * y
	}
	if ea == 0 || eb == 0 {
		return 0
	}
	return dot / math.Sqrt(ea*eb)
}

// Tone fills pcm with frame n of a speech-like test signal: two partials (330 and 1210 Hz times
// pitch) under a slow loudness envelope, at amplitude (peak about amp).
func Tone(n int, pcm []int16, pitch, amp float64) {
	for k := range pcm {
		t := float64(n*len(pcm)+k) / 16000
		env := 0.55 + 0.45*math.Sin(2*math.Pi*t/0.7)
		v := env * amp * (0.67*math.Sin(2*math.Pi*330*pitch*t) + 0.33*math.Sin(2*math.Pi*1210*pitch*t))
		pcm[k] = int16(v)
	}
}
