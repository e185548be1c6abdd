package opus

import (
	"math"
	"testing"
)

// Signal helpers shared by the tests and benchmarks.

// tones returns n samples at SampleRate of the sum of sines at freqs (Hz),
// each with amplitude amp (full scale 32767).
func tones(n int, amp float64, freqs ...float64) []int16 {
	pcm := make([]int16, n)
	for i := range pcm {
		var v float64
		for _, f := range freqs {
			v += amp * math.Sin(2*math.Pi*f*float64(i)/SampleRate)
		}
		pcm[i] = clip16(v)
	}
	return pcm
}

// speechLike returns n samples of a voiced, speech-like signal: a harmonic
// series on a gliding pitch, shaped by a syllable-rate envelope, so that
// the SILK voice activity detector keeps classifying it as speech.
func speechLike(n int) []int16 {
	pcm := make([]int16, n)
	var phase float64
	for i := range pcm {
		t := float64(i) / SampleRate
		f0 := 140 + 40*math.Sin(2*math.Pi*1.3*t)
		phase += 2 * math.Pi * f0 / SampleRate
		env := 0.55 + 0.45*math.Sin(2*math.Pi*3.7*t)
		var v float64
		for h := 1; h <= 12; h++ {
			// formant-ish weighting: strong around 500 Hz and 1500 Hz
			fh := f0 * float64(h)
			w := 1/(1+math.Pow((fh-500)/300, 2)) + 0.6/(1+math.Pow((fh-1500)/400, 2)) + 0.05
			v += w * math.Sin(float64(h)*phase)
		}
		pcm[i] = clip16(3500 * env * v)
	}
	return pcm
}

func clip16(v float64) int16 {
	return int16(max(-32768, min(32767, math.Round(v))))
}

func rms(x []int16) float64 {
	if len(x) == 0 {
		return 0
	}
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(x)))
}

// snr returns the signal-to-noise ratio in dB of got against want, sample by
// sample (both the same length).
func snr(want, got []int16) float64 {
	var sig, noise float64
	for i := range want {
		w, g := float64(want[i]), float64(got[i])
		sig += w * w
		noise += (w - g) * (w - g)
	}
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(sig/noise)
}

// delay returns the lag in 0..maxLag (samples) at which out best matches in,
// by normalised cross-correlation over a fixed window: out[i+lag] ≈ in[i].
// Pass both signals from their start, so that the onset (silence before the
// codec's first output) rules out lags a whole period away for periodic input.
func delay(in, out []int16, maxLag int) int {
	n := min(len(in), len(out)-maxLag)
	best, bestLag := math.Inf(-1), 0
	for lag := 0; lag <= maxLag; lag++ {
		var xy, yy float64
		for i := range n {
			x, y := float64(in[i]), float64(out[i+lag])
			xy += x * y
			yy += y * y
		}
		if yy == 0 {
			continue
		}
		if c := xy / math.Sqrt(yy); c > best {
			best, bestLag = c, lag
		}
	}
	return bestLag
}

// alignedSNR finds the codec delay of out against in by cross-correlation
// and returns it with the SNR of the aligned signals, skipping the first
// skip input samples (the codec's start-up).
func alignedSNR(in, out []int16, skip int) (lag int, db float64) {
	lag = delay(in, out, 800)
	n := min(len(in), len(out)-lag)
	return lag, snr(in[skip:n], out[skip+lag:n+lag])
}

// encodeAll encodes pcm frame by frame (len(pcm) a multiple of FrameSamples)
// and returns the packets.
func encodeAll(t testing.TB, e *Encoder, pcm []int16) [][]byte {
	t.Helper()
	var pkts [][]byte
	out := make([]byte, MaxPacketSize)
	for i := 0; i+FrameSamples <= len(pcm); i += FrameSamples {
		n, err := e.Encode(pcm[i:i+FrameSamples], out)
		if err != nil {
			t.Fatalf("encode frame %d: %v", i/FrameSamples, err)
		}
		pkts = append(pkts, append([]byte(nil), out[:n]...))
	}
	return pkts
}

// decodeAll decodes every packet with a fresh decoder and returns the PCM.
func decodeAll(t testing.TB, pkts [][]byte) []int16 {
	t.Helper()
	d := newDecoder(t)
	pcm := make([]int16, 0, len(pkts)*FrameSamples)
	buf := make([]int16, MaxFrameSamples)
	for i, p := range pkts {
		n, err := d.Decode(p, buf)
		if err != nil {
			t.Fatalf("decode packet %d (%d bytes): %v", i, len(p), err)
		}
		pcm = append(pcm, buf[:n]...)
	}
	return pcm
}

func newEncoder(t testing.TB, cfg EncoderConfig) *Encoder {
	t.Helper()
	e, err := NewEncoder(cfg)
	if err != nil {
		t.Fatalf("NewEncoder(%+v): %v", cfg, err)
	}
	t.Cleanup(e.Close)
	return e
}

func newDecoder(t testing.TB) *Decoder {
	t.Helper()
	d, err := NewDecoder()
	if err != nil {
		t.Fatalf("NewDecoder: %v", err)
	}
	t.Cleanup(d.Close)
	return d
}
