package leg

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

func readOffer(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile("../testdata/offer.sdp")
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func TestParseOffer(t *testing.T) {
	o, err := ParseOffer(readOffer(t))
	if err != nil {
		t.Fatal(err)
	}
	if o.Ufrag != "WgYehGBPJwRtuqhT" || o.Pwd != "ighMSLiCzZIABEFVFKoJiCRtsskzOVRj" {
		t.Fatalf("ICE credentials %q %q", o.Ufrag, o.Pwd)
	}
	if len(o.Fingerprints) != 1 || o.Fingerprints[0].Algorithm != "sha-256" ||
		!strings.HasPrefix(o.Fingerprints[0].Value, "1B:BF:4B") {
		t.Fatalf("fingerprints %+v", o.Fingerprints)
	}
	want := []OfferMedia{
		{"audio", "audio0", "sendrecv", []uint32{1971010348}}, {"audio", "audio1", "sendonly", []uint32{2460864515}},
		{"audio", "audio2", "sendonly", []uint32{2953829977}},
		{"video", "video0", "sendrecv", nil}, {"video", "video1", "sendonly", nil}, {"video", "video2", "sendonly", nil},
		{"video", "video3", "sendonly", nil}, {"video", "screenshare", "sendonly", nil},
	}
	if len(o.Media) != len(want) {
		t.Fatalf("media %+v", o.Media)
	}
	for i := range want {
		if want[i].SSRCs == nil {
			want[i].SSRCs = o.Media[i].SSRCs // checked below: one each
		}
		if g := o.Media[i]; g.Kind != want[i].Kind || g.MID != want[i].MID || g.Direction != want[i].Direction ||
			len(g.SSRCs) != 1 || !slices.Equal(g.SSRCs, want[i].SSRCs) {
			t.Errorf("m-line %d: %+v, want %+v", i, o.Media[i], want[i])
		}
	}
}

func TestParseOfferBad(t *testing.T) {
	good := readOffer(t)
	drop := func(prefix string) string {
		var out []string
		for _, line := range strings.Split(good, "\n") {
			if !strings.HasPrefix(line, prefix) {
				out = append(out, line)
			}
		}
		return strings.Join(out, "\n")
	}
	for name, text := range map[string]string{
		"empty":          "",
		"garbage":        "hello\r\nworld",
		"no m-lines":     "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
		"no ufrag":       drop("a=ice-ufrag"),
		"no pwd":         drop("a=ice-pwd"),
		"no fingerprint": drop("a=fingerprint"),
	} {
		if _, err := ParseOffer(text); !errors.Is(err, ErrBadOffer) {
			t.Errorf("%s: %v, want ErrBadOffer", name, err)
		}
	}
}

func TestAnswer(t *testing.T) {
	o, err := ParseOffer(readOffer(t))
	if err != nil {
		t.Fatal(err)
	}
	cand := netip.MustParseAddrPort("127.0.0.1:40000")
	fp := Fingerprint{Algorithm: "sha-256", Value: "AA:BB"}
	text, err := o.Answer(AnswerParams{Ufrag: "lite", Pwd: "litepasswordlitepassword", Fingerprint: fp,
		Candidate: cand, SSRC: map[string]uint32{"audio0": 77}, CNAME: "bot"})
	if err != nil {
		t.Fatal(err)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(text); err != nil {
		t.Fatalf("answer does not parse: %v\n%s", err, text)
	}
	if _, ok := d.Attribute("ice-lite"); !ok {
		t.Error("answer is not ice-lite")
	}
	if g, _ := d.Attribute("group"); g != "BUNDLE audio0 audio1 audio2 video0 video1 video2 video3 screenshare" {
		t.Errorf("group %q", g)
	}
	wantDir := map[string]string{"audio0": "sendrecv", "audio1": "recvonly", "audio2": "recvonly",
		"video0": "inactive", "video1": "inactive", "video2": "inactive", "video3": "inactive", "screenshare": "inactive"}
	for _, m := range d.MediaDescriptions {
		mid, _ := m.Attribute("mid")
		if got := direction(m); got != wantDir[mid] {
			t.Errorf("%s: direction %s, want %s", mid, got, wantDir[mid])
		}
		if s, _ := m.Attribute("setup"); s != "passive" {
			t.Errorf("%s: setup %q", mid, s)
		}
		if c, _ := m.Attribute("candidate"); c != "1 1 udp 2130706431 127.0.0.1 40000 typ host" {
			t.Errorf("%s: candidate %q", mid, c)
		}
		if f, _ := m.Attribute("fingerprint"); f != "sha-256 AA:BB" {
			t.Errorf("%s: fingerprint %q", mid, f)
		}
		ssrc, hasSSRC := m.Attribute("ssrc")
		if (mid == "audio0") != hasSSRC || (hasSSRC && ssrc != "77 cname:bot") {
			t.Errorf("%s: ssrc %q", mid, ssrc)
		}
		var exts []string
		for _, a := range m.Attributes {
			if a.Key == "extmap" {
				exts = append(exts, a.Value)
			}
		}
		switch m.MediaName.Media {
		case "audio":
			if len(m.MediaName.Formats) != 1 || m.MediaName.Formats[0] != "111" {
				t.Errorf("%s: formats %v", mid, m.MediaName.Formats)
			}
			slices.Sort(exts)
			if strings.Join(exts, ",") != "1 "+uriMID+",2 "+uriAudioLevel {
				t.Errorf("%s: extensions %q", mid, exts)
			}
		case "video":
			if len(m.MediaName.Formats) != 1 || m.MediaName.Formats[0] != "96" {
				t.Errorf("%s: formats %v", mid, m.MediaName.Formats)
			}
		}
	}

	// Without an SSRC the leg sends nothing: audio0 is answered recvonly.
	text, err = o.Answer(AnswerParams{Ufrag: "lite", Pwd: "litepasswordlitepassword", Fingerprint: fp, Candidate: cand})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "a=mid:audio0") || strings.Contains(text, "a=sendrecv") || strings.Contains(text, "a=ssrc") {
		t.Errorf("answer without SSRC sends:\n%s", text)
	}
	if _, err := o.Answer(AnswerParams{Ufrag: "lite"}); !errors.Is(err, ErrBadAnswerParams) {
		t.Errorf("incomplete parameters: %v", err)
	}
}

// FuzzParseOffer: no offer text makes ParseOffer or Answer panic.
func FuzzParseOffer(f *testing.F) {
	f.Add(readOffer(f))
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:a\r\na=ice-pwd:b\r\na=fingerprint:sha-256 AA\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=extmap:1\r\n")
	f.Add("garbage")
	p := AnswerParams{Ufrag: "lite", Pwd: "litepasswordlitepassword", Fingerprint: Fingerprint{"sha-256", "AA"},
		Candidate: netip.MustParseAddrPort("127.0.0.1:1"), SSRC: map[string]uint32{"audio0": 1}}
	f.Fuzz(func(t *testing.T, text string) {
		o, err := ParseOffer(text)
		if err != nil {
			return
		}
		if _, err := o.Answer(p); err != nil && !errors.Is(err, ErrBadOffer) {
			t.Fatalf("answer: %v", err)
		}
	})
}

// TestAnswerDirections: Directions set each accepted line's direction, video included; video
// carries VP8's feedback and, where the answer sends, its SSRC; a bad direction is refused.
func TestAnswerDirections(t *testing.T) {
	o, err := ParseOffer(readOffer(t))
	if err != nil {
		t.Fatal(err)
	}
	p := AnswerParams{Ufrag: "lite", Pwd: "litepasswordlitepassword", Fingerprint: Fingerprint{"sha-256", "AA:BB"},
		Candidate: netip.MustParseAddrPort("127.0.0.1:40000"), CNAME: "bot",
		SSRC: map[string]uint32{"audio0": 7, "video0": 8},
		Directions: map[string]string{"audio0": "recvonly", "audio1": "inactive", "video0": "sendrecv",
			"video1": "recvonly", "video2": "sendonly", "screenshare": "recvonly"}}
	text, err := o.Answer(p)
	if err != nil {
		t.Fatal(err)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(text); err != nil {
		t.Fatalf("answer does not parse: %v\n%s", err, text)
	}
	wantDir := map[string]string{"audio0": "recvonly", "audio1": "inactive", "audio2": "recvonly",
		"video0": "sendrecv", "video1": "recvonly", "video2": "inactive", "video3": "inactive", "screenshare": "recvonly"}
	for _, m := range d.MediaDescriptions {
		mid, _ := m.Attribute("mid")
		if got := direction(m); got != wantDir[mid] {
			t.Errorf("%s: direction %s, want %s", mid, got, wantDir[mid])
		}
		ssrc, hasSSRC := m.Attribute("ssrc")
		if (mid == "video0") != hasSSRC || (hasSSRC && ssrc != "8 cname:bot") {
			t.Errorf("%s: ssrc %q", mid, ssrc)
		}
		if msid, ok := m.Attribute("msid"); ok != hasSSRC || (ok && msid != "bot video0") {
			t.Errorf("%s: msid %q", mid, msid)
		}
		if m.MediaName.Media != "video" {
			continue
		}
		var fb []string
		for _, a := range m.Attributes {
			if a.Key == "rtcp-fb" {
				fb = append(fb, a.Value)
			}
		}
		if strings.Join(fb, ",") != "96 nack,96 nack pli,96 ccm fir,96 goog-remb" {
			t.Errorf("%s: rtcp-fb %q", mid, fb)
		}
	}
	p.Directions = map[string]string{"audio0": "both"}
	if _, err := o.Answer(p); !errors.Is(err, ErrBadAnswerParams) {
		t.Errorf("bad direction: %v, want ErrBadAnswerParams", err)
	}
}
