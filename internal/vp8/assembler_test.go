package vp8

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/switchboard-rtc/switchboard/media"
)

// packet is one RTP packet of a test stream.
type packet struct {
	seq    uint16
	ts     uint32
	marker bool
	frame  int // index into the frames it came from; -1 for padding
	pl     []byte
}

// packetizeStream turns frames into RTP packets with sequence numbers from seq0.
func packetizeStream(t testing.TB, frames []encodedFrame, maxPayload int, seq0 uint16) []packet {
	t.Helper()
	pz, err := NewPacketizer(maxPayload)
	if err != nil {
		t.Fatal(err)
	}
	var pkts []packet
	seq := seq0
	var buf []byte
	var pls [][]byte
	for i, f := range frames {
		buf, pls = pz.Packetize(buf[:0], pls[:0], f.data)
		for j, pl := range pls {
			pkts = append(pkts, packet{seq: seq, ts: uint32(f.pts), marker: j == len(pls)-1, frame: i,
				pl: append([]byte(nil), pl...)})
			seq++
		}
	}
	return pkts
}

// checkInvariants verifies the window bookkeeping of an assembler.
func checkInvariants(a *Assembler) error {
	used := 0
	n := len(a.slots)
	for i := range a.slots {
		s := &a.slots[i]
		if !s.used {
			continue
		}
		used++
		if int(s.seq&a.mask) != i {
			return fmt.Errorf("slot %d holds seq %d", i, s.seq)
		}
		if d := s.seq - a.head; int(d) >= n {
			return fmt.Errorf("slot seq %d outside window at head %d", s.seq, a.head)
		}
	}
	if used != a.stored {
		return fmt.Errorf("%d used slots, stored says %d", used, a.stored)
	}
	if used > 0 && int(a.highest-a.head) >= n {
		return fmt.Errorf("head %d, highest %d: wider than the window", a.head, a.highest)
	}
	return nil
}

type emitted struct {
	data []byte
	ts   uint32
	key  bool
}

// feed pushes packets in order and collects every frame the assembler emits.
func feed(t testing.TB, a *Assembler, pkts []packet, onPush func(i int)) []emitted {
	t.Helper()
	var out []emitted
	var p rtp.Packet
	for i, pk := range pkts {
		p.SequenceNumber, p.Timestamp, p.Marker, p.Payload = pk.seq, pk.ts, pk.marker, pk.pl
		if err := a.Push(&p); err != nil {
			t.Fatalf("push seq %d: %v", pk.seq, err)
		}
		for f, ok := a.Next(); ok; f, ok = a.Next() {
			out = append(out, emitted{data: append([]byte(nil), f.Data...), ts: f.Timestamp, key: f.Key})
		}
		if err := checkInvariants(a); err != nil {
			t.Fatalf("after seq %d: %v", pk.seq, err)
		}
		if onPush != nil {
			onPush(i)
		}
	}
	return out
}

func testStream(t testing.TB, count int, keyAt ...int) []encodedFrame {
	return encodeSequence(t, EncoderConfig{Width: 640, Height: 360, FrameRate: 30, BitrateKbps: 1200}, count, keyAt...)
}

