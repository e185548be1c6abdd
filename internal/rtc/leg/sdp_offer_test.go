package leg

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

// legAnswer is the answer a leg makes to the test offer rewritten for an offering leg.
func legAnswer(tb testing.TB) (offer, answer string) {
	tb.Helper()
	offer, err := RewriteOffer(readOffer(tb), "offerufrag", "offerpasswordofferpassword",
		Fingerprint{Algorithm: "sha-256", Value: "CC:DD"}, netip.MustParseAddrPort("127.0.0.1:50000"))
	if err != nil {
		tb.Fatal(err)
	}
	o, err := ParseOffer(offer)
	if err != nil {
		tb.Fatal(err)
	}
	answer, err = o.Answer(AnswerParams{Ufrag: "lite", Pwd: "litepasswordlitepassword", Fingerprint: Fingerprint{Algorithm: "sha-256", Value: "AA:BB"},
		Candidate: netip.MustParseAddrPort("127.0.0.1:40000"), SSRC: map[string]uint32{"audio0": 77}})
	if err != nil {
		tb.Fatal(err)
	}
	return offer, answer
}

// TestRewriteOfferParseAnswer: a rewritten offer carries the offering leg's credentials,
// fingerprint and one candidate per accepted m-line (pion's are gone); ParseAnswer reads a
// leg's answer back, and refuses answers the offering leg cannot use.
func TestRewriteOfferParseAnswer(t *testing.T) {
	offer, answer := legAnswer(t)
	o, err := ParseOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	if o.Ufrag != "offerufrag" || o.Pwd != "offerpasswordofferpassword" || len(o.Fingerprints) != 1 || o.Fingerprints[0].Value != "CC:DD" {
		t.Fatalf("rewritten offer: %+v", o)
	}
	if n, lines := strings.Count(offer, "a=candidate:"), strings.Count(offer, "m="); n != lines || !strings.Contains(offer, "127.0.0.1 50000 typ host") {
		t.Fatalf("%d candidates for %d m-lines:\n%s", n, lines, offer)
	}
	a, err := ParseAnswer(answer)
	if err != nil {
		t.Fatal(err)
	}
	if a.Ufrag != "lite" || a.Pwd != "litepasswordlitepassword" || a.Candidate != netip.MustParseAddrPort("127.0.0.1:40000") ||
		len(a.Fingerprints) != 1 || a.Fingerprints[0] != (Fingerprint{"sha-256", "AA:BB"}) {
		t.Fatalf("answer read as %+v", a)
	}
	oc := a.OfferConfig(Config{LocalUfrag: "x"})
	if oc.RemoteUfrag != "lite" || oc.RemotePwd != a.Pwd || oc.RemoteCandidate != a.Candidate || oc.LocalUfrag != "x" {
		t.Fatalf("offer config %+v", oc)
	}
	if a.DTLSClient || len(a.Media) == 0 || a.Media[0].MID != "audio0" || !a.Media[0].Sends() || len(a.Media[0].SSRCs) != 1 || a.Media[0].SSRCs[0] != 77 {
		t.Fatalf("answer's media %+v (DTLS client %v)", a.Media, a.DTLSClient)
	}
	for _, m := range a.Media[1:] {
		if m.Sends() || len(m.SSRCs) != 0 {
			t.Errorf("line %s read as %+v", m.MID, m)
		}
	}
	if active, err := ParseAnswer(strings.ReplaceAll(answer, "a=setup:passive", "a=setup:active")); err != nil || !active.DTLSClient || !active.OfferConfig(Config{}).DTLSServer {
		t.Errorf("setup:active read as %+v, %v", active, err)
	}
	for name, bad := range map[string]string{
		"actpass":      strings.ReplaceAll(answer, "a=setup:passive", "a=setup:actpass"),
		"no candidate": strings.ReplaceAll(answer, "a=candidate:", "a=x-candidate:"),
		"IPv6 only":    strings.ReplaceAll(answer, "127.0.0.1 40000", "::1 40000"),
		"no ICE":       strings.ReplaceAll(answer, "a=ice-pwd:", "a=x-pwd:"),
		"garbage":      "garbage",
	} {
		if _, err := ParseAnswer(bad); !errors.Is(err, ErrBadAnswer) {
			t.Errorf("%s: %v, want ErrBadAnswer", name, err)
		}
	}
	if _, err := RewriteOffer(readOffer(t), "", "p", Fingerprint{"sha-256", "AA"}, netip.MustParseAddrPort("127.0.0.1:1")); !errors.Is(err, ErrBadConfig) {
		t.Errorf("rewrite without a ufrag: %v", err)
	}
	if _, err := RewriteOffer("garbage", "u", "p", Fingerprint{"sha-256", "AA"}, netip.MustParseAddrPort("127.0.0.1:1")); !errors.Is(err, ErrBadOffer) {
		t.Errorf("rewrite garbage: %v", err)
	}
}

