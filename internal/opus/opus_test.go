package opus

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The measuring tools must be able to tell a good signal from a bad one,
// or the SNR bars below prove nothing.
func TestMeasurementSanity(t *testing.T) {
	sig := tones(SampleRate, 4000, 300, 440, 1000, 2500)
	shifted := append(make([]int16, 57), sig...)
	if got := delay(sig, shifted, 800); got != 57 {
		t.Errorf("delay of a signal shifted by 57 samples = %d", got)
	}
	if lag, db := alignedSNR(sig, shifted, 1600); lag != 57 || !math.IsInf(db, 1) {
		t.Errorf("alignedSNR of a pure shift = %d, %.1f dB; want 57, +Inf", lag, db)
	}
	// Misaligned by half a period of 440 Hz, a pure tone is far below any bar.
	tone := tones(SampleRate, 8000, 440)
	if db := snr(tone[100:8100], tone[118:8118]); db > 0 {
		t.Errorf("SNR of a tone against itself half a period off = %.1f dB, want < 0", db)
	}
	noise := make([]int16, SampleRate)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = int16(r.IntN(16001) - 8000)
	}
	if _, db := alignedSNR(tone, noise, 1600); db > 3 {
		t.Errorf("SNR of noise against a tone = %.1f dB, want < 3", db)
	}
}

func TestRoundTripSNR(t *testing.T) {
	tone := tones(2*SampleRate, 8000, 440)
	sum := tones(2*SampleRate, 4000, 300, 440, 1000, 2500)
	for _, tc := range []struct {
		name    string
		pcm     []int16
		cfg     EncoderConfig
		minSNR  float64
		wantLag bool // the signal is broadband enough for the lag to equal the encoder's lookahead
	}{
		{"440Hz voip 24k", tone, EncoderConfig{}, 20, false},
		{"440Hz voip 16k complexity 10", tone, EncoderConfig{Bitrate: 16000, Complexity: 10}, 20, false},
		{"440Hz audio 32k", tone, EncoderConfig{Bitrate: 32000, Application: AppAudio}, 20, false},
		{"tones audio 48k", sum, EncoderConfig{Bitrate: 48000, Application: AppAudio}, 20, true},
		{"tones restricted-lowdelay 48k", sum, EncoderConfig{Bitrate: 48000, Application: AppRestrictedLowDelay}, 20, true},
		// SILK (the VoIP mode) high-passes its input with a cutoff that
		// follows the pitch, which turns the phase of low tones by a
		// different amount each; no single delay aligns them all, so the
		// waveform SNR of a chord stays near 13 dB however high the bit rate.
		{"tones voip 32k", sum, EncoderConfig{Bitrate: 32000}, 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEncoder(t, tc.cfg)
			out := decodeAll(t, encodeAll(t, e, tc.pcm))
			if len(out) != len(tc.pcm) {
				t.Fatalf("decoded %d samples from %d", len(out), len(tc.pcm))
			}
			lag, db := alignedSNR(tc.pcm, out, SampleRate/10)
			t.Logf("delay %d samples (for a pure tone, only modulo its period), SNR %.1f dB", lag, db)
			if db < tc.minSNR {
				t.Errorf("SNR %.1f dB after aligning by %d samples, want >= %.0f", db, lag, tc.minSNR)
			}
			if tc.wantLag {
				la, err := e.Lookahead()
				if err != nil {
					t.Fatal(err)
				}
				if lag != la {
					t.Errorf("codec delay by cross-correlation = %d samples, encoder lookahead = %d", lag, la)
				}
			}
		})
	}
}

