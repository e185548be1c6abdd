package sdk

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-rtc/switchboard/internal/playout"
	"github.com/switchboard-rtc/switchboard/media"
)

// clockedAudioSocket is an offline audio socket (one slot, no network) whose event goroutine
// runs and which ticks on c, as a started socket does on its platform's clock.
func clockedAudioSocket(t testing.TB, c *playout.SharedClock, settings AudioSocketSettings) *AudioSocket {
	t.Helper()
	s := offlineAudioSocketWith(t, 1, settings, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.events.run(s.stop, s.deliver, s.discard)
	}()
	if err := s.joinClock(c); err != nil {
		t.Fatal(err)
	}
	return s
}

// tsLog checks a socket's audio events: their count, and that each timestamp follows the
// previous by 20 ms (gaps: ticks skipped or events dropped, counted in frames).
type tsLog struct {
	mu      sync.Mutex
	events  int
	last    time.Duration
	gaps    int // frames missing between consecutive events
	firstTS time.Duration
	closed  atomic.Bool // set by the test once Close returned
	late    atomic.Bool // an event arrived after Close returned
}

func (l *tsLog) record(e AudioReceivedEvent) {
	if l.closed.Load() {
		l.late.Store(true)
	}
	l.mu.Lock()
	if l.events == 0 {
		l.firstTS = e.Buffer.Timestamp
	} else {
		l.gaps += int((e.Buffer.Timestamp-l.last)/playout.FrameDuration) - 1
	}
	l.last = e.Buffer.Timestamp
	l.events++
	l.mu.Unlock()
}

func (l *tsLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.events
}

// TestClockManySocketsOneShard: sockets sharing one shard of the clock each get exactly one
// event per tick of their own, stamped with their own media time (0, 20 ms, 40 ms…), sending
// ones encode what they are given, and the shard's goroutine ends with the last socket.
func TestClockManySocketsOneShard(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := playout.NewSharedClock(playout.SharedClockConfig{Shards: 1})
	defer c.Close()
	const n = 40
	logs := make([]*tsLog, n)
	socks := make([]*AudioSocket, n)
	for i := range socks {
		l := &tsLog{}
		logs[i] = l
		dir := Recvonly
		if i%4 == 0 {
			dir = Sendrecv // echoes what it receives: the tick encodes it
		}
		var self atomic.Pointer[AudioSocket]
		settings := AudioSocketSettings{Direction: dir, QueueFrames: 2000}
		settings.OnAudioReceived = func(e AudioReceivedEvent) {
			l.record(e)
			if s := self.Load(); s != nil && s.Send(e.Buffer) == nil {
				return
			}
			e.Buffer.Release()
		}
		socks[i] = clockedAudioSocket(t, c, settings)
		if dir == Sendrecv {
			self.Store(socks[i])
		}
	}
	if got := c.Shards(); got[0] != n {
		t.Fatalf("sockets per shard %v, want [%d]", got, n)
	}
	waitUntil(t, 20*time.Second, "50 events at every socket", func() bool {
		for _, l := range logs {
			if l.count() < 50 {
				return false
			}
		}
		return true
	})
	for _, s := range socks {
		s.member.Leave() // the ticks stop; the events queued meanwhile still arrive
	}
	waitUntil(t, 20*time.Second, "every tick's event delivered", func() bool {
		for i, s := range socks {
			if uint64(logs[i].count()) != s.clockStats.Stats().Ticks {
				return false
			}
		}
		return true
	})
	for i, s := range socks {
		st, l := s.clockStats.Stats(), logs[i]
		l.mu.Lock()
		// One event per tick; the timestamps count the socket's own ticks from 0, skipped ones
		// too (a stalled machine skips ticks by design).
		if s.Dropped() != 0 || l.gaps+int(l.firstTS/playout.FrameDuration) != int(st.Skipped) ||
			int(l.last/playout.FrameDuration)+1 != l.events+int(st.Skipped) {
			t.Errorf("socket %d: %d events (first at %v, last at %v, %d frames missing between), %d dropped; clock %+v",
				i, l.events, l.firstTS, l.last, l.gaps, s.Dropped(), st)
		}
		l.mu.Unlock()
		s.close()
		if i%4 == 0 && s.encodeErrors != 0 {
			t.Errorf("socket %d: %d encode errors", i, s.encodeErrors)
		}
		if st := s.pool.Stats(); st.Outstanding != 0 {
			t.Errorf("socket %d: %d buffers outstanding after close", i, st.Outstanding)
		}
	}
	if got := c.Shards(); got[0] != 0 {
		t.Fatalf("sockets per shard after all closed: %v", got)
	}
	// goleak: the shard's goroutine has ended with its last socket.
}

