package playout

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/internal/jitter"
	"github.com/switchboard-rtc/switchboard/internal/opus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const tick = FrameDuration

// speech returns n frames of a speech-like signal: a 140 Hz voice with
// vibrato and ten harmonics under a syllable-rate envelope that never
// falls silent (so every frame has energy to conceal).
func speech(frames int) []int16 {
	out := make([]int16, frames*FrameSamples)
	phase := 0.0
	for i := range out {
		t := float64(i) / opus.SampleRate
		f0 := 140 + 10*math.Sin(2*math.Pi*5*t)
		phase += 2 * math.Pi * f0 / opus.SampleRate
		v := 0.0
		for k := 1; k <= 10; k++ {
			v += math.Sin(float64(k)*phase) / float64(k)
		}
		env := 0.4 + 0.6*math.Abs(math.Sin(2*math.Pi*3*t))
		out[i] = int16(3000 * env * v)
	}
	return out
}

var (
	packetsOnce sync.Once
	packets     [][]byte // 10 s of speech, FEC on for 10 % loss
)

func realPackets(t testing.TB) [][]byte {
	t.Helper()
	packetsOnce.Do(func() {
		enc, err := opus.NewEncoder(opus.EncoderConfig{Bitrate: 32000, FEC: true, PacketLossPercent: 10})
		if err != nil {
			panic(err)
		}
		defer enc.Close()
		pcm := speech(500)
		buf := make([]byte, opus.MaxPacketSize)
		for i := range 500 {
			n, err := enc.Encode(pcm[i*FrameSamples:(i+1)*FrameSamples], buf)
			if err != nil {
				panic(err)
			}
			packets = append(packets, slices.Clone(buf[:n]))
		}
	})
	return packets
}

func rms(pcm []int16) float64 {
	s := 0.0
	for _, v := range pcm {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(pcm)))
}

// out is one frame produced in a simulation.
type out struct {
	Frame
	at  time.Duration // the tick's virtual time
	rms float64
}

const sentinel = math.MinInt16 // never produced by the decoder at these levels, nor by the noise

// drive pushes pkts at their arrival times and calls NextAt at every 20 ms
// virtual tick from 0 to until.
func drive(t testing.TB, p *Playout, pkts []jitter.Packet, until time.Duration) []out {
	t.Helper()
	pkts = slices.Clone(pkts)
	slices.SortStableFunc(pkts, func(x, y jitter.Packet) int { return int(x.Arrival - y.Arrival) })
	var res []out
	pcm := make([]int16, FrameSamples)
	i := 0
	for now := time.Duration(0); now < until; now += tick {
		for i < len(pkts) && pkts[i].Arrival <= now {
			_ = p.PushPacket(pkts[i])
			i++
		}
		for j := range pcm {
			pcm[j] = sentinel
		}
		f := p.NextAt(now, pcm)
		if f.Kind < Decoded || f.Kind > ComfortNoise {
			t.Fatalf("frame at %v: invalid kind %v", now, f.Kind)
		}
		if !slices.ContainsFunc(pcm, func(v int16) bool { return v != sentinel }) {
			t.Fatalf("frame at %v (%v) did not fill all %d samples", now, f.Kind, FrameSamples)
		}
		res = append(res, out{Frame: f, at: now, rms: rms(pcm)})
	}
	return res
}

