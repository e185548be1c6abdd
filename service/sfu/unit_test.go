package sfu

import (
	"github.com/pion/webrtc/v4"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestParseVP8(t *testing.T) {
	key := vp8TestPayload(0x1234, true, 2)
	d, ok := parseVP8(key)
	if !ok || !d.start || !d.keyFrame || d.picIDBits != 15 || d.picID != 0x1234 || d.headerLen != 4 {
		t.Fatalf("key frame descriptor = %+v, %v", d, ok)
	}
	if w, h, ok := vp8KeyFrameSize(key, d); !ok || w != 1280 || h != 720 {
		t.Fatalf("size = %dx%d %v", w, h, ok)
	}
	d, ok = parseVP8(vp8TestPayload(5, false, 0))
	if !ok || d.keyFrame || !d.start {
		t.Fatalf("delta frame descriptor = %+v", d)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"empty", nil, false},
		{"X without ext byte", []byte{0x80}, false},
		{"I without picture id", []byte{0x80, 0x80}, false},
		{"M without second byte", []byte{0x80, 0x80, 0x80}, false},
		{"L without TL0", []byte{0x80, 0x40}, false},
		{"T without byte", []byte{0x80, 0x20}, false},
		{"7-bit id", []byte{0x90, 0x80, 0x05, 0x00}, true},
		{"no extension", []byte{0x10, 0x00}, true},
	} {
		if _, ok := parseVP8(tc.b); ok != tc.ok {
			t.Errorf("%s: ok = %v, want %v", tc.name, ok, tc.ok)
		}
	}
}

func FuzzParseVP8(f *testing.F) {
	f.Add(vp8TestPayload(1, true, 0))
	f.Add(vp8TestPayload(300, false, 1))
	f.Add([]byte{0xf0, 0xf0, 0xff, 0xff, 0x01, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, ok := parseVP8(b)
		if !ok {
			return
		}
		if d.headerLen > len(b) {
			t.Fatalf("header %d beyond %d bytes", d.headerLen, len(b))
		}
		_, _, _ = vp8KeyFrameSize(b, d)
		cp := append([]byte(nil), b...)
		writePicID(cp, d, 77)
		if d2, ok := parseVP8(cp); !ok || (d.picIDOffset >= 0 && d2.picID != 77) {
			t.Fatalf("rewrite of picture id failed: %+v", d2)
		}
	})
}

// TestRewriterSwitch: a source switch continues the sequence numbers, advances the timestamp by
// the elapsed time and continues picture ids; packets older than the switch are dropped.
func TestRewriterSwitch(t *testing.T) {
	r := rewriter{clock: 90000}
	ms := int64(time.Millisecond)
	var outSeqs []uint16
	var outPics []uint16
	send := func(ssrc uint32, seq uint16, ts uint32, pic uint16, at int64) bool {
		s, _, drop := r.rewrite(ssrc, seq, ts, at)
		if drop {
			return false
		}
		p := vp8TestPayload(pic, false, 0)
		d, _ := parseVP8(p)
		r.rewriteVP8(p, d)
		d2, _ := parseVP8(p)
		outSeqs = append(outSeqs, s)
		outPics = append(outPics, d2.picID)
		return true
	}
	for i := 0; i < 5; i++ {
		send(1, uint16(100+i), uint32(1000+i*3000), uint16(50+i), int64(i)*33*ms)
	}
	_, lastTS := r.lastSeq, r.lastTS
	// switch to source 2 at a key frame, 33 ms later
	send(2, 60000, 7, 9000, 5*33*ms)
	if r.lastTS != lastTS+2970 {
		t.Errorf("timestamp after switch = %d, want %d", r.lastTS, lastTS+2970)
	}
	send(2, 60001, 3007, 9001, 6*33*ms)
	send(2, 65535, 6007, 9002, 7*33*ms)
	send(2, 0, 9007, 9003, 8*33*ms) // wraps
	if send(2, 59999, 1, 8999, 8*33*ms) {
		t.Error("packet older than the switch was forwarded")
	}
	if send(1, 105, 16000, 55, 9*33*ms) != true {
		t.Error("switch back failed")
	}
	for i := 1; i < len(outSeqs); i++ {
		if i != 7 && outSeqs[i] != outSeqs[i-1]+1 {
			t.Errorf("seq %d: %d after %d", i, outSeqs[i], outSeqs[i-1])
		}
		if i != 7 && outPics[i] != outPics[i-1]+1 {
			t.Errorf("pic %d: %d after %d", i, outPics[i], outPics[i-1])
		}
	}
}