// TestClockCloseWhileTicking: sockets closed one by one while their shard ticks: Close waits
// for a tick in progress (one blocked in OnSendDone), and once it returns no tick and no event
// of the socket runs, and no buffer of it is left outstanding.
func TestClockCloseWhileTicking(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := playout.NewSharedClock(playout.SharedClockConfig{Shards: 1})
	defer c.Close()

	// A sending socket whose OnSendDone blocks in the middle of a tick.
	inTick, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	var once sync.Once
	blocker := clockedAudioSocket(t, c, AudioSocketSettings{Direction: Sendrecv, OnSendDone: func(b *media.AudioBuffer) {
		once.Do(func() {
			close(inTick)
			<-release
			finished.Store(true)
		})
		b.Release()
	}})
	const n = 20
	logs := make([]*tsLog, n)
	socks := make([]*AudioSocket, n)
	for i := range socks {
		l := &tsLog{}
		logs[i] = l
		socks[i] = clockedAudioSocket(t, c, AudioSocketSettings{Direction: Recvonly, OnAudioReceived: func(e AudioReceivedEvent) {
			l.record(e)
			e.Buffer.Release()
		}})
	}
	bot := media.NewAudioPool("bot")
	if err := blocker.Send(bot.Get()); err != nil {
		t.Fatal(err)
	}
	<-inTick
	closed := make(chan bool)
	go func() {
		blocker.close()
		closed <- finished.Load()
	}()
	time.Sleep(10 * time.Millisecond) // room for a Close that does not wait to return early
	close(release)
	if !<-closed {
		t.Fatal("Close returned while the socket's tick was running")
	}
	if st := bot.Stats(); st.Outstanding != 0 {
		t.Errorf("bot's pool: %d buffers outstanding after Close", st.Outstanding)
	}

	ticksAtClose := make([]uint64, n)
	for i, s := range socks {
		// Close at different points of the shard's 20 ms: every other after a tick of its own.
		if i%2 == 0 {
			k := logs[i].count()
			waitUntil(t, 10*time.Second, "an event", func() bool { return logs[i].count() > k })
		} else {
			time.Sleep(time.Duration(i%5) * time.Millisecond)
		}
		s.close()
		logs[i].closed.Store(true)
		ticksAtClose[i] = s.clockStats.Stats().Ticks
	}
	time.Sleep(50 * time.Millisecond) // room for a stray tick
	for i, s := range socks {
		if got := s.clockStats.Stats().Ticks; got != ticksAtClose[i] {
			t.Errorf("socket %d ticked %d times after Close returned", i, got-ticksAtClose[i])
		}
		if logs[i].late.Load() {
			t.Errorf("socket %d: an event after Close returned", i)
		}
		if st := s.pool.Stats(); st.Outstanding != 0 {
			t.Errorf("socket %d: %d buffers outstanding after Close", i, st.Outstanding)
		}
	}
	if got := c.Shards(); got[0] != 0 {
		t.Fatalf("sockets per shard after all closed: %v", got)
	}
}

// TestClockSlowBotDelaysNoOne: a bot callback that blocks holds up its own socket's events
// only: the shared clock keeps ticking that socket (its frames are dropped, counted) and the
// other sockets on the shard keep getting their events.
func TestClockSlowBotDelaysNoOne(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := playout.NewSharedClock(playout.SharedClockConfig{Shards: 1})
	defer c.Close()
	blocked, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	slow := clockedAudioSocket(t, c, AudioSocketSettings{Direction: Recvonly, OnAudioReceived: func(e AudioReceivedEvent) {
		e.Buffer.Release()
		once.Do(func() {
			close(blocked)
			<-release
		})
	}})
	const n = 8
	logs := make([]*tsLog, n)
	socks := make([]*AudioSocket, n)
	for i := range socks {
		l := &tsLog{}
		logs[i] = l
		socks[i] = clockedAudioSocket(t, c, AudioSocketSettings{Direction: Recvonly, OnAudioReceived: func(e AudioReceivedEvent) {
			l.record(e)
			e.Buffer.Release()
		}})
	}
	<-blocked
	ticks0 := slow.clockStats.Stats().Ticks
	counts0 := make([]int, n)
	for i, l := range logs {
		counts0[i] = l.count()
	}
	waitUntil(t, 20*time.Second, "100 events at every other socket while one bot callback blocks", func() bool {
		for i, l := range logs {
			if l.count() < counts0[i]+100 {
				return false
			}
		}
		return true
	})
	ticks := slow.clockStats.Stats().Ticks - ticks0
	dropped := slow.Dropped()
	close(release)
	if ticks < 100 {
		t.Errorf("the blocked socket ticked %d times while the others got 100 events", ticks)
	}
	if dropped+uint64(slow.settings.QueueFrames) < ticks {
		t.Errorf("the blocked socket ticked %d times but dropped only %d frames (queue %d)", ticks, dropped, slow.settings.QueueFrames)
	}
	slow.close()
	for _, s := range socks {
		s.close()
	}
}

// TestClockTickAllocs: with a hundred sockets on the platform's clock (receiving, a quarter
// of them echoing back, as the echo bot does), the ticks and the deliveries allocate nothing.
func TestClockTickAllocs(t *testing.T) {
	if media.DebugChecks {
		t.Skip("the checking build's buffer quarantine is not the steady state")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := newAudioClock()
	defer c.Close()
	const n = 100
	socks := make([]*AudioSocket, n)
	for i := range socks {
		dir := Recvonly
		if i%4 == 0 {
			dir = Sendrecv
		}
		var self atomic.Pointer[AudioSocket]
		socks[i] = clockedAudioSocket(t, c, AudioSocketSettings{Direction: dir, OnAudioReceived: func(e AudioReceivedEvent) {
			if s := self.Load(); s != nil && s.Send(e.Buffer) == nil {
				return
			}
			e.Buffer.Release()
		}})
		if dir == Sendrecv {
			self.Store(socks[i])
		}
	}
	tick := make(chan struct{}, 1)
	m, err := c.Join(func(playout.Tick) {
		select {
		case tick <- struct{}{}:
		default:
		}
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 25 { // warm up: pools, queues, encoders
		<-tick
	}
	if a := testing.AllocsPerRun(50, func() { <-tick }); a != 0 {
		t.Errorf("%v allocations a 20 ms tick of %d sockets, want 0", a, n)
	}
	m.Leave()
	for _, s := range socks {
		s.close()
	}
}