func newPlayout(t testing.TB, cfg Config) *Playout {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func countKinds(frames []out) map[FrameKind]int {
	m := map[FrameKind]int{}
	for _, f := range frames {
		m[f.Kind]++
	}
	return m
}

// TestLossyJitteryNetwork is the acceptance test: 10 s of speech over a
// network with 10 % random loss and up to 40 ms of random delay (which
// reorders packets), played at exact 20 ms virtual ticks.
func TestLossyJitteryNetwork(t *testing.T) {
	pk := realPackets(t)
	r := rand.New(rand.NewPCG(42, 7))
	const seq0, ts0 = 1234, 987654
	n := len(pk)
	lost := make([]bool, n)
	arrival := make([]time.Duration, n)
	var sent []jitter.Packet
	for i := range n {
		lost[i] = r.Float64() < 0.10
		arrival[i] = time.Duration(i)*tick + 5*time.Millisecond + time.Duration(r.Int64N(int64(40*time.Millisecond)))
		if !lost[i] {
			sent = append(sent, jitter.Packet{Seq: seq0 + uint16(i), Timestamp: ts0 + uint32(i*960), Payload: pk[i], Arrival: arrival[i]})
		}
	}
	nLost := n - len(sent)
	// Reordering as delivered: a packet is reordered when one with a higher
	// sequence number was delivered before it.
	order := slices.Clone(sent)
	slices.SortStableFunc(order, func(x, y jitter.Packet) int { return int(x.Arrival - y.Arrival) })
	reordered, high := 0, -1
	for _, p := range order {
		if i := int(p.Seq - seq0); i < high {
			reordered++
		} else {
			high = i
		}
	}

	p := newPlayout(t, Config{})
	frames := drive(t, p, sent, 11*time.Second)

	// Exactly 50 frames of 320 samples per virtual second (drive checks
	// every frame is filled).
	perSecond := map[time.Duration]int{}
	for _, f := range frames {
		perSecond[f.at/time.Second]++
	}
	for s, c := range perSecond {
		if c != 50 {
			t.Errorf("second %d: %d frames", s, c)
		}
	}

	s := p.Stats()
	t.Logf("lost %d of %d, reordered %d; stats %+v", nLost, n, reordered, s)
	if s.Lost != uint64(nLost) || s.Reordered != uint64(reordered) || s.Received != uint64(len(sent)) {
		t.Errorf("stats count lost %d reordered %d received %d; the test lost %d reordered %d sent %d",
			s.Lost, s.Reordered, s.Received, nLost, reordered, len(sent))
	}
	if s.Duplicate != 0 || s.Outliers != 0 || s.Resyncs != 0 {
		t.Errorf("nothing was duplicated or out of the stream: %+v", s)
	}
	if s.Played+s.Late+s.Dropped != uint64(len(sent)) || s.Decoded != s.Played {
		t.Errorf("played %d + late %d + dropped %d != %d sent; decoded %d", s.Played, s.Late, s.Dropped, len(sent), s.Decoded)
	}
	if s.Late > uint64(len(sent))/50 {
		t.Errorf("%d late packets with a %v target", s.Late, s.TargetDepth)
	}
	if s.TargetDepth < 40*time.Millisecond || s.TargetDepth > 120*time.Millisecond {
		t.Errorf("target depth %v for 40 ms of jitter", s.TargetDepth)
	}
	if s.Frames != uint64(len(frames)) || s.Decoded+s.FEC+s.Concealed+s.ComfortNoise != s.Frames {
		t.Errorf("frame counters do not add up: %+v", s)
	}

	// Every lost packet's slot comes out exactly once, concealed or
	// recovered (not silence, not comfort noise); FEC whenever the next
	// packet had arrived by then.
	var decodedRMS float64
	var nDecoded int
	for _, f := range frames {
		if f.Kind == Decoded {
			decodedRMS += f.rms
			nDecoded++
		}
	}
	decodedRMS /= float64(nDecoded)
	fecExpected, fecGot := 0, 0
	for i := range n {
		if !lost[i] {
			continue
		}
		var slot []out
		for _, f := range frames {
			if f.Timestamp == ts0+uint32(i*960) && f.Slot != jitter.Stretch {
				slot = append(slot, f)
			}
		}
		if len(slot) != 1 {
			t.Errorf("lost packet %d: %d frames for its slot", i, len(slot))
			continue
		}
		f := slot[0]
		run := 1
		for j := i - 1; j >= 0 && lost[j]; j-- {
			run++
		}
		if f.Kind != FEC && f.Kind != PLC {
			t.Errorf("lost packet %d (run %d): %v", i, run, f.Kind)
		}
		if run <= 3 && f.rms < decodedRMS/10 {
			t.Errorf("lost packet %d (run %d): %v frame of RMS %.0f, decoded frames have %.0f", i, run, f.Kind, f.rms, decodedRMS)
		}
		if i+1 < n && !lost[i+1] && arrival[i+1] <= f.at {
			fecExpected++
			if f.Kind == FEC {
				fecGot++
			} else {
				t.Errorf("lost packet %d: %v although packet %d had arrived", i, f.Kind, i+1)
			}
		}
	}
	if fecExpected < nLost/2 {
		t.Errorf("FEC was possible for only %d of %d losses", fecExpected, nLost)
	}
	t.Logf("FEC used for %d lost packets (expected %d), kinds %v, decoded RMS %.0f", fecGot, fecExpected, countKinds(frames), decodedRMS)
}

// stream returns the real packets as a stream from seq0/ts0, sent every 20 ms
// from start and arriving after delay(i).
func stream(t testing.TB, seq0 uint16, ts0 uint32, start time.Duration, count int, delay func(int) time.Duration) []jitter.Packet {
	pk := realPackets(t)
	var res []jitter.Packet
	for i := range count {
		res = append(res, jitter.Packet{Seq: seq0 + uint16(i), Timestamp: ts0 + uint32(i*960),
			Payload: pk[i%len(pk)], Arrival: start + time.Duration(i)*tick + delay(i)})
	}
	return res
}

func fixed(d time.Duration) func(int) time.Duration { return func(int) time.Duration { return d } }

// between returns the frames from the first decoded one to the last.
func between(frames []out) []out {
	first := slices.IndexFunc(frames, func(f out) bool { return f.Kind == Decoded })
	last := len(frames) - 1
	for last > first && frames[last].Kind != Decoded {
		last--
	}
	return frames[first : last+1]
}

func TestDuplicatesAndWraparound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	pkts := stream(t, 65400, 1<<32-960*150, 0, 500, func(int) time.Duration {
		return 3*time.Millisecond + time.Duration(r.Int64N(int64(15*time.Millisecond)))
	})
	dups := 0
	for i := 0; i < 500; i += 7 {
		d := pkts[i]
		d.Arrival += 11 * time.Millisecond
		pkts = append(pkts, d)
		dups++
	}
	p := newPlayout(t, Config{})
	frames := between(drive(t, p, pkts, 10*time.Second+500*time.Millisecond))
	s := p.Stats()
	if s.Duplicate != uint64(dups) || s.Lost != 0 || s.Resyncs != 0 || s.Outliers != 0 {
		t.Fatalf("stats %+v, want %d duplicates and nothing else", s, dups)
	}
	var prev uint32
	for i, f := range frames {
		if f.Kind != Decoded && f.Slot != jitter.Stretch {
			t.Fatalf("frame %d: %v (%v)", i, f.Kind, f.Slot)
		}
		if i > 0 && f.Slot != jitter.Stretch && f.Timestamp != prev+960 {
			t.Fatalf("frame %d: timestamp %d after %d", i, f.Timestamp, prev)
		}
		if f.Slot != jitter.Stretch {
			prev = f.Timestamp
		}
	}
	if s.Decoded+s.Late+s.Dropped != 500 {
		t.Fatalf("decoded %d + late %d + dropped %d of 500", s.Decoded, s.Late, s.Dropped)
	}
}

