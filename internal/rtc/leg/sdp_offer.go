package leg

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Answer is what the offering end needs from the answer: the answerer's ICE credentials, its
// certificate's fingerprints, its one host candidate, its DTLS role and its m-lines.
type Answer struct {
	Ufrag, Pwd   string
	Fingerprints []Fingerprint
	Candidate    netip.AddrPort
	// DTLSClient is true when the answer takes the DTLS client's role (setup:active, as a
	// pion/webrtc answerer does by default); the offering leg is then the server. A bot answers
	// setup:passive.
	DTLSClient bool
	// Media are the answer's m-lines, in order.
	Media []AnswerMedia
}

// AnswerMedia is one m-line of an answer.
type AnswerMedia struct {
	Kind string // "audio", "video", …
	MID  string
	// Direction is the answerer's: sendrecv (when the answer says none), sendonly (it sends
	// only), recvonly or inactive; a rejected line (port 0) is inactive.
	Direction string
	// SSRCs are the streams the answerer announces on the line (a=ssrc), in order, each once.
	SSRCs []uint32
	// AudioLevelID is the id of the audio-level header extension on the line, 0 without it.
	AudioLevelID uint8
}

// Sends reports whether the answerer sends on the line (sendrecv or sendonly).
func (m AnswerMedia) Sends() bool { return m.Direction == "sendrecv" || m.Direction == "sendonly" }

// ParseAnswer reads an SDP answer (a leg's, or pion/webrtc's as the bot answers). It takes the
// first UDP IPv4 candidate of component 1 of the first m-line that has one, and each m-line's
// direction and SSRCs; an answer without ICE credentials, fingerprint or such a candidate, or
// with setup:actpass (an answer must choose), fails with ErrBadAnswer.
func ParseAnswer(text string) (*Answer, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(text); err != nil {
		return nil, fmt.Errorf("leg: parse answer: %w: %w", ErrBadAnswer, err)
	}
	a := &Answer{}
	a.Ufrag, a.Pwd, a.Fingerprints = iceAndDTLS(&d)
	if a.Ufrag == "" || a.Pwd == "" {
		return nil, fmt.Errorf("leg: answer without ICE credentials: %w", ErrBadAnswer)
	}
	if len(a.Fingerprints) == 0 {
		return nil, fmt.Errorf("leg: answer without a DTLS fingerprint: %w", ErrBadAnswer)
	}
	for _, m := range d.MediaDescriptions {
		switch setup, _ := m.Attribute("setup"); setup {
		case "active":
			a.DTLSClient = true
		case "actpass":
			return nil, fmt.Errorf("leg: answer leaves the DTLS role open (setup:actpass): %w", ErrBadAnswer)
		}
		am := AnswerMedia{Kind: m.MediaName.Media, Direction: direction(m)}
		am.MID, _ = m.Attribute(sdp.AttrKeyMID)
		if m.MediaName.Port.Value == 0 {
			am.Direction = "inactive"
		}
		for _, at := range m.Attributes {
			switch at.Key {
			case "candidate":
				if a.Candidate.IsValid() {
					continue
				}
				if c, ok := parseCandidate(at.Value); ok {
					a.Candidate = c
				}
			case "ssrc":
				id, _, _ := strings.Cut(at.Value, " ")
				if n, err := strconv.ParseUint(id, 10, 32); err == nil && !slices.Contains(am.SSRCs, uint32(n)) {
					am.SSRCs = append(am.SSRCs, uint32(n))
				}
			case "extmap":
				var e sdp.ExtMap
				if err := e.Unmarshal("extmap:" + at.Value); err == nil && e.URI != nil && e.URI.String() == uriAudioLevel && e.Value > 0 && e.Value < 256 {
					am.AudioLevelID = uint8(e.Value)
				}
			}
		}
		a.Media = append(a.Media, am)
	}
	if !a.Candidate.IsValid() {
		return nil, fmt.Errorf("leg: answer without a UDP IPv4 candidate: %w", ErrBadAnswer)
	}
	return a, nil
}

// parseCandidate reads "foundation component transport priority address port typ …" (RFC 8839)
// and keeps component 1 over UDP at an IPv4 address.
func parseCandidate(v string) (netip.AddrPort, bool) {
	f := strings.Fields(v)
	if len(f) < 8 || f[1] != "1" || !strings.EqualFold(f[2], "udp") || f[6] != "typ" {
		return netip.AddrPort{}, false
	}
	addr, err := netip.ParseAddr(f[4])
	if err != nil || !addr.Unmap().Is4() {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(f[5], 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), true
}

// OfferConfig is the offering leg's configuration for this answer: local (the leg's own
// credentials, certificate and callbacks) with the answer's ufrag, password, fingerprints,
// candidate and DTLS role.
func (a *Answer) OfferConfig(local Config) OfferConfig {
	local.RemoteUfrag = a.Ufrag
	local.RemoteFingerprints = a.Fingerprints
	return OfferConfig{Config: local, RemotePwd: a.Pwd, RemoteCandidate: a.Candidate, DTLSServer: a.DTLSClient}
}
