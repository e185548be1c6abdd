package sfu

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/rtc/leg"
	"github.com/switchboard-rtc/switchboard/internal/rtc/rtctest"
)

// TestBotLegSDKAnswerer: a bot answering as the SDK's pion/webrtc did (ICE-lite, DTLS server,
// no transport-cc) on the SFU's leg: it hears the browser on an audio slot, the browser hears
// and sees it, the SFU asks it for a key frame of its video (PLI on the leg), its PLI on a video
// slot reaches the publisher's stream, its receiver reports are read; its close fails the
// participant with ErrTransportFailed, as a pion connection's closed state did.
func TestBotLegSDKAnswerer(t *testing.T) {
	s := newTestSFU(t, Config{})
	c, err := s.Conference("sdk")
	if err != nil {
		t.Fatal(err)
	}
	api := clientAPI(t)
	a := joinPeer(t, api, c, "A", true)
	defer a.close()
	closed := make(chan error, 1)
	botP, err := c.AddBot("bot", BotOptions{DisplayName: "Bot", OnClosed: func(err error) { closed <- err }})
	if err != nil {
		t.Fatal(err)
	}
	bot := connectVideoBot(t, rtctest.BotAPI(t), botP)
	stopped := false
	defer func() {
		if !stopped {
			bot.close()
		}
	}()
	asrc := a.p.SourceID(StreamAudio)
	eventually(t, "the bot hears A", func() bool { return bot.onSlots(asrc) >= 20 })
	eventually(t, "A hears the bot", func() bool {
		rs, ok := a.stream(trackID(StreamAudio, botP.SourceID(StreamAudio)))
		return ok && rs.payloads['Z'] >= 10
	})
	eventually(t, "the SFU asks the bot for a key frame", func() bool { return bot.plis.Load() >= 1 })
	eventually(t, "A sees the bot", func() bool {
		rs, ok := a.stream(trackID(StreamVideo, botP.SourceID(StreamVideo)))
		return ok && rs.packets >= 5
	})

	vsrc := a.p.SourceID(StreamVideo)
	waitLayers(t, c, vsrc, "A's video published")
	if err := botP.SubscribeVideo(0, vsrc, 320, 180); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bot video slot", func() bool {
		bot.mu.Lock()
		defer bot.mu.Unlock()
		rs := bot.byMID[rtc.VideoMID(0)]
		return rs != nil && rs.payloads['0'] >= 5 && rs.csrc == vsrc
	})
	var slotSSRC uint32
	for _, x := range bot.pc.GetTransceivers() {
		if x.Mid() == rtc.VideoMID(0) {
			for _, e := range x.Receiver().Tracks() {
				slotSSRC = uint32(e.SSRC())
			}
		}
	}
	before := counterValue(s.metrics.keyframeRequests)
	plisToA := counterValue(s.metrics.kinds[StreamVideo].plis)
	eventually(t, "the bot's PLI reaches A's stream", func() bool {
		_ = bot.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: slotSSRC}})
		return counterValue(s.metrics.keyframeRequests) > before && counterValue(s.metrics.kinds[StreamVideo].plis) > plisToA
	})
	eventually(t, "the bot's receiver reports read", func() bool { return histogramCount(s.metrics.loss) > 0 })

	close(bot.stop)
	_ = bot.pc.Close()
	bot.wg.Wait()
	stopped = true
	select {
	case err := <-closed:
		if !errors.Is(err, ErrTransportFailed) {
			t.Fatalf("participant closed with %v, want ErrTransportFailed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the bot's close did not end the participant")
	}
	if _, err := c.Participant("bot"); !errors.Is(err, ErrParticipantNotFound) {
		t.Fatalf("bot still in the conference: %v", err)
	}
}

func histogramCount(h prometheus.Histogram) uint64 {
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}