func TestPLC(t *testing.T) {
	const lost = 50 // frame index, in the middle of 2 s
	tone := tones(2*SampleRate, 8000, 440)
	toneRMS := rms(tone[lost*FrameSamples : (lost+1)*FrameSamples])
	for _, tc := range []struct {
		name     string
		app      Application
		min, max float64 // bounds of the concealed frame's RMS relative to the tone's
	}{
		// SILK's concealment of a pure tone fades within the frame: about
		// -8 dB over the whole frame, -3 dB over its first 5 ms.
		{"voip", AppVoIP, 0.3, 1.5},
		// CELT's concealment holds the level of a steady tone.
		{"audio", AppAudio, 0.7, 1.4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkts := encodeAll(t, newEncoder(t, EncoderConfig{Application: tc.app}), tone)
			d := newDecoder(t)
			pcm := make([]int16, FrameSamples)
			for i, p := range pkts {
				if i != lost {
					if _, err := d.Decode(p, pcm); err != nil {
						t.Fatalf("decode packet %d: %v", i, err)
					}
					continue
				}
				n, err := d.DecodePLC(pcm)
				if err != nil || n != FrameSamples {
					t.Fatalf("DecodePLC = %d, %v; want %d, nil", n, err, FrameSamples)
				}
				ratio := rms(pcm) / toneRMS
				t.Logf("concealed frame RMS %.0f, tone %.0f (%.1f dB)", rms(pcm), toneRMS, 20*math.Log10(ratio))
				if ratio < tc.min || ratio > tc.max {
					t.Errorf("concealed frame RMS is %.2f of the tone's, want %.2f..%.2f", ratio, tc.min, tc.max)
				}
			}
		})
	}
}

// lossSNR decodes pkts up to frame k-1, recovers the lost frame k with
// DecodeFEC(pkts[k+1]) or DecodePLC, and returns the SNR of the recovered
// frame against the input (aligned by the codec delay lag).
func lossSNR(t *testing.T, in []int16, pkts [][]byte, k, lag int, fec bool) float64 {
	t.Helper()
	d := newDecoder(t)
	pcm := make([]int16, FrameSamples)
	for i := range k {
		if _, err := d.Decode(pkts[i], pcm); err != nil {
			t.Fatalf("decode packet %d: %v", i, err)
		}
	}
	var n int
	var err error
	if fec {
		n, err = d.DecodeFEC(pkts[k+1], pcm)
	} else {
		n, err = d.DecodePLC(pcm)
	}
	if err != nil || n != FrameSamples {
		t.Fatalf("recover frame %d (fec %v) = %d, %v", k, fec, n, err)
	}
	start := k*FrameSamples - lag
	return snr(in[start:start+FrameSamples], pcm)
}

func TestFEC(t *testing.T) {
	// SILK only adds FEC (LBRR) data to frames its voice activity detector
	// takes for speech, so the input is speech-like rather than a steady tone.
	in := speechLike(2 * SampleRate)
	cfg := EncoderConfig{Bitrate: 32000, FEC: true, PacketLossPercent: 20}
	pkts := encodeAll(t, newEncoder(t, cfg), in)
	lag, _ := alignedSNR(in, decodeAll(t, pkts), SampleRate/10)

	var fecSum, plcSum float64
	var count int
	for k := 20; k < len(pkts)-1; k += 7 {
		fec := lossSNR(t, in, pkts, k, lag, true)
		plc := lossSNR(t, in, pkts, k, lag, false)
		fecSum += fec
		plcSum += plc
		count++
	}
	fec, plc := fecSum/float64(count), plcSum/float64(count)
	t.Logf("lost frame recovered over %d losses: FEC mean SNR %.1f dB, PLC %.1f dB", count, fec, plc)
	if fec < plc+5 {
		t.Errorf("FEC mean SNR %.1f dB is not clearly above PLC's %.1f dB", fec, plc)
	}
	if fec < 6 {
		t.Errorf("FEC mean SNR %.1f dB, want >= 6", fec)
	}
}

// Without FEC data in the next packet, DecodeFEC conceals exactly as
// DecodePLC does.
func TestFECFallsBackToPLC(t *testing.T) {
	in := speechLike(SampleRate)
	pkts := encodeAll(t, newEncoder(t, EncoderConfig{Bitrate: 32000}), in)
	const k = 25
	a, b := newDecoder(t), newDecoder(t)
	pa, pb := make([]int16, FrameSamples), make([]int16, FrameSamples)
	for i := range k {
		if _, err := a.Decode(pkts[i], pa); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Decode(pkts[i], pb); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.DecodeFEC(pkts[k+1], pa); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DecodePLC(pb); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pa, pb) {
		t.Error("DecodeFEC of a packet without FEC data differs from DecodePLC")
	}
	if rms(pa) == 0 {
		t.Error("concealment is silent")
	}
}

