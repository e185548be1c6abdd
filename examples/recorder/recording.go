package main

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/media"
	"github.com/switchboard-rtc/switchboard/media/nv12"
	"github.com/switchboard-rtc/switchboard/media/wav"
	"github.com/switchboard-rtc/switchboard/media/y4m"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// frameDuration is the length of one audio buffer.
const frameDuration = media.FrameDuration * time.Millisecond

// recording is one call's recording. Its parts have one owner each, so it needs no lock:
//   - the call's event goroutine (the CallEvents): roster, speaker, subscriptions;
//   - the audio socket's event goroutine: mix and speakers;
//   - each video socket's event goroutine: its videoTrack.
//
// The handler closes the call's media before OnCleanup (the sockets' goroutines have returned
// by then), so cleanup closes the files without racing the socket callbacks that write them.
type recording struct {
	opts     options
	platform *sdk.MediaPlatform
	call     *sdk.Call
	log      *slog.Logger
	dir      string

	media  *sdk.MediaConfiguration
	audio  *sdk.AudioSocket
	videos []*videoTrack

	// Owned by the audio socket's event goroutine.
	mix      *audioTrack
	speakers map[uint32]*audioTrack

	// Owned by the call's event goroutine.
	roster     sdk.Roster
	dominant   uint32
	subscribed []uint32 // video source on each socket, 0 for none

	snapshots sync.WaitGroup // PNG encoders in flight
}

func newRecording(opts options, p *sdk.MediaPlatform, c *sdk.Call) *recording {
	return &recording{
		opts:     opts,
		platform: p,
		call:     c,
		log:      c.Logger(),
		dir:      filepath.Join(opts.dir, "call-"+c.ID()),
		speakers: map[uint32]*audioTrack{},
	}
}

func (r *recording) events() sdk.CallEvents {
	return sdk.CallEvents{
		OnIncomingCall:  r.answer,
		OnRosterUpdated: func(ps []sdk.Participant) { r.roster = sdk.Roster(ps); r.resubscribe() },
		OnDominantSpeakerChanged: func(id uint32) {
			if id != 0 { // 0 is silence: keep recording the last speaker
				r.dominant = id
				r.resubscribe()
			}
		},
		OnOperationCompleted: func(res sdk.OperationResult) {
			if res.Err != nil {
				r.log.Warn("operation failed", "type", res.Type, "err", res.Err)
			}
		},
		OnCleanup: r.cleanup,
	}
}

// answer makes the call's directory and sockets and answers with them.
func (r *recording) answer(ctx context.Context, in *sdk.IncomingCall) sdk.Workflow {
	if !in.HasMedia {
		return sdk.Reject("the recorder needs media")
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		r.log.Error("cannot record", "err", err)
		return sdk.Reject("the recorder cannot write its files")
	}
	mix, err := newAudioTrack(filepath.Join(r.dir, "mix.wav"))
	if err != nil {
		r.log.Error("cannot record", "err", err)
		return sdk.Reject("the recorder cannot write its files")
	}
	r.mix = mix
	r.audio, err = sdk.NewAudioSocket(sdk.AudioSocketSettings{
		Direction:       sdk.Recvonly,
		ReceiveUnmixed:  r.opts.perSpeaker,
		OnAudioReceived: r.onAudio,
		QueueFrames:     50, // a second of slack for the disk
	})
	if err != nil {
		return r.fail(err)
	}
	sockets := []sdk.MediaSocket{r.audio}
	// One socket per video slot the service offers at most: one more would fail the answer.
	n := r.opts.sockets
	if _, slots, _ := in.MediaSlots(); n > slots {
		r.log.Info("fewer video slots than -video-sockets; recording fewer videos", "video_sockets", n, "slots", slots)
		n = slots
	}
	for i := range n {
		vt := &videoTrack{rec: r, slot: i}
		vs, err := sdk.NewVideoSocket(sdk.VideoSocketSettings{Direction: sdk.Recvonly, OnVideoReceived: vt.onVideo, QueueFrames: 8})
		if err != nil {
			return r.fail(err)
		}
		vt.socket = vs
		r.videos = append(r.videos, vt)
		sockets = append(sockets, vs)
	}
	r.subscribed = make([]uint32, len(r.videos))
	if r.media, err = r.platform.CreateMediaConfiguration(sockets...); err != nil {
		return r.fail(err)
	}
	r.log.Info("recording", "dir", r.dir, "from", in.From.DisplayName)
	return sdk.Answer(r.media)
}

