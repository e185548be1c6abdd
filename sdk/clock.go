package sdk

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/switchboard-rtc/switchboard/internal/playout"
)

// The 20 ms audio clock.
//
// Every receiving audio socket delivers one frame every 20 ms, and every sending one encodes one
// frame every 20 ms. Their ticks come from one clock per MediaPlatform (a playout.SharedClock),
// not from a goroutine and a timer per socket: the platform's sockets are spread over
// audioClockShardsPerCore × GOMAXPROCS shards, the least loaded first, and each shard is one
// goroutine that wakes every 20 ms on an absolute schedule and runs the ticks of its sockets.
// The shards' schedules are spread evenly over the 20 ms, so that their work does not arrive
// all at once. With hundreds of calls this costs a few timer wake-ups a tick instead of
// hundreds.
//
// A shard's tick has two passes over its sockets. The first does each socket's codec work
// (the playout of its slots and the mix, queuing the event without waking the event goroutine;
// the encode of a frame the bot sent); the second wakes the event goroutines of the receiving
// sockets. While the first pass runs its cgo calls, none of those event goroutines waits for
// the shard's processor, so the Go runtime has no cause to hand that processor to another
// thread in the middle of a call (system calls, and a delay for the rest of the shard's work);
// the events then go out together, once per tick.
//
// A socket joins a shard when its call's media starts: its first tick is the shard's next one,
// within 20 ms, and its media time counts the shard's ticks since it joined (skipped ones too),
// so each socket's buffers are stamped 0, 20 ms, 40 ms… as with a clock of its own. After a
// stall a shard runs at most playout.DefaultMaxBurst overdue ticks back to back and skips older
// ones (the socket's clockStats count them). A tick never waits for the bot: it only queues the
// event (dropping the oldest when the bot is behind); OnSendDone, the only bot code a tick runs,
// must not block. The socket leaves at Close, which waits for a tick of it in progress. The
// platform owns the clock: a shard's goroutine ends with its last socket, and
// MediaPlatform.Close stops them all.

// audioClockShardsPerCore is how many shards the audio clock has per GOMAXPROCS: with four, a
// shard's tick takes at most about a quarter of the 20 ms when the cores are fully busy with
// audio, so a socket's events keep their cadence within a few milliseconds. Fewer shards cost
// less when idle (one wake-up a shard a tick), more keep each tick shorter.
const audioClockShardsPerCore = 4

// newAudioClock is a platform's audio clock; it starts no goroutine before the first socket.
func newAudioClock() *playout.SharedClock {
	return playout.NewSharedClock(playout.SharedClockConfig{
		Interval: playout.FrameDuration,
		Shards:   audioClockShardsPerCore * runtime.GOMAXPROCS(0),
	})
}

// joinClock starts the socket's ticks on c (s.mu held; the socket's call state is set up).
func (s *AudioSocket) joinClock(c *playout.SharedClock) error {
	var wake func(playout.Tick)
	if s.settings.Direction.receives() {
		wake = s.clockWake
	}
	m, err := c.JoinSplit(s.clockStep, wake, &s.clockStats)
	if err != nil {
		if errors.Is(err, playout.ErrClockClosed) {
			return ErrPlatformClosed
		}
		return fmt.Errorf("sdk: audio socket of call %s: join the audio clock: %w", s.call.callID, err)
	}
	s.member = m
	return nil
}

// clockTick is the socket's whole tick: one 20 ms step at the socket's media time.
func (s *AudioSocket) clockTick(t playout.Tick) { s.tick(t.Due) }

// clockStep and clockWake are the socket's tick in two parts on the shared clock (see above).
func (s *AudioSocket) clockStep(t playout.Tick) { s.step(t.Due) }

func (s *AudioSocket) clockWake(playout.Tick) { s.wake() }