func TestSenderRestart(t *testing.T) {
	a := stream(t, 100, 5000, 0, 250, fixed(4*time.Millisecond))
	b := stream(t, 40000, 2_000_000_000, 250*tick, 250, fixed(4*time.Millisecond))
	p := newPlayout(t, Config{})
	frames := drive(t, p, append(a, b...), 10*time.Second+500*time.Millisecond)
	s := p.Stats()
	if s.Resyncs != 1 || s.Lost != 0 {
		t.Fatalf("stats %+v", s)
	}
	if s.Decoded < 495 {
		t.Fatalf("decoded %d of 500 across a restart", s.Decoded)
	}
	// The gap between the streams is a few frames at most.
	k := countKinds(between(frames))
	if k[Decoded] != int(s.Decoded) || k[PLC]+k[ComfortNoise] > 5 {
		t.Fatalf("kinds %v", k)
	}
	lastB := frames[len(between(frames))-1+slices.IndexFunc(frames, func(f out) bool { return f.Kind == Decoded })]
	if lastB.Timestamp != 2_000_000_000+249*960 {
		t.Fatalf("last decoded frame %d, want the new stream's last", lastB.Timestamp)
	}
}

func TestLongSilenceThenRecovery(t *testing.T) {
	a := stream(t, 10, 0, 0, 100, fixed(4*time.Millisecond))
	// Nothing at all for 5 s, then the stream goes on in sequence.
	b := stream(t, 110, 350*960, 350*tick, 100, fixed(4*time.Millisecond))
	p := newPlayout(t, Config{})
	frames := drive(t, p, append(a, b...), 9500*time.Millisecond)
	s := p.Stats()
	if s.Lost != 0 || s.Resyncs != 0 || s.Decoded != 200 {
		t.Fatalf("stats %+v", s)
	}
	// After the last packet of a: up to MaxConcealed frames of fading PLC,
	// then comfort noise at its level, then decoding again.
	i := slices.IndexFunc(frames, func(f out) bool { return f.Timestamp == 99*960 && f.Kind == Decoded })
	plc := 0
	for i++; frames[i].Kind == PLC; i++ {
		plc++
	}
	if plc != DefaultMaxConcealed {
		t.Fatalf("%d frames of PLC after the stream stopped, want %d", plc, DefaultMaxConcealed)
	}
	cn := 0
	for ; frames[i].Kind == ComfortNoise; i++ {
		cn++
		if r := frames[i].rms; r < 15 || r > 70 {
			t.Fatalf("comfort noise RMS %.1f, want about 33 (-60 dBFS)", r)
		}
	}
	if cn < 240 || frames[i].Kind != Decoded || frames[i].Timestamp != 350*960 {
		t.Fatalf("%d frames of comfort noise, then %v at %d", cn, frames[i].Kind, frames[i].Timestamp)
	}
}

