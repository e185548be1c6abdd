package loadgen

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/opus"
	"github.com/switchboard-rtc/switchboard/media/wav"
)

// The sent audio carries a latency marker once a second: a loud 1 kHz burst of markerFrames
// frames at the start of the second, after at least markerQuiet of audio below the detection
// threshold. Everything else stays well below the threshold, so the first loud sample after a
// quiet stretch in the echoed audio is the marker's onset.
const (
	frameDuration    = 20 * time.Millisecond
	framesPerSecond  = 50
	markerFrames     = 3
	markerAmplitude  = 12000
	markerFreq       = 1000
	markerThreshold  = 4000
	markerQuiet      = 300 * time.Millisecond
	backgroundPeak   = 2500 // the generated tone's and a WAV file's peak, below markerThreshold
	backgroundFreq   = 220
	maxSignalSeconds = 60
	sampleRate       = opus.SampleRate
)

// ErrBadWAV is returned for a WAV file the load generator cannot send.
var ErrBadWAV = errors.New("loadgen: WAV file not usable")

// Packet is one pre-encoded 20 ms Opus frame of the signal.
type Packet struct {
	Payload []byte
	// Level is the frame's RFC 6464 audio level (dBov below full scale, 0..127) for the audio
	// level header extension.
	Level byte
	// Marker is true for the first frame of a latency marker burst.
	Marker bool
}

// Signal is the audio every call sends: a loop of pre-encoded Opus packets (encoded once,
// shared by all calls), a whole number of seconds long, with a marker burst at the start of
// every second.
type Signal struct {
	Packets []Packet
	// CodecDelay is where the marker's onset appears after one Opus encode and decode of the
	// signal: the participant's encoding (these packets), decoded.
	CodecDelay time.Duration
	// PathCodecDelay is where it appears after the echo path's two passes: these packets
	// decoded, encoded again as the bot SDK encodes by default (Opus's low-delay mode at
	// complexity 0) and decoded. Every round trip figure includes it.
	PathCodecDelay time.Duration
}

// GenerateSignal makes seconds of a quiet tone with the markers.
func GenerateSignal(seconds int) (*Signal, error) {
	seconds = min(max(seconds, 1), maxSignalSeconds)
	pcm := make([]int16, seconds*sampleRate)
	for i := range pcm {
		pcm[i] = int16(backgroundPeak * math.Sin(2*math.Pi*backgroundFreq*float64(i)/sampleRate))
	}
	return encodeSignal(pcm)
}

// LoadWAVSignal reads a 16 kHz WAV file (mono, or the first channel of several), scales it so
// that its peak stays below the marker threshold, and adds the markers, each after a quiet gap.
// At most a minute is used; the loop is a whole number of seconds.
func LoadWAVSignal(path string) (*Signal, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("loadgen: open WAV %s: %w", path, err)
	}
	defer f.Close()
	r, err := wav.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("loadgen: WAV %s: %w", path, err)
	}
	fm := r.Format()
	if fm.SampleRate != sampleRate {
		return nil, fmt.Errorf("loadgen: WAV %s is %d Hz, want %d Hz: %w", path, fm.SampleRate, sampleRate, ErrBadWAV)
	}
	ch := fm.Channels
	buf := make([]int16, 4096*ch)
	var pcm []int16
	for len(pcm) < maxSignalSeconds*sampleRate {
		n, err := r.Read(buf)
		for i := 0; i+ch <= n; i += ch {
			pcm = append(pcm, buf[i])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("loadgen: read WAV %s: %w", path, err)
		}
	}
	seconds := len(pcm) / sampleRate
	if seconds < 1 {
		return nil, fmt.Errorf("loadgen: WAV %s has %d samples, want at least a second: %w", path, len(pcm), ErrBadWAV)
	}
	pcm = pcm[:seconds*sampleRate]
	peak := 1
	for _, v := range pcm {
		peak = max(peak, abs(int(v)))
	}
	if peak > backgroundPeak {
		for i, v := range pcm {
			pcm[i] = int16(int(v) * backgroundPeak / peak)
		}
	}
	return encodeSignal(pcm)
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// encodeSignal puts the markers into pcm (a whole number of seconds) and encodes it.
func encodeSignal(pcm []int16) (*Signal, error) {
	quiet := int(markerQuiet * sampleRate / time.Second)
	burst := markerFrames * opus.FrameSamples
	for s := 0; s < len(pcm); s += sampleRate {
		for i := 0; i < burst; i++ {
			// A raised-cosine ramp over the first and last 2 ms keeps the burst's spectrum narrow.
			g := 1.0
			if ramp := sampleRate / 500; i < ramp {
				g = 0.5 - 0.5*math.Cos(math.Pi*float64(i)/float64(ramp))
			} else if j := burst - 1 - i; j < ramp {
				g = 0.5 - 0.5*math.Cos(math.Pi*float64(j)/float64(ramp))
			}
			pcm[s+i] = int16(g * markerAmplitude * math.Sin(2*math.Pi*markerFreq*float64(i)/sampleRate))
		}
		// The quiet gap before the next burst (for the first one: the end of the loop).
		for i := s + sampleRate - quiet; i < s+sampleRate; i++ {
			pcm[i] /= 8
		}
	}
	enc, err := opus.NewEncoder(opus.EncoderConfig{Bitrate: 32000, FEC: true, PacketLossPercent: 5})
	if err != nil {
		return nil, fmt.Errorf("loadgen: signal encoder: %w", err)
	}
	defer enc.Close()
	out := make([]byte, opus.MaxPacketSize)
	frames := len(pcm) / opus.FrameSamples
	sig := &Signal{Packets: make([]Packet, frames)}
	// Encode the loop twice so that the kept packets start from a warmed-up encoder state that
	// matches the end of the loop (no discontinuity where the loop wraps).
	for pass := 0; pass < 2; pass++ {
		for f := 0; f < frames; f++ {
			frame := pcm[f*opus.FrameSamples : (f+1)*opus.FrameSamples]
			n, err := enc.Encode(frame, out)
			if err != nil {
				return nil, fmt.Errorf("loadgen: encode signal frame %d: %w", f, err)
			}
			if pass == 1 {
				sig.Packets[f] = Packet{
					Payload: append([]byte(nil), out[:n]...),
					Level:   audioLevel(frame),
					Marker:  f%framesPerSecond == 0,
				}
			}
		}
	}
	if sig.CodecDelay, err = sig.calibrate(false); err != nil {
		return nil, err
	}
	if sig.PathCodecDelay, err = sig.calibrate(true); err != nil {
		return nil, err
	}
	return sig, nil
}

