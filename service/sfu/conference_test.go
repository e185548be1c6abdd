package sfu

import (
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
	os.Exit(0)
}

// TestConferenceLoopback runs three pion participants through one conference on loopback:
// everyone hears the others with payloads unchanged, the dominant speaker follows the loud one,
// a receiver gets the simulcast layer it subscribes to with contiguous sequence numbers across
// a layer switch, and a participant that leaves disappears from every roster.
func TestConferenceLoopback(t *testing.T) {
	s := newTestSFU(t, Config{Speaker: SpeakerConfig{SwitchAfter: 200 * time.Millisecond, Hold: 300 * time.Millisecond}})
	c, err := s.Conference("room")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var dominant []string
	var roster []ParticipantInfo
	cancel := c.Watch(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case EventDominantSpeaker:
			dominant = append(dominant, e.DominantParticipant)
		case EventRoster:
			roster = e.Roster
		}
	})
	defer cancel()
	api := clientAPI(t)
	a := joinPeer(t, api, c, "A", true)
	b := joinPeer(t, api, c, "B", false)
	cc := joinPeer(t, api, c, "C", false)
	peers := []*testPeer{a, b, cc}
	defer func() {
		for _, p := range peers {
			p.close()
		}
	}()

	// Everyone hears the two others, payload unchanged (first byte is the sender's tag).
	for _, rx := range peers {
		for _, tx := range peers {
			if rx == tx {
				continue
			}
			id := trackID(StreamAudio, tx.p.SourceID(StreamAudio))
			eventually(t, rx.name+" hears "+tx.name, func() bool {
				rs, ok := rx.stream(id)
				return ok && rs.payloads[tx.tag] >= 20
			})
			rs, _ := rx.stream(id)
			if len(rs.payloads) != 1 {
				t.Errorf("%s got foreign payloads on %s's audio: %v", rx.name, tx.name, rs.payloads)
			}
		}
		if _, ok := rx.stream(trackID(StreamAudio, rx.p.SourceID(StreamAudio))); ok {
			t.Errorf("%s hears itself", rx.name)
		}
	}

	// The latest offer names each m-line's stream.
	a.mu.Lock()
	offered := a.offered
	a.mu.Unlock()
	kinds := map[string]StreamKind{}
	for _, tr := range offered {
		kinds[tr.ParticipantID] = tr.Kind
		if tr.MID == "" || tr.SourceID == 0 {
			t.Errorf("offer track info %+v", tr)
		}
	}
	if len(offered) != 2 || kinds["B"] != StreamAudio || kinds["C"] != StreamAudio {
		t.Errorf("A's offer tracks = %+v, want B's and C's audio", offered)
	}

	// Dominant speaker follows the loud one.
	a.setLevel(10)
	eventually(t, "A dominant", func() bool { return c.DominantSpeaker() == a.p.SourceID(StreamAudio) })
	a.setLevel(110)
	b.setLevel(5)
	eventually(t, "B dominant", func() bool { return c.DominantSpeaker() == b.p.SourceID(StreamAudio) })
	eventually(t, "dominant events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(dominant) >= 2 && dominant[len(dominant)-1] == "B"
	})

	// B subscribes A's camera at the low layer and gets it.
	vid := a.p.SourceID(StreamVideo)
	vtrack := trackID(StreamVideo, vid)
	eventually(t, "B receives A's video", func() bool { rs, ok := b.stream(vtrack); return ok && rs.packets > 5 })
	if err := b.p.Subscribe(vid, LayerLow); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B on layer q", func() bool { _, cur, _ := b.p.VideoLayer(vid); return cur == LayerLow })
	before, _ := b.stream(vtrack)
	eventually(t, "layer q packets", func() bool { rs, _ := b.stream(vtrack); return rs.payloads['0'] >= before.payloads['0']+10 })
	if err := b.p.Subscribe(vid, LayerHigh); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B on layer f", func() bool { _, cur, _ := b.p.VideoLayer(vid); return cur == LayerHigh })
	eventually(t, "layer f packets", func() bool { rs, _ := b.stream(vtrack); return rs.payloads['2'] >= 10 })
	rs, _ := b.stream(vtrack)
	for i := 1; i < len(rs.seqs); i++ {
		if rs.seqs[i] != rs.seqs[i-1]+1 {
			t.Fatalf("video sequence numbers not contiguous at %d: %d then %d", i, rs.seqs[i-1], rs.seqs[i])
		}
		if d := (rs.pics[i] - rs.pics[i-1]) & 0x7fff; d != 1 {
			t.Fatalf("picture ids not contiguous at %d: %d then %d", i, rs.pics[i-1], rs.pics[i])
		}
	}
	if len(rs.payloads) < 2 {
		t.Errorf("expected two layers over time, got %v", rs.payloads)
	}

	// C leaves: it disappears from the roster.
	cc.close() // the SFU may notice the closed connections first
	if err := c.Remove("C"); err != nil && !errors.Is(err, ErrParticipantNotFound) {
		t.Fatal(err)
	}
	peers = peers[:2]
	eventually(t, "roster without C", func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(roster) != 2 {
			return false
		}
		for _, p := range roster {
			if p.ID == "C" {
				return false
			}
		}
		return true
	})
	for _, p := range c.Roster() {
		if p.ID == "A" && len(p.Streams) != 2 {
			t.Errorf("A's streams = %+v, want audio and video", p.Streams)
		}
	}
}

// TestConferenceClosesWhenEmpty: the last one out closes the conference; the id then names a
// new one; a joined participant's OnClosed hears why it was removed.
func TestConferenceClosesWhenEmpty(t *testing.T) {
	s := newTestSFU(t, Config{})
	c, _ := s.Conference("x")
	closed := make(chan error, 1)
	if _, err := c.Join("a", ParticipantOptions{OnOffer: func(string, []TrackInfo) {}, OnClosed: func(err error) { closed <- err }}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join("a", ParticipantOptions{OnOffer: func(string, []TrackInfo) {}}); !errors.Is(err, ErrParticipantExists) {
		t.Fatalf("second join with the same id: %v", err)
	}
	if _, err := c.Join("b", ParticipantOptions{}); err == nil {
		t.Fatal("join without OnOffer succeeded")
	}
	if err := c.Remove("a"); err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("OnClosed after Remove: %v", err)
	}
	eventually(t, "conference gone", func() bool { _, err := s.Lookup("x"); return errors.Is(err, ErrConferenceNotFound) })
	if _, err := c.Join("c", ParticipantOptions{OnOffer: func(string, []TrackInfo) {}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("join on a closed conference: %v", err)
	}
	c2, _ := s.Conference("x")
	if c2 == c {
		t.Fatal("the closed conference came back")
	}
	if _, err := c2.Join("c", ParticipantOptions{OnOffer: func(string, []TrackInfo) {}, OnClosed: func(err error) { closed <- err }}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if err := <-closed; !errors.Is(err, ErrClosed) {
		t.Fatalf("OnClosed after SFU.Close: %v", err)
	}
}