// TestBotLegConnectErrors: Connect refuses a bad answer and a second answer; WaitConnected
// before Connect says ErrNotConnected; a leg whose bot never answers ICE fails WaitConnected at
// its context.
func TestBotLegConnectErrors(t *testing.T) {
	s := newTestSFU(t, Config{})
	c, _ := s.Conference("errors")
	p, err := c.AddBot("bot", BotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitConnected(ctx); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("before Connect: %v", err)
	}
	if err := p.Connect(ctx, "garbage"); !errors.Is(err, leg.ErrBadAnswer) {
		t.Fatalf("garbage answer: %v", err)
	}
	// An answer whose candidate nobody listens at.
	mux, err := leg.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cand := mux.LocalAddr()
	_ = mux.Close()
	offer, _ := p.Offer(ctx)
	o, err := leg.ParseOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := leg.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := leg.CertificateFingerprint(cert)
	answer, err := o.Answer(leg.AnswerParams{Ufrag: "nobodyhere", Pwd: "nobodyherenobodyhere", Fingerprint: fp, Candidate: cand})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(ctx, answer); err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(ctx, answer); !errors.Is(err, ErrAlreadyConnected) {
		t.Fatalf("second answer: %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if err := p.WaitConnected(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unanswered checks: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// legBotEnd answers a bot participant's offer with an answering leg (the bot's end as the SDK
// now builds it), counting the RTP packets it receives; it returns once the leg is connected.
func legBotEnd(t testing.TB, p *Participant, got *atomic.Int64) *leg.Mux {
	t.Helper()
	mux, _ := legBotEndWith(t, p, func(*rtp.Packet) { got.Add(1) }, nil)
	return mux
}

// legBotEndWith is legBotEnd with the bot's packets to onRTP (on its Mux's reader), reached
// through via when it is not nil; it returns the bot's leg too.
func legBotEndWith(t testing.TB, p *Participant, onRTP func(*rtp.Packet), via *dropRelay) (*leg.Mux, *leg.Leg) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offer, err := p.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o, err := leg.ParseOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	mux, err := leg.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := leg.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := leg.CertificateFingerprint(cert)
	l, err := mux.NewLeg(leg.Config{LocalUfrag: "botleg", LocalPwd: "botlegpasswordbotlegpassword", RemoteUfrag: o.Ufrag,
		RemoteFingerprints: o.Fingerprints, Certificate: cert, OnRTP: onRTP})
	if err != nil {
		t.Fatal(err)
	}
	candidate := mux.LocalAddr()
	if via != nil {
		candidate = via.start(t, candidate)
	}
	answer, err := o.Answer(leg.AnswerParams{Ufrag: "botleg", Pwd: "botlegpasswordbotlegpassword", Fingerprint: fp, Candidate: candidate})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(ctx, answer); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	// The bot's end too: packets that come before it has its SRTP keys are dropped there (on a
	// busy machine, a whole burst).
	select {
	case <-l.Connected():
	case <-ctx.Done():
		t.Fatal("the bot's end of the leg did not connect")
	}
	return mux, l
}

// slotUpstream is an audio upstream whose one sink is the bot's first audio slot (the tests
// drive it from their own goroutine, so no browser's reader may share it).
func slotUpstream(s *SFU, bot *Participant) *upstream {
	pub := &published{kind: StreamAudio, source: 42}
	u := &upstream{pub: pub, ssrc: 1111, levelExt: 1, m: s.metrics.kinds[StreamAudio]}
	list := []sink{bot.audioSlots[0]}
	u.sinks.Store(&list)
	return u
}

// BenchmarkForwardAudioLeg is the whole forwarding cost of one audio packet to one bot through
// the leg's write path (slot rewrite, SRTP, UDP on loopback), as BenchmarkForwardAudioPion is
// through pion's.
func BenchmarkForwardAudioLeg(b *testing.B) {
	s, err := New(Config{Loopback: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	var got atomic.Int64
	_, u := legBotSlot(b, s, &got)
	pkt := audioPacket(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		forwardAudio(u, pkt, uint16(30000+i))
	}
}

// legBotSlot adds a bot whose end is a leg (got counts the packets it receives) to a conference
// of s, and returns it with an audio upstream of the caller's own onto its first slot.
func legBotSlot(tb testing.TB, s *SFU, got *atomic.Int64) (*Participant, *upstream) {
	tb.Helper()
	c, _ := s.Conference("leg")
	bot, err := c.AddBot("bot", BotOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	mux := legBotEnd(tb, bot, got)
	tb.Cleanup(func() { _ = mux.Close() })
	return bot, slotUpstream(s, bot)
}

// forwardAudio hands u the audio packet pkt as its sequence number seq.
func forwardAudio(u *upstream, pkt []byte, seq uint16) {
	binary.BigEndian.PutUint16(pkt[2:], seq)
	binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*960)
	u.handle(pkt, time.Now().UnixNano())
}

// TestForwardLegZeroAllocs: forwarding to a bot through its leg (rewrite, SRTP, send) and
// receiving from a bot (its leg's packet to the upstream and its sinks) allocate nothing, and
// the packets arrive.
func TestForwardLegZeroAllocs(t *testing.T) {
	s := newTestSFU(t, Config{})
	var got atomic.Int64
	bot, u := legBotSlot(t, s, &got)
	pkt := audioPacket(0)
	seq := uint16(30000)
	before := got.Load()
	if n := testing.AllocsPerRun(200, func() {
		seq++
		forwardAudio(u, pkt, seq)
	}); n != 0 {
		t.Errorf("forwarding to a bot leg: %v allocations a packet", n)
	}
	// A burst of 201 packets may overflow the bot's socket buffer on a busy machine; paced, every
	// packet must arrive.
	eventually(t, "the bot's leg to receive some of them", func() bool { return got.Load() > before })
	time.Sleep(100 * time.Millisecond) // what of the burst is still on its way
	before = got.Load()
	for range 50 {
		seq++
		forwardAudio(u, pkt, seq)
		time.Sleep(time.Millisecond)
	}
	eventually(t, "the bot's leg to receive 50 paced packets", func() bool { return got.Load()-before >= 50 })

	// Receiving: the leg's callback with a bot's packet, to an upstream with sinks.
	in, _, _ := testUpstream(t, StreamAudio, 4)
	bl := &botLeg{p: bot, in: []botInbound{{ssrc: 1111, kind: StreamAudio, levelExt: 1, u: in}}}
	var p rtp.Packet
	if err := p.Unmarshal(audioPacket(1)); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() {
		p.SequenceNumber++
		p.Timestamp += 960
		bl.onRTP(&p)
	}); n != 0 {
		t.Errorf("receiving from a bot leg: %v allocations a packet", n)
	}

	// A packet of an SSRC the answer did not announce: dropped, counted.
	bl.m, bl.out = s.metrics, map[uint32]*botLine{}
	stray := p
	stray.SSRC = 2222
	bl.onRTP(&stray)
	if n := counterValue(s.metrics.unannounced); n != 1 {
		t.Errorf("unannounced packets counted %v, want 1", n)
	}

	// Its RTCP: walked, and looked up by SSRC.
	var pli [12]byte
	raw := leg.PLI(&pli, 1111, 4242)
	if n := testing.AllocsPerRun(200, func() { bl.onRTCP(raw) }); n != 0 {
		t.Errorf("a bot leg's RTCP: %v allocations a packet", n)
	}
}

// TestBotCandidate: a bot leg announces the public address when there is one, else its socket's
// address, else (a socket on every interface) an IPv4 address of the host; and its socket takes
// a port of the range when there is one.
func TestBotCandidate(t *testing.T) {
	local := netip.MustParseAddrPort("0.0.0.0:40001")
	s := &SFU{publicIP: netip.MustParseAddr("203.0.113.7")}
	if got := s.botCandidate(local); got != netip.MustParseAddrPort("203.0.113.7:40001") {
		t.Errorf("with a public address: %v", got)
	}
	s.publicIP = netip.Addr{}
	if got := s.botCandidate(netip.MustParseAddrPort("127.0.0.1:40001")); got != netip.MustParseAddrPort("127.0.0.1:40001") {
		t.Errorf("bound to loopback: %v", got)
	}
	if got := s.botCandidate(local); !got.Addr().Is4() || got.Addr().IsUnspecified() || got.Port() != 40001 {
		t.Errorf("on every interface: %v", got)
	}
	lo, hi := freeRange(t, 20)
	s = &SFU{cfg: Config{PortMin: lo, PortMax: hi}, botHost: netip.MustParseAddr("127.0.0.1")}
	for range 3 {
		conn, err := s.botSocket()
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }()
		if p := conn.LocalAddr().(*net.UDPAddr).Port; p < int(lo) || p > int(hi) {
			t.Errorf("bot socket on %d, outside %d-%d", p, lo, hi)
		}
	}
}

// TestBotLegAnswersNACK: a bot's NACK for video the SFU sent it gets the packets again, as they
// were (the same sequence numbers and payloads), from the line's retransmission buffer; a NACK
// for packets too old for it, or for an audio line, gets nothing.
func TestBotLegAnswersNACK(t *testing.T) {
	s := newTestSFU(t, Config{})
	c, _ := s.Conference("nack")
	bot, err := c.AddBot("bot", BotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[uint16]int{} // video0's sequence numbers, with how often each came
	var video0 uint32
	for _, bl := range bot.leg.lines {
		if bl.line.MID == rtc.VideoMID(0) {
			video0 = bl.ssrc
		}
	}
	// The relay loses 1290, 1292 and 1297 on their way to the bot (once: not their resends).
	relay := &dropRelay{drop: map[uint16]bool{1290: true, 1292: true, 1297: true}}
	mux, botEnd := legBotEndWith(t, bot, func(p *rtp.Packet) {
		if p.SSRC != video0 {
			return
		}
		mu.Lock()
		seen[p.SequenceNumber]++
		mu.Unlock()
	}, relay)
	defer func() { _ = mux.Close() }()
	var track *downTrack
	for _, bl := range bot.leg.lines {
		if bl.ssrc == video0 {
			track = bl.track
		}
	}
	count := func(seq uint16) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[seq]
	}
	// 300 packets, paced: all arrive once; the buffer keeps the latest 128.
	var ext [1]byte
	payload := []byte{0x90, 0x80, 0x01, 0x9d, 0x01, 0x2a}
	for i := range 300 {
		h := rtp.Header{Version: 2, SequenceNumber: uint16(1000 + i), Timestamp: uint32(i) * 3000}
		if err := track.write(&h, payload, 0xff, &ext); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			time.Sleep(time.Millisecond)
		}
	}
	// (The first few may come before the bot's end has its SRTP keys, and be dropped there.)
	eventually(t, "the video packets to arrive", func() bool { return count(1299) == 1 && count(1100) == 1 })
	if count(1290)+count(1292)+count(1297) != 0 {
		t.Fatal("the relay did not lose the packets")
	}
	nack := func(ssrc uint32, pairs ...rtcp.NackPair) {
		raw, err := rtcp.Marshal([]rtcp.Packet{&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: ssrc, Nacks: pairs}})
		if err != nil {
			t.Fatal(err)
		}
		if err := botEnd.WriteRTCP(raw); err != nil {
			t.Fatal(err)
		}
	}
	// 1290, and 1292 and 1297 by the bitmap; 1010 is long gone from the buffer.
	nack(video0, rtcp.NackPair{PacketID: 1290, LostPackets: 1<<1 | 1<<6}, rtcp.NackPair{PacketID: 1010})
	eventually(t, "the NACKed packets to come", func() bool {
		return count(1290) == 1 && count(1292) == 1 && count(1297) == 1
	})
	if counterValue(s.metrics.retransmits) != 3 || count(1291) != 1 || count(1010) != 1 {
		t.Fatalf("retransmitted %v; 1291 came %d times, 1010 %d", counterValue(s.metrics.retransmits), count(1291), count(1010))
	}
	// An audio line's SSRC: nothing kept, nothing sent.
	nack(bot.leg.lines[0].ssrc, rtcp.NackPair{PacketID: 1})
	eventually(t, "the second NACK to be read", func() bool { return counterValue(s.metrics.nacks) == 3 })
	if counterValue(s.metrics.retransmits) != 3 {
		t.Fatalf("retransmitted %v after an audio NACK", counterValue(s.metrics.retransmits))
	}

	// Keeping a sent packet, and answering a NACK (on the reader's side), allocate nothing.
	seq := uint16(2000)
	h := &rtp.Header{Version: 2} // the sink's is its own too
	if n := testing.AllocsPerRun(100, func() {
		seq++
		h.SequenceNumber, h.Timestamp = seq, uint32(seq)*3000
		_ = track.write(h, payload, 0xff, &ext)
	}); n != 0 {
		t.Errorf("sending video to a bot: %v allocations a packet", n)
	}
	raw, err := rtcp.Marshal([]rtcp.Packet{&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: video0, Nacks: []rtcp.NackPair{{PacketID: seq - 3, LostPackets: 3}}}})
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { bot.leg.onRTCP(raw) }); n != 0 {
		t.Errorf("answering a NACK: %v allocations", n)
	}
}

