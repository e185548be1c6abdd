package vp8

import (
	"testing"

	"github.com/switchboard-rtc/switchboard/media"
)

func TestEncodeDecodeAllocs(t *testing.T) {
	const w, h = 320, 240
	enc, err := NewEncoder(EncoderConfig{Width: w, Height: h, FrameRate: 30, BitrateKbps: 600})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	pics := make([][]byte, 8)
	for i := range pics {
		pics[i] = make([]byte, media.I420.FrameSize(w, h))
		drawPattern(pics[i], w, h, i)
	}
	n := 0
	encode := func() {
		if _, _, err := enc.Encode(pics[n%len(pics)], int64(n)*3000, n%50 == 0); err != nil {
			t.Fatal(err)
		}
		n++
	}
	for range 10 {
		encode()
	}
	if a := testing.AllocsPerRun(50, encode); a != 0 {
		t.Errorf("Encode: %v allocations per frame", a)
	}

	frames := encodeSequence(t, EncoderConfig{Width: w, Height: h, FrameRate: 30, BitrateKbps: 600}, 3)
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	dst := make([]byte, media.I420.FrameSize(w, h))
	decode := func() {
		for _, f := range frames {
			if _, _, err := dec.Decode(f.data, dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	if a := testing.AllocsPerRun(50, decode); a != 0 {
		t.Errorf("Decode: %v allocations per %d frames", a, len(frames))
	}
}

func TestRTPAllocs(t *testing.T) {
	frames := testStream(t, 10)
	pkts := packetizeStream(t, frames, 1000, 0)
	a := NewAssembler(AssemblerConfig{})
	span := uint16(len(pkts))
	round := uint16(0)
	push := func() {
		for _, p := range pkts {
			ts := p.ts + uint32(round)*30*3000
			if err := a.PushPayload(p.seq+round*span, ts, p.marker, p.pl); err != nil {
				t.Fatal(err)
			}
			for _, ok := a.Next(); ok; _, ok = a.Next() {
			}
		}
		round++
	}
	push()
	if got := testing.AllocsPerRun(20, push); got != 0 {
		t.Errorf("Assembler: %v allocations per %d packets", got, len(pkts))
	}
	if st := a.Stats(); st.Frames != uint64(len(frames))*22 || st.DroppedFrames != 0 {
		t.Errorf("stats %+v", st)
	}

	pz, err := NewPacketizer(1200)
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	var pls [][]byte
	packetize := func() {
		for _, f := range frames {
			buf, pls = pz.Packetize(buf[:0], pls[:0], f.data)
		}
	}
	packetize()
	if got := testing.AllocsPerRun(20, packetize); got != 0 {
		t.Errorf("Packetizer: %v allocations per %d frames", got, len(frames))
	}
}
