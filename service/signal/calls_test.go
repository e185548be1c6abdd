package signal

import (
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
)

// TestRoomConferenceID: every room name, however odd, maps to a stable protocol id of its own.
func TestRoomConferenceID(t *testing.T) {
	seen := map[string]string{}
	for _, room := range []string{"standup", "Team-42_x.y~z", "", "with space", "ünïcödé", "a:b", "🎉",
		strings.Repeat("r", 64), strings.Repeat("r", 123), strings.Repeat("r", 124), strings.Repeat("é", 64)} {
		id := RoomConferenceID(room)
		if !protocol.ValidID(id) {
			t.Errorf("room %q: id %q is not a protocol id", room, id)
		}
		if prev, ok := seen[id]; ok {
			t.Errorf("rooms %q and %q share the id %q", prev, room, id)
		}
		seen[id] = room
		if id != RoomConferenceID(room) {
			t.Errorf("room %q: id not stable", room)
		}
	}
	if got := RoomConferenceID("standup"); got != "room-standup" {
		t.Errorf("standup → %q", got)
	}
}
