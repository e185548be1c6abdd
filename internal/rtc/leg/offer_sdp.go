package leg

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Header extension ids of an offer BuildOffer writes (pion/webrtc numbers them so too: the mid
// first, then the audio level). An answer keeps the offer's ids.
const (
	ExtensionIDMID        = 1
	ExtensionIDAudioLevel = 2
)

// OfferLine is one m-line of an offer BuildOffer writes.
type OfferLine struct {
	// Kind is "audio" (Opus, payload type 111, with the mid and audio-level header extensions)
	// or "video" (VP8, payload type 96, with NACK, PLI, FIR and REMB feedback and the mid
	// header extension).
	Kind string
	MID  string
	// Direction is the offerer's: "sendonly", "sendrecv", "recvonly" or "inactive".
	Direction string
	// SSRC is the stream the offerer sends on the line, announced with a=ssrc (cname and msid)
	// and a=msid; 0 when it sends nothing there.
	SSRC uint32
}

// OfferParams are what BuildOffer needs: the offering leg's ICE credentials, its certificate's
// fingerprint and its one host candidate (its Mux's address, or the public one), and the
// m-lines.
type OfferParams struct {
	Ufrag, Pwd  string
	Fingerprint Fingerprint
	Candidate   netip.AddrPort
	Lines       []OfferLine
	// CNAME names the offerer's streams (a=ssrc cname, and the msid's stream id); "switchboard"
	// when empty. It must be one SDP token (no spaces).
	CNAME string
}

// BuildOffer writes the offering leg's SDP offer without pion/webrtc, in the layout pion/webrtc
// writes for the service (rtc.AddOfferTransceivers): every line bundled on the first, rtcp-mux
// and rtcp-rsize, DTLS setup:actpass (the answer takes the server's role, or the client's),
// the fingerprint at session level, the ICE credentials on every line and the one host
// candidate on the first. It leaves out what the bot leg does not negotiate: transport-cc
// (feedback and header extension), the simulcast rid extensions, cryptex. A line with an
// unknown kind or direction, or no mid, fails with ErrBadConfig.
func BuildOffer(p OfferParams) (string, error) {
	if p.Ufrag == "" || p.Pwd == "" || p.Fingerprint.Value == "" || !p.Candidate.IsValid() {
		return "", fmt.Errorf("leg: offer needs ICE credentials, a fingerprint and a candidate: %w", ErrBadConfig)
	}
	if len(p.Lines) == 0 {
		return "", fmt.Errorf("leg: offer without m-lines: %w", ErrBadConfig)
	}
	cname := cnameOr(p.CNAME)
	if strings.ContainsAny(cname, " \t\r\n") {
		return "", fmt.Errorf("leg: offer CNAME %q is not one token: %w", cname, ErrBadConfig)
	}
	d, err := newSession(1)
	if err != nil {
		return "", fmt.Errorf("leg: offer: %w", err)
	}
	d.WithValueAttribute("msid-semantic", "WMS *").
		WithFingerprint(p.Fingerprint.Algorithm, p.Fingerprint.Value)
	mids := make([]string, 0, len(p.Lines))
	for i, line := range p.Lines {
		m, err := offerMedia(line)
		if err != nil {
			return "", err
		}
		if line.SSRC != 0 {
			msid := cname + " " + line.MID
			m.WithValueAttribute("ssrc", fmt.Sprintf("%d cname:%s", line.SSRC, cname)).
				WithValueAttribute("ssrc", fmt.Sprintf("%d msid:%s", line.SSRC, msid)).
				WithValueAttribute("msid", msid)
		}
		m.WithPropertyAttribute(line.Direction)
		if i == 0 {
			m.WithValueAttribute("candidate", hostCandidate(p.Candidate)).WithPropertyAttribute("end-of-candidates")
		}
		m.MediaName.Port = sdp.RangedPort{Value: 9}
		m.ConnectionInformation = &sdp.ConnectionInformation{NetworkType: "IN", AddressType: "IP4", Address: &sdp.Address{Address: "0.0.0.0"}}
		// a=setup, a=mid and the credentials first, as pion writes them.
		head := []sdp.Attribute{
			sdp.NewAttribute("setup", "actpass"), sdp.NewAttribute(sdp.AttrKeyMID, line.MID),
			sdp.NewAttribute("ice-ufrag", p.Ufrag), sdp.NewAttribute("ice-pwd", p.Pwd),
		}
		m.Attributes = append(head, m.Attributes...)
		d.WithMedia(m)
		mids = append(mids, line.MID)
	}
	d.WithValueAttribute("group", "BUNDLE "+strings.Join(mids, " "))
	out, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("leg: write offer: %w", err)
	}
	return string(out), nil
}

// offerMedia is one line's m= and its codec, feedback and header extensions.
func offerMedia(line OfferLine) (*sdp.MediaDescription, error) {
	if line.MID == "" || strings.ContainsAny(line.MID, " \t\r\n") {
		return nil, fmt.Errorf("leg: offer line mid %q: %w", line.MID, ErrBadConfig)
	}
	if !validDirection(line.Direction) {
		return nil, fmt.Errorf("leg: offer line %s direction %q: %w", line.MID, line.Direction, ErrBadConfig)
	}
	m := &sdp.MediaDescription{MediaName: sdp.MediaName{Protos: []string{"UDP", "TLS", "RTP", "SAVPF"}}}
	m.WithPropertyAttribute("rtcp-mux").WithPropertyAttribute("rtcp-rsize")
	switch line.Kind {
	case "audio":
		m.MediaName.Media = "audio"
		m.WithCodec(PayloadTypeOpus, "opus", 48000, 2, opusFmtp)
		m.WithExtMap(sdp.ExtMap{Value: ExtensionIDMID, URI: mustURL(uriMID)})
		m.WithExtMap(sdp.ExtMap{Value: ExtensionIDAudioLevel, URI: mustURL(uriAudioLevel)})
	case "video":
		m.MediaName.Media = "video"
		m.WithCodec(PayloadTypeVP8, "VP8", 90000, 0, "")
		for _, fb := range vp8Feedback {
			m.WithValueAttribute("rtcp-fb", strconv.Itoa(PayloadTypeVP8)+" "+fb)
		}
		m.WithExtMap(sdp.ExtMap{Value: ExtensionIDMID, URI: mustURL(uriMID)})
	default:
		return nil, fmt.Errorf("leg: offer line %s kind %q: %w", line.MID, line.Kind, ErrBadConfig)
	}
	return m, nil
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(fmt.Sprintf("leg: header extension URI %q: %v", s, err)) // constants only
	}
	return u
}