// With DTX on, libopus 1.3.1 keeps sending normal packets for the first
// 200 ms of silence, then 1-byte packets (only the table of contents: no
// audio, need not be sent), except one small comfort-noise update packet
// about every 400 ms.
func TestDTX(t *testing.T) {
	pcm := make([]int16, 6*SampleRate) // 1 s of tone, then 5 s of digital silence
	copy(pcm, tones(SampleRate, 8000, 440))
	silence := 5 * SampleRate / FrameSamples
	for _, dtx := range []bool{false, true} {
		pkts := encodeAll(t, newEncoder(t, EncoderConfig{DTX: dtx}), pcm)
		var sent, bytes int
		for _, p := range pkts[len(pkts)-silence:] {
			if len(p) > DTXPacketMax {
				sent++
				bytes += len(p)
			}
		}
		t.Logf("DTX %v: %d of %d silent frames need sending, %d bytes", dtx, sent, silence, bytes)
		if !dtx && sent != silence {
			t.Errorf("without DTX, %d of %d silent frames need sending, want all", sent, silence)
		}
		if dtx && sent > silence/10 {
			t.Errorf("with DTX, %d of %d silent frames need sending, want <= %d", sent, silence, silence/10)
		}
		// The receiver decodes DTX packets like any other (as concealment).
		d := newDecoder(t)
		out := make([]int16, FrameSamples)
		for i, p := range pkts {
			if n, err := d.Decode(p, out); err != nil || n != FrameSamples {
				t.Fatalf("decode packet %d (%d bytes) = %d, %v", i, len(p), n, err)
			}
		}
	}
}

// realPackets returns encoded packets of several modes and durations, for
// hostile-input tests and fuzz seeds.
func realPackets(t testing.TB) [][]byte {
	t.Helper()
	in := speechLike(SampleRate)
	var pkts [][]byte
	out := make([]byte, MaxPacketSize)
	for _, cfg := range []EncoderConfig{
		{},
		{Bitrate: 32000, FEC: true, PacketLossPercent: 20},
		{Bitrate: 64000, Application: AppAudio},
		{Bitrate: 12000, Application: AppRestrictedLowDelay},
		{DTX: true},
	} {
		e := newEncoder(t, cfg)
		for _, frame := range []int{FrameSamples, 2 * FrameSamples, 3 * FrameSamples, 6 * FrameSamples} {
			for i := 0; i < 3; i++ {
				n, err := e.Encode(in[i*frame:(i+1)*frame], out)
				if err != nil {
					t.Fatalf("encode %d samples with %+v: %v", frame, cfg, err)
				}
				pkts = append(pkts, slices.Clone(out[:n]))
			}
		}
	}
	return pkts
}

// checkDecodeConsistent decodes packet every way and checks the results
// agree with each other; it is shared by the hostile-input table and the
// fuzz target.
func checkDecodeConsistent(t *testing.T, d *Decoder, packet []byte) (decodeErr error) {
	t.Helper()
	pcm := make([]int16, MaxFrameSamples)
	n, err := d.Decode(packet, pcm)
	samples, perr := PacketSamples(packet)
	if err == nil {
		if n <= 0 || n > MaxFrameSamples {
			t.Fatalf("Decode of %x = %d samples", packet, n)
		}
		if perr != nil || samples != n {
			t.Fatalf("Decode of %x = %d samples, PacketSamples = %d, %v", packet, n, samples, perr)
		}
	} else if !errors.Is(err, ErrBadPacket) && !errors.Is(err, ErrBufferTooSmall) && !errors.Is(err, ErrInternal) {
		t.Fatalf("Decode of %x: unexpected error %v", packet, err)
	}
	if perr != nil && !errors.Is(perr, ErrBadPacket) {
		t.Fatalf("PacketSamples of %x: unexpected error %v", packet, perr)
	}
	if perr == nil && (samples <= 0 || samples > MaxFrameSamples) {
		t.Fatalf("PacketSamples of %x = %d", packet, samples)
	}
	// A 20 ms buffer: longer packets must fail cleanly, not overrun it.
	short := pcm[:FrameSamples]
	if m, err := d.Decode(packet, short); err == nil && m > FrameSamples {
		t.Fatalf("Decode of %x into %d samples wrote %d", packet, FrameSamples, m)
	}
	if m, err := d.DecodeFEC(packet, short); err == nil && m != FrameSamples {
		t.Fatalf("DecodeFEC of %x = %d samples, want %d", packet, m, FrameSamples)
	}
	if m, err := d.DecodePLC(short); err != nil || m != FrameSamples {
		t.Fatalf("DecodePLC after %x = %d, %v", packet, m, err)
	}
	return err
}

