package leg

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// Answer is what the offering end needs from the answer: the answerer's ICE credentials, its
// certificate's fingerprints and its one host candidate.
type Answer struct {
	Ufrag, Pwd   string
	Fingerprints []Fingerprint
	Candidate    netip.AddrPort
}

// ParseAnswer reads an SDP answer (a leg's, or pion/webrtc's as the bot answers). It takes the
// first UDP IPv4 candidate of component 1 of the first m-line that has one; an answer without
// ICE credentials, fingerprint or such a candidate, or with setup:active (the offering leg is
// the DTLS client), fails with ErrBadAnswer.
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
		if setup, _ := m.Attribute("setup"); setup == "active" {
			return nil, fmt.Errorf("leg: answer takes the DTLS client's role (setup:active): %w", ErrBadAnswer)
		}
		for _, at := range m.Attributes {
			if at.Key != "candidate" || a.Candidate.IsValid() {
				continue
			}
			if c, ok := parseCandidate(at.Value); ok {
				a.Candidate = c
			}
		}
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
// credentials, certificate and callbacks) with the answer's ufrag, password, fingerprints and
// candidate.
func (a *Answer) OfferConfig(local Config) OfferConfig {
	local.RemoteUfrag = a.Ufrag
	local.RemoteFingerprints = a.Fingerprints
	return OfferConfig{Config: local, RemotePwd: a.Pwd, RemoteCandidate: a.Candidate}
}

// RewriteOffer puts an offering leg's ICE credentials, fingerprint and one host candidate into
// an offer made by pion/webrtc as the service makes it today (rtc.CompleteOffer): the ufrag,
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
