package calls

import (
	"context"
	"log/slog"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/internal/webhook"
	"github.com/switchboard-rtc/switchboard/service/bots"
	"github.com/switchboard-rtc/switchboard/service/config"
)

// discardBus accepts and drops every request.
type discardBus struct{}

func (discardBus) Enqueue(context.Context, webhook.Request) error { return nil }

// BenchmarkRosterUpdate measures one roster change in a 50-person conference with 3 bots: the
// roster is built once and one notification per bot is encoded and queued.
func BenchmarkRosterUpdate(b *testing.B) {
	reg, _ := bots.New([]config.Bot{
		{AppID: "a", Secret: secret, WebhookURL: "http://127.0.0.1:9/a"},
		{AppID: "b", Secret: secret, WebhookURL: "http://127.0.0.1:9/b"},
		{AppID: "c", Secret: secret, WebhookURL: "http://127.0.0.1:9/c"},
	})
	bus := &fakeBus{}
	m, _ := New(Options{Bots: reg, Bus: bus, Logger: slog.New(slog.DiscardHandler)})
	defer m.Close()
	conf, _ := m.CreateConference("", "big")
	for i := range 50 {
		p := alice
		p.ID = "p" + string(rune('A'+i))
		m.AddParticipant(conf, p)
	}
	for _, app := range []string{"a", "b", "c"} {
		c, _ := m.InviteBot(context.Background(), conf, app, protocol.Identity{})
		bus.mu.Lock()
		req := bus.reqs[len(bus.reqs)-1]
		bus.mu.Unlock()
		req.Done(webhook.Result{Status: 200, Body: []byte(`{"actions":[{"action":"answer","operationId":"x"}],"notificationSubscriptions":["rosterUpdate"],"callbackUri":"http://127.0.0.1:9/cb"}`)})
		_ = c
	}
	m.opts.Bus = discardBus{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		m.SetMuted(conf, "pA", i%2 == 0)
	}
}