func TestHostileInput(t *testing.T) {
	real := realPackets(t)
	p20 := real[0]        // VoIP, 20 ms, code 0
	pair := real[2*12+3]  // AppAudio, 40 ms, code 1 (two CBR frames)
	multi := real[2*12+6] // AppAudio, 60 ms, code 3
	if p20[0]&3 != 0 || pair[0]&3 != 1 || multi[0]&3 != 3 {
		t.Fatalf("unexpected framing codes %d %d %d", p20[0]&3, pair[0]&3, multi[0]&3)
	}
	oversized := append(slices.Clone(p20), make([]byte, 1300)...)
	r := rand.New(rand.NewPCG(3, 4))
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		packet  []byte
		wantErr error // nil: must not fail the consistency checks, may or may not decode
	}{
		{"nil", nil, ErrBadPacket},
		{"empty", []byte{}, ErrBadPacket},
		{"1 byte code 0 (valid: no audio, concealed)", []byte{0x48}, nil},
		{"1 byte code 2 without length", []byte{0x4a}, ErrBadPacket},
		{"1 byte code 3 without count", []byte{0x4b}, ErrBadPacket},
		{"code 1 with odd payload", []byte{0x49, 1, 2, 3}, ErrBadPacket},
		{"code 2 length beyond the end", []byte{0x4a, 200, 1, 2, 3}, ErrBadPacket},
		{"code 3 zero frames", []byte{0x4b, 0x00}, ErrBadPacket},
		{"code 3 over 120 ms", []byte{0x4b, 0x07, 1, 2, 3, 4, 5, 6, 7}, ErrBadPacket},
		{"code 3 padding beyond the end", []byte{0x4b, 0x41, 0xff, 1, 2}, ErrBadPacket},
		{"oversized code 0 frame", oversized, ErrBadPacket},
		{"code 1 truncated by one byte", pair[:len(pair)-1], ErrBadPacket},
		{"code 3 truncated to 3 bytes", multi[:3], ErrBadPacket},
		{"code 3 truncated by half", multi[:len(multi)/2], nil},
		{"code 0 truncated to 2 bytes", p20[:2], nil},
		{"code 0 truncated by half", p20[:len(p20)/2], nil},
		{"all 0xff, 100 bytes", slices.Repeat([]byte{0xff}, 100), nil},
		{"garbage 1", garbage(1), nil},
		{"garbage 7", garbage(7), nil},
		{"garbage 60", garbage(60), nil},
		{"garbage 1275", garbage(1275), nil},
		{"garbage 5000", garbage(5000), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDecoder(t)
			err := checkDecodeConsistent(t, d, tc.packet)
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Decode error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				if _, err := PacketSamples(tc.packet); !errors.Is(err, tc.wantErr) {
					t.Errorf("PacketSamples error = %v, want %v", err, tc.wantErr)
				}
			}
		})
	}
}

