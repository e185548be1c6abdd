package leg

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/rtc/rtctest"
)

// layoutLines are the m-lines of rtc's default layout as the service offers them: sendrecv on
// the lines the bot sends on, sendonly elsewhere, an SSRC on each (the service sends on all).
func layoutLines() []OfferLine {
	var lines []OfferLine
	for i, l := range rtc.DefaultLayout().Lines() {
		kind, dir := "video", "sendonly"
		if l.Kind == rtc.KindAudio {
			kind = "audio"
		}
		if l.BotSends() {
			dir = "sendrecv"
		}
		lines = append(lines, OfferLine{Kind: kind, MID: l.MID, Direction: dir, SSRC: uint32(1000 + i)})
	}
	return lines
}

func builtOffer(t testing.TB, mux *Mux) (string, Config) {
	t.Helper()
	cert, fp := testCert(t)
	cfg := Config{LocalUfrag: randomString(t, 16), LocalPwd: randomString(t, 32), Certificate: cert, HandshakeTimeout: 10 * time.Second}
	offer, err := BuildOffer(OfferParams{Ufrag: cfg.LocalUfrag, Pwd: cfg.LocalPwd, Fingerprint: fp, Candidate: mux.LocalAddr(), Lines: layoutLines()})
	if err != nil {
		t.Fatal(err)
	}
	return offer, cfg
}

// TestBuildOffer: the offer has the layout's m-lines in order with their mids and directions,
// Opus 111 with the mid and audio-level extensions, VP8 96 with nack, nack pli, ccm fir and
// goog-remb and no transport-cc, an SSRC with cname and msid on every line, one host
// candidate, setup:actpass. It is printed next to the one pion/webrtc makes for the service.
func TestBuildOffer(t *testing.T) {
	mux := testMux(t)
	offer, _ := builtOffer(t, mux)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Logf("the offer BuildOffer writes:\n%s", offer)
	t.Logf("the offer pion/webrtc writes for the service (rtc.AddOfferTransceivers):\n%s", newPionOffer(t, ctx).offer)

	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		t.Fatal(err)
	}
	want := layoutLines()
	if len(d.MediaDescriptions) != len(want) {
		t.Fatalf("%d m-lines, want %d", len(d.MediaDescriptions), len(want))
	}
	if g, _ := d.Attribute("group"); g != "BUNDLE audio0 audio1 audio2 video0 video1 video2 video3 screenshare" {
		t.Errorf("group %q", g)
	}
	for i, m := range d.MediaDescriptions {
		w := want[i]
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		setup, _ := m.Attribute("setup")
		if m.MediaName.Media != w.Kind || mid != w.MID || direction(m) != w.Direction || setup != "actpass" {
			t.Errorf("line %d: %s mid %s %s setup %s, want %+v", i, m.MediaName.Media, mid, direction(m), setup, w)
		}
		text := attrs(m)
		for _, need := range []string{"ssrc:" + itoa(w.SSRC) + " cname:switchboard", "ssrc:" + itoa(w.SSRC) + " msid:switchboard " + w.MID,
			"msid:switchboard " + w.MID, "rtcp-mux", "extmap:1 " + uriMID} {
			if !strings.Contains(text, need+"\n") {
				t.Errorf("line %s lacks a=%s:\n%s", w.MID, need, text)
			}
		}
		if strings.Contains(text, "transport-cc") || strings.Contains(text, "transport-wide") {
			t.Errorf("line %s negotiates transport-cc:\n%s", w.MID, text)
		}
		if w.Kind == "audio" {
			for _, need := range []string{"rtpmap:111 opus/48000/2", "fmtp:111 minptime=10;useinbandfec=1", "extmap:2 " + uriAudioLevel} {
				if !strings.Contains(text, need+"\n") {
					t.Errorf("line %s lacks a=%s", w.MID, need)
				}
			}
			continue
		}
		for _, need := range []string{"rtpmap:96 VP8/90000", "rtcp-fb:96 nack", "rtcp-fb:96 nack pli", "rtcp-fb:96 ccm fir", "rtcp-fb:96 goog-remb"} {
			if !strings.Contains(text, need+"\n") {
				t.Errorf("line %s lacks a=%s", w.MID, need)
			}
		}
	}
	if n := strings.Count(offer, "a=candidate:"); n != 1 || !strings.Contains(offer, mux.LocalAddr().Addr().String()+" "+itoa(uint32(mux.LocalAddr().Port()))+" typ host") {
		t.Errorf("%d candidates, want the mux's one", n)
	}
	o, err := ParseOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Media) != len(want) || o.Ufrag == "" || len(o.Fingerprints) != 1 {
		t.Fatalf("read back as %+v", o)
	}
	for _, bad := range []OfferParams{
		{},
		{Ufrag: "u", Pwd: "p", Fingerprint: Fingerprint{"sha-256", "AA"}, Candidate: mux.LocalAddr()},
		{Ufrag: "u", Pwd: "p", Fingerprint: Fingerprint{"sha-256", "AA"}, Candidate: mux.LocalAddr(), Lines: []OfferLine{{Kind: "text", MID: "x", Direction: "sendonly"}}},
		{Ufrag: "u", Pwd: "p", Fingerprint: Fingerprint{"sha-256", "AA"}, Candidate: mux.LocalAddr(), Lines: []OfferLine{{Kind: "audio", MID: "a b", Direction: "sendonly"}}},
		{Ufrag: "u", Pwd: "p", Fingerprint: Fingerprint{"sha-256", "AA"}, Candidate: mux.LocalAddr(), Lines: []OfferLine{{Kind: "audio", MID: "a", Direction: "up"}}},
		{Ufrag: "u", Pwd: "p", Fingerprint: Fingerprint{"sha-256", "AA"}, Candidate: mux.LocalAddr(), CNAME: "a b", Lines: want},
	} {
		if _, err := BuildOffer(bad); !errors.Is(err, ErrBadConfig) {
			t.Errorf("BuildOffer(%+v): %v, want ErrBadConfig", bad, err)
		}
	}
}