// TestDetectorHold: in virtual time, a louder challenger takes over only after SwitchAfter and
// the dominant's Hold; short bursts do not flap; a dominant that leaves hands over at once.
func TestDetectorHold(t *testing.T) {
	d := NewDetector(SpeakerConfig{Smoothing: 100 * time.Millisecond, SwitchAfter: 500 * time.Millisecond, Hold: time.Second})
	step := 100 * time.Millisecond
	now := time.Duration(0)
	run := func(n int, a, b float64) (changes int) {
		for i := 0; i < n; i++ {
			now += step
			if _, ch := d.Update(now, []Loudness{{1, a}, {2, b}}); ch {
				changes++
			}
		}
		return changes
	}
	run(5, 90, 20)
	if d.Dominant() != 1 {
		t.Fatalf("dominant = %d, want 1", d.Dominant())
	}
	// B bursts for 300 ms, shorter than SwitchAfter: no switch.
	if ch := run(3, 20, 95); ch != 0 || d.Dominant() != 1 {
		t.Fatalf("burst switched: changes %d dominant %d", ch, d.Dominant())
	}
	run(2, 90, 20)
	// B speaks for 1 s: switches once.
	if ch := run(10, 20, 95); ch != 1 || d.Dominant() != 2 {
		t.Fatalf("sustained speech: changes %d dominant %d", ch, d.Dominant())
	}
	// Alternating every tick never flaps.
	for i := 0; i < 20; i++ {
		if i%2 == 0 {
			run(1, 95, 90)
		} else {
			run(1, 90, 95)
		}
	}
	if d.Dominant() != 2 {
		t.Fatalf("alternating flapped to %d", d.Dominant())
	}
	// Missing packets keep the level; B leaves: A at once.
	run(2, 90, -1)
	if d.Dominant() != 2 {
		t.Fatalf("a packet gap lost the floor")
	}
	now += step
	if dom, ch := d.Update(now, []Loudness{{1, 90}}); dom != 1 || !ch {
		t.Fatalf("after B left: %d %v", dom, ch)
	}
	// Silence: nobody takes over from silence, the dominant keeps it.
	run(3, 0, 0)
	if d.Dominant() != 1 {
		t.Fatalf("silence changed dominant to %d", d.Dominant())
	}
}

func TestAssignSlots(t *testing.T) {
	lv := map[uint32]float64{1: 90, 2: 80, 3: 70, 4: 10}
	level := func(s uint32) float64 { return lv[s] }
	slots := make([]uint32, 3)
	if !AssignSlots(slots, []uint32{4, 3, 2, 1}, level, 3) {
		t.Fatal("no move")
	}
	if slots[0] != 1 || slots[1] != 2 || slots[2] != 3 {
		t.Fatalf("slots = %v", slots)
	}
	lv[4] = 72 // not margin louder than 3
	if AssignSlots(slots, []uint32{1, 2, 3, 4}, level, 3) {
		t.Fatalf("moved within margin: %v", slots)
	}
	lv[4] = 95
	AssignSlots(slots, []uint32{1, 2, 3, 4}, level, 3)
	if slots[0] != 1 || slots[1] != 2 || slots[2] != 4 {
		t.Fatalf("after 4 got loud: %v (want 4 on 3's slot)", slots)
	}
	AssignSlots(slots, []uint32{2, 3, 4}, level, 3) // 1 left
	if slots[0] != 3 || slots[1] != 2 || slots[2] != 4 {
		t.Fatalf("after 1 left: %v", slots)
	}
}

// fakeWriter is a TrackLocalWriter that counts.
type fakeWriter struct {
	n       int
	lastHdr rtp.Header
	payload []byte
}

func (w *fakeWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	w.n++
	w.lastHdr = *h
	w.payload = p
	return len(p), nil
}
func (w *fakeWriter) Write(b []byte) (int, error) { return len(b), nil }

// testUpstream builds an upstream with sinks writing to fake writers (no pion).
func testUpstream(t testing.TB, kind StreamKind, sinks int) (*upstream, []*fakeWriter, *metrics) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	pub := &published{kind: kind, source: 42}
	u := &upstream{pub: pub, ssrc: 1111, levelExt: 1, m: m.kinds[kind]}
	pub.layers[0].Store(u)
	var list []sink
	var ws []*fakeWriter
	for i := 0; i < sinks; i++ {
		w := &fakeWriter{}
		dt := newDownTrack("t", "s", rtpCodec(kind))
		dt.b.Store(&binding{ssrc: uint32(5000 + i), pt: 111, levelID: 3, w: w})
		ws = append(ws, w)
		switch {
		case kind != StreamAudio:
			list = append(list, newVideoSink(dt, pub, 0, i%2 == 1, m.kinds[kind]))
		case i%2 == 1:
			s := &slotSink{out: dt, m: m.kinds[kind]}
			s.rw.clock = 48000
			list = append(list, s)
		default:
			a := &audioSink{out: dt, m: m.kinds[kind]}
			a.rw.clock = 48000
			list = append(list, a)
		}
	}
	u.sinks.Store(&list)
	return u, ws, m
}

