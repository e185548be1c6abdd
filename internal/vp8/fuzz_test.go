package vp8

import (
	"testing"

	"github.com/switchboard-rtc/switchboard/media"
)

// fuzzLimit bounds the pictures the fuzz targets decode (larger key frames get ErrShortBuffer).
const fuzzW, fuzzH = 640, 480

func fuzzFrames(f *testing.F) []encodedFrame {
	return encodeSequence(f, EncoderConfig{Width: 176, Height: 144, FrameRate: 30, BitrateKbps: 200}, 4)
}

func FuzzDecode(f *testing.F) {
	frames := fuzzFrames(f)
	for _, fr := range frames {
		f.Add(fr.data)
		f.Add(fr.data[:len(fr.data)/2])
		f.Add(fr.data[:len(fr.data)-1])
		f.Add(fr.data[:min(10, len(fr.data))])
	}
	f.Add([]byte{})
	key := frames[0].data
	dst := make([]byte, media.I420.FrameSize(fuzzW, fuzzH))
	f.Fuzz(func(t *testing.T, data []byte) {
		dec, err := NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		defer dec.Close()
		check := func(what string, w, h int, err error) {
			if err == nil && w > 0 && media.I420.FrameSize(w, h) > len(dst) {
				t.Fatalf("%s: %dx%d picture reported into a %d-byte buffer", what, w, h, len(dst))
			}
			if err == nil && dec.NeedKeyFrame() {
				t.Fatalf("%s: success but the decoder needs a key frame", what)
			}
		}
		w, h, err := dec.Decode(data, dst) // as the first frame
		check("first", w, h, err)
		// After a real key frame, so that mutated delta frames reach inter prediction.
		if _, _, err := dec.Decode(key, dst); err != nil {
			t.Fatalf("real key frame: %v", err)
		}
		w, h, err = dec.Decode(data, dst)
		check("after key", w, h, err)
		w, h, err = dec.Decode(frames[1].data, dst)
		check("next delta", w, h, err)
	})
}

// fuzzPackets encodes packets as the FuzzAssembler input: per packet a flags byte (bit 0:
// marker), the sequence number step (int8), the timestamp step (in 1000 ticks), the payload
// length and the payload.
func fuzzPackets(pkts []packet) []byte {
	out := []byte{8} // 256 slots
	var seq uint16
	var ts uint32
	for i, p := range pkts {
		flags := byte(0)
		if p.marker {
			flags = 1
		}
		dseq, dts := byte(p.seq-seq), byte((p.ts-ts)/1000)
		if i == 0 {
			dseq, dts = 0, 0
		}
		seq, ts = p.seq, p.ts
		out = append(out, flags, dseq, dts, byte(len(p.pl)))
		out = append(out, p.pl...)
	}
	return out
}

func FuzzAssembler(f *testing.F) {
	frames := fuzzFrames(f)
	pkts := packetizeStream(f, frames, 200, 0)
	f.Add(fuzzPackets(pkts))
	swapped := append([]packet(nil), pkts...)
	for i := 0; i+1 < len(swapped); i += 3 {
		swapped[i], swapped[i+1] = swapped[i+1], swapped[i]
	}
	f.Add(fuzzPackets(swapped))
	f.Add(fuzzPackets(append(append([]packet(nil), pkts[:5]...), pkts[7:]...)))
	f.Add([]byte{4, 1, 1, 0, 3, 0x90, 0x80})

	dst := make([]byte, media.I420.FrameSize(fuzzW, fuzzH))
	// Assemblers are reused across inputs through Reset, which the target thereby checks too.
	var assemblers [10]*Assembler
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		size := data[0] % 10
		a := assemblers[size]
		if a == nil {
			a = NewAssembler(AssemblerConfig{Slots: 1 << size})
			assemblers[size] = a
		} else {
			a.Reset()
		}
		if !a.NeedKeyFrame() || a.Stats() != (AssemblerStats{}) || checkInvariants(a) != nil || a.stored != 0 {
			t.Fatal("Reset left state behind")
		}
		var dec *Decoder
		defer func() {
			if dec != nil {
				dec.Close()
			}
		}()
		data = data[1:]
		var seq uint16
		var ts uint32
		for len(data) >= 4 {
			marker := data[0]&1 != 0
			seq += uint16(int8(data[1]))
			ts += uint32(data[2]) * 1000
			n := min(int(data[3]), len(data)-4)
			payload := data[4 : 4+n]
			data = data[4+n:]
			_ = a.PushPayload(seq, ts, marker, payload)
			for f, ok := a.Next(); ok; f, ok = a.Next() {
				if len(f.Data) == 0 {
					t.Fatal("empty frame emitted")
				}
				if f.Key != IsKeyFrame(f.Data) {
					t.Fatal("frame key flag disagrees with its header")
				}
				if dec == nil {
					var err error
					if dec, err = NewDecoder(); err != nil {
						t.Fatal(err)
					}
				}
				_, _, _ = dec.Decode(f.Data, dst)
			}
			if err := checkInvariants(a); err != nil {
				t.Fatal(err)
			}
		}
		st := a.Stats()
		if st.Frames < st.KeyFrames {
			t.Fatalf("stats %+v", st)
		}
	})
}
