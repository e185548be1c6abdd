package sfu

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
)

// testBot is the bot's end of a bot leg in tests (pion/webrtc): it answers the SFU's offer,
// records what each m-line receives and sends audio on the first audio line; with video, it
// also sends VP8 on the first video line and counts the key frame requests about it.
type testBot struct {
	pc       *webrtc.PeerConnection
	mu       sync.Mutex
	byMID    map[string]*recvStream
	csrcSeen map[string]map[uint32]int // mid → CSRC[0] → packets
	tagSeen  map[uint32]map[byte]int   // CSRC[0] → first payload byte → packets
	wg       sync.WaitGroup
	stop     chan struct{}

	video *webrtc.TrackLocalStaticRTP // nil: audio only
	plis  atomic.Int32                // PLIs the SFU sent about video
}

// connectBot connects an audio-only test bot to p.
func connectBot(t *testing.T, api *webrtc.API, p *Participant) *testBot {
	t.Helper()
	return dialBot(t, api, p, false)
}

// connectVideoBot connects a test bot that sends video too (the packets' first VP8 payload byte
// after its header is 'V') and waits until the leg is up.
func connectVideoBot(t *testing.T, api *webrtc.API, p *Participant) *testBot {
	t.Helper()
	return dialBot(t, api, p, true)
}

func dialBot(t *testing.T, api *webrtc.API, p *Participant, video bool) *testBot {
	t.Helper()
	b := &testBot{byMID: make(map[string]*recvStream), csrcSeen: make(map[string]map[uint32]int),
		tagSeen: make(map[uint32]map[byte]int), stop: make(chan struct{})}
	var err error
	if b.pc, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	b.pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		mid := ""
		for _, x := range b.pc.GetTransceivers() {
			if x.Receiver() == recv {
				mid = x.Mid()
			}
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for {
				pkt, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				b.record(mid, tr.Kind(), pkt)
			}
		}()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offer, err := p.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatalf("pion refused the offer: %v\n%s", err, offer)
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(rtc.OpusCodec().RTPCodecCapability, "bot-audio", "bot")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := b.pc.AddTrack(audio)
	if err != nil {
		t.Fatal(err)
	}
	var vSender *webrtc.RTPSender
	if video {
		if b.video, err = webrtc.NewTrackLocalStaticRTP(rtc.VP8Codec().RTPCodecCapability, "bot-video", "bot"); err != nil {
			t.Fatal(err)
		}
		if vSender, err = b.pc.AddTrack(b.video); err != nil {
			t.Fatal(err)
		}
	}
	answer, err := rtc.CompleteAnswer(ctx, b.pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(ctx, answer); err != nil {
		t.Fatal(err)
	}
	if video {
		if err := p.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for {
				pkts, _, err := vSender.ReadRTCP()
				if err != nil {
					return
				}
				for _, q := range pkts {
					if _, ok := q.(*rtcp.PictureLossIndication); ok {
						b.plis.Add(1)
					}
				}
			}
		}()
	}
	levelID := extID(sender.GetParameters().RTPParameters, sdp.AudioLevelURI)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(1); ; seq++ {
			select {
			case <-b.stop:
				return
			case <-tick.C:
			}
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 960, PayloadType: 111},
				Payload: []byte{'Z', 1, 2, 3}}
			if levelID != 0 {
				_ = pkt.Header.SetExtension(levelID, []byte{90})
			}
			_ = audio.WriteRTP(pkt)
			if video && seq%3 == 0 {
				pic := seq / 3
				payload := vp8TestPayload(pic, pic%10 == 1, 0)
				payload[4+10] = 'V'
				_ = b.video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: pic, Timestamp: uint32(pic) * 6000, Marker: true}, Payload: payload})
			}
		}
	}()
	return b
}

func (b *testBot) record(mid string, kind webrtc.RTPCodecType, p *rtp.Packet) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rs := b.byMID[mid]
	if rs == nil {
		rs = &recvStream{payloads: make(map[byte]int)}
		b.byMID[mid] = rs
	}
	rs.packets++
	rs.seqs = append(rs.seqs, p.SequenceNumber)
	var tag byte
	if kind == webrtc.RTPCodecTypeVideo {
		if d, ok := parseVP8(p.Payload); ok && len(p.Payload) > d.headerLen+10 {
			tag = p.Payload[d.headerLen+10]
		}
	} else if len(p.Payload) > 0 {
		tag = p.Payload[0]
	}
	rs.payloads[tag]++
	if len(p.CSRC) == 0 {
		return
	}
	src := p.CSRC[0]
	rs.csrc = src
	if b.csrcSeen[mid] == nil {
		b.csrcSeen[mid] = make(map[uint32]int)
	}
	b.csrcSeen[mid][src]++
	if b.tagSeen[src] == nil {
		b.tagSeen[src] = make(map[byte]int)
	}
	b.tagSeen[src][tag]++
}

