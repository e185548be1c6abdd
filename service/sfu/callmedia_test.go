package sfu

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/service/calls"
)

type fakeReporter struct {
	mu       sync.Mutex
	streams  map[string][]protocol.Stream
	calls    int
	dominant uint32
}

func (f *fakeReporter) SetStreams(confID, pid string, s []protocol.Stream) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streams[confID+"/"+pid] = s
	f.calls++
	return nil
}

func (f *fakeReporter) SetDominantSpeaker(confID string, src uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dominant = src
	return nil
}

// TestCallMedia drives the SFU through the call layer's seam: offer, connect (returns once
// media is up), subscribe errors, close; and ReportTo tells the call layer streams and the
// dominant speaker.
func TestCallMedia(t *testing.T) {
	s := newTestSFU(t, Config{})
	rep := &fakeReporter{streams: make(map[string][]protocol.Stream)}
	defer s.ReportTo(rep)()
	c, _ := s.Conference("conf-1")
	api := clientAPI(t)
	a := joinPeer(t, api, c, "A", false)
	defer a.close()
	a.setLevel(10)

	cm := s.CallMedia(BotOptions{})
	ref := calls.CallRef{ID: "call-1", ConferenceID: "conf-1", AppID: "echo", ParticipantID: "bot-echo"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	offer, err := cm.Offer(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	mids, _, err := rtc.MIDs(offer)
	if err != nil || len(mids) != rtc.DefaultAudioLines+rtc.DefaultVideoLines+1 || mids[0] != "audio0" {
		t.Fatalf("offer mids %v %v", mids, err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Close() }()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatal(err)
	}
	answer, err := rtc.CompleteAnswer(ctx, pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cm.Connect(ctx, ref, answer); err != nil {
		t.Fatalf("connect: %v", err)
	}
	if err := cm.Subscribe(ctx, ref, protocol.SubscribeRequest{SocketID: 0, SourceID: 12345}); err == nil {
		t.Error("subscribe to an unknown source succeeded")
	}
	if err := cm.Subscribe(ctx, calls.CallRef{ID: "nope"}, protocol.SubscribeRequest{SourceID: 1}); err == nil {
		t.Error("subscribe on an unknown call succeeded")
	}
	eventually(t, "streams and dominant reported", func() bool {
		rep.mu.Lock()
		defer rep.mu.Unlock()
		st := rep.streams["conf-1/A"]
		return len(st) == 1 && st[0].Kind == protocol.StreamAudio && st[0].SourceID == a.p.SourceID(StreamAudio) &&
			rep.dominant == a.p.SourceID(StreamAudio)
	})
	cm.Close(ref)
	for _, p := range c.Roster() {
		if p.ID == "bot-echo" {
			t.Fatal("bot still in the roster after Close")
		}
	}
}
