package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/service/calls"
	"github.com/switchboard-rtc/switchboard/service/config"
	"github.com/switchboard-rtc/switchboard/service/internal/servicetest"
	"github.com/switchboard-rtc/switchboard/service/internal/testpeer"
	"github.com/switchboard-rtc/switchboard/service/sfu"
)

func TestLoopbackAndPublicIPs(t *testing.T) {
	for _, tc := range []struct {
		listen, public string
		want           bool
	}{
		{"127.0.0.1:8080", "", true},
		{"localhost:8080", "", true},
		{"[::1]:8080", "http://127.0.0.1:8080", true},
		{"127.0.0.1:8080", "https://sb.example.com", false}, // behind a reverse proxy
		{"0.0.0.0:443", "", false},
		{"10.0.0.5:443", "https://10.0.0.5", false},
	} {
		if got := Loopback(config.Config{Listen: tc.listen, PublicURL: tc.public}); got != tc.want {
			t.Errorf("Loopback(%s, %q) = %v", tc.listen, tc.public, got)
		}
	}
	log := slog.New(slog.DiscardHandler)
	for url, want := range map[string][]string{
		"":                        nil,
		"https://203.0.113.7":     {"203.0.113.7"},
		"https://203.0.113.7:443": {"203.0.113.7"},
		"https://[2001:db8::1]":   nil, // media is IPv4
		"https://localhost":       nil, // resolves to loopback only
	} {
		if got := publicIPs(url, log); !slices.Equal(got, want) {
			t.Errorf("publicIPs(%q) = %v, want %v", url, got, want)
		}
	}
}

// TestConferencingOptions: Options.Media and Options.Conferencing are exclusive; the default
// port range gives browsers one shared socket in it and bots the range; UDPAddr makes one
// shared socket; /api/bots lists names (app ids) and display names (the app id
// when none is registered) only.
func TestConferencingOptions(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	if _, err := New(cfg, Options{Media: &nullMedia{}, Conferencing: &Conferencing{}, Logger: slog.New(slog.DiscardHandler)}); !errors.Is(err, errMediaConflict) {
		t.Fatalf("Media and Conferencing: %v", err)
	}
	// The default mediaPorts range: browsers share one socket in the range, bot legs take
	// ports from it (sfu.TestBrowserMuxAndBotPorts shows the connections doing so).
	ranged := newConfServer(t, Conferencing{})
	if a, ok := ranged.MediaAddr().(*net.UDPAddr); !ok || ranged.MediaPorts() != config.Default().MediaPorts ||
		a.Port < ranged.MediaPorts().Min || a.Port > ranged.MediaPorts().Max {
		t.Fatalf("default ports: browsers' socket %v, bot ports %v", ranged.MediaAddr(), ranged.MediaPorts())
	}
	var sb strings.Builder
	ranged.Describe(&sb)
	if want := fmt.Sprintf("UDP ports %s on 127.0.0.1: %d shared by browsers, one per bot call", ranged.MediaPorts(), ranged.MediaAddr().(*net.UDPAddr).Port); !strings.Contains(sb.String(), want) {
		t.Errorf("Describe says\n%s\nwant a line with %q", sb.String(), want)
	}
	s := newConfServer(t, Conferencing{UDPAddr: "127.0.0.1:0"})
	if s.MediaAddr() == nil || s.MediaPorts() != (config.PortRange{}) {
		t.Fatalf("UDPAddr: shared socket %v, ports %v", s.MediaAddr(), s.MediaPorts())
	}
	if err := s.AddBot(config.Bot{AppID: "b1", Secret: botSecret, WebhookURL: "http://127.0.0.1:1/x", DisplayName: "Bee"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddBot(config.Bot{AppID: "b1", Secret: botSecret, WebhookURL: "http://127.0.0.1:1/x"}); err == nil {
		t.Fatal("the same app id twice was accepted")
	}
	if err := s.AddBot(config.Bot{AppID: "b2", Secret: botSecret, WebhookURL: "http://127.0.0.1:1/x"}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.URL() + "/api/bots")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := strings.TrimSpace(string(body)); resp.StatusCode != 200 || got != `[{"name":"b1","displayName":"Bee"},{"name":"b2","displayName":"b2"}]` {
		t.Fatalf("/api/bots: %d %s", resp.StatusCode, got)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

type nullMedia struct{ calls.Media }

// TestShutdownEndsConferencing: Shutdown with a browser in a call to a bot tells the browser
// (left: server closing) and the bot (terminated: serviceShutdown), then closes the SFU.
func TestShutdownEndsConferencing(t *testing.T) {
	s := newConfServer(t, Conferencing{})
	rec := newRecordingBot(t, s, "rec")
	p := dialPeer(t, s, testpeer.Config{Name: "Ann", Audio: steady(1, 4000)})
	if _, err := p.CallBot(t.Context(), "rec"); err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, "call established", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.established })
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, "the browser told", func() bool { return p.Left() != "" })
	if got := p.Left(); got != "server closing" {
		t.Errorf("browser left with %q", got)
	}
	rec.mu.Lock()
	states := slices.Clone(rec.states)
	rec.mu.Unlock()
	if !slices.Contains(states, "terminated/"+calls.ReasonServiceShutdown) {
		t.Errorf("bot states %v, want terminated/%s", states, calls.ReasonServiceShutdown)
	}
	if _, err := s.SFU().Conference("after"); !errors.Is(err, sfu.ErrClosed) {
		t.Errorf("SFU after shutdown: %v", err)
	}
}

// TestRoomEndsWithLastBrowser: a bot in a room shows its registered display name in the
// browsers' roster and in its own; when the last browser leaves, the room's conference ends in
// the call layer (gone from Stats) and the bot gets terminated/conferenceEnded.
func TestRoomEndsWithLastBrowser(t *testing.T) {
	s := newConfServer(t, Conferencing{})
	rec := newRecordingBot(t, s, "rec")
	p := dialPeer(t, s, testpeer.Config{Name: "Ann", Audio: steady(1, 4000)})
	j, err := p.Join(t.Context(), "retro")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Calls().InviteBot(t.Context(), j.ConferenceID, "rec", protocol.Identity{Identity: "test"}); err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, "bot call established", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.established })
	servicetest.Eventually(t, "the bot in the browser's roster", func() bool { return len(p.Roster()) == 2 })
	if b := p.Roster()[1]; !b.IsBot || b.DisplayName != "Bot rec" {
		t.Errorf("the bot in the browser's roster: %+v, want display name %q", b, "Bot rec")
	}
	servicetest.Eventually(t, "the bot in its own roster", func() bool { return len(rec.rosterIDs()) == 2 })
	rec.mu.Lock()
	if b := rec.roster[1]; !b.IsBot || b.DisplayName != "Bot rec" || b.Identity != "rec" {
		t.Errorf("the bot in its own roster: %+v, want display name %q, identity rec", b, "Bot rec")
	}
	rec.mu.Unlock()
	if err := p.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, "the room gone from the call layer", func() bool { calls, confs := s.Calls().Stats(); return calls == 0 && confs == 0 })
	servicetest.Eventually(t, "the bot told", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return slices.Contains(rec.states, "terminated/"+calls.ReasonConferenceEnded)
	})
}