// fail undoes answer's work (the files are closed in cleanup, which follows a rejection).
func (r *recording) fail(err error) sdk.Workflow {
	r.log.Error("cannot record", "err", err)
	if r.audio != nil {
		r.audio.Close()
	}
	for _, v := range r.videos {
		v.socket.Close()
	}
	return sdk.Reject("the recorder failed to set up its media")
}

// resubscribe puts the right participants' video on the video sockets: the dominant speaker's
// (or, until someone speaks, the first participant's) on the only socket, or with -video all
// every participant's, in roster order.
func (r *recording) resubscribe() {
	if len(r.videos) == 0 || r.media == nil {
		return
	}
	want := wanted(r.roster, r.dominant, r.opts.video == "dominant")
	for i, v := range r.videos {
		var src uint32
		if i < len(want) {
			src = want[i]
		}
		if src == r.subscribed[i] {
			continue
		}
		ctx, cancel := context.WithTimeout(r.call.Context(), 10*time.Second)
		var err error
		if src == 0 {
			_, err = r.call.Unsubscribe(ctx, v.socket)
		} else {
			_, err = r.call.Subscribe(ctx, v.socket, src, r.opts.width, r.opts.height)
		}
		cancel()
		if err != nil {
			r.log.Warn("video subscription failed", "socket", i, "source", src, "err", err)
			continue
		}
		r.log.Info("recording video", "socket", i, "source", src)
		r.subscribed[i] = src
	}
}

// wanted lists the video sources to record, in socket order: every participant's video (bots'
// excepted) in roster order, with the dominant speaker's first when dominantFirst.
func wanted(roster sdk.Roster, dominant uint32, dominantFirst bool) []uint32 {
	var want []uint32
	speaker, speaks := roster.BySource(dominant)
	for _, p := range roster {
		video, ok := p.Source(sdk.StreamVideo)
		if p.IsBot || !ok {
			continue
		}
		if dominantFirst && speaks && p.ID == speaker.ID {
			want = append([]uint32{video}, want...)
		} else {
			want = append(want, video)
		}
	}
	return want
}

// onAudio runs on the audio socket's event goroutine.
func (r *recording) onAudio(ev sdk.AudioReceivedEvent) {
	index := int64(ev.Buffer.Timestamp / frameDuration)
	if err := r.mix.write(index, ev.Buffer.Samples()); err != nil {
		r.log.Error("recording the mix failed", "err", err)
	}
	ev.Buffer.Release()
	for _, u := range ev.Unmixed {
		t := r.speakers[u.SourceID]
		if t == nil && u.SourceID != 0 && r.speakers != nil {
			var err error
			t, err = newAudioTrack(filepath.Join(r.dir, fmt.Sprintf("speaker-%d.wav", u.SourceID)))
			if err != nil {
				r.log.Error("cannot record a speaker", "source", u.SourceID, "err", err)
				r.speakers = nil // give up on speakers, keep the mix
			} else {
				r.speakers[u.SourceID] = t
			}
		}
		if t != nil {
			if err := t.write(index, u.Samples()); err != nil {
				r.log.Error("recording a speaker failed", "source", u.SourceID, "err", err)
			}
		}
		u.Release()
	}
}

// cleanup ends the recording: every file closed. The media is already closed: no socket
// callback runs during or after OnCleanup.
func (r *recording) cleanup(reason error) {
	var errs []error
	if r.mix != nil {
		errs = append(errs, r.mix.close())
	}
	for _, t := range r.speakers {
		errs = append(errs, t.close())
	}
	for _, v := range r.videos {
		errs = append(errs, v.close())
	}
	r.snapshots.Wait()
	if err := errors.Join(errs...); err != nil {
		r.log.Error("recording closed with errors", "dir", r.dir, "err", err)
		return
	}
	r.log.Info("recording closed", "dir", r.dir, "reason", reason.Error())
}

// audioTrack is one WAV file on the call's audio timeline: frame i of the call is at sample
// i*320, and frames that never came (a speaker who was quiet, frames the bot dropped) are
// silence.
type audioTrack struct {
	f       *os.File
	w       *wav.Writer
	written int64 // frames in the file
}

// maxGap bounds the silence written in one go (10 minutes), against a timestamp gone wrong.
const maxGap = int64(10 * time.Minute / frameDuration)

var silence [media.FrameSamples]int16

func newAudioTrack(path string) (*audioTrack, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	w, err := wav.NewWriter(f, media.SampleRate, 1)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	w.SetUpdateEvery(25) // the header's sizes are at most half a second behind
	return &audioTrack{f: f, w: w}, nil
}

