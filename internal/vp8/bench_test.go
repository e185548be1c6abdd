package vp8

import (
	"fmt"
	"testing"

	"github.com/switchboard-rtc/switchboard/media"
)

var benchSizes = [][2]int{{640, 360}, {1280, 720}}

func benchBitrate(w int) int {
	if w >= 1280 {
		return 1500
	}
	return 600
}

// BenchmarkEncode encodes the moving pattern (30 distinct pictures, cycled) per frame.
func BenchmarkEncode(b *testing.B) {
	for _, sz := range benchSizes {
		w, h := sz[0], sz[1]
		b.Run(fmt.Sprintf("%dx%d", w, h), func(b *testing.B) {
			enc, err := NewEncoder(EncoderConfig{Width: w, Height: h, FrameRate: 30, BitrateKbps: benchBitrate(w)})
			if err != nil {
				b.Fatal(err)
			}
			defer enc.Close()
			pics := make([][]byte, 30)
			for i := range pics {
				pics[i] = make([]byte, media.I420.FrameSize(w, h))
				drawPattern(pics[i], w, h, i)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(pics[0])))
			bytes := 0
			n := 0
			for b.Loop() {
				frame, _, err := enc.Encode(pics[n%len(pics)], int64(n)*3000, false)
				if err != nil {
					b.Fatal(err)
				}
				bytes += len(frame)
				n++
			}
			b.ReportMetric(float64(bytes*8)/float64(n)*30/1000, "kbit/s")
		})
	}
}

// BenchmarkDecode decodes a 30-frame encoded sequence of the moving pattern, cycled.
func BenchmarkDecode(b *testing.B) {
	for _, sz := range benchSizes {
		w, h := sz[0], sz[1]
		b.Run(fmt.Sprintf("%dx%d", w, h), func(b *testing.B) {
			frames := encodeSequence(b, EncoderConfig{Width: w, Height: h, FrameRate: 30, BitrateKbps: benchBitrate(w)}, 30)
			dec, err := NewDecoder()
			if err != nil {
				b.Fatal(err)
			}
			defer dec.Close()
			dst := make([]byte, media.I420.FrameSize(w, h))
			b.ReportAllocs()
			b.SetBytes(int64(len(dst)))
			n := 0
			for b.Loop() {
				if _, _, err := dec.Decode(frames[n%len(frames)].data, dst); err != nil {
					b.Fatal(err)
				}
				n++
			}
		})
	}
}

// BenchmarkAssemblerPacket pushes one packet (and takes the frames it completes) per op:
// a 720p stream of 1200-byte payloads.
func BenchmarkAssemblerPacket(b *testing.B) {
	frames := encodeSequence(b, EncoderConfig{Width: 1280, Height: 720, FrameRate: 30, BitrateKbps: 1500}, 30)
	pkts := packetizeStream(b, frames, 1200, 0)
	a := NewAssembler(AssemblerConfig{})
	span := uint16(len(pkts))
	b.ReportAllocs()
	i, round := 0, 0
	emittedFrames := 0
	for b.Loop() {
		p := pkts[i]
		seq := p.seq + uint16(round)*span
		ts := p.ts + uint32(round)*uint32(len(frames))*3000
		if err := a.PushPayload(seq, ts, p.marker, p.pl); err != nil {
			b.Fatal(err)
		}
		for _, ok := a.Next(); ok; _, ok = a.Next() {
			emittedFrames++
		}
		if i++; i == len(pkts) {
			i, round = 0, round+1
		}
	}
	if st := a.Stats(); st.DroppedFrames != 0 {
		b.Fatalf("dropped frames: %+v", st)
	}
}

// BenchmarkPacketizerFrame packetizes one 720p frame (1200-byte payloads) per op.
func BenchmarkPacketizerFrame(b *testing.B) {
	frames := encodeSequence(b, EncoderConfig{Width: 1280, Height: 720, FrameRate: 30, BitrateKbps: 1500}, 30)
	pz, err := NewPacketizer(1200)
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	var pls [][]byte
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		buf, pls = pz.Packetize(buf[:0], pls[:0], frames[n%len(frames)].data)
		n++
	}
}
