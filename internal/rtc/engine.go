package rtc

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Codecs of the service ↔ bot session. Payload types are fixed so that forwarded RTP needs no
// payload type rewriting.
const (
	PayloadTypeOpus webrtc.PayloadType = 111
	PayloadTypeVP8  webrtc.PayloadType = 96

	OpusClockRate  = 48000
	OpusChannels   = 2 // as SDP names Opus; the payload itself is mono
	OpusFmtp       = "minptime=10;useinbandfec=1"
	VideoClockRate = 90000

	// OpusFrameTicks is the RTP timestamp step of one 20 ms Opus frame.
	OpusFrameTicks = OpusClockRate / 50
)

// OpusCodec is the Opus codec of the session.
func OpusCodec() webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType:    webrtc.MimeTypeOpus,
			ClockRate:   OpusClockRate,
			Channels:    OpusChannels,
			SDPFmtpLine: OpusFmtp,
		},
		PayloadType: PayloadTypeOpus,
	}
}

// VP8Codec is the VP8 codec of the session, with its RTCP feedback: NACK, PLI, FIR, REMB and
// transport-wide congestion control.
func VP8Codec() webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType:  webrtc.MimeTypeVP8,
			ClockRate: VideoClockRate,
			RTCPFeedback: []webrtc.RTCPFeedback{
				{Type: webrtc.TypeRTCPFBNACK},
				{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
				{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
				{Type: webrtc.TypeRTCPFBGoogREMB},
				{Type: webrtc.TypeRTCPFBTransportCC},
			},
		},
		PayloadType: PayloadTypeVP8,
	}
}

// NewMediaEngine returns a media engine with exactly the session's codecs (Opus 111, VP8 96),
// their RTCP feedback, and the header extensions mid, audio level (audio) and transport-wide
// sequence numbers (video only): the service's engine, which makes the offer. The bot answers
// with newBotMediaEngine, which leaves transport-wide congestion control out.
//
// Audio carries no transport-wide sequence numbers, as in libwebrtc's default: a browser's
// send-side bandwidth estimate needs its video, and audio is a few percent of the bits. Numbering
// audio too would cost every received audio packet a hand-off to pion's feedback goroutine and
// every connection a feedback packet every 100 ms, for nothing (an audio-only call has no
// bitrate to adapt).
func NewMediaEngine() (*webrtc.MediaEngine, error) { return newMediaEngine(true) }

// newMediaEngine registers the session's codecs and header extensions, with transport-wide
// congestion control on video (its feedback and its extension) or without.
func newMediaEngine(transportCC bool) (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(OpusCodec(), webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("rtc: register Opus: %w", err)
	}
	vp8 := VP8Codec()
	if !transportCC {
		vp8.RTCPFeedback = slices.DeleteFunc(vp8.RTCPFeedback, func(f webrtc.RTCPFeedback) bool {
			return f.Type == webrtc.TypeRTCPFBTransportCC
		})
	}
	if err := m.RegisterCodec(vp8, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("rtc: register VP8: %w", err)
	}
	type ext struct {
		uri  string
		kind webrtc.RTPCodecType
	}
	exts := []ext{
		{sdp.SDESMidURI, webrtc.RTPCodecTypeAudio},
		{sdp.SDESMidURI, webrtc.RTPCodecTypeVideo},
		{sdp.AudioLevelURI, webrtc.RTPCodecTypeAudio},
	}
	if transportCC {
		exts = append(exts, ext{sdp.TransportCCURI, webrtc.RTPCodecTypeVideo})
	}
	for _, e := range exts {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: e.uri}, e.kind); err != nil {
			return nil, fmt.Errorf("rtc: register header extension %s: %w", e.uri, err)
		}
	}
	return m, nil
}

