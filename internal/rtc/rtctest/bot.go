package rtctest

import (
	"net"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/rtc"
)

// BotAPI is a pion/webrtc API in the bot's role, built as the SDK built its answerer before its
// media had a transport of its own: ICE-lite on a UDP mux of its own on 127.0.0.1 (closed when
// the test ends, after the cleanups registered later, such as its peer connections'), the DTLS
// server, rtc.NewBotAPI (no transport-cc). Tests answer with it to show that the service's end
// of a bot leg still talks to pion/webrtc.
func BotAPI(tb testing.TB) *webrtc.API {
	tb.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	port := conn.LocalAddr().(*net.UDPAddr).Port
	mux := webrtc.NewICEUDPMux(nil, conn)
	tb.Cleanup(func() { _ = mux.Close() })
	se, err := rtc.BotSettingEngine(rtc.BotTransport{Mux: mux, InternalPort: port, PublicPort: port, Loopback: true})
	if err != nil {
		tb.Fatal(err)
	}
	api, err := rtc.NewBotAPI(se)
	if err != nil {
		tb.Fatal(err)
	}
	return api
}