// FuzzParseAnswer: no answer text makes ParseAnswer (or RewriteOffer, on the same text) panic,
// and what ParseAnswer accepts has credentials, a fingerprint and a valid candidate.
func FuzzParseAnswer(f *testing.F) {
	_, answer := legAnswer(f)
	f.Add(answer)
	f.Add(readOffer(f))
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:a\r\na=ice-pwd:b\r\na=fingerprint:sha-256 AA\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n")
	f.Add("garbage")
	fp, cand := Fingerprint{"sha-256", "AA"}, netip.MustParseAddrPort("127.0.0.1:1")
	f.Fuzz(func(t *testing.T, text string) {
		if a, err := ParseAnswer(text); err == nil && (a.Ufrag == "" || a.Pwd == "" || len(a.Fingerprints) == 0 || !a.Candidate.IsValid() || a.Candidate.Port() == 0) {
			t.Fatalf("accepted %+v", a)
		}
		if _, err := RewriteOffer(text, "u", "p", fp, cand); err != nil && !errors.Is(err, ErrBadOffer) {
			t.Fatalf("rewrite: %v", err)
		}
	})
}

// RewriteOffer (tests only: the service writes its offers with BuildOffer) puts an offering
// leg's ICE credentials, fingerprint and one host candidate into an offer made by pion/webrtc
// (rtc.CompleteOffer), so that the offering leg can be tried with pion's offer too: the ufrag,
// password and fingerprint attributes are replaced where they are (session or media level),
// the candidates of every accepted m-line give way to the leg's one, and setup stays as
// offered (actpass: the bot's answer takes the DTLS server's role).
func RewriteOffer(offer string, ufrag, pwd string, fp Fingerprint, candidate netip.AddrPort) (string, error) {
	if ufrag == "" || pwd == "" || fp.Value == "" || !candidate.IsValid() {
		return "", fmt.Errorf("leg: rewrite offer needs ICE credentials, a fingerprint and a candidate: %w", ErrBadConfig)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return "", fmt.Errorf("leg: parse offer to rewrite: %w: %w", ErrBadOffer, err)
	}
	if len(d.MediaDescriptions) == 0 {
		return "", fmt.Errorf("leg: offer to rewrite has no m-lines: %w", ErrBadOffer)
	}
	fpValue := fp.Algorithm + " " + fp.Value
	rewrite := func(attrs []sdp.Attribute, media bool) []sdp.Attribute {
		out := attrs[:0]
		fpDone := false
		for _, a := range attrs {
			switch a.Key {
			case "ice-ufrag":
				a.Value = ufrag
			case "ice-pwd":
				a.Value = pwd
			case "fingerprint":
				if fpDone {
					continue
				}
				a.Value, fpDone = fpValue, true
			case "candidate", "end-of-candidates":
				continue
			}
			out = append(out, a)
		}
		if media {
			out = append(out, sdp.NewAttribute("candidate", hostCandidate(candidate)), sdp.NewPropertyAttribute("end-of-candidates"))
		}
		return out
	}
	d.Attributes = rewrite(d.Attributes, false)
	for _, m := range d.MediaDescriptions {
		m.Attributes = rewrite(m.Attributes, m.MediaName.Port.Value != 0)
	}
	if u, p, fps := iceAndDTLS(&d); u != ufrag || p != pwd || len(fps) == 0 {
		return "", fmt.Errorf("leg: offer to rewrite lacks ICE credentials or a fingerprint: %w", ErrBadOffer)
	}
	out, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("leg: write rewritten offer: %w", err)
	}
	return string(out), nil
}
