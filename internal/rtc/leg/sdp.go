package leg

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Codecs of the session (docs/media.md): fixed payload types.
const (
	PayloadTypeOpus = 111
	PayloadTypeVP8  = 96

	opusFmtp = "minptime=10;useinbandfec=1"
)

// vp8Feedback is the RTCP feedback on VP8, offered and accepted: what pion offers but
// transport-cc (not on this leg).
var vp8Feedback = []string{"nack", "nack pli", "ccm fir", "goog-remb"}

// Header extensions the answer accepts on audio when the offer has them.
const (
	uriMID        = "urn:ietf:params:rtp-hdrext:sdes:mid"
	uriAudioLevel = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
)

// Offer is what a leg needs from the remote offer: its ICE credentials, its certificate's
// fingerprints and its m-lines.
type Offer struct {
	Ufrag, Pwd   string
	Fingerprints []Fingerprint
	Media        []OfferMedia

	desc sdp.SessionDescription
}

// OfferMedia is one m-line of an offer.
type OfferMedia struct {
	Kind      string // "audio", "video", …
	MID       string
	Direction string // sendrecv (when the offer says none), sendonly, recvonly or inactive
	// SSRCs are the streams the offerer sends on the m-line (its a=ssrc lines, each once, in
	// order): the receiver maps a packet's SSRC to its m-line with them.
	SSRCs []uint32
}

// ParseOffer reads an SDP offer. The ICE credentials and fingerprints may sit at session or
// media level (what the session lacks is taken from the first m-line); an offer without them,
// or without m-lines, fails with ErrBadOffer.
func ParseOffer(text string) (*Offer, error) {
	o := &Offer{}
	if err := o.desc.UnmarshalString(text); err != nil {
		return nil, fmt.Errorf("leg: parse offer: %w: %w", ErrBadOffer, err)
	}
	if len(o.desc.MediaDescriptions) == 0 {
		return nil, fmt.Errorf("leg: offer has no m-lines: %w", ErrBadOffer)
	}
	o.Ufrag, o.Pwd, o.Fingerprints = iceAndDTLS(&o.desc)
	if o.Ufrag == "" || o.Pwd == "" {
		return nil, fmt.Errorf("leg: offer without ICE credentials: %w", ErrBadOffer)
	}
	if len(o.Fingerprints) == 0 {
		return nil, fmt.Errorf("leg: offer without a DTLS fingerprint: %w", ErrBadOffer)
	}
	for _, m := range o.desc.MediaDescriptions {
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		o.Media = append(o.Media, OfferMedia{Kind: m.MediaName.Media, MID: mid, Direction: direction(m), SSRCs: ssrcs(m)})
	}
	return o, nil
}

// ssrcs reads the SSRCs of an m-line's a=ssrc lines, each once; lines that do not start with a
// number are skipped.
func ssrcs(m *sdp.MediaDescription) []uint32 {
	var out []uint32
	for _, a := range m.Attributes {
		if a.Key != "ssrc" {
			continue
		}
		num, _, _ := strings.Cut(a.Value, " ")
		v, err := strconv.ParseUint(num, 10, 32)
		if err != nil || slices.Contains(out, uint32(v)) {
			continue
		}
		out = append(out, uint32(v))
	}
	return out
}

// iceAndDTLS reads the ICE credentials and the fingerprints of a description: at session level,
// else the first m-line's.
func iceAndDTLS(d *sdp.SessionDescription) (ufrag, pwd string, fps []Fingerprint) {
	take := func(attrs []sdp.Attribute) {
		for _, a := range attrs {
			switch a.Key {
			case "ice-ufrag":
				if ufrag == "" {
					ufrag = a.Value
				}
			case "ice-pwd":
				if pwd == "" {
					pwd = a.Value
				}
			case "fingerprint":
				alg, val, ok := strings.Cut(a.Value, " ")
				if ok {
					fps = append(fps, Fingerprint{Algorithm: strings.ToLower(alg), Value: strings.TrimSpace(val)})
				}
			}
		}
	}
	take(d.Attributes)
	if (ufrag == "" || pwd == "" || len(fps) == 0) && len(d.MediaDescriptions) > 0 {
		take(d.MediaDescriptions[0].Attributes)
	}
	return ufrag, pwd, fps
}

