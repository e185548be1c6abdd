package rtc_test

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/rtc/rtctest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLayoutLinesAndMIDs(t *testing.T) {
	l := rtc.DefaultLayout()
	lines := l.Lines()
	if len(lines) != l.Audio+l.Video+1 {
		t.Fatalf("lines = %d", len(lines))
	}
	for _, line := range lines {
		got, ok := rtc.ParseMID(line.MID)
		if !ok || got != line {
			t.Errorf("ParseMID(%q) = %+v, %v; want %+v", line.MID, got, ok, line)
		}
	}
	for _, bad := range []string{"", "audio", "audio01", "video-1", "videox", "audio123", "0"} {
		if _, ok := rtc.ParseMID(bad); ok {
			t.Errorf("ParseMID(%q) ok", bad)
		}
	}
	if !lines[0].BotSends() || lines[1].BotSends() || !lines[l.Audio].BotSends() || lines[len(lines)-1].BotSends() {
		t.Errorf("BotSends wrong: %+v", lines)
	}
	if err := (rtc.Layout{Audio: 0}).Validate(); err == nil {
		t.Error("Validate accepted 0 audio lines")
	}
}

func FuzzParseMID(f *testing.F) {
	for _, s := range []string{"audio0", "video15", "screenshare", "audio", "video00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, mid string) {
		line, ok := rtc.ParseMID(mid)
		if ok && line.MID != mid {
			t.Fatalf("ParseMID(%q) mid %q", mid, line.MID)
		}
		if ok && line.Kind != rtc.KindScreenShare {
			var want string
			if line.Kind == rtc.KindAudio {
				want = rtc.AudioMID(line.Index)
			} else {
				want = rtc.VideoMID(line.Index)
			}
			if want != mid {
				t.Fatalf("ParseMID(%q) = %+v, not canonical", mid, line)
			}
		}
	})
}

// TestBotAnswersAndReceives connects a bare bot-side peer connection (ICE-lite on a UDP mux, DTLS
// server) to the service-role test peer and checks that forwarded audio keeps its CSRC.
func TestBotAnswersAndReceives(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	mux := webrtc.NewICEUDPMux(nil, conn)
	defer mux.Close()
	se, err := rtc.BotSettingEngine(rtc.BotTransport{Mux: mux, Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	api, err := rtc.NewBotAPI(se)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := rtctest.New(rtctest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	offer, err := peer.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mids, dirs, err := rtc.MIDs(offer)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("offer mids %v dirs %v", mids, dirs)
	if mids[0] != "audio0" || dirs[0] != webrtc.RTPTransceiverDirectionSendrecv || dirs[1] != webrtc.RTPTransceiverDirectionSendonly {
		t.Fatalf("offer layout: %v %v", mids, dirs)
	}
	// The service's engine numbers video for transport-wide congestion control, never audio.
	for _, section := range strings.Split(offer, "\r\nm=")[1:] {
		hasTWCC := strings.Contains(section, "transport-cc") || strings.Contains(section, sdp.TransportCCURI)
		if audio := strings.HasPrefix(section, "audio"); audio == hasTWCC {
			t.Errorf("offer section (audio %v) transport-cc %v:\n%s", audio, hasTWCC, section)
		}
	}

	bot, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer bot.Close()
	got := make(chan uint32, 1)
	bot.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if len(p.CSRC) > 0 {
				select {
				case got <- p.CSRC[0]:
				default:
				}
			}
		}
	})
	if err := bot.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatal(err)
	}
	answer, err := rtc.CompleteAnswer(ctx, bot, func(s string) (string, error) {
		return rtc.SetDirections(s, map[string]webrtc.RTPTransceiverDirection{"audio2": webrtc.RTPTransceiverDirectionInactive})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a=ice-lite", "a=setup:passive", "127.0.0.1"} {
		if !strings.Contains(answer, want) {
			t.Errorf("answer lacks %q:\n%s", want, answer)
		}
	}
	// The bot's engine leaves transport-wide congestion control out (nobody reads its feedback
	// on bot legs) and keeps the feedback that is used: NACK, PLI, FIR and REMB for video.
	for _, unwanted := range []string{"transport-cc", sdp.TransportCCURI} {
		if strings.Contains(answer, unwanted) {
			t.Errorf("answer negotiates %q:\n%s", unwanted, answer)
		}
	}
	for _, want := range []string{"a=rtcp-fb:96 nack\r\n", "a=rtcp-fb:96 nack pli", "a=rtcp-fb:96 ccm fir", "a=rtcp-fb:96 goog-remb", sdp.AudioLevelURI} {
		if !strings.Contains(answer, want) {
			t.Errorf("answer lacks %q:\n%s", want, answer)
		}
	}
	mids, dirs, _ = rtc.MIDs(answer)
	t.Logf("answer mids %v dirs %v", mids, dirs)
	if dirs[2] != webrtc.RTPTransceiverDirectionInactive {
		t.Errorf("audio2 direction %v", dirs[2])
	}
	if err := peer.Accept(answer); err != nil {
		t.Fatal(err)
	}
	if err := peer.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 320)
	for i := 0; i < 200; i++ {
		if err := peer.SendAudio(1, 42, pcm); err != nil {
			t.Fatal(err)
		}
		select {
		case src := <-got:
			if src != 42 {
				t.Fatalf("CSRC %d", src)
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("no audio reached the bot")
}

// FuzzSDP feeds offers (seeded with a real one) to the SDP helpers the bot runs on the service's
// input: MIDs and SetDirections must return an error or a result, never panic.
func FuzzSDP(f *testing.F) {
	offer, err := os.ReadFile("testdata/offer.sdp")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(offer))
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio0\r\na=sendrecv\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		mids, dirs, err := rtc.MIDs(s)
		if err != nil {
			return
		}
		if len(mids) != len(dirs) {
			t.Fatalf("%d mids, %d directions", len(mids), len(dirs))
		}
		want := map[string]webrtc.RTPTransceiverDirection{}
		for _, m := range mids {
			want[m] = webrtc.RTPTransceiverDirectionInactive
		}
		out, err := rtc.SetDirections(s, want)
		if err != nil {
			return
		}
		mids2, dirs2, err := rtc.MIDs(out)
		if err != nil {
			t.Fatalf("SetDirections wrote SDP that does not parse: %v", err)
		}
		if len(mids2) != len(mids) {
			t.Fatalf("SetDirections changed the m-lines: %v → %v", mids, mids2)
		}
		for i, d := range dirs2 {
			if _, ok := want[mids2[i]]; ok && d != webrtc.RTPTransceiverDirectionInactive {
				t.Fatalf("m-line %q is %v after SetDirections", mids2[i], d)
			}
		}
	})
}
