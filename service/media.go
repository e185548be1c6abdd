package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/switchboard-rtc/switchboard/service/config"
	"github.com/switchboard-rtc/switchboard/service/sfu"
	"github.com/switchboard-rtc/switchboard/service/signal"
	"github.com/switchboard-rtc/switchboard/web"
)

// Conferencing makes a Server the whole calling service: the SFU (the call layer's media), the
// browser signalling at /ws and the web page at /. The zero value takes everything from the
// configuration.
//
// Media ports: with a range in the configuration's mediaPorts (the default, 40000-40999), every
// browser connection shares one UDP socket on the first free port of the range (an ICE UDP
// mux: browsers come from distinct addresses), and every bot leg takes a port of its own from
// the range. The bot legs need their own ports because one bot process receives all its calls
// on one UDP port: two connections between the same pair of sockets could not be told apart.
// With a single port (min = max) or UDPAddr, browsers share that one socket and every bot leg
// takes a port the system picks on the same address.
type Conferencing struct {
	// UDPAddr, if set, is the one media socket every connection shares, host:port (port 0: a
	// free one). Empty: as the configuration's mediaPorts say (above), on 127.0.0.1 when the
	// service is loopback-only, else on every interface.
	UDPAddr string
	// PublicIPs are announced to browsers and bots instead of the host's addresses (a 1:1 NAT
	// in front of the service). Empty: the public URL's host when it is an IP address or
	// resolves to IPv4 addresses; none for a loopback-only service.
	PublicIPs []string
	// BotAudioSlots is how many of the loudest speakers a bot receives [3].
	BotAudioSlots int
	// Grace is how long a browser whose WebSocket dropped may resume its session [30s].
	Grace time.Duration
	// Speaker tunes the dominant-speaker detector and the choice of the loudest speakers sent to
	// bots; the zero value means the defaults (sfu.SpeakerConfig).
	Speaker sfu.SpeakerConfig
}

// conferencing is the conferencing half of a Server; nil parts when Options.Conferencing is nil.
type conferencing struct {
	sfu      *sfu.SFU
	signal   *signal.Server
	unreport func()
	loopback bool
	public   []string
	ports    config.PortRange // the bot legs' port range; zero with one shared socket for all
}

// Loopback reports whether the configuration keeps the service on this machine: it listens on
// a loopback address and its public URL, if any, names a loopback host. Media then uses the
// loopback interface only.
func Loopback(cfg config.Config) bool {
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil || !config.IsLoopbackHost(host) {
		return false
	}
	if cfg.PublicURL == "" {
		return true
	}
	u, err := url.Parse(cfg.PublicURL)
	return err == nil && config.IsLoopbackHost(u.Hostname())
}

// startMedia starts the SFU on its UDP socket or port range. The call layer does not exist yet:
// attach finishes the wiring.
func (s *Server) startMedia(c Conferencing) (*conferencing, error) {
	m := &conferencing{loopback: Loopback(s.cfg), public: c.PublicIPs}
	if len(m.public) == 0 && !m.loopback {
		m.public = publicIPs(s.cfg.PublicURL, s.log)
	}
	scfg := sfu.Config{
		UDPAddr:       c.UDPAddr,
		Loopback:      m.loopback,
		PublicIPs:     m.public,
		BotAudioSlots: c.BotAudioSlots,
		Speaker:       c.Speaker,
		Registerer:    s.metrics,
		Logger:        s.log.With("component", "sfu"),
	}
	if r := s.cfg.MediaPorts; scfg.UDPAddr == "" && r.Min == r.Max {
		host := ""
		if m.loopback {
			host = "127.0.0.1"
		}
		scfg.UDPAddr = net.JoinHostPort(host, strconv.Itoa(r.Min))
	} else if scfg.UDPAddr == "" {
		scfg.PortMin, scfg.PortMax, scfg.BrowserMux = uint16(r.Min), uint16(r.Max), true
		m.ports = r
	}
	var err error
	if m.sfu, err = sfu.New(scfg); err != nil {
		return nil, fmt.Errorf("start media server: %w", err)
	}
	return m, nil
}

// attach wires the SFU to the call layer (streams and dominant speakers) and mounts the
// browser's routes.
func (m *conferencing) attach(s *Server, grace time.Duration) {
	m.unreport = m.sfu.ReportTo(s.manager)
	m.signal = signal.NewServer(m.sfu, signal.Options{
		Directory: signal.CallsDirectory{Calls: s.manager},
		Grace:     grace,
		Logger:    s.log.With("component", "signal"),
	})
	s.mux.Handle("/ws", m.signal)
	s.mux.Handle("/", web.Handler())
}

// RoomConferenceID is the id of a room's conference (signal.RoomConferenceID).
func RoomConferenceID(room string) string { return signal.RoomConferenceID(room) }

// close ends the browsers' sessions (they are told), then the SFU.
func (m *conferencing) close() {
	if m == nil {
		return
	}
	if m.signal != nil {
		_ = m.signal.Close()
	}
	if m.unreport != nil {
		m.unreport()
	}
	_ = m.sfu.Close()
}

// publicIPs are the IPv4 addresses of the public URL's host: the address itself, or what the
// name resolves to (nothing, with a warning, when it does not resolve).
func publicIPs(publicURL string, log *slog.Logger) []string {
	if publicURL == "" {
		return nil
	}
	u, err := url.Parse(publicURL)
	if err != nil {
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() {
			return []string{ip.String()}
		}
		return nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		log.Warn("public host name does not resolve: media announces the host's own addresses", "host", host, "err", err)
		return nil
	}
	var out []string
	for _, ip := range ips {
		if v4 := ip.To4(); v4 != nil && !v4.IsLoopback() {
			out = append(out, v4.String())
		}
	}
	return out
}

// MediaAddr is the address of the SFU's UDP socket that browsers share (every connection's,
// without MediaPorts); nil without conferencing.
func (s *Server) MediaAddr() net.Addr {
	if s.media == nil {
		return nil
	}
	return s.media.sfu.UDPAddr()
}

// MediaPorts is the UDP port range the bot legs take their ports from (MediaAddr's port is in
// it too); zero without conferencing or with one socket for every connection.
func (s *Server) MediaPorts() config.PortRange {
	if s.media == nil {
		return config.PortRange{}
	}
	return s.media.ports
}

// SFU is the media server, nil without conferencing.
func (s *Server) SFU() *sfu.SFU {
	if s.media == nil {
		return nil
	}
	return s.media.sfu
}

// BotEntry is one entry of GET /api/bots: what the page shows of a registered bot.
type BotEntry struct {
	// Name is what the page's callBot takes: the bot's app id.
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
}

// serveBots lists the registered bots' names and display names (never their secrets or URLs).
func (s *Server) serveBots(w http.ResponseWriter, _ *http.Request) {
	ids := s.registry.AppIDs()
	list := make([]BotEntry, 0, len(ids))
	for _, id := range ids {
		b, err := s.registry.Lookup(id)
		if err != nil {
			continue // removed by a reload meanwhile
		}
		list = append(list, BotEntry{Name: id, DisplayName: b.DisplayName})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_ = json.NewEncoder(w).Encode(list)
}

// errMediaConflict is returned when Options.Media and Options.Conferencing are both set.
var errMediaConflict = errors.New("service: Options.Media and Options.Conferencing are exclusive")