// NewInterceptorRegistry returns the service's interceptors (and its browsers'): NACK generation
// and response (video only, as negotiated), RTCP sender and receiver reports, and transport-wide
// congestion control (sequence numbers on what is sent, feedback on what is received), which
// runs only where transport-cc is negotiated (not on bot legs: newBotInterceptorRegistry). Their logs go to
// slog.Default() (NewInterceptorRegistryWithLogs chooses).
func NewInterceptorRegistry() (*interceptor.Registry, error) {
	return NewInterceptorRegistryWithLogs(nil)
}

// NewInterceptorRegistryWithLogs is NewInterceptorRegistry with the interceptors' logs going to
// logs (NewLoggerFactory(nil) when nil). Pion's interceptors do not use the SettingEngine's
// LoggerFactory: without this, they print to stderr.
func NewInterceptorRegistryWithLogs(logs logging.LoggerFactory) (*interceptor.Registry, error) {
	if logs == nil {
		logs = NewLoggerFactory(nil)
	}
	reg, err := nackAndReports(logs)
	if err != nil {
		return nil, err
	}
	// Not webrtc.ConfigureTWCC*: those also register transport-cc for audio on the media engine
	// (NewMediaEngine registers it for video alone). The interceptors act only on the streams
	// that negotiated it.
	ext, err := twcc.NewHeaderExtensionInterceptor()
	if err != nil {
		return nil, fmt.Errorf("rtc: TWCC header extension: %w", err)
	}
	reg.Add(ext)
	feedback, err := twcc.NewSenderInterceptor(twcc.WithLoggerFactory(logs))
	if err != nil {
		return nil, fmt.Errorf("rtc: TWCC feedback: %w", err)
	}
	reg.Add(feedback)
	return reg, nil
}

// LoopbackOnly restricts candidate gathering to the loopback interface, for tests and local
// development on one machine.
func LoopbackOnly(s *webrtc.SettingEngine) {
	s.SetInterfaceFilter(func(name string) bool { return name == "lo" || name == "lo0" })
	s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	s.SetIncludeLoopbackCandidate(true)
	s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
}

// BotTransport is the bot's side of a pion/webrtc transport: every call shares Mux (one UDP
// port). The SDK's media no longer runs on pion (it runs on package leg); this bot setup
// (BotSettingEngine, NewBotAPI) remains for the pion answerers of tests (rtctest.BotAPI), which
// show that the service's end of a bot leg still talks to pion/webrtc.
type BotTransport struct {
	Mux ice.UDPMux
	// PublicIP, if set, replaces the host candidate's address (1:1 NAT in front of the bot).
	PublicIP string
	// PublicPort, if set and different from the mux's port, replaces the candidate's port.
	InternalPort, PublicPort int
	// Loopback includes loopback candidates (a bot and service on one machine).
	Loopback bool
	// LoggerFactory for pion's logs; nil: NewLoggerFactory(nil), slog.Default() with the
	// errors of closing connections demoted to debug.
	LoggerFactory logging.LoggerFactory
}

// BotSettingEngine returns the setting engine of the bot: ICE-lite on the shared mux, DTLS server
// when answering, UDP over IPv4 only, and the public address for its candidate.
func BotSettingEngine(t BotTransport) (webrtc.SettingEngine, error) {
	var s webrtc.SettingEngine
	s.SetLite(true)
	s.SetICEUDPMux(t.Mux)
	s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if err := s.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		return s, fmt.Errorf("rtc: DTLS server role: %w", err)
	}
	if t.Loopback {
		s.SetIncludeLoopbackCandidate(true)
	}
	if t.PublicIP != "" || (t.PublicPort != 0 && t.PublicPort != t.InternalPort) {
		rule := webrtc.ICEAddressRewriteRule{
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}
		if t.PublicIP != "" {
			rule.External = []string{t.PublicIP}
		}
		if t.PublicPort != 0 && t.PublicPort != t.InternalPort {
			rule.OriginalPort, rule.NewPort = t.InternalPort, t.PublicPort
		}
		if err := s.SetICEAddressRewriteRules(rule); err != nil {
			return s, fmt.Errorf("rtc: public address %s:%d: %w", t.PublicIP, t.PublicPort, err)
		}
	}
	s.LoggerFactory = t.LoggerFactory
	if s.LoggerFactory == nil {
		s.LoggerFactory = NewLoggerFactory(nil)
	}
	return s, nil
}