func attrs(m *sdp.MediaDescription) string {
	var b strings.Builder
	for _, a := range m.Attributes {
		b.WriteString(a.String())
		b.WriteString("\n")
	}
	return b.String()
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// midAnswer is a pion/webrtc answerer that records, for each track it receives, the mid of its
// m-line and its packets; it sends audio on audio0 and video on video0.
type midAnswer struct {
	pc           *webrtc.PeerConnection
	audio, video *webrtc.TrackLocalStaticRTP
	answer       string
	mu           sync.Mutex
	byMID        map[string]int // packets received, by the m-line pion mapped the SSRC to
	readers      sync.WaitGroup
}

// newMidAnswer answers offer with api on a socket of its own (the SDK's way when sdkWay:
// ICE-lite on a UDP mux, DTLS server, rtc.NewBotAPI; else pion's defaults: full ICE, DTLS client).
func newMidAnswer(t *testing.T, ctx context.Context, offer string, sdkWay bool) *midAnswer {
	t.Helper()
	var api *webrtc.API
	var err error
	if sdkWay {
		api = rtctest.BotAPI(t)
	} else if api, err = rtc.NewAPI(rtc.ServiceSettingEngine(true)); err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	a := &midAnswer{pc: pc, byMID: map[string]int{}}
	t.Cleanup(func() {
		_ = pc.Close()
		a.readers.Wait()
	})
	pc.OnTrack(func(track *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		mid := ""
		for _, x := range pc.GetTransceivers() {
			if x.Receiver() == r {
				mid = x.Mid()
			}
		}
		a.readers.Add(1)
		go func() {
			defer a.readers.Done()
			for {
				if _, _, err := track.ReadRTP(); err != nil {
					return
				}
				a.mu.Lock()
				a.byMID[mid]++
				a.mu.Unlock()
			}
		}()
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatalf("pion refused the offer: %v\n%s", err, offer)
	}
	// AddTrack takes the first line of the track's kind: audio0 and video0.
	if a.audio, err = webrtc.NewTrackLocalStaticRTP(rtc.OpusCodec().RTPCodecCapability, "audio0", "bot"); err != nil {
		t.Fatal(err)
	}
	if a.video, err = webrtc.NewTrackLocalStaticRTP(rtc.VP8Codec().RTPCodecCapability, "video0", "bot"); err != nil {
		t.Fatal(err)
	}
	for _, track := range []*webrtc.TrackLocalStaticRTP{a.audio, a.video} {
		if _, err := pc.AddTrack(track); err != nil {
			t.Fatal(err)
		}
	}
	if a.answer, err = rtc.CompleteAnswer(ctx, pc, nil); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *midAnswer) packets(mid string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byMID[mid]
}

// TestBuiltOfferToPion: pion/webrtc answers the offer BuildOffer writes, both as the SDK builds
// it (ICE-lite, DTLS server) and with pion's defaults (full ICE, DTLS client: the offering leg
// is then the server); ParseAnswer finds the SSRCs pion sends with on audio0 and video0; the
// packets the leg sends with each line's SSRC reach pion on that line; pion's reach the leg
// with the SSRCs of its answer.
func TestBuiltOfferToPion(t *testing.T) {
	for _, sdkWay := range []bool{true, false} {
		name := "pion defaults"
		if sdkWay {
			name = "as the SDK"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			mux := testMux(t)
			offer, cfg := builtOffer(t, mux)
			p := newMidAnswer(t, ctx, offer, sdkWay)
			ans, err := ParseAnswer(p.answer)
			if err != nil {
				t.Fatalf("%v\n%s", err, p.answer)
			}
			if ans.DTLSClient == sdkWay {
				t.Fatalf("answer's DTLS client %v\n%s", ans.DTLSClient, p.answer)
			}
			sent := map[uint32]string{}
			for _, m := range ans.Media {
				if m.Sends() {
					for _, s := range m.SSRCs {
						sent[s] = m.MID
					}
				}
			}
			if len(sent) != 2 || !containsValue(sent, "audio0") || !containsValue(sent, "video0") {
				t.Fatalf("answer's sending lines %v\n%s", sent, p.answer)
			}
			got := make(chan uint32, 512)
			cfg.OnRTP = func(pkt *rtp.Packet) {
				select {
				case got <- pkt.SSRC:
				default:
				}
			}
			l, err := mux.NewOfferLeg(ans.OfferConfig(cfg))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = l.Close() }()
			wait(t, ctx, l.Connected(), "the offering leg connected")
			lines := layoutLines()
			for i := range 60 {
				for _, line := range lines {
					pt := uint8(PayloadTypeOpus)
					payload := []byte{1, 2, 3, 4}
					if line.Kind == "video" {
						pt, payload = PayloadTypeVP8, []byte{0x10, 0, 0x9d, 0x01, 0x2a, 1, 2, 3}
					}
					pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SSRC: line.SSRC, SequenceNumber: uint16(i), Timestamp: uint32(i * 960), Marker: true}, Payload: payload}
					if err := l.WriteRTP(pkt); err != nil {
						t.Fatal(err)
					}
				}
				_ = p.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 960)}, Payload: []byte{9, 9}})
				_ = p.video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 3000), Marker: true}, Payload: []byte{0x10, 0, 1}})
				time.Sleep(2 * time.Millisecond)
			}
			deadline := time.Now().Add(10 * time.Second)
			for _, line := range lines {
				for p.packets(line.MID) < 10 {
					if time.Now().After(deadline) {
						t.Fatalf("pion received %v by mid", p.byMID)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			seen := map[string]bool{}
			for len(seen) < 2 {
				select {
				case s := <-got:
					mid, ok := sent[s]
					if !ok {
						t.Fatalf("packet with SSRC %d, not one of the answer's %v", s, sent)
					}
					seen[mid] = true
				case <-ctx.Done():
					t.Fatalf("the leg received from %v only", seen)
				}
			}
		})
	}
}

func containsValue(m map[uint32]string, v string) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}
