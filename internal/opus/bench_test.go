package opus

import "testing"

func BenchmarkEncode(b *testing.B) {
	in := speechLike(SampleRate)
	frames := len(in) / FrameSamples
	for _, c := range []struct {
		name       string
		app        Application
		complexity int
	}{
		{"lowdelay-16k-complexity-0", AppRestrictedLowDelay, 0}, // the SDK's default
		{"voip-16k-complexity-1", AppVoIP, 1},
		{"voip-16k-complexity-5", AppVoIP, 5},
		{"voip-16k-complexity-10", AppVoIP, 10},
	} {
		b.Run(c.name, func(b *testing.B) {
			e := newEncoder(b, EncoderConfig{Bitrate: 32000, Application: c.app, FEC: c.app == AppVoIP, PacketLossPercent: 5})
			if err := e.SetComplexity(c.complexity); err != nil {
				b.Fatal(err)
			}
			out := make([]byte, MaxPacketSize)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				f := i % frames
				if _, err := e.Encode(in[f*FrameSamples:(f+1)*FrameSamples], out); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// benchPackets returns one second of 20 ms packets of speech-like input,
// with FEC data.
func benchPackets(b *testing.B) [][]byte {
	return encodeAll(b, newEncoder(b, EncoderConfig{Bitrate: 32000, FEC: true, PacketLossPercent: 20}), speechLike(SampleRate))
}

func BenchmarkDecode(b *testing.B) {
	pkts := benchPackets(b)
	d := newDecoder(b)
	pcm := make([]int16, FrameSamples)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := d.Decode(pkts[i%len(pkts)], pcm); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDecodePLC measures a Decode followed by a DecodePLC (subtract
// BenchmarkDecode for the concealment alone): one loss in every two frames,
// so concealment starts from fresh audio rather than fading out over a long
// run of losses.
func BenchmarkDecodePLC(b *testing.B) {
	pkts := benchPackets(b)
	d := newDecoder(b)
	pcm := make([]int16, FrameSamples)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := d.Decode(pkts[i%len(pkts)], pcm); err != nil {
			b.Fatal(err)
		}
		if _, err := d.DecodePLC(pcm); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkDecodeFEC(b *testing.B) {
	pkts := benchPackets(b)
	d := newDecoder(b)
	pcm := make([]int16, FrameSamples)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := d.DecodeFEC(pkts[i%len(pkts)], pcm); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkPacketSamples(b *testing.B) {
	pkts := benchPackets(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := PacketSamples(pkts[i%len(pkts)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
