package sdk

import "testing"

func TestRoster(t *testing.T) {
	roster := Roster{
		{ID: "p-1", DisplayName: "Ann", Streams: []Stream{{Kind: StreamAudio, SourceID: 11}, {Kind: StreamVideo, SourceID: 12}, {Kind: StreamScreenShare, SourceID: 13}}},
		{ID: "p-2", DisplayName: "Bob", Streams: []Stream{{Kind: StreamAudio, SourceID: 21}}},
		{ID: "bot", DisplayName: "Echo", IsBot: true, Streams: []Stream{{Kind: StreamAudio, SourceID: 31}, {Kind: StreamVideo, SourceID: 32}}},
	}
	for _, c := range []struct {
		source uint32
		want   string
	}{{11, "Ann"}, {12, "Ann"}, {13, "Ann"}, {21, "Bob"}, {32, "Echo"}, {0, ""}, {99, ""}} {
		p, ok := roster.BySource(c.source)
		if ok != (c.want != "") || p.DisplayName != c.want {
			t.Errorf("BySource(%d) = %q, %v; want %q", c.source, p.DisplayName, ok, c.want)
		}
	}
	for _, c := range []struct {
		id   string
		want uint32
	}{{"p-1", 12}, {"p-2", 0}, {"bot", 32}, {"nobody", 0}} {
		v, ok := roster.VideoSourceOf(c.id)
		if ok != (c.want != 0) || v != c.want {
			t.Errorf("VideoSourceOf(%q) = %d, %v; want %d", c.id, v, ok, c.want)
		}
	}
	if a, ok := roster[0].Source(StreamAudio); !ok || a != 11 {
		t.Errorf("Ann's audio source %d, %v", a, ok)
	}
	if _, ok := roster[1].Source(StreamScreenShare); ok {
		t.Error("Bob has no screen share")
	}
	var empty Roster
	if _, ok := empty.BySource(11); ok {
		t.Error("an empty roster found someone")
	}
	// The speaker's video, in two steps.
	p, _ := roster.BySource(11)
	if v, ok := roster.VideoSourceOf(p.ID); !ok || v != 12 {
		t.Errorf("the speaker's video %d, %v", v, ok)
	}
	if n := testing.AllocsPerRun(100, func() { roster.BySource(21) }); n != 0 {
		t.Errorf("BySource allocates %.0f times", n)
	}
}