// ServiceSettingEngine returns the setting engine of the service's side of a bot session (the
// offerer; ICE controlling and DTLS client follow from offering to an ICE-lite DTLS server).
// Pion's logs go to NewLoggerFactory(nil); set LoggerFactory to send them elsewhere.
func ServiceSettingEngine(loopback bool) webrtc.SettingEngine {
	var s webrtc.SettingEngine
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	if loopback {
		LoopbackOnly(&s)
	}
	s.LoggerFactory = NewLoggerFactory(nil)
	return s
}

// NewAPI builds a pion API from the session's media engine and interceptors and the given
// setting engine; the interceptors log to its LoggerFactory.
func NewAPI(s webrtc.SettingEngine) (*webrtc.API, error) {
	m, err := NewMediaEngine()
	if err != nil {
		return nil, err
	}
	reg, err := NewInterceptorRegistryWithLogs(s.LoggerFactory)
	if err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(s)), nil
}

// newBotMediaEngine is NewMediaEngine for the bot's side of the session: the same codecs, header
// extensions mid and audio level, and RTCP feedback NACK, PLI, FIR and REMB, but no
// transport-wide congestion control (neither the transport-cc feedback nor its sequence-number
// header extension). The bot's answer then leaves transport-cc out, so neither side numbers its
// packets for it or sends feedback: the service estimates bandwidth toward the bot with REMB and
// reads no transport-cc feedback from bot legs, and the bot's pacing does not use it either.
func newBotMediaEngine() (*webrtc.MediaEngine, error) { return newMediaEngine(false) }

// nackAndReports is a registry with the interceptors both sides run: NACK generation and
// response, and RTCP sender and receiver reports, logging to logs.
func nackAndReports(logs logging.LoggerFactory) (*interceptor.Registry, error) {
	reg := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor(nack.WithGeneratorLoggerFactory(logs))
	if err != nil {
		return nil, fmt.Errorf("rtc: NACK generator: %w", err)
	}
	resp, err := nack.NewResponderInterceptor(nack.WithResponderLoggerFactory(logs))
	if err != nil {
		return nil, fmt.Errorf("rtc: NACK responder: %w", err)
	}
	reg.Add(resp)
	reg.Add(gen)
	if err := webrtc.ConfigureRTCPReportsWithOptions(reg, []report.ReceiverOption{report.WithReceiverLoggerFactory(logs)},
		report.WithSenderLoggerFactory(logs)); err != nil {
		return nil, fmt.Errorf("rtc: RTCP reports: %w", err)
	}
	return reg, nil
}

// newBotInterceptorRegistry returns the bot's interceptors: NACK generation and response and
// RTCP sender and receiver reports, as NewInterceptorRegistryWithLogs, without the
// transport-wide congestion control ones (see newBotMediaEngine). Their logs go to logs
// (NewLoggerFactory(nil) when nil).
func newBotInterceptorRegistry(logs logging.LoggerFactory) (*interceptor.Registry, error) {
	if logs == nil {
		logs = NewLoggerFactory(nil)
	}
	reg, err := nackAndReports(logs)
	if err != nil {
		return nil, err
	}
	return reg, nil
}

// NewBotAPI builds the bot's pion API: newBotMediaEngine, newBotInterceptorRegistry (logging to
// the setting engine's LoggerFactory) and the given setting engine (BotSettingEngine).
func NewBotAPI(s webrtc.SettingEngine) (*webrtc.API, error) {
	m, err := newBotMediaEngine()
	if err != nil {
		return nil, err
	}
	reg, err := newBotInterceptorRegistry(s.LoggerFactory)
	if err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(s)), nil
}

// CertificateTemplate is the template of the session's self-signed DTLS certificates: the
// common name, a random serial, valid from an hour ago for a year.
func CertificateTemplate(commonName string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("rtc: certificate serial: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
	}, nil
}