// write puts samples at frame index, after silence for any frames missing before it.
func (t *audioTrack) write(index int64, samples []int16) error {
	if index < t.written {
		return nil // a frame for a time already written: skip it
	}
	for gap := min(index-t.written, maxGap); gap > 0; gap-- {
		if err := t.w.Write(silence[:]); err != nil {
			return err
		}
		t.written++
	}
	t.written = index
	if err := t.w.Write(samples); err != nil {
		return err
	}
	t.written++
	return nil
}

func (t *audioTrack) close() error {
	err := t.w.Close()
	if cerr := t.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// videoTrack records one video socket: a Y4M file per stretch of one source at one size, and
// snapshots. It is owned by the socket's event goroutine (and, at cleanup, by the call's).
type videoTrack struct {
	rec    *recording
	slot   int
	socket *sdk.VideoSocket

	f       *os.File
	w       *y4m.Writer
	source  uint32
	format  media.VideoFormat
	segment int
	start   time.Duration // media time of the segment's first frame
	written int           // frames in the segment

	lastSnap time.Duration
	snaps    int
	err      error // the first write error; recording this socket stops
}

// maxRepeat bounds how many times one frame is repeated to fill a gap in time (2 s at 30 fps).
const maxRepeat = 60

// onVideo runs on the socket's event goroutine.
func (v *videoTrack) onVideo(ev sdk.VideoReceivedEvent) {
	defer ev.Buffer.Release()
	if err := v.record(ev.Buffer); err != nil && v.err == nil {
		v.err = err
		v.rec.log.Error("recording video failed; this socket records no more", "socket", v.slot, "err", err)
	}
}

func (v *videoTrack) record(buf *media.VideoBuffer) error {
	if v.err != nil {
		return nil
	}
	f := buf.Format()
	if v.w == nil || buf.SourceID != v.source || f.Width != v.format.Width || f.Height != v.format.Height {
		if err := v.close(); err != nil {
			return err
		}
		path := filepath.Join(v.rec.dir, fmt.Sprintf("video%d-source%d-%d.y4m", v.slot, buf.SourceID, v.segment))
		file, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
		f.FrameRate = v.rec.opts.fps
		w, err := y4m.NewWriter(file, f)
		if err != nil {
			file.Close()
			return fmt.Errorf("start %s: %w", path, err)
		}
		v.f, v.w, v.source, v.format, v.start, v.written = file, w, buf.SourceID, f, buf.Timestamp, 0
		v.segment++
		v.rec.log.Info("video file", "path", path, "format", f.String())
	}
	// Keep time at the file's frame rate: repeat a frame over a gap, skip one that came early.
	due := int(float64(buf.Timestamp-v.start)*v.rec.opts.fps/float64(time.Second)+0.5) + 1
	for n := 0; v.written < due && n < maxRepeat; n++ {
		if err := v.w.WriteFrame(buf); err != nil {
			return err
		}
		v.written++
	}
	if v.written < due {
		v.start = buf.Timestamp - time.Duration(float64(v.written-1)*float64(time.Second)/v.rec.opts.fps) // a long gap: catch up
	}
	if every := v.rec.opts.snapshotEvery; every > 0 && (v.snaps == 0 || buf.Timestamp-v.lastSnap >= every) {
		v.lastSnap = buf.Timestamp
		v.snapshot(buf)
	}
	return nil
}

// snapshot converts the frame now and encodes the PNG on another goroutine (the recording
// waits for it at cleanup), writing it under a temporary name first so that a PNG on disk is
// always whole.
func (v *videoTrack) snapshot(buf *media.VideoBuffer) {
	f := buf.Format()
	img := image.NewRGBA(image.Rect(0, 0, f.Width, f.Height))
	if err := nv12.ToRGBA(img, buf); err != nil {
		return
	}
	path := filepath.Join(v.rec.dir, fmt.Sprintf("video%d-source%d-%04d.png", v.slot, buf.SourceID, v.snaps))
	v.snaps++
	log := v.rec.log
	v.rec.snapshots.Add(1)
	go func() {
		defer v.rec.snapshots.Done()
		if err := writePNG(path, img); err != nil {
			log.Warn("snapshot failed", "path", path, "err", err)
		}
	}()
}

func writePNG(path string, img image.Image) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = png.Encode(f, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// close ends the current Y4M file, if any.
func (v *videoTrack) close() error {
	if v.f == nil {
		return nil
	}
	err := v.f.Close()
	v.f, v.w = nil, nil
	return err
}
