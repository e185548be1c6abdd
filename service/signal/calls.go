package signal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/switchboard-rtc/switchboard/internal/protocol"
	"github.com/switchboard-rtc/switchboard/service/calls"
)

// RoomConferenceID is the id of a room's conference: "room-<name>", or, for a name that is not
// a protocol id (spaces, non-ASCII, longer than 123 bytes), "room~<32 hex digits of the name's
// SHA-256>". A conference id reaches the bots invited into the conference, so it must be one.
func RoomConferenceID(room string) string {
	if id := "room-" + room; protocol.ValidID(id) {
		return id
	}
	sum := sha256.Sum256([]byte(room))
	return "room~" + hex.EncodeToString(sum[:16])
}

// CallsDirectory is the Directory of a service with a call layer: a room is the call layer's
// conference RoomConferenceID(name) (opened on first use with calls.Manager.EnterRoom, and
// ended, with its bots' calls, when its last browser leaves), calling a bot places a one-to-one
// call to the bot whose app id is the name, and the call layer's roster follows the browsers that
// join and leave. (Streams and the dominant speaker reach it from the SFU: sfu.SFU.ReportTo.)
type CallsDirectory struct {
	Calls *calls.Manager
}

var _ Directory = CallsDirectory{}

// Room implements Directory.
func (d CallsDirectory) Room(_ context.Context, room string, c Caller) (string, error) {
	id := RoomConferenceID(room)
	if err := d.Calls.EnterRoom(id, room, calls.Participant{ID: c.ParticipantID, DisplayName: c.DisplayName, Identity: c.ParticipantID}); err != nil {
		return "", fmt.Errorf("room %q: %w", room, err)
	}
	return id, nil
}

// CallBot implements Directory.
func (d CallsDirectory) CallBot(ctx context.Context, bot string, c Caller) (string, error) {
	info, err := d.Calls.PlaceCall(ctx, bot, calls.Participant{ID: c.ParticipantID, DisplayName: c.DisplayName, Identity: c.ParticipantID},
		protocol.ModalityAudio, protocol.ModalityVideo, protocol.ModalityScreenShare)
	if errors.Is(err, calls.ErrUnknownBot) {
		return "", fmt.Errorf("call bot %q: %w (%w)", bot, ErrNotFound, err)
	}
	if err != nil {
		return "", fmt.Errorf("call bot %q: %w", bot, err)
	}
	return info.ConferenceID, nil
}

// Left implements Directory.
func (d CallsDirectory) Left(conferenceID, participantID string) {
	_ = d.Calls.RemoveParticipant(conferenceID, participantID)
}

// SetMuted tells the call layer (audio mutes only; see Muter).
func (d CallsDirectory) SetMuted(conferenceID, participantID string, muted bool) error {
	return d.Calls.SetMuted(conferenceID, participantID, muted)
}

// Muter is implemented by a Directory that wants to hear of audio mutes.
type Muter interface {
	SetMuted(conferenceID, participantID string, muted bool) error
}