func audioPacket(seq uint16) []byte {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960, SSRC: 1111},
		Payload: make([]byte, 60)}
	p.Payload[0] = 'A'
	_ = p.Header.SetExtension(1, []byte{30})
	b, _ := p.Marshal()
	return b
}

func videoPacket(seq uint16, pic uint16, key bool) []byte {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(pic) * 3000, SSRC: 1111},
		Payload: append(vp8TestPayload(pic, key, 0), make([]byte, 1000)...)}
	b, _ := p.Marshal()
	return b
}

// TestForwardAudio: payload unchanged, SSRC and payload type of the binding, level carried, CSRC
// on bot slots only.
func TestForwardAudio(t *testing.T) {
	u, ws, m := testUpstream(t, StreamAudio, 2)
	for i := 0; i < 10; i++ {
		u.handle(audioPacket(uint16(100+i)), int64(i)*20e6)
	}
	for i, w := range ws {
		if w.n != 10 || w.payload[0] != 'A' || len(w.payload) != 60 || w.lastHdr.SSRC != uint32(5000+i) {
			t.Fatalf("sink %d: n=%d hdr=%+v", i, w.n, w.lastHdr)
		}
		if lv := w.lastHdr.GetExtension(3); len(lv) != 1 || lv[0] != 30 {
			t.Errorf("sink %d: level extension %v", i, lv)
		}
		wantCSRC := i == 1
		if (len(w.lastHdr.CSRC) == 1 && w.lastHdr.CSRC[0] == 42) != wantCSRC {
			t.Errorf("sink %d: CSRC %v", i, w.lastHdr.CSRC)
		}
	}
	if got := counterValue(m.kinds[StreamAudio].out); got != 20 {
		t.Errorf("forwarded counter = %v", got)
	}
	if l := u.takeLoudness(); l != 97 {
		t.Errorf("loudness = %v, want 97", l)
	}
}

// TestForwardGarbage: malformed RTP is counted and dropped, never forwarded, never a panic.
func TestForwardGarbage(t *testing.T) {
	u, ws, m := testUpstream(t, StreamVideo, 1)
	for _, b := range [][]byte{nil, {0x80}, {0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 4, 87, 0xff}, make([]byte, 12)} {
		u.handle(b, 0)
	}
	if ws[0].n != 0 {
		t.Fatalf("garbage forwarded %d", ws[0].n)
	}
	if got := counterValue(m.kinds[StreamVideo].malformed); got < 2 {
		t.Errorf("malformed = %v", got)
	}
}

// TestForwardZeroAllocs proves the steady-state packet path allocates nothing.
func TestForwardZeroAllocs(t *testing.T) {
	for _, kind := range []StreamKind{StreamAudio, StreamVideo} {
		u, ws, _ := testUpstream(t, kind, 4)
		seq := uint16(0)
		pkt := func() []byte {
			if kind == StreamAudio {
				return audioPacket(seq)
			}
			return videoPacket(seq, seq, seq == 0)
		}
		pkts := make([][]byte, 1000)
		for i := range pkts {
			pkts[i] = pkt()
			seq++
		}
		i := 0
		allocs := testing.AllocsPerRun(500, func() {
			u.handle(pkts[i%len(pkts)], int64(i)*20e6)
			i++
		})
		if allocs != 0 {
			t.Errorf("%v: %v allocations per packet", kind, allocs)
		}
		if ws[0].n == 0 {
			t.Errorf("%v: nothing forwarded", kind)
		}
	}
}

func rtpCodec(kind StreamKind) webrtcCodec {
	if kind == StreamAudio {
		return webrtcCodec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}
	}
	return webrtcCodec{MimeType: "video/VP8", ClockRate: 90000}
}

// fbRecorder records feedback.
type fbRecorder struct{ kf, est, losses int }

func (f *fbRecorder) keyframeRequested(int64) { f.kf++ }
func (f *fbRecorder) estimate(int64, int64)   { f.est++ }
func (f *fbRecorder) loss(uint8, int64)       { f.losses++ }

