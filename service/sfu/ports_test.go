package sfu

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// freeRange returns a range of n UDP ports on loopback whose first port was free a moment ago.
func freeRange(t *testing.T, n int) (uint16, uint16) {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lo := c.LocalAddr().(*net.UDPAddr).Port
	_ = c.Close()
	if lo+n > 65535 {
		lo = 65535 - n
	}
	return uint16(lo), uint16(lo + n - 1)
}

// candidatePorts lists the distinct ports of an SDP's host candidates.
func candidatePorts(t *testing.T, sdp string) []int {
	t.Helper()
	var ports []int
	for line := range strings.SplitSeq(sdp, "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "a="))
		if len(f) >= 8 && strings.HasPrefix(f[0], "candidate:") && f[7] == "host" {
			p, err := strconv.Atoi(f[5])
			if err != nil {
				t.Fatalf("candidate %q: %v", line, err)
			}
			if !slices.Contains(ports, p) {
				ports = append(ports, p)
			}
		}
	}
	return ports
}

// TestBrowserMuxAndBotPorts: with BrowserMux, every browser connection uses the one socket on
// the first free port of the range, and each bot leg a port of its own from the range.
func TestBrowserMuxAndBotPorts(t *testing.T) {
	lo, hi := freeRange(t, 40)
	s := newTestSFU(t, Config{PortMin: lo, PortMax: hi, BrowserMux: true})
	shared := s.UDPAddr().(*net.UDPAddr).Port
	if shared < int(lo) || shared > int(hi) {
		t.Fatalf("browsers' socket on %d, outside %d-%d", shared, lo, hi)
	}
	c, err := s.Conference("ports")
	if err != nil {
		t.Fatal(err)
	}
	api := clientAPI(t)
	a := joinPeer(t, api, c, "A", false)
	defer a.close()
	b := joinPeer(t, api, c, "B", false)
	defer b.close()
	for _, p := range []*testPeer{a, b} {
		for _, pc := range []*webrtc.PeerConnection{p.pub, p.sub} {
			eventually(t, p.name+" connected through the shared port", func() bool {
				// Connected first: pion's GetSelectedCandidatePair reads the transport's gatherer
				// without its lock, so it must not run while the transport is still starting.
				if pc.ICEConnectionState() != webrtc.ICEConnectionStateConnected {
					return false
				}
				pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
				if err != nil || pair == nil {
					return false
				}
				if int(pair.Remote.Port) != shared {
					t.Fatalf("%s: connected to the SFU's port %d, not the shared %d", p.name, pair.Remote.Port, shared)
				}
				return true
			})
		}
	}
	seen := map[int]bool{shared: true}
	for _, id := range []string{"bot1", "bot2"} {
		p, err := c.AddBot(id, BotOptions{DisplayName: id})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		offer, err := p.Offer(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ports := candidatePorts(t, offer)
		if len(ports) != 1 || ports[0] < int(lo) || ports[0] > int(hi) || seen[ports[0]] {
			t.Fatalf("%s's candidates on ports %v: want one of its own in %d-%d, not one of %v", id, ports, lo, hi, seen)
		}
		seen[ports[0]] = true
	}
}