func TestAssemblerReorderRoundTrip(t *testing.T) {
	frames := testStream(t, 60)
	pkts := packetizeStream(t, frames, 1000, 65400) // wraps the sequence number
	rng := rand.New(rand.NewPCG(3, 4))
	// Shuffle within blocks of 8 packets and duplicate some packets.
	for i := 0; i < len(pkts); i += 8 {
		block := pkts[i:min(i+8, len(pkts))]
		rng.Shuffle(len(block), func(x, y int) { block[x], block[y] = block[y], block[x] })
	}
	var noisy []packet
	for _, p := range pkts {
		noisy = append(noisy, p)
		if rng.IntN(10) == 0 {
			noisy = append(noisy, p)
		}
	}
	a := NewAssembler(AssemblerConfig{})
	out := feed(t, a, noisy, nil)
	if len(out) != len(frames) {
		t.Fatalf("emitted %d frames, want %d (stats %+v)", len(out), len(frames), a.Stats())
	}
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	dst := make([]byte, media.I420.FrameSize(640, 360))
	pic := make([]byte, len(dst))
	for i, f := range out {
		if !bytes.Equal(f.data, frames[i].data) || f.ts != uint32(frames[i].pts) || f.key != frames[i].key {
			t.Fatalf("frame %d differs from the one sent", i)
		}
		if _, _, err := dec.Decode(f.data, dst); err != nil {
			t.Fatalf("decode frame %d: %v", i, err)
		}
		drawPattern(pic, 640, 360, frames[i].n)
		if p := psnrY(pic, dst, 640, 360); p < 30 {
			t.Errorf("frame %d: PSNR %.1f dB", i, p)
		}
	}
	st := a.Stats()
	if a.NeedKeyFrame() || st.DroppedFrames != 0 || st.KeyFrameRequests != 0 || st.Frames != uint64(len(frames)) ||
		st.KeyFrames != 1 || st.Duplicates+st.Late == 0 {
		t.Errorf("needKey %v, stats %+v", a.NeedKeyFrame(), st)
	}
}