func direction(m *sdp.MediaDescription) string {
	for _, a := range m.Attributes {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return "sendrecv"
}

// reverse is the answer's direction for an offered one when the answerer takes everything.
func reverse(dir string) string {
	switch dir {
	case "sendonly":
		return "recvonly"
	case "recvonly":
		return "sendonly"
	}
	return dir
}

// AnswerParams are the answerer's side of an answer.
type AnswerParams struct {
	Ufrag, Pwd  string
	Fingerprint Fingerprint
	// Candidate is the leg's one host candidate: the mux's address (or the public one).
	Candidate netip.AddrPort
	// SSRC names the stream the leg sends on each mid it sends on. An m-line the answer would
	// send on but without an SSRC here is answered recvonly (or inactive).
	SSRC map[string]uint32
	// Directions are the answer's directions (the answerer's view: sendrecv, sendonly, recvonly
	// or inactive) of the mids it names; they must fit the offered ones (the caller's business).
	// An audio m-line it does not name is answered with its offered direction reversed, a video
	// m-line inactive.
	Directions map[string]string
	// CNAME of the leg's streams; defaultCNAME if empty.
	CNAME string
}

// Answer builds the SDP answer to o: ICE-lite with one host candidate, DTLS passive (the leg is
// the server), everything bundled on the first accepted m-line, rtcp-mux. Audio m-lines offering
// Opus 111 are accepted with their offered direction reversed (recvonly for sendonly, …) and
// their mid and audio-level header extensions; video m-lines offering VP8 96 are accepted with
// VP8 and its feedback (nack, nack pli, ccm fir, goog-remb), inactive unless p.Directions names
// them; p.Directions overrides any accepted line's direction; anything else is rejected (port 0).
// Every line the answer sends on carries its SSRC (a=ssrc cname, a=msid).
func (o *Offer) Answer(p AnswerParams) (string, error) {
	if p.Ufrag == "" || p.Pwd == "" || p.Fingerprint.Value == "" || !p.Candidate.IsValid() {
		return "", fmt.Errorf("leg: answer needs ICE credentials, a fingerprint and a candidate: %w", ErrBadAnswerParams)
	}
	cname := cnameOr(p.CNAME)
	ans, err := newSession(2)
	if err != nil {
		return "", fmt.Errorf("leg: answer: %w", err)
	}
	ans.WithPropertyAttribute("ice-lite")
	candidate := hostCandidate(p.Candidate)
	var bundle []string
	for _, om := range o.desc.MediaDescriptions {
		mid, _ := om.Attribute(sdp.AttrKeyMID)
		dir := reverse(direction(om))
		var m *sdp.MediaDescription
		switch {
		case om.MediaName.Media == "audio" && offersCodec(om, PayloadTypeOpus, "opus"):
			m = sdp.NewJSEPMediaDescription("audio", nil).WithCodec(PayloadTypeOpus, "opus", 48000, 2, opusFmtp)
			for _, a := range om.Attributes {
				if a.Key != "extmap" {
					continue
				}
				var e sdp.ExtMap
				if err := e.Unmarshal("extmap:" + a.Value); err != nil || e.URI == nil {
					continue
				}
				if u := e.URI.String(); u == uriMID || u == uriAudioLevel {
					m.WithExtMap(sdp.ExtMap{Value: e.Value, URI: e.URI})
				}
			}
		case om.MediaName.Media == "video" && offersCodec(om, PayloadTypeVP8, "vp8"):
			m = sdp.NewJSEPMediaDescription("video", nil).WithCodec(PayloadTypeVP8, "VP8", 90000, 0, "")
			for _, fb := range vp8Feedback {
				m.WithValueAttribute("rtcp-fb", strconv.Itoa(PayloadTypeVP8)+" "+fb)
			}
			dir = "inactive"
		default:
			rej := sdp.NewJSEPMediaDescription(om.MediaName.Media, nil)
			rej.MediaName.Port = sdp.RangedPort{Value: 0}
			rej.MediaName.Protos = om.MediaName.Protos
			rej.MediaName.Formats = om.MediaName.Formats
			if mid != "" {
				rej.WithValueAttribute(sdp.AttrKeyMID, mid)
			}
			ans.WithMedia(rej)
			continue
		}
		if d, ok := p.Directions[mid]; ok {
			if !validDirection(d) {
				return "", fmt.Errorf("leg: answer direction %q for m-line %q: %w", d, mid, ErrBadAnswerParams)
			}
			dir = d
		}
		ssrc, sends := p.SSRC[mid]
		if !sends {
			switch dir {
			case "sendrecv":
				dir = "recvonly"
			case "sendonly":
				dir = "inactive"
			}
		}
		m.WithValueAttribute(sdp.AttrKeyMID, mid).
			WithICECredentials(p.Ufrag, p.Pwd).
			WithFingerprint(p.Fingerprint.Algorithm, p.Fingerprint.Value).
			WithValueAttribute("setup", "passive").
			WithPropertyAttribute("rtcp-mux").
			WithPropertyAttribute(dir)
		if dir == "sendrecv" || dir == "sendonly" {
			m.WithValueAttribute("msid", cname+" "+mid).
				WithValueAttribute("ssrc", fmt.Sprintf("%d cname:%s", ssrc, cname))
		}
		m.WithValueAttribute("candidate", candidate).WithPropertyAttribute("end-of-candidates")
		ans.WithMedia(m)
		bundle = append(bundle, mid)
	}
	if len(bundle) == 0 {
		return "", fmt.Errorf("leg: offer has no m-line the leg accepts: %w", ErrBadOffer)
	}
	ans.WithValueAttribute("group", "BUNDLE "+strings.Join(bundle, " "))
	out, err := ans.Marshal()
	if err != nil {
		return "", fmt.Errorf("leg: write answer: %w", err)
	}
	return string(out), nil
}

// defaultCNAME names a leg's streams when the caller gives no CNAME.
const defaultCNAME = "switchboard"

// cnameOr is cname, or defaultCNAME when it is empty.
func cnameOr(cname string) string {
	if cname == "" {
		return defaultCNAME
	}
	return cname
}

// newSession is the session level of an offer or answer a leg writes: a random session id,
// the given version, no connection data of its own.
func newSession(version uint64) (*sdp.SessionDescription, error) {
	var sid [8]byte
	if _, err := rand.Read(sid[:]); err != nil {
		return nil, fmt.Errorf("session id: %w", err)
	}
	return &sdp.SessionDescription{
		Origin: sdp.Origin{
			Username: "-", SessionID: binary.BigEndian.Uint64(sid[:]) >> 2, SessionVersion: version,
			NetworkType: "IN", AddressType: "IP4", UnicastAddress: "0.0.0.0",
		},
		SessionName:      "-",
		TimeDescriptions: []sdp.TimeDescription{{}},
	}, nil
}

// validDirection reports whether d is an SDP direction attribute.
func validDirection(d string) bool {
	switch d {
	case "sendrecv", "sendonly", "recvonly", "inactive":
		return true
	}
	return false
}

// hostCandidate is the a=candidate value of a leg's one host candidate.
func hostCandidate(a netip.AddrPort) string {
	return fmt.Sprintf("1 1 udp 2130706431 %s %d typ host", a.Addr().Unmap(), a.Port())
}

// offersCodec reports whether m offers payload type pt with the codec name (case-insensitive).
func offersCodec(m *sdp.MediaDescription, pt int, name string) bool {
	want := strconv.Itoa(pt)
	for _, a := range m.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		num, rest, ok := strings.Cut(a.Value, " ")
		if !ok || num != want {
			continue
		}
		codec, _, _ := strings.Cut(rest, "/")
		return strings.EqualFold(codec, name)
	}
	return false
}
