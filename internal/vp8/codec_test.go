package vp8

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/switchboard-rtc/switchboard/media"
)

func TestEncodeDecodePSNR720p(t *testing.T) {
	const w, h, count = 1280, 720, 31
	cfg := EncoderConfig{Width: w, Height: h, FrameRate: 30, BitrateKbps: 1500}
	enc, err := NewEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()

	pic := make([]byte, media.I420.FrameSize(w, h))
	out := make([]byte, len(pic))
	prev := make([]byte, len(pic))
	var sum, sumPrev float64
	var measured, dropped, bytes int
	for n := range count {
		copy(prev, pic)
		drawPattern(pic, w, h, n)
		frame, key, err := enc.Encode(pic, int64(n)*3000, false)
		if err != nil {
			t.Fatalf("encode %d: %v", n, err)
		}
		if n == 0 && !key {
			t.Fatal("first frame is not a key frame")
		}
		if frame == nil {
			dropped++
			continue
		}
		bytes += len(frame)
		gw, gh, err := dec.Decode(frame, out)
		if err != nil {
			t.Fatalf("decode %d: %v", n, err)
		}
		if gw != w || gh != h {
			t.Fatalf("decoded %dx%d, want %dx%d", gw, gh, w, h)
		}
		if n == 0 {
			continue // measure after the first key frame
		}
		sum += psnrY(pic, out, w, h)
		sumPrev += psnrY(prev, out, w, h)
		measured++
	}
	if dropped > 3 {
		t.Errorf("encoder dropped %d of %d pictures", dropped, count)
	}
	mean := sum / float64(measured)
	kbps := float64(bytes*8) / (float64(count) / 30) / 1000
	t.Logf("720p30 at 1500 kbit/s: mean Y PSNR %.2f dB over %d frames, %.0f kbit/s, %d dropped", mean, measured, kbps, dropped)
	if mean < 30 {
		t.Errorf("mean Y PSNR %.2f dB, want ≥ 30", mean)
	}
	// The measure sees the motion: against the previous picture the score is far lower.
	if meanPrev := sumPrev / float64(measured); meanPrev > mean-8 {
		t.Errorf("PSNR against the previous picture %.2f dB, against the right one %.2f dB", meanPrev, mean)
	}
}

func TestForceKeyFrame(t *testing.T) {
	for _, size := range [][2]int{{352, 288}, {321, 179}, {1280, 720}} {
		w, h := size[0], size[1]
		frames := encodeSequence(t, EncoderConfig{Width: w, Height: h, FrameRate: 30, BitrateKbps: 800}, 8, 5)
		var keys []int
		for _, f := range frames {
			if f.key {
				keys = append(keys, f.n)
				if !IsKeyFrame(f.data) {
					t.Errorf("%dx%d picture %d: encoder says key, header says not", w, h, f.n)
				}
				gw, gh, ok := ParseKeyFrameSize(f.data)
				if !ok || gw != w || gh != h {
					t.Errorf("%dx%d picture %d: ParseKeyFrameSize = %d, %d, %v", w, h, f.n, gw, gh, ok)
				}
			} else if _, _, ok := ParseKeyFrameSize(f.data); ok || IsKeyFrame(f.data) {
				t.Errorf("%dx%d picture %d: delta frame parsed as a key frame", w, h, f.n)
			}
		}
		if len(keys) != 2 || keys[0] != 0 || keys[1] != 5 {
			t.Errorf("%dx%d: key frames at pictures %v, want [0 5]", w, h, keys)
		}
	}
}

func TestOddSizeRoundTrip(t *testing.T) {
	const w, h = 321, 179
	frames := encodeSequence(t, EncoderConfig{Width: w, Height: h, FrameRate: 30, BitrateKbps: 1000}, 10)
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	pic := make([]byte, media.I420.FrameSize(w, h))
	out := make([]byte, len(pic))
	for _, f := range frames {
		gw, gh, err := dec.Decode(f.data, out)
		if err != nil || gw != w || gh != h {
			t.Fatalf("picture %d: Decode = %d, %d, %v", f.n, gw, gh, err)
		}
		drawPattern(pic, w, h, f.n)
		if p := psnrY(pic, out, w, h); p < 28 {
			t.Errorf("picture %d: Y PSNR %.1f dB", f.n, p)
		}
		// The chroma planes come through too (the box is coloured).
		if p := psnrY(pic[w*h:], out[w*h:], len(pic)-w*h, 1); p < 28 {
			t.Errorf("picture %d: chroma PSNR %.1f dB", f.n, p)
		}
	}
}

