package sfu

import (
	"bytes"
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/opus"
	"github.com/switchboard-rtc/switchboard/internal/rtc"
	"github.com/switchboard-rtc/switchboard/internal/vp8"
)

// codecLayers are the simulcast sizes of the real-codec test (quarter, half, full).
var codecLayers = [3][2]int{{160, 96}, {320, 192}, {640, 384}}

// TestRealCodecs: a publisher sends real Opus (libopus) and real VP8 simulcast (libvpx, three
// layers); a receiver gets the audio byte for byte and decodes it, and decodes the video at
// the layer it subscribes to, across a layer switch, without a decoding error after the first
// key frame.
func TestRealCodecs(t *testing.T) {
	s := newTestSFU(t, Config{})
	c, _ := s.Conference("codecs")
	var wmu sync.Mutex
	var announced [2]int // the camera's size as the latest roster event tells it
	defer c.Watch(func(e Event) {
		if e.Kind != EventRoster {
			return
		}
		for _, p := range e.Roster {
			for _, st := range p.Streams {
				if st.Kind == StreamVideo {
					wmu.Lock()
					announced = [2]int{st.Width, st.Height}
					wmu.Unlock()
				}
			}
		}
	})()
	api := clientAPI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Receiver R: a subscriber connection only.
	rsub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	var rp *Participant
	var rmu sync.Mutex
	audioGot := map[uint16][]byte{}
	var sizes []string
	decodeErrs, decoded := 0, 0
	var rwg sync.WaitGroup
	rsub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			if tr.Kind() == webrtc.RTPCodecTypeAudio {
				dec, _ := opus.NewDecoder()
				defer dec.Close()
				pcm := make([]int16, 5760)
				for {
					p, _, err := tr.ReadRTP()
					if err != nil {
						return
					}
					n, err := dec.Decode(p.Payload, pcm)
					rmu.Lock()
					if err == nil && n == 320 {
						audioGot[p.SequenceNumber] = append([]byte(nil), p.Payload...)
					}
					rmu.Unlock()
				}
			}
			asm := vp8.NewAssembler(vp8.AssemblerConfig{})
			dec, _ := vp8.NewDecoder()
			defer dec.Close()
			img := make([]byte, 640*384*3/2)
			for {
				p, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				_ = asm.Push(p)
				for {
					f, ok := asm.Next()
					if !ok {
						break
					}
					w, h, err := dec.Decode(f.Data, img)
					rmu.Lock()
					switch {
					case err == nil:
						decoded++
						if sz := itoa(uint32(w)) + "x" + itoa(uint32(h)); len(sizes) == 0 || sizes[len(sizes)-1] != sz {
							sizes = append(sizes, sz)
						}
					case decoded > 0 || !errors.Is(err, vp8.ErrNeedKeyFrame):
						decodeErrs++
					}
					rmu.Unlock()
				}
			}
		}()
	})
	rp, err = c.Join("R", ParticipantOptions{OnOffer: func(offer string, _ []TrackInfo) {
		if err := rsub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
			return
		}
		answer, err := rtc.CompleteAnswer(ctx, rsub, nil)
		if err == nil {
			_ = rp.Answer(answer)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}

	// Publisher P: Opus and three VP8 layers.
	pp, err := c.Join("P", ParticipantOptions{OnOffer: func(string, []TrackInfo) {}})
	if err != nil {
		t.Fatal(err)
	}
	ppc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	audio, _ := webrtc.NewTrackLocalStaticRTP(rtc.OpusCodec().RTPCodecCapability, "mic", "P")
	if _, err := ppc.AddTransceiverFromTrack(audio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	var layers []*webrtc.TrackLocalStaticRTP
	for _, rid := range []string{"q", "h", "f"} {
		tr, _ := webrtc.NewTrackLocalStaticRTP(rtc.VP8Codec().RTPCodecCapability, "cam", "P", webrtc.WithRTPStreamID(rid))
		layers = append(layers, tr)
	}
	vx, err := ppc.AddTransceiverFromTrack(layers[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range layers[1:] {
		if err := vx.Sender().AddEncoding(tr); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := rtc.CompleteOffer(ctx, ppc)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := pp.Publish(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := ppc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}

	var smu sync.Mutex
	sent := map[uint16][]byte{}
	var keyWanted [3]bool
	stop := make(chan struct{})
	var swg sync.WaitGroup
	defer func() { // senders, then connections, then readers
		close(stop)
		_ = ppc.Close()
		_ = rsub.Close()
		swg.Wait()
		rwg.Wait()
	}()
	for l, rid := range []string{"q", "h", "f"} {
		swg.Add(1)
		go func() { // PLIs from the SFU ask the layer for a key frame
			defer swg.Done()
			for {
				pkts, _, err := vx.Sender().ReadSimulcastRTCP(rid)
				if err != nil {
					return
				}
				if len(pkts) > 0 {
					smu.Lock()
					keyWanted[l] = true
					smu.Unlock()
				}
			}
		}()
	}
	swg.Add(1)
	go func() {
		defer swg.Done()
		enc, err := opus.NewEncoder(opus.EncoderConfig{})
		if err != nil {
			t.Error(err)
			return
		}
		defer enc.Close()
		var encs [3]*vp8.Encoder
		var frames [3][][]byte
		for l, sz := range codecLayers {
			if encs[l], err = vp8.NewEncoder(vp8.EncoderConfig{Width: sz[0], Height: sz[1], FrameRate: 10, BitrateKbps: 100 << l, KeyFrameInterval: 30}); err != nil {
				t.Error(err)
				return
			}
			defer encs[l].Close()
			for k := 0; k < 4; k++ { // a few moving pictures
				f := make([]byte, sz[0]*sz[1]*3/2)
				for i := range f[:sz[0]*sz[1]] {
					f[i] = byte(i%sz[0]*2 + k*40)
				}
				for i := sz[0] * sz[1]; i < len(f); i++ {
					f[i] = 128
				}
				frames[l] = append(frames[l], f)
			}
		}
		var pkzs [3]*vp8.Packetizer
		var vseq [3]uint16
		for l := range pkzs {
			pkzs[l], _ = vp8.NewPacketizer(1100)
		}
		params := vx.Sender().GetParameters().RTPParameters
		midID, ridID := extID(params, sdp.SDESMidURI), extID(params, sdp.SDESRTPStreamIDURI)
		levelID := uint8(0)
		for _, x := range ppc.GetTransceivers() {
			if x.Kind() == webrtc.RTPCodecTypeAudio {
				levelID = extID(x.Sender().GetParameters().RTPParameters, sdp.AudioLevelURI)
			}
		}
		pcm := make([]int16, 320)
		out := make([]byte, 1500)
		var buf []byte
		var payloads [][]byte
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for i := range pcm {
				pcm[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(n*320+i)/16000))
			}
			k, err := enc.Encode(pcm, out)
			if err != nil {
				t.Error(err)
				return
			}
			seq := uint16(n + 1)
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(n) * 960}, Payload: append([]byte(nil), out[:k]...)}
			_ = pkt.Header.SetExtension(levelID, []byte{20})
			smu.Lock()
			sent[seq] = pkt.Payload
			smu.Unlock()
			_ = audio.WriteRTP(pkt)
			if n%5 != 0 { // video at 10 frames a second
				continue
			}
			frame := n / 5
			for l := range layers {
				smu.Lock()
				force := keyWanted[l]
				keyWanted[l] = false
				smu.Unlock()
				data, _, err := encs[l].Encode(frames[l][frame%4], int64(frame)*9000, force)
				if err != nil {
					t.Error(err)
					return
				}
				buf, payloads = pkzs[l].Packetize(buf[:0], payloads[:0], data)
				for i, pl := range payloads {
					vseq[l]++
					vp := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: vseq[l], Timestamp: uint32(frame) * 9000, Marker: i == len(payloads)-1}, Payload: pl}
					_ = vp.Header.SetExtension(midID, []byte(vx.Mid()))
					_ = vp.Header.SetExtension(ridID, []byte(layers[l].RID()))
					_ = layers[l].WriteRTP(vp)
				}
			}
		}
	}()

	// Audio arrives byte for byte and decodes.
	eventually(t, "R decodes P's audio", func() bool { rmu.Lock(); defer rmu.Unlock(); return len(audioGot) >= 25 })
	rmu.Lock()
	smu.Lock()
	for seq, got := range audioGot {
		if !bytes.Equal(got, sent[seq]) {
			t.Errorf("audio packet %d changed on the way", seq)
		}
	}
	smu.Unlock()
	rmu.Unlock()

	// Video: layer q, then f; each decodes at its size.
	vsrc := pp.SourceID(StreamVideo)
	waitLayers(t, c, vsrc, "three layers published")
	// The roster announces the sender's full size once its top layer's key frame was seen.
	eventually(t, "roster announces the camera's size", func() bool {
		wmu.Lock()
		defer wmu.Unlock()
		return announced == codecLayers[2]
	})
	if err := rp.Subscribe(vsrc, LayerLow); err != nil {
		t.Fatal(err)
	}
	has := func(sz string) func() bool {
		return func() bool {
			rmu.Lock()
			defer rmu.Unlock()
			return len(sizes) > 0 && sizes[len(sizes)-1] == sz
		}
	}
	eventually(t, "160x96 decoded", has("160x96"))
	if err := rp.SubscribeSize(vsrc, 640, 384); err != nil {
		t.Fatal(err)
	}
	eventually(t, "640x384 decoded", has("640x384"))
	rmu.Lock()
	defer rmu.Unlock()
	if decodeErrs != 0 {
		t.Errorf("%d decoding errors after the first key frame (sizes seen %v)", decodeErrs, sizes)
	}
}