// audioLevel is the RFC 6464 level of a frame: -dBov of its RMS, 0 (loud) to 127 (silent).
func audioLevel(pcm []int16) byte {
	var sum float64
	for _, v := range pcm {
		sum += float64(v) * float64(v)
	}
	rms := math.Sqrt(sum/float64(len(pcm))) / 32768
	if rms <= 0 {
		return 127
	}
	db := -20 * math.Log10(rms)
	return byte(min(max(db, 0), 127))
}

// calibrate decodes the signal twice around and finds the marker onsets: their position after
// the frame start is the codec's delay. With botPass, each decoded frame is first encoded again
// as the bot SDK does by default (low-delay mode, complexity 0), as on the echo path.
func (s *Signal) calibrate(botPass bool) (time.Duration, error) {
	d, err := NewDetector()
	if err != nil {
		return 0, err
	}
	defer d.Close()
	var (
		dec *opus.Decoder
		enc *opus.Encoder
		pcm = make([]int16, opus.MaxFrameSamples)
		out = make([]byte, opus.MaxPacketSize)
	)
	if botPass {
		if dec, err = opus.NewDecoder(); err != nil {
			return 0, fmt.Errorf("loadgen: calibrate: %w", err)
		}
		defer dec.Close()
		if enc, err = opus.NewEncoder(opus.EncoderConfig{Bitrate: 32000, Application: opus.AppRestrictedLowDelay}); err == nil {
			err = enc.SetComplexity(0)
		}
		if err != nil {
			return 0, fmt.Errorf("loadgen: calibrate: bot's encoder: %w", err)
		}
		defer enc.Close()
	}
	var delays []time.Duration
	base := time.Unix(0, 0)
	for i := 0; i < 2*len(s.Packets); i++ {
		at := base.Add(time.Duration(i) * frameDuration)
		payload := s.Packets[i%len(s.Packets)].Payload
		if botPass {
			n, err := dec.Decode(payload, pcm)
			if err != nil {
				return 0, fmt.Errorf("loadgen: calibrate: decode frame %d: %w", i, err)
			}
			m, err := enc.Encode(pcm[:n], out)
			if err != nil {
				return 0, fmt.Errorf("loadgen: calibrate: encode frame %d: %w", i, err)
			}
			payload = out[:m]
		}
		if onset, ok := d.Frame(payload, at); ok && i >= len(s.Packets) {
			sent := base.Add(time.Duration(i-i%framesPerSecond) * frameDuration)
			delays = append(delays, onset.Sub(sent))
		}
	}
	if len(delays) == 0 {
		return 0, errors.New("loadgen: marker not found in the decoded signal")
	}
	return delays[len(delays)/2], nil
}

// Detector finds marker onsets in a stream of Opus packets: it decodes them and reports the
// first sample above the threshold after at least markerQuiet below it. One Detector follows
// one stream; it is not safe for concurrent use.
type Detector struct {
	dec   *opus.Decoder
	pcm   []int16
	quiet int // samples below the threshold so far
}

// NewDetector makes a detector with its own Opus decoder.
func NewDetector() (*Detector, error) {
	dec, err := opus.NewDecoder()
	if err != nil {
		return nil, fmt.Errorf("loadgen: marker detector: %w", err)
	}
	return &Detector{dec: dec, pcm: make([]int16, opus.MaxFrameSamples)}, nil
}

// Frame decodes one packet that arrived at time at. When a marker starts in it, it returns the
// onset's time: at plus the onset's offset in the frame.
func (d *Detector) Frame(payload []byte, at time.Time) (onset time.Time, found bool) {
	n, err := d.dec.Decode(payload, d.pcm)
	if err != nil {
		return onset, false
	}
	need := int(markerQuiet * sampleRate / time.Second)
	for i, v := range d.pcm[:n] {
		if v < markerThreshold && v > -markerThreshold {
			d.quiet++
			continue
		}
		if d.quiet >= need && !found {
			onset, found = at.Add(time.Duration(i)*time.Second/sampleRate), true
		}
		d.quiet = 0
	}
	return onset, found
}

// Close frees the decoder.
func (d *Detector) Close() { d.dec.Close() }