func TestEncoderInputErrors(t *testing.T) {
	for _, cfg := range []EncoderConfig{
		{Width: 0, Height: 720, FrameRate: 30, BitrateKbps: 100},
		{Width: 1280, Height: 20000, FrameRate: 30, BitrateKbps: 100},
		{Width: 64, Height: 64, FrameRate: 0, BitrateKbps: 100},
		{Width: 64, Height: 64, FrameRate: 30, BitrateKbps: 0},
		{Width: 64, Height: 64, FrameRate: 30, BitrateKbps: 100, CPUUsed: 17},
		{Width: 64, Height: 64, FrameRate: 30, BitrateKbps: 100, Threads: -1},
		{Width: 64, Height: 64, FrameRate: 30, BitrateKbps: 100, KeyFrameInterval: -5},
	} {
		if _, err := NewEncoder(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewEncoder(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
	enc, err := NewEncoder(EncoderConfig{Width: 64, Height: 48, FrameRate: 30, BitrateKbps: 300})
	if err != nil {
		t.Fatal(err)
	}
	if c := enc.Config(); c.CPUUsed != 8 || c.Threads != 1 || c.KeyFrameInterval != 3000 {
		t.Errorf("defaults: %+v", c)
	}
	size := media.I420.FrameSize(64, 48)
	for _, n := range []int{0, size - 1, size + 1, media.I420.FrameSize(48, 64) + 100} {
		if _, _, err := enc.Encode(make([]byte, n), 0, false); !errors.Is(err, ErrFrameSize) {
			t.Errorf("Encode(%d bytes) = %v, want ErrFrameSize", n, err)
		}
	}
	pic := make([]byte, size)
	if _, _, err := enc.Encode(pic, 3000, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := enc.Encode(pic, 3000, false); !errors.Is(err, ErrTimestamp) {
		t.Errorf("repeated pts: %v, want ErrTimestamp", err)
	}
	if err := enc.SetBitrate(0); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("SetBitrate(0) = %v", err)
	}
	enc.Close()
	enc.Close()
	if _, _, err := enc.Encode(pic, 6000, false); !errors.Is(err, ErrClosed) {
		t.Errorf("Encode after Close = %v, want ErrClosed", err)
	}
	if err := enc.SetBitrate(100); !errors.Is(err, ErrClosed) {
		t.Errorf("SetBitrate after Close = %v, want ErrClosed", err)
	}
}

// TestSetBitrate checks that a lower target at runtime gives smaller frames.
func TestSetBitrate(t *testing.T) {
	const w, h = 640, 360
	enc, err := NewEncoder(EncoderConfig{Width: w, Height: h, FrameRate: 30, BitrateKbps: 2500})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	pic := make([]byte, media.I420.FrameSize(w, h))
	run := func(from, to int) (bytes int) {
		for n := from; n < to; n++ {
			drawPattern(pic, w, h, n)
			frame, _, err := enc.Encode(pic, int64(n)*3000, false)
			if err != nil {
				t.Fatal(err)
			}
			if n >= from+30 { // let the rate control settle
				bytes += len(frame)
			}
		}
		return bytes
	}
	high := run(0, 90)
	if err := enc.SetBitrate(250); err != nil {
		t.Fatal(err)
	}
	low := run(90, 180)
	if enc.Config().BitrateKbps != 250 {
		t.Errorf("Config().BitrateKbps = %d", enc.Config().BitrateKbps)
	}
	hk, lk := float64(high*8)/2/1000, float64(low*8)/2/1000
	t.Logf("2500 kbit/s target: %.0f kbit/s; 250 kbit/s target: %.0f kbit/s", hk, lk)
	if lk > 400 || hk < 3*lk {
		t.Errorf("bitrate did not follow the target: %.0f then %.0f kbit/s", hk, lk)
	}
}

func TestDecodeShortBuffer(t *testing.T) {
	const w, h = 320, 240
	frames := encodeSequence(t, EncoderConfig{Width: w, Height: h, FrameRate: 30, BitrateKbps: 500}, 3)
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	gw, gh, err := dec.Decode(frames[0].data, make([]byte, 1000))
	if !errors.Is(err, ErrShortBuffer) || gw != w || gh != h {
		t.Fatalf("Decode into 1000 bytes = %d, %d, %v; want %d, %d, ErrShortBuffer", gw, gh, err, w, h)
	}
	dst := make([]byte, media.I420.FrameSize(gw, gh))
	for _, f := range frames {
		if _, _, err := dec.Decode(f.data, dst); err != nil {
			t.Fatalf("picture %d: %v", f.n, err)
		}
	}
	if _, _, err := dec.Decode(frames[1].data, dst[:len(dst)-1]); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("delta into a short buffer: %v", err)
	}
}

func TestDecodeHostile(t *testing.T) {
	const w, h = 320, 240
	frames := encodeSequence(t, EncoderConfig{Width: w, Height: h, FrameRate: 30, BitrateKbps: 500}, 6)
	key, delta := frames[0].data, frames[3].data
	dst := make([]byte, media.I420.FrameSize(w, h))

	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	if !dec.NeedKeyFrame() {
		t.Error("a new decoder does not need a key frame")
	}
	if _, _, err := dec.Decode(nil, dst); !errors.Is(err, ErrCorrupt) {
		t.Errorf("zero-length frame: %v, want ErrCorrupt", err)
	}
	if _, _, err := dec.Decode(delta, dst); !errors.Is(err, ErrNeedKeyFrame) {
		t.Errorf("delta frame first: %v, want ErrNeedKeyFrame", err)
	}

	// Random bytes: errors or (rarely) a picture, never a crash; a failure needs a key frame.
	rng := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 4000)
	for i := range 300 {
		n := 1 + rng.IntN(len(junk))
		for j := range n {
			junk[j] = byte(rng.Uint32())
		}
		if i%2 == 0 { // half of them look like key frames of this size
			copy(junk, key[:10])
		}
		if _, _, err := dec.Decode(key, dst); err != nil {
			t.Fatalf("real key frame after junk: %v", err)
		}
		if _, _, err := dec.Decode(junk[:n], dst); err != nil && !dec.NeedKeyFrame() {
			t.Fatalf("decoder failed (%v) but does not need a key frame", err)
		}
	}

	// Truncated real frames.
	var failures int
	for _, f := range [][]byte{key, delta} {
		for n := 0; n < len(f); n += 1 + n/16 {
			if _, _, err := dec.Decode(key, dst); err != nil {
				t.Fatalf("real key frame: %v", err)
			}
			_, _, err := dec.Decode(f[:n], dst)
			if err == nil {
				t.Errorf("frame truncated to %d of %d bytes decoded without error", n, len(f))
			} else {
				failures++
				if !dec.NeedKeyFrame() {
					t.Fatalf("truncated to %d bytes: %v without needing a key frame", n, err)
				}
				if _, _, err := dec.Decode(frames[4].data, dst); !errors.Is(err, ErrNeedKeyFrame) {
					t.Fatalf("delta after a failure: %v, want ErrNeedKeyFrame", err)
				}
			}
		}
	}
	if failures == 0 {
		t.Error("no truncated frame was reported as an error")
	}
	t.Logf("%d truncated frames rejected", failures)

	// A key frame recovers the decoder.
	if _, _, err := dec.Decode(key, dst); err != nil || dec.NeedKeyFrame() {
		t.Fatalf("recover with a key frame: %v, needKey %v", err, dec.NeedKeyFrame())
	}
	for _, f := range frames[1:] {
		if _, _, err := dec.Decode(f.data, dst); err != nil {
			t.Fatalf("picture %d after recovery: %v", f.n, err)
		}
	}
	dec.Close()
	dec.Close()
	if _, _, err := dec.Decode(key, dst); !errors.Is(err, ErrClosed) {
		t.Errorf("Decode after Close = %v", err)
	}
}

func TestDecodeResolutionChange(t *testing.T) {
	small := encodeSequence(t, EncoderConfig{Width: 320, Height: 240, FrameRate: 30, BitrateKbps: 400}, 3)
	large := encodeSequence(t, EncoderConfig{Width: 640, Height: 360, FrameRate: 30, BitrateKbps: 800}, 3)
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	dst := make([]byte, media.I420.FrameSize(320, 240))
	for _, f := range small {
		if w, h, err := dec.Decode(f.data, dst); err != nil || w != 320 || h != 240 {
			t.Fatalf("small picture %d: %d, %d, %v", f.n, w, h, err)
		}
	}
	// The larger key frame asks for a larger buffer without disturbing the decoder.
	w, h, err := dec.Decode(large[0].data, dst)
	if !errors.Is(err, ErrShortBuffer) || w != 640 || h != 360 || dec.NeedKeyFrame() {
		t.Fatalf("larger key frame into a small buffer: %d, %d, %v (needKey %v)", w, h, err, dec.NeedKeyFrame())
	}
	dst = make([]byte, media.I420.FrameSize(w, h))
	pic := make([]byte, len(dst))
	for _, f := range large {
		if w, h, err := dec.Decode(f.data, dst); err != nil || w != 640 || h != 360 {
			t.Fatalf("large picture %d: %d, %d, %v", f.n, w, h, err)
		}
		drawPattern(pic, 640, 360, f.n)
		if p := psnrY(pic, dst, 640, 360); p < 30 {
			t.Errorf("large picture %d: PSNR %.1f dB", f.n, p)
		}
	}
}

// TestCloseWhileCoding closes an encoder and a decoder from another goroutine while they work:
// the calls in flight finish, later ones return ErrClosed.
func TestCloseWhileCoding(t *testing.T) {
	const w, h = 160, 120
	frames := encodeSequence(t, EncoderConfig{Width: w, Height: h, FrameRate: 30, BitrateKbps: 200}, 2)
	enc, err := NewEncoder(EncoderConfig{Width: w, Height: h, FrameRate: 30, BitrateKbps: 200})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() {
		pic := make([]byte, media.I420.FrameSize(w, h))
		for n := int64(0); ; n++ {
			if _, _, err := enc.Encode(pic, n*3000, false); err != nil {
				done <- err
				return
			}
		}
	}()
	go func() {
		dst := make([]byte, media.I420.FrameSize(w, h))
		for {
			for _, f := range frames {
				if _, _, err := dec.Decode(f.data, dst); err != nil {
					done <- err
					return
				}
			}
		}
	}()
	enc.Close()
	dec.Close()
	for range 2 {
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v, want ErrClosed", err)
		}
	}
}
