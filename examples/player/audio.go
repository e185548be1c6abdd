package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/media/wav"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// maxAudio bounds the audio the player loads: 30 minutes at 16 kHz.
const maxAudio = 30 * 60 * media.SampleRate

// errRate reports a sample rate the player does not convert.
var errRate = errors.New("sample rate not supported")

// loadWAV reads a 16-bit PCM WAV file as 16 kHz mono: other channel counts are averaged, rates
// that are a multiple of 16 kHz (32, 48, 96 kHz) are averaged down and 8 kHz is interpolated
// up; any other rate is refused (convert such files first).
func loadWAV(path string) ([]int16, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pcm, err := decodeWAV(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pcm, nil
}

func decodeWAV(r io.Reader) ([]int16, error) {
	wr, err := wav.NewReader(r)
	if err != nil {
		return nil, err
	}
	format := wr.Format()
	rate, ch := format.SampleRate, format.Channels
	up, down := 1, 1
	switch {
	case rate == media.SampleRate:
	case rate > media.SampleRate && rate%media.SampleRate == 0 && rate/media.SampleRate <= 12:
		down = rate / media.SampleRate
	case rate == media.SampleRate/2:
		up = 2
	default:
		return nil, fmt.Errorf("%d Hz: the player converts only 8, 16, 32, 48 and 96 kHz to 16 kHz; convert the file first (ffmpeg -i in.wav -ac 1 -ar 16000 out.wav): %w", rate, errRate)
	}
	// Downmix and decimate as the samples arrive, so that memory follows the output's size.
	var out []int16
	chunk := make([]int16, 4096*ch)
	var acc, accN int // decimation: the sum of the current output sample's inputs
	for {
		n, err := wr.Read(chunk)
		for i := 0; i+ch <= n; i += ch {
			sum := 0
			for c := range ch {
				sum += int(chunk[i+c])
			}
			acc += sum / ch
			accN++
			if accN == down {
				out = append(out, int16(acc/down))
				acc, accN = 0, 0
				if len(out) > maxAudio/up {
					return nil, fmt.Errorf("longer than %d minutes", maxAudio/media.SampleRate/60)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if up == 2 {
		out = upsample2(out)
	}
	if len(out) == 0 {
		return nil, errors.New("no samples")
	}
	return out, nil
}

// upsample2 doubles the rate by linear interpolation.
func upsample2(in []int16) []int16 {
	out := make([]int16, 2*len(in))
	for i, s := range in {
		next := s
		if i+1 < len(in) {
			next = in[i+1]
		}
		out[2*i] = s
		out[2*i+1] = int16((int(s) + int(next)) / 2)
	}
	return out
}

// audioSender is what the audio pump needs from the socket.
type audioSender interface {
	Send(*media.AudioBuffer) error
}

// audioLead is how many frames the pump keeps queued at the socket (100 ms).
const audioLead = 5

// audioPump feeds a clip to an audio socket frame by frame, only while the send status is
// Active: it keeps audioLead frames queued and sends the next when the socket is done with one
// (OnSendDone), so the socket's clock paces it. Paused (Inactive), it keeps its place.
type audioPump struct {
	send audioSender
	pool *media.AudioPool
	pcm  []int16
	loop bool

	wake     chan struct{}
	finished chan struct{} // closed when the clip has played (never with loop)

	mu          sync.Mutex
	active      bool
	outstanding int // frames the socket holds
	pos         int // next sample to send
	sent        int // frames sent
}

func newAudioPump(send audioSender, pcm []int16, loop bool) *audioPump {
	return &audioPump{
		send:     send,
		pool:     media.NewAudioPool("player"),
		pcm:      pcm,
		loop:     loop,
		wake:     make(chan struct{}, 1),
		finished: make(chan struct{}),
	}
}

func (p *audioPump) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// status is the socket's OnSendStatusChanged.
func (p *audioPump) status(s bool) {
	p.mu.Lock()
	p.active = s
	p.mu.Unlock()
	p.signal()
}

// done is the socket's OnSendDone.
func (p *audioPump) done(buf *media.AudioBuffer) {
	buf.Release()
	p.mu.Lock()
	p.outstanding--
	p.mu.Unlock()
	p.signal()
}

// run sends until stop closes.
func (p *audioPump) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-p.wake:
		}
		if p.fill() {
			close(p.finished)
			return
		}
	}
}

// fill sends frames while Active and fewer than audioLead are queued; it reports whether the
// clip has played to its end and the socket is done with every frame.
func (p *audioPump) fill() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.active && p.outstanding < audioLead {
		if p.pos >= len(p.pcm) {
			if !p.loop {
				break
			}
			p.pos = 0
		}
		buf := p.pool.Get()
		copy(buf.Samples(), p.pcm[p.pos:]) // the last frame's tail stays silence
		p.outstanding++                    // before Send: done may come before Send returns
		p.mu.Unlock()
		err := p.send.Send(buf)
		p.mu.Lock()
		if err != nil {
			p.outstanding--
			buf.Release()
			if errors.Is(err, sdk.ErrNotSending) || errors.Is(err, sdk.ErrSocketClosed) {
				p.active = false
			}
			break
		}
		p.pos += media.FrameSamples
		p.sent++
	}
	return !p.loop && p.pos >= len(p.pcm) && p.outstanding == 0
}