func TestAssemblerLossNeedsKeyFrame(t *testing.T) {
	frames := testStream(t, 60, 40)
	pkts := packetizeStream(t, frames, 1000, 100)
	next := 0 // index of the second key frame (the encoder may have dropped pictures)
	for i, f := range frames {
		if f.key && i > 0 {
			next = i
		}
	}
	// Lose the middle packet of frame 10, a delta frame of several packets.
	var lost []packet
	var idx []int
	for i, p := range pkts {
		if p.frame == 10 {
			idx = append(idx, i)
		}
	}
	if len(idx) < 2 || frames[10].key {
		t.Fatalf("frame 10 has %d packets, key %v: not a useful test", len(idx), frames[10].key)
	}
	drop := idx[len(idx)/2]
	lost = append(lost, pkts[:drop]...)
	lost = append(lost, pkts[drop+1:]...)

	a := NewAssembler(AssemblerConfig{})
	sawNeed := false
	out := feed(t, a, lost, func(i int) {
		if lost[i].frame == next-1 && lost[i].marker {
			sawNeed = a.NeedKeyFrame()
		}
	})
	if !sawNeed {
		t.Error("NeedKeyFrame false before the next key frame")
	}
	if a.NeedKeyFrame() {
		t.Error("NeedKeyFrame still true after the key frame")
	}
	var got []int
	for _, f := range out {
		for i, fr := range frames {
			if bytes.Equal(f.data, fr.data) {
				got = append(got, i)
			}
		}
	}
	want := []int{}
	for i := range frames {
		if i < 10 || i >= next {
			want = append(want, i)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("emitted frames %v, want %v", got, want)
	}
	st := a.Stats()
	if st.KeyFrameRequests != 1 || st.DroppedFrames != uint64(next-10) || st.KeyFrames != 2 {
		t.Errorf("stats %+v, want 1 key frame request, %d dropped, 2 key frames", st, next-10)
	}
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	dst := make([]byte, media.I420.FrameSize(640, 360))
	for i, f := range out {
		if _, _, err := dec.Decode(f.data, dst); err != nil {
			t.Fatalf("decode emitted frame %d: %v", i, err)
		}
	}
}

func TestAssemblerRetransmissionFillsHole(t *testing.T) {
	frames := testStream(t, 20)
	pkts := packetizeStream(t, frames, 1000, 7)
	// Hold back the last packet of frame 5 until frame 9 has been sent (~130 ms later).
	var held packet
	var order []packet
	for _, p := range pkts {
		if p.frame == 5 && p.marker {
			held = p
			continue
		}
		order = append(order, p)
		if p.frame == 9 && p.marker {
			order = append(order, held)
		}
	}
	a := NewAssembler(AssemblerConfig{})
	out := feed(t, a, order, nil)
	if len(out) != len(frames) || a.NeedKeyFrame() || a.Stats().DroppedFrames != 0 {
		t.Fatalf("emitted %d of %d, needKey %v, stats %+v", len(out), len(frames), a.NeedKeyFrame(), a.Stats())
	}
	for i := range out {
		if !bytes.Equal(out[i].data, frames[i].data) {
			t.Fatalf("frame %d differs", i)
		}
	}
	// The same packet again is late.
	if err := a.PushPayload(held.seq, held.ts, held.marker, held.pl); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.Late != 1 {
		t.Errorf("late = %d, want 1", st.Late)
	}
}

func TestAssemblerPaddingAndMarkerless(t *testing.T) {
	frames := testStream(t, 10)
	pkts := packetizeStream(t, frames, 1000, 500)
	var order []packet
	seq := uint16(500)
	for i, p := range pkts {
		p.seq = seq
		p.marker = false // a sender that never sets the marker bit
		seq++
		order = append(order, p)
		if p.frame%3 == 0 && i+1 < len(pkts) && pkts[i+1].frame != p.frame {
			order = append(order, packet{seq: seq, ts: p.ts, frame: -1}) // padding only
			seq++
		}
	}
	a := NewAssembler(AssemblerConfig{})
	out := feed(t, a, order, nil)
	// Without markers a frame ends when the next one starts: all but the last come out.
	if len(out) != len(frames)-1 || a.Stats().DroppedFrames != 0 {
		t.Fatalf("emitted %d, want %d; stats %+v", len(out), len(frames)-1, a.Stats())
	}
	for i := range out {
		if !bytes.Equal(out[i].data, frames[i].data) {
			t.Fatalf("frame %d differs", i)
		}
	}
}

func TestAssemblerStartsMidStream(t *testing.T) {
	frames := testStream(t, 30, 20)
	pkts := packetizeStream(t, frames, 1000, 0)
	a := NewAssembler(AssemblerConfig{})
	if !a.NeedKeyFrame() {
		t.Error("a new assembler does not need a key frame")
	}
	// Join after the first packet of the key frame, and with the first two packets swapped.
	join := pkts[1:]
	join[0], join[1] = join[1], join[0]
	out := feed(t, a, join, nil)
	if len(out) != 10 || !out[0].key || !bytes.Equal(out[0].data, frames[20].data) {
		t.Fatalf("emitted %d frames (first key %v), want the 10 from the key frame at 20", len(out), len(out) > 0 && out[0].key)
	}

	// Reordered first packets of a stream still make its first frame.
	pkts = packetizeStream(t, frames[:3], 1000, 0)
	pkts[0], pkts[1] = pkts[1], pkts[0]
	a.Reset()
	if out := feed(t, a, pkts, nil); len(out) != 3 || !out[0].key {
		t.Fatalf("reordered start: emitted %d frames", len(out))
	}
}

func TestAssemblerWindowOverflowAndJumps(t *testing.T) {
	frames := testStream(t, 12)
	pkts := packetizeStream(t, frames, 200, 60000) // the key frame has far more than 16 packets
	a := NewAssembler(AssemblerConfig{Slots: 16})
	out := feed(t, a, pkts, nil)
	if len(out) != 0 || !a.NeedKeyFrame() || a.Stats().DroppedFrames == 0 {
		t.Fatalf("emitted %d, needKey %v, stats %+v", len(out), a.NeedKeyFrame(), a.Stats())
	}

	// A stream whose sequence numbers jump far ahead (by more than half the space: it looks
	// old) restarts after a run of such packets.
	a = NewAssembler(AssemblerConfig{})
	small := packetizeStream(t, frames, 1000, 10)
	if out := feed(t, a, small, nil); len(out) != len(frames) {
		t.Fatalf("emitted %d of %d", len(out), len(frames))
	}
	again := packetizeStream(t, testStream(t, 40, 0, 30), 1000, 10+40000)
	out = feed(t, a, again, nil)
	if len(out) == 0 || !out[0].key {
		t.Fatalf("after the jump: %d frames, stats %+v", len(out), a.Stats())
	}
}

func TestAssemblerMalformed(t *testing.T) {
	a := NewAssembler(AssemblerConfig{})
	for _, pl := range [][]byte{{0x90}, {0x80}, {0x90, 0x80}, {0x90, 0x80, 0x80}, {0x90, 0x80, 0x80, 0x01}, {0x90, 0xf0, 0x01, 0x02}} {
		if err := a.PushPayload(1, 1, true, pl); err != ErrMalformed {
			t.Errorf("payload % x: %v, want ErrMalformed", pl, err)
		}
	}
	if st := a.Stats(); st.Malformed != 6 || st.Packets != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestAssemblerKeyFrameNotDelayed: once a key frame is needed, an incomplete delta frame at the
// head is not waited for, so the key frame comes out as soon as it is complete.
func TestAssemblerKeyFrameNotDelayed(t *testing.T) {
	frames := testStream(t, 30, 20)
	key := -1
	for i, f := range frames[1:] {
		if f.key {
			key = i + 1
		}
	}
	pkts := packetizeStream(t, frames, 300, 0)
	var order []packet
	for i, p := range pkts {
		// Lose the marker packets of frame 5 and of the frame just before the key frame.
		if p.marker && (p.frame == 5 || p.frame == key-1) && pkts[i-1].frame == p.frame {
			continue
		}
		order = append(order, p)
	}
	a := NewAssembler(AssemblerConfig{})
	var keyOut bool
	feed(t, a, order, func(i int) {
		if p := order[i]; p.frame == key && p.marker {
			keyOut = !a.NeedKeyFrame() && a.Stats().KeyFrames == 2
		}
	})
	if !keyOut {
		t.Fatalf("the key frame did not come out when it completed; stats %+v", a.Stats())
	}
	if st := a.Stats(); st.KeyFrameRequests != 1 || st.Frames != uint64(5+len(frames)-key) {
		t.Errorf("stats %+v", st)
	}
}

// TestAssemblerSyntheticSkipToKey drives the window with hand-made packets: a hole followed by
// padding and a key frame, while a key frame is needed, goes straight to the key frame.
func TestAssemblerSyntheticSkipToKey(t *testing.T) {
	keyPl := []byte{0x90, 0x80, 0x80, 0x01, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x00, 0x30, 0x00, 0xaa}
	deltaStart := []byte{0x90, 0x80, 0x80, 0x02, 0x01, 0x02, 0x03}
	a := NewAssembler(AssemblerConfig{MaxDelay: 10 * time.Millisecond})
	steps := []struct {
		seq    uint16
		ts     uint32
		marker bool
		pl     []byte
		frames int // frames Next returns after this packet
	}{
		{1, 0, true, keyPl, 1},
		{2, 3000, false, deltaStart, 0}, // 3 is lost
		{4, 6000, true, deltaStart, 0},  // frame 2 expires and is dropped, 4 is dropped: key needed
		{6, 6000, false, nil, 0},        // 5 is lost, 6 is padding
		{7, 9000, true, keyPl, 1},       // straight to the key frame
		{8, 12000, true, deltaStart, 1},
	}
	for _, st := range steps {
		if err := a.PushPayload(st.seq, st.ts, st.marker, st.pl); err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, ok := a.Next(); ok; _, ok = a.Next() {
			got++
		}
		if got != st.frames {
			t.Fatalf("after seq %d: %d frames, want %d (stats %+v)", st.seq, got, st.frames, a.Stats())
		}
		if err := checkInvariants(a); err != nil {
			t.Fatalf("after seq %d: %v", st.seq, err)
		}
		if st.seq == 4 && !a.NeedKeyFrame() {
			t.Fatal("no key frame needed after the loss")
		}
	}
	if st := a.Stats(); a.NeedKeyFrame() || st.KeyFrames != 2 || st.KeyFrameRequests != 1 {
		t.Errorf("needKey %v, stats %+v", a.NeedKeyFrame(), st)
	}
}