func TestHandleFeedback(t *testing.T) {
	m, _ := newMetrics(nil)
	f := &fbRecorder{}
	handleFeedback([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: 1}, &rtcp.FullIntraRequest{},
		&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: 1e6}, &rtcp.ReceiverReport{Reports: []rtcp.ReceptionReport{{FractionLost: 30}}},
		&rtcp.TransportLayerNack{Nacks: []rtcp.NackPair{{PacketID: 7}}}}, f, m, 0)
	if f.kf != 2 || f.est != 1 || f.losses != 1 || counterValue(m.nacks) != 1 {
		t.Fatalf("feedback = %+v nacks %v", f, counterValue(m.nacks))
	}
}

// FuzzRTCPFeedback feeds arbitrary bytes through the receiver-RTCP path: it may reject them but
// never panics.
func FuzzRTCPFeedback(f *testing.F) {
	for _, p := range []rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: 7}, &rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: 5e5, SSRCs: []uint32{1}},
		&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2, FractionLost: 12}}},
		&rtcp.TransportLayerNack{MediaSSRC: 3, Nacks: []rtcp.NackPair{{PacketID: 10, LostPackets: 3}}}} {
		b, _ := p.Marshal()
		f.Add(b)
	}
	m, _ := newMetrics(nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return
		}
		u, _, _ := testUpstream(t, StreamVideo, 1)
		s := (*(u.sinks.Load()))[0].(*videoSink)
		handleFeedback(pkts, s, m, 1e9)
	})
}

// FuzzForwardRTP feeds arbitrary bytes as RTP from a publisher: no panic, malformed dropped.
func FuzzForwardRTP(f *testing.F) {
	f.Add(audioPacket(1))
	f.Add(videoPacket(1, 1, true))
	f.Add(videoPacket(2, 2, false))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, k := range []StreamKind{StreamAudio, StreamVideo} {
			u, _, _ := testUpstream(t, k, 2)
			u.handle(b, 1)
			u.handle(b, 2)
		}
	})
}

type webrtcCodec = webrtc.RTPCodecCapability

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestVideoSinkLayers: the receiver's wish, its REMB estimate and its loss pick the layer;
// PLIs from the receiver reach the publisher's current layer at most once per interval.
func TestVideoSinkLayers(t *testing.T) {
	m, _ := newMetrics(nil)
	pub := &published{kind: StreamVideo, source: 9}
	plis := map[uint32]int{}
	for l, rate := range []int64{150e3, 500e3, 1500e3} {
		u := &upstream{pub: pub, layer: l, ssrc: uint32(100 + l), m: m.kinds[StreamVideo],
			keyframe: func(ssrc uint32) { plis[ssrc]++ }}
		u.bitrate.Store(rate)
		pub.layers[l].Store(u)
	}
	dt := newDownTrack("v", "s", webrtcCodec{MimeType: "video/VP8", ClockRate: 90000})
	w := &fakeWriter{}
	dt.b.Store(&binding{ssrc: 1, pt: 96, w: w})
	s := newVideoSink(dt, pub, LayerHigh, false, m.kinds[StreamVideo])
	now := int64(time.Hour)
	s.retarget(now)
	if tgt, cur := s.layers(); tgt != LayerHigh || cur != -1 {
		t.Fatalf("start: target %d current %d", tgt, cur)
	}
	if plis[102] != 1 {
		t.Fatalf("no key frame asked of the target layer: %v", plis)
	}
	// A delta frame on q is not forwarded; a key frame on f starts the stream.
	hi, lo := pub.layers[2].Load(), pub.layers[0].Load()
	lo.handle(videoPacket(1, 1, false), now) // parses into lo.pkt (no sinks listed)
	s.forward(lo, now)
	hi.handle(videoPacket(1, 1, true), now)
	s.forward(hi, now)
	if _, cur := s.layers(); cur != LayerHigh || w.n != 1 {
		t.Fatalf("after key frame: current %d, written %d", cur, w.n)
	}
	// REMB of 600 kb/s: h is the best that fits.
	s.estimate(600e3, now)
	if tgt, _ := s.layers(); tgt != LayerMid {
		t.Fatalf("after REMB: target %d", tgt)
	}
	// Heavy loss: one more down.
	s.loss(60, now+int64(time.Second))
	if tgt, _ := s.layers(); tgt != LayerLow {
		t.Fatalf("after loss: target %d", tgt)
	}
	s.loss(0, now+int64(2*time.Second))
	if tgt, _ := s.layers(); tgt != LayerMid {
		t.Fatalf("after recovery: target %d", tgt)
	}
	// Receiver PLIs: rate-limited per publisher layer.
	before := plis[102]
	s.keyframeRequested(now + int64(3*time.Second))
	s.keyframeRequested(now + int64(3*time.Second) + int64(100*time.Millisecond))
	if plis[102] != before+1 {
		t.Fatalf("PLIs to the current layer: %d, want %d", plis[102], before+1)
	}
}