func TestDTX(t *testing.T) {
	enc, err := opus.NewEncoder(opus.EncoderConfig{DTX: true, FEC: true, PacketLossPercent: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	// 2 s of speech, 3 s of digital silence, 2 s of speech. Packets of at
	// most DTXPacketMax bytes are not sent; sequence numbers count only the
	// packets sent (as in WebRTC).
	sig := speech(350)
	clear(sig[100*FrameSamples : 250*FrameSamples])
	var pkts []jitter.Packet
	seq := uint16(500)
	buf := make([]byte, opus.MaxPacketSize)
	for i := range 350 {
		n, err := enc.Encode(sig[i*FrameSamples:(i+1)*FrameSamples], buf)
		if err != nil {
			t.Fatal(err)
		}
		if n <= opus.DTXPacketMax {
			continue
		}
		pkts = append(pkts, jitter.Packet{Seq: seq, Timestamp: uint32(i * 960), Payload: slices.Clone(buf[:n]),
			Arrival: time.Duration(i)*tick + 3*time.Millisecond})
		seq++
	}
	if len(pkts) > 300 {
		t.Fatalf("DTX sent %d of 350 packets", len(pkts))
	}
	p := newPlayout(t, Config{})
	frames := between(drive(t, p, pkts, 8*time.Second))
	s := p.Stats()
	if s.Lost != 0 || s.Late != 0 || s.Resyncs != 0 || s.Decoded != uint64(len(pkts)) {
		t.Fatalf("stats %+v for %d packets", s, len(pkts))
	}
	for i, f := range frames {
		if f.rms == 0 {
			t.Fatalf("frame %d (%v) is digital silence", i, f.Kind)
		}
	}
	t.Logf("%d packets sent; kinds %v", len(pkts), countKinds(frames))
}

func TestGarbagePayloadsAreConcealed(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	pkts := stream(t, 0, 0, 0, 500, fixed(5*time.Millisecond))
	invalid := map[uint32]bool{}
	for i := 20; i < 480; i += 10 {
		g := make([]byte, 1+r.IntN(200))
		for j := range g {
			g[j] = byte(r.Uint32())
		}
		// Random bodies under a 20 ms table of contents (a garbage TOC can
		// claim up to 120 ms, which then covers the following slots).
		g[0] = 0x48
		if i%20 == 0 {
			g = []byte{0xff, 0x00} // code 3 with no frames: never decodable
		}
		if _, err := opus.PacketSamples(g); err != nil {
			invalid[pkts[i].Timestamp] = true
		}
		pkts[i].Payload = g
	}
	p := newPlayout(t, Config{})
	frames := drive(t, p, pkts, 10*time.Second+500*time.Millisecond)
	s := p.Stats()
	if s.DecodeErrors < uint64(len(invalid)) || s.Frames != uint64(len(frames)) {
		t.Fatalf("%d decode errors for %d invalid packets; stats %+v", s.DecodeErrors, len(invalid), s)
	}
	for _, f := range frames {
		if invalid[f.Timestamp] && f.Slot == jitter.Play && f.Kind != PLC {
			t.Fatalf("invalid packet at %d came out as %v", f.Timestamp, f.Kind)
		}
	}
	if k := countKinds(between(frames)); k[ComfortNoise] != 0 {
		t.Fatalf("kinds %v", k)
	}
}

func TestComfortNoise(t *testing.T) {
	for _, level := range []float64{-60, -40} {
		p := newPlayout(t, Config{ComfortNoise: level, Seed: 5})
		q := newPlayout(t, Config{ComfortNoise: level, Seed: 5})
		want := 32768 * math.Pow(10, level/20)
		a, b := make([]int16, FrameSamples), make([]int16, FrameSamples)
		for i := range 100 {
			fa, fb := p.NextAt(time.Duration(i)*tick, a), q.NextAt(time.Duration(i)*tick, b)
			if fa.Kind != ComfortNoise || fb.Kind != ComfortNoise || fa.Slot != jitter.Waiting {
				t.Fatalf("frame %d without packets: %+v", i, fa)
			}
			if !slices.Equal(a, b) {
				t.Fatalf("comfort noise is not deterministic")
			}
			if r := rms(a); r < want*0.7 || r > want*1.3 {
				t.Fatalf("level %v dBFS: RMS %.1f, want %.1f", level, r, want)
			}
		}
	}
	p := newPlayout(t, Config{ComfortNoise: math.Inf(-1)})
	pcm := make([]int16, FrameSamples)
	pcm[0] = 1
	p.NextAt(0, pcm)
	if rms(pcm) != 0 {
		t.Fatalf("comfort noise at -Inf dBFS is not silence")
	}
	if _, err := New(Config{ComfortNoise: 3}); err == nil {
		t.Fatalf("a positive comfort noise level was accepted")
	}
	if _, err := New(Config{MaxConcealed: -1}); err == nil {
		t.Fatalf("a negative MaxConcealed was accepted")
	}
}

// TestOddDurations plays 40 ms and 10 ms packets: 320 samples per frame,
// timing by timestamp, nothing lost.
func TestOddDurations(t *testing.T) {
	for _, ms := range []int{10, 40, 60} {
		samples := ms * opus.SampleRate / 1000
		enc, err := opus.NewEncoder(opus.EncoderConfig{})
		if err != nil {
			t.Fatal(err)
		}
		sig := speech(300)
		var pkts []jitter.Packet
		buf := make([]byte, opus.MaxPacketSize)
		for i := 0; (i+1)*samples <= len(sig); i++ {
			n, err := enc.Encode(sig[i*samples:(i+1)*samples], buf)
			if err != nil {
				t.Fatal(err)
			}
			pkts = append(pkts, jitter.Packet{Seq: uint16(i), Timestamp: uint32(i * ms * 48), Payload: slices.Clone(buf[:n]),
				Arrival: time.Duration(i*ms)*time.Millisecond + 2*time.Millisecond})
		}
		enc.Close()
		p := newPlayout(t, Config{})
		frames := between(drive(t, p, pkts, 7*time.Second))
		s := p.Stats()
		if s.Decoded != uint64(len(pkts)) || s.Lost != 0 || s.Late != 0 || s.OddDuration != uint64(len(pkts)) {
			t.Errorf("%d ms: stats %+v for %d packets", ms, s, len(pkts))
		}
		if k := countKinds(frames); k[Decoded] != len(frames) || len(frames) < 295 || len(frames) > 300 {
			t.Errorf("%d ms: kinds %v", ms, k)
		}
		for i := 1; i < len(frames); i++ {
			if frames[i].Timestamp != frames[i-1].Timestamp+960 {
				t.Errorf("%d ms: frame %d at %d after %d", ms, i, frames[i].Timestamp, frames[i-1].Timestamp)
				break
			}
		}
	}
}

func TestNextUsesClockWithoutBunching(t *testing.T) {
	var now time.Duration
	p := newPlayout(t, Config{Now: func() time.Duration { return now }})
	pkts := stream(t, 0, 0, 0, 200, fixed(3*time.Millisecond))
	pcm := make([]int16, FrameSamples)
	i := 0
	for k := 0; k < 220; k++ {
		if k%10 == 9 {
			// The clock was late: this tick runs 40 ms late and the next
			// two catch up immediately.
			now += 3 * tick
		} else if k%10 > 1 {
			now += tick
		}
		for i < len(pkts) && pkts[i].Arrival <= now {
			_ = p.Push(pkts[i].Seq, pkts[i].Timestamp, pkts[i].Payload)
			i++
		}
		p.Next(pcm)
	}
	if s := p.Stats(); s.Decoded < 195 || s.Late != 0 || s.Stretched > 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConcurrentPushAndNext(t *testing.T) {
	p := newPlayout(t, Config{})
	pkts := stream(t, 0, 0, 0, 500, fixed(0))
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, pk := range pkts {
			_ = p.Push(pk.Seq, pk.Timestamp, pk.Payload)
		}
	})
	wg.Go(func() {
		pcm := make([]int16, FrameSamples)
		for range 500 {
			p.Next(pcm)
			_ = p.Stats()
		}
	})
	wg.Wait()
	if s := p.Stats(); s.Frames != 500 || s.Received != 500 {
		t.Fatalf("stats %+v", s)
	}
}

func TestZeroAllocs(t *testing.T) {
	pk := realPackets(t)
	p := newPlayout(t, Config{})
	pcm := make([]int16, FrameSamples)
	i := 0
	step := func() {
		now := time.Duration(i) * tick
		_ = p.PushPacket(jitter.Packet{Seq: uint16(i), Timestamp: uint32(i * 960), Payload: pk[i%len(pk)], Arrival: now + 3*time.Millisecond})
		p.NextAt(now, pcm)
		i++
	}
	for range 100 {
		step()
	}
	if a := testing.AllocsPerRun(500, step); a != 0 {
		t.Fatalf("Push+Next allocates %v times per frame", a)
	}
	if s := p.Stats(); s.Decoded < 550 {
		t.Fatalf("not in the steady state: %+v", s)
	}
}

func BenchmarkPushNext(b *testing.B) {
	pk := realPackets(b)
	p := newPlayout(b, Config{})
	pcm := make([]int16, FrameSamples)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		now := time.Duration(i) * tick
		_ = p.PushPacket(jitter.Packet{Seq: uint16(i), Timestamp: uint32(i * 960), Payload: pk[i%len(pk)], Arrival: now + 3*time.Millisecond})
		p.NextAt(now, pcm)
		i++
	}
}
