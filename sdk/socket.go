package sdk

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/switchboard-rtc/switchboard/media"
)

// sendBuffer is what a socket's Send takes: an audio or a video buffer.
type sendBuffer interface {
	*media.AudioBuffer | *media.VideoBuffer
	Release()
}

// socketLife is the life both socket kinds share (each embeds one): the binding to one call's
// media configuration, the send status, the queue Send fills and its refusal once the socket is
// closed, and the goroutines close stops and waits for. B is the buffer the socket sends. What
// differs between the kinds (events, codecs, their goroutines) stays in the socket.
type socketLife[B sendBuffer] struct {
	mu     sync.Mutex // also guards the embedding socket's own call state
	owner  *MediaConfiguration
	closed bool
	call   *callMedia
	log    *slog.Logger

	sender     rtpWriter   // nil when not sending
	ssrc       uint32      // of the stream the socket sends
	sendable   atomic.Bool // the answer allows sending
	status     atomic.Uint32
	sendMu     sync.RWMutex // Send holds it for reading; close sets sendDead under it
	sendDead   bool         // closed: Send refuses, so no buffer is queued after the drain
	sendQ      chan B
	onSendDone func(B) // the settings' OnSendDone; nil: Release

	stop chan struct{} // closed by close: the socket's goroutines return
	wg   sync.WaitGroup
	once sync.Once
}

func newSocketLife[B sendBuffer](sendQueue int, onSendDone func(B)) socketLife[B] {
	return socketLife[B]{sendQ: make(chan B, sendQueue), onSendDone: onSendDone, stop: make(chan struct{})}
}

// claim makes m the socket's owner; nil when it already has one or is closed (a socket serves
// one call).
func (l *socketLife[B]) claim(m *MediaConfiguration) socketClaim {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.owner != nil || l.closed {
		return nil
	}
	l.owner = m
	return l
}

func (l *socketLife[B]) unclaim() {
	l.mu.Lock()
	l.owner = nil
	l.mu.Unlock()
}

// attach starts the socket's part in call, with l.mu held: ErrSocketClosed once it is closed.
func (l *socketLife[B]) attach(call *callMedia, log *slog.Logger) error {
	if l.closed {
		return ErrSocketClosed
	}
	l.call, l.log = call, log
	return nil
}

// setSender attaches the transport the socket sends on and its stream's SSRC (before the
// answer), with l.mu held.
func (l *socketLife[B]) setSender(w rtpWriter, ssrc uint32) {
	l.sender, l.ssrc = w, ssrc
	l.sendable.Store(true)
}

// connect sets the send status for a media transport that is up or down: Active when it is up
// and the socket sends and the answer allows it. It returns the status and whether a socket
// that sends is to announce it (it changed).
func (l *socketLife[B]) connect(up, sends bool) (MediaSendStatus, bool) {
	status := Inactive
	if up && sends && l.sendable.Load() {
		status = Active
	}
	changed := MediaSendStatus(l.status.Swap(uint32(status))) != status
	return status, changed && sends
}

// enqueue is Send once buf is known not to be nil: ErrSocketClosed once the socket is closed,
// ErrNotSending while Inactive, then invalid (the socket's own check of buf) when not nil,
// ErrSendQueueFull when the queue is full.
func (l *socketLife[B]) enqueue(buf B, invalid error) error {
	l.sendMu.RLock()
	defer l.sendMu.RUnlock()
	if l.sendDead {
		return ErrSocketClosed
	}
	if MediaSendStatus(l.status.Load()) != Active {
		return ErrNotSending
	}
	if invalid != nil {
		return invalid
	}
	select {
	case l.sendQ <- buf:
		return nil
	default:
		return ErrSendQueueFull
	}
}

// sendDone hands a buffer given to Send back to the bot (OnSendDone), or releases it.
func (l *socketLife[B]) sendDone(buf B) {
	if l.onSendDone != nil {
		callBot(l.log, "OnSendDone", func() { l.onSendDone(buf) })
		return
	}
	buf.Release()
}

// end is Close: once the socket belongs to a media configuration, that ends the call's media,
// closing its transport first (so that nothing more is received) and then every socket;
// before, the socket closes alone with closeSocket.
func (l *socketLife[B]) end(closeSocket func()) {
	l.mu.Lock()
	owner := l.owner
	l.mu.Unlock()
	if owner != nil {
		owner.close()
		return
	}
	closeSocket()
}

// shutdown closes the socket once: it is closed (no call takes it, Send refuses), Inactive, its
// goroutines are told to stop (stop is closed, then stopping runs, if not nil) and waited for,
// and stopped runs; stopped must hand back the buffers still queued with drainSends. Later calls
// return at once; a call racing the first waits for it.
func (l *socketLife[B]) shutdown(stopping, stopped func()) {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.status.Store(uint32(Inactive))
		l.sendMu.Lock()
		l.sendDead = true
		l.sendMu.Unlock()
		close(l.stop)
		if stopping != nil {
			stopping()
		}
		l.wg.Wait()
		stopped()
	})
}

// drainSends hands back the buffers Send queued that were not sent (the goroutines have ended,
// and Send refuses, so none comes after).
func (l *socketLife[B]) drainSends() {
	for {
		select {
		case buf := <-l.sendQ:
			l.sendDone(buf)
		default:
			return
		}
	}
}
