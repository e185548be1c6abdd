package sfu

import (
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
)

// TestNackAndScreenShare: a receiver's NACK is answered from the retransmission buffer (the
// packet arrives again, rewritten the same way); a screen share reaches browsers as its own track
// and the bot on its screen-share m-line with the source id in CSRC[0].
func TestNackAndScreenShare(t *testing.T) {
	s := newTestSFU(t, Config{})
	c, _ := s.Conference("screens")
	// The receiver keeps duplicates (SRTP replay protection off) so the retransmission shows.
	se := rtc.ServiceSettingEngine(true)
	se.DisableSRTPReplayProtection(true)
	me, _ := rtc.NewMediaEngine()
	_ = webrtc.ConfigureSimulcastExtensionHeaders(me)
	reg, _ := rtc.NewInterceptorRegistry()
	dupAPI := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
	api := clientAPI(t)

	a := joinPeerWith(t, api, c, "A", false, true)
	b := joinPeer(t, dupAPI, c, "B", false)
	defer a.close()
	defer b.close()
	botP, err := c.AddBot("bot", BotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bot := connectBot(t, api, botP)
	defer bot.close()

	ssrc := a.p.SourceID(StreamScreen)
	screenTrack := trackID(StreamScreen, ssrc)
	eventually(t, "B gets A's screen", func() bool { rs, ok := b.stream(screenTrack); return ok && rs.payloads['S'] >= 5 })
	eventually(t, "bot gets A's screen", func() bool {
		bot.mu.Lock()
		defer bot.mu.Unlock()
		rs := bot.byMID[rtc.ScreenShareMID]
		return rs != nil && rs.payloads['S'] >= 5 && rs.csrc == ssrc
	})

	// NACK the newest screen packet B has: it comes again.
	rs, _ := b.stream(screenTrack)
	lost := rs.seqs[len(rs.seqs)-1]
	nack := &rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: rs.ssrc, Nacks: []rtcp.NackPair{{PacketID: lost}}}
	if err := b.sub.WriteRTCP([]rtcp.Packet{nack}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "retransmission", func() bool {
		rs, _ := b.stream(screenTrack)
		n := 0
		for _, q := range rs.seqs {
			if q == lost {
				n++
			}
		}
		return n >= 2
	})
	eventually(t, "NACK counted", func() bool { return counterValue(s.metrics.nacks) >= 1 })
}