func (b *testBot) onSlots(src uint32) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for mid, m := range b.csrcSeen {
		if len(mid) > 5 && mid[:5] == "audio" {
			n += m[src]
		}
	}
	return n
}

func (b *testBot) close() {
	close(b.stop)
	_ = b.pc.Close()
	b.wg.Wait()
}

// TestBotLeg: the loudest three of four speakers reach the bot on its audio slots with their
// source ids in CSRC[0] and their payloads; a newly loud speaker displaces a quiet one; the bot's
// own audio reaches the browsers; a video slot subscription delivers the nearest layer with the
// source id.
func TestBotLeg(t *testing.T) {
	s := newTestSFU(t, Config{})
	c, err := s.Conference("bots")
	if err != nil {
		t.Fatal(err)
	}
	api := clientAPI(t)
	var peers []*testPeer
	for _, n := range []string{"A", "B", "C", "D"} {
		peers = append(peers, joinPeer(t, api, c, n, n == "A"))
	}
	defer func() {
		for _, p := range peers {
			p.close()
		}
	}()
	peers[0].setLevel(20)
	peers[1].setLevel(25)
	peers[2].setLevel(30)
	peers[3].setLevel(120)
	// The bot joins once every speaker's loudness is established (A, the loudest, has taken the
	// floor): before that a quiet stream may rightly fill a slot that nobody louder claims yet.
	for _, p := range peers {
		waitLayersN(t, c, p.p.SourceID(StreamAudio), 1, p.name+"'s audio published")
	}
	eventually(t, "A dominant", func() bool { return c.DominantSpeaker() == peers[0].p.SourceID(StreamAudio) })
	botP, err := c.AddBot("bot", BotOptions{DisplayName: "Bot"})
	if err != nil {
		t.Fatal(err)
	}
	bot := connectBot(t, api, botP)
	defer bot.close()

	for _, p := range peers[:3] {
		src := p.p.SourceID(StreamAudio)
		eventually(t, "bot hears "+p.name, func() bool { return bot.onSlots(src) >= 20 })
		bot.mu.Lock()
		tags := bot.tagSeen[src]
		if len(tags) != 1 || tags[p.tag] == 0 {
			t.Errorf("CSRC %d (%s) carried payloads %v", src, p.name, tags)
		}
		bot.mu.Unlock()
	}
	if n := bot.onSlots(peers[3].p.SourceID(StreamAudio)); n != 0 {
		t.Errorf("silent D reached the bot %d times while three were louder", n)
	}
	// D gets loud, C falls silent: D takes C's slot.
	peers[3].setLevel(10)
	peers[2].setLevel(127)
	dsrc := peers[3].p.SourceID(StreamAudio)
	eventually(t, "bot hears D", func() bool { return bot.onSlots(dsrc) >= 10 })

	// The bot's own audio reaches a browser.
	botAudio := trackID(StreamAudio, botP.SourceID(StreamAudio))
	eventually(t, "A hears the bot", func() bool { rs, ok := peers[0].stream(botAudio); return ok && rs.payloads['Z'] >= 10 })

	// Video slot 0: A's camera at 320×180 → layer q, CSRC = A's video source.
	vsrc := peers[0].p.SourceID(StreamVideo)
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
	bot.mu.Lock()
	if rs := bot.byMID[rtc.VideoMID(0)]; rs.payloads['1'] != 0 || rs.payloads['2'] != 0 {
		t.Errorf("video slot got other layers: %v", rs.payloads)
	}
	bot.mu.Unlock()
	if err := botP.SubscribeVideo(0, 9999, 0, 0); err == nil {
		t.Error("subscribing an unknown source succeeded")
	}
	if err := botP.SubscribeVideo(7, vsrc, 0, 0); err == nil {
		t.Error("subscribing a missing slot succeeded")
	}
}