// dropRelay forwards UDP between an SFU's bot leg and a bot's end, and loses the first copy of
// each video RTP packet whose sequence number drop names (the RTP header is in the clear in
// SRTP). The bot's end sees every packet from the relay's address.
type dropRelay struct {
	drop map[uint16]bool // guarded by the relay's goroutine

	conn *net.UDPConn
	bot  netip.AddrPort
	sfu  netip.AddrPort // the relay goroutine's: learnt from the first packet not from the bot
}

// start listens on loopback, forwards to and from bot until the test ends, and returns its
// address.
func (r *dropRelay) start(t testing.TB, bot netip.AddrPort) netip.AddrPort {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r.conn, r.bot = conn, bot
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			b := buf[:n]
			if from == r.bot {
				if r.sfu.IsValid() {
					_, _ = conn.WriteToUDPAddrPort(b, r.sfu)
				}
				continue
			}
			r.sfu = from
			if n >= 12 && b[0]>>6 == 2 && b[1]&0x7f == leg.PayloadTypeVP8 {
				if seq := binary.BigEndian.Uint16(b[2:]); r.drop[seq] {
					delete(r.drop, seq)
					continue
				}
			}
			_, _ = conn.WriteToUDPAddrPort(b, r.bot)
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-done
	})
	return netip.MustParseAddrPort(conn.LocalAddr().String())
}
