package sdk

import (
	"errors"
	"fmt"

	"github.com/switchboard-rtc/switchboard/internal/playout"
)

// The 20 ms audio clock.
//
// Every receiving audio socket delivers one frame every 20 ms, and every sending one encodes one
// frame every 20 ms. Their ticks come from one clock per MediaPlatform (a playout.SharedClock),
// not from a goroutine and a timer per socket: the platform's sockets are spread over
// GOMAXPROCS shards, the least loaded first, and each shard is one goroutine that wakes every
// 20 ms on an absolute schedule and runs the tick of each of its sockets in turn (the playout of
// its slots, the mix, the hand-off of the event to the socket's event goroutine, the encode of a
// frame the bot sent). With hundreds of calls this costs a few timer wake-ups a tick instead of
// hundreds, and spreads the codec work over the cores.
//
// A socket joins its shard when its call's media starts: its first tick is the shard's next one,
// within 20 ms, and its media time counts the shard's ticks since it joined (skipped ones too),
// so each socket's buffers are stamped 0, 20 ms, 40 ms… as with a clock of its own. After a
// stall a shard runs at most playout.DefaultMaxBurst overdue ticks back to back and skips older
// ones (the socket's clockStats count them). A tick never waits for the bot: it only queues the
// event (dropping the oldest when the bot is behind); OnSendDone, the only bot code a tick runs,
// must not block. The socket leaves at Close, which waits for a tick in progress. The platform
// owns the clock: a shard's goroutine ends with its last socket, and MediaPlatform.Close stops
// them all.

// newAudioClock is a platform's audio clock; it starts no goroutine before the first socket.
func newAudioClock() *playout.SharedClock {
	return playout.NewSharedClock(playout.SharedClockConfig{Interval: playout.FrameDuration})
}

// joinClock starts the socket's ticks on c (s.mu held; the socket's call state is set up).
func (s *AudioSocket) joinClock(c *playout.SharedClock) error {
	m, err := c.Join(s.clockTick, &s.clockStats)
	if err != nil {
		if errors.Is(err, playout.ErrClockClosed) {
			return ErrPlatformClosed
		}
		return fmt.Errorf("sdk: audio socket of call %s: join the audio clock: %w", s.call.callID, err)
	}
	s.member = m
	return nil
}

// clockTick is the socket's tick on the shared clock: one 20 ms step at the socket's media time.
func (s *AudioSocket) clockTick(t playout.Tick) { s.tick(t.Due) }