func TestBadArguments(t *testing.T) {
	e := newEncoder(t, EncoderConfig{})
	d := newDecoder(t)
	pcm := make([]int16, FrameSamples)
	out := make([]byte, MaxPacketSize)
	n, err := e.Encode(pcm, out)
	if err != nil {
		t.Fatal(err)
	}
	packet := slices.Clone(out[:n])
	sixty := make([]int16, 3*FrameSamples)
	n, err = e.Encode(sixty, out)
	if err != nil {
		t.Fatal(err)
	}
	packet60 := slices.Clone(out[:n])

	for _, tc := range []struct {
		name string
		call func() (int, error)
		want error
	}{
		{"encode nil pcm", func() (int, error) { return e.Encode(nil, out) }, ErrBadArg},
		{"encode short pcm", func() (int, error) { return e.Encode(pcm[:FrameSamples-1], out) }, ErrBadArg},
		{"encode 2.5 ms", func() (int, error) { return e.Encode(pcm[:40], out) }, nil},
		{"encode nil out", func() (int, error) { return e.Encode(pcm, nil) }, ErrBufferTooSmall},
		// libopus fits the packet to out; one byte holds only the table of contents.
		{"encode 1-byte out", func() (int, error) {
			n, err := e.Encode(tones(FrameSamples, 8000, 440), out[:1])
			if n != 1 {
				t.Errorf("Encode into 1 byte = %d bytes", n)
			}
			return n, err
		}, nil},
		{"decode nil pcm", func() (int, error) { return d.Decode(packet, nil) }, ErrBufferTooSmall},
		{"decode 60 ms into 20 ms", func() (int, error) { return d.Decode(packet60, pcm) }, ErrBufferTooSmall},
		{"decode short pcm", func() (int, error) { return d.Decode(packet, pcm[:100]) }, ErrBufferTooSmall},
		{"PLC nil pcm", func() (int, error) { return d.DecodePLC(nil) }, ErrBadArg},
		{"PLC odd length", func() (int, error) { return d.DecodePLC(pcm[:101]) }, ErrBadArg},
		{"PLC over 120 ms", func() (int, error) { return d.DecodePLC(make([]int16, MaxFrameSamples+40)) }, ErrBadArg},
		{"PLC 120 ms", func() (int, error) { return d.DecodePLC(make([]int16, MaxFrameSamples)) }, nil},
		{"FEC nil pcm", func() (int, error) { return d.DecodeFEC(packet, nil) }, ErrBadArg},
		{"FEC empty next", func() (int, error) { return d.DecodeFEC(nil, pcm) }, ErrBadPacket},
		{"FEC corrupt next", func() (int, error) { return d.DecodeFEC([]byte{0x4b}, pcm) }, ErrBadPacket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.call()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEncoderConfig(t *testing.T) {
	if _, err := NewEncoder(EncoderConfig{Application: 7}); !errors.Is(err, ErrBadArg) {
		t.Errorf("unknown application: %v", err)
	}
	for _, cfg := range []EncoderConfig{
		{Bitrate: -1}, {Bitrate: 100}, {Bitrate: 1 << 40}, {Complexity: 11}, {Complexity: -1},
		{PacketLossPercent: 101}, {PacketLossPercent: -1},
	} {
		if e, err := NewEncoder(cfg); !errors.Is(err, ErrBadArg) {
			t.Errorf("NewEncoder(%+v) error = %v, want ErrBadArg", cfg, err)
			if e != nil {
				e.Close()
			}
		}
	}
	e := newEncoder(t, EncoderConfig{})
	if br, err := e.Bitrate(); err != nil || br != 24000 {
		t.Errorf("default Bitrate() = %d, %v; want 24000", br, err)
	}
	if err := e.SetBitrate(40000); err != nil {
		t.Fatal(err)
	}
	if br, err := e.Bitrate(); err != nil || br != 40000 {
		t.Errorf("Bitrate() after SetBitrate(40000) = %d, %v", br, err)
	}
	for _, err := range []error{e.SetComplexity(0), e.SetComplexity(10), e.SetFEC(true), e.SetDTX(true), e.SetPacketLossPercent(100)} {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestClose(t *testing.T) {
	e, err := NewEncoder(EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	e.Close()
	d.Close()
	d.Close()
	pcm := make([]int16, FrameSamples)
	out := make([]byte, MaxPacketSize)
	for name, err := range map[string]error{
		"Encode":               second(e.Encode(pcm, out)),
		"SetBitrate":           e.SetBitrate(32000),
		"SetBitrate bad":       e.SetBitrate(-5),
		"SetComplexity":        e.SetComplexity(5),
		"SetFEC":               e.SetFEC(true),
		"SetDTX":               e.SetDTX(true),
		"SetPacketLossPercent": e.SetPacketLossPercent(5),
		"Bitrate":              second(e.Bitrate()),
		"Lookahead":            second(e.Lookahead()),
		"Decode":               second(d.Decode([]byte{0x48}, pcm)),
		"DecodePLC":            second(d.DecodePLC(pcm)),
		"DecodeFEC":            second(d.DecodeFEC([]byte{0x48}, pcm)),
		"Reset":                d.Reset(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func second(_ int, err error) error { return err }

func TestErrorStrings(t *testing.T) {
	if got := ErrBadPacket.Error(); got != "corrupted stream (libopus error -4)" {
		t.Errorf("ErrBadPacket.Error() = %q", got)
	}
	pcm := make([]int16, FrameSamples)
	d := newDecoder(t)
	_, err := d.Decode([]byte{0x4b, 0, 1}, pcm)
	if want := "opus: decode 3-byte packet into 320 samples: corrupted stream (libopus error -4)"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestZeroAllocs(t *testing.T) {
	e := newEncoder(t, EncoderConfig{FEC: true, PacketLossPercent: 10})
	d := newDecoder(t)
	in := speechLike(SampleRate)
	out := make([]byte, MaxPacketSize)
	pcm := make([]int16, FrameSamples)
	pkts := encodeAll(t, e, in)
	var i, n int
	var err error
	for name, f := range map[string]func(){
		"Encode": func() {
			n, err = e.Encode(in[(i%40)*FrameSamples:(i%40+1)*FrameSamples], out)
			i++
		},
		"Decode":        func() { n, err = d.Decode(pkts[i%len(pkts)], pcm); i++ },
		"DecodePLC":     func() { n, err = d.DecodePLC(pcm) },
		"DecodeFEC":     func() { n, err = d.DecodeFEC(pkts[i%len(pkts)], pcm); i++ },
		"PacketSamples": func() { n, err = PacketSamples(pkts[i%len(pkts)]); i++ },
	} {
		if allocs := testing.AllocsPerRun(200, f); allocs != 0 {
			t.Errorf("%s: %.1f allocations per call, want 0", name, allocs)
		}
		if err != nil || n == 0 {
			t.Errorf("%s: last call = %d, %v", name, n, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range realPackets(f) {
		f.Add(p)
		for _, cut := range []int{1, 2, 3, len(p) / 2, len(p) - 1} {
			if cut > 0 && cut < len(p) {
				f.Add(p[:cut])
			}
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x4b, 0x07, 1, 2, 3})
	// One decoder per worker process, reset for each input: creating one
	// costs more than decoding a packet.
	d, err := NewDecoder()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(d.Close)
	f.Fuzz(func(t *testing.T, packet []byte) {
		if err := d.Reset(); err != nil {
			t.Fatal(err)
		}
		checkDecodeConsistent(t, d, packet)
	})
}

// After Reset, a decoder decodes exactly as a new one does.
func TestReset(t *testing.T) {
	pkts := encodeAll(t, newEncoder(t, EncoderConfig{}), speechLike(SampleRate/2))
	used := newDecoder(t)
	decodeWith := func(d *Decoder, pkts [][]byte) []int16 {
		var all []int16
		pcm := make([]int16, FrameSamples)
		for _, p := range pkts {
			n, err := d.Decode(p, pcm)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, pcm[:n]...)
		}
		return all
	}
	decodeWith(used, pkts)
	if err := used.Reset(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(decodeWith(used, pkts[5:]), decodeWith(newDecoder(t), pkts[5:])) {
		t.Error("a reset decoder decodes differently from a new one")
	}
}
