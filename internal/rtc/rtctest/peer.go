// Package rtctest is a peer in the service's role for tests of the bot SDK: it offers the
// session layout of package rtc (pion offerer, ICE controlling, DTLS client), sends real Opus and
// VP8 with the source participant's id in CSRC[0], and receives and decodes what the bot sends.
// A Relay between the two impairs the path (loss, jitter) on 127.0.0.1.
package rtctest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/opus"
	"github.com/switchboard-rtc/switchboard/internal/rtc"
)

// Config configures a Peer. The zero value offers the default layout.
type Config struct {
	Layout rtc.Layout
	// OpusBitrate of the peer's audio senders; 0 means 32 kbit/s. FEC is always on.
	OpusBitrate int
	// CountOnly makes the peer count the bot's audio packets without decoding them (load tests).
	CountOnly bool
}

// Peer is the service's side of one bot session. Its methods are safe for concurrent use.
type Peer struct {
	pc     *webrtc.PeerConnection
	tracks *rtc.OfferTracks
	cfg    Config

	sendMu  sync.Mutex
	audioTx []*audioSender
	videoTx map[string]*videoSender

	mu          sync.Mutex
	audioRx     []int16 // the bot's audio on audio0, decoded
	audioRxPkts int
	audioSrc    map[uint32]int // CSRC[0] → packets seen from the bot
	video       map[string]*videoReceiver
	plis        map[string]int // mid → PLIs and FIRs received from the bot
	nacks       map[string]int
	connected   chan struct{}
	connOnce    sync.Once

	wg     sync.WaitGroup
	closed chan struct{}
	once   sync.Once
}

type audioSender struct {
	track *webrtc.TrackLocalStaticRTP
	enc   *opus.Encoder
	out   []byte
	pkt   rtp.Packet
	csrc  [1]uint32
}

// New makes a peer on loopback with the layout's transceivers.
func New(cfg Config) (*Peer, error) {
	layout := cfg.Layout.Normalize()
	api, err := rtc.NewAPI(rtc.ServiceSettingEngine(true))
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("rtctest: new peer connection: %w", err)
	}
	p := &Peer{
		pc:        pc,
		cfg:       cfg,
		videoTx:   map[string]*videoSender{},
		audioSrc:  map[uint32]int{},
		video:     map[string]*videoReceiver{},
		plis:      map[string]int{},
		nacks:     map[string]int{},
		connected: make(chan struct{}),
		closed:    make(chan struct{}),
	}
	p.tracks, err = rtc.AddOfferTransceivers(pc, layout, "service")
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	bitrate := cfg.OpusBitrate
	if bitrate == 0 {
		bitrate = 32000
	}
	for i, tr := range p.tracks.Audio {
		enc, err := opus.NewEncoder(opus.EncoderConfig{Bitrate: bitrate, FEC: true, PacketLossPercent: 10})
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("rtctest: Opus encoder for audio%d: %w", i, err)
		}
		s := &audioSender{track: tr, enc: enc, out: make([]byte, opus.MaxPacketSize)}
		s.pkt.Header = rtp.Header{Version: 2, SequenceNumber: uint16(1000 * (i + 1)), Timestamp: uint32(100000 * (i + 1))}
		p.audioTx = append(p.audioTx, s)
	}
	for _, t := range p.tracks.Transceivers {
		sender, mid := t.Sender(), t.Mid()
		p.wg.Add(1)
		go p.readRTCP(sender, mid)
	}
	pc.OnTrack(func(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		mid := ""
		for _, t := range pc.GetTransceivers() {
			if t.Receiver() == recv {
				mid = t.Mid()
			}
		}
		select {
		case <-p.closed:
			return
		default:
		}
		p.wg.Add(1)
		go p.readTrack(track, mid)
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			p.connOnce.Do(func() { close(p.connected) })
		}
	})
	return p, nil
}

// PeerConnection is the underlying pion peer connection.
func (p *Peer) PeerConnection() *webrtc.PeerConnection { return p.pc }

// Tracks are the peer's sending tracks in layout order.
func (p *Peer) Tracks() *rtc.OfferTracks { return p.tracks }

// Offer creates the complete SDP offer.
func (p *Peer) Offer(ctx context.Context) (string, error) {
	return rtc.CompleteOffer(ctx, p.pc)
}

// Accept sets the bot's answer.
func (p *Peer) Accept(answer string) error {
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("rtctest: set answer: %w", err)
	}
	return nil
}

// WaitConnected waits until the peer connection is connected (ICE and DTLS done).
func (p *Peer) WaitConnected(ctx context.Context) error {
	select {
	case <-p.connected:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("rtctest: wait connected (state %s): %w", p.pc.ConnectionState(), ctx.Err())
	}
}

// SendAudio encodes one 20 ms frame (320 samples at 16 kHz) and sends it on audio m-line slot
// with source in CSRC[0] (0 sends no CSRC). Each call advances the stream by 20 ms.
func (p *Peer) SendAudio(slot int, source uint32, pcm []int16) error {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	if slot < 0 || slot >= len(p.audioTx) {
		return fmt.Errorf("rtctest: no audio slot %d", slot)
	}
	s := p.audioTx[slot]
	n, err := s.enc.Encode(pcm, s.out)
	if err != nil {
		return fmt.Errorf("rtctest: encode audio for slot %d: %w", slot, err)
	}
	return p.writeAudio(s, source, s.out[:n])
}

// SendAudioPayload sends an already encoded Opus payload on audio slot, advancing 20 ms.
func (p *Peer) SendAudioPayload(slot int, source uint32, payload []byte) error {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	if slot < 0 || slot >= len(p.audioTx) {
		return fmt.Errorf("rtctest: no audio slot %d", slot)
	}
	return p.writeAudio(p.audioTx[slot], source, payload)
}

func (p *Peer) writeAudio(s *audioSender, source uint32, payload []byte) error {
	s.pkt.CSRC = nil
	if source != 0 {
		s.csrc[0] = source
		s.pkt.CSRC = s.csrc[:]
	}
	s.pkt.Payload = payload
	err := s.track.WriteRTP(&s.pkt)
	s.pkt.SequenceNumber++
	s.pkt.Timestamp += opus.RTPFrameTicks
	if err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
		return fmt.Errorf("rtctest: write audio RTP: %w", err)
	}
	return nil
}

// SkipAudio advances audio slot by one frame without sending (a talk spurt gap or a loss the
// sender itself makes).
func (p *Peer) SkipAudio(slot int) {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	if slot >= 0 && slot < len(p.audioTx) {
		p.audioTx[slot].pkt.SequenceNumber++
		p.audioTx[slot].pkt.Timestamp += opus.RTPFrameTicks
	}
}

// ReceivedAudio returns a copy of the bot's audio decoded so far and the number of packets.
func (p *Peer) ReceivedAudio() (pcm []int16, packets int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int16(nil), p.audioRx...), p.audioRxPkts
}

// KeyFrameRequests returns the number of PLI and FIR the bot sent about the m-line mid.
func (p *Peer) KeyFrameRequests(mid string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.plis[mid]
}

// NACKs returns the number of NACK packets the bot sent about the m-line mid.
func (p *Peer) NACKs(mid string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nacks[mid]
}

// RequestKeyFrame sends a PLI for the bot's video on video0.
func (p *Peer) RequestKeyFrame() error {
	ssrc, ok := p.remoteSSRC(rtc.VideoMID(0))
	if !ok {
		return errors.New("rtctest: no video from the bot yet")
	}
	return p.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
}

// SendREMB announces an estimated bitrate (bits a second) for the bot's video on video0.
func (p *Peer) SendREMB(bps float32) error {
	ssrc, ok := p.remoteSSRC(rtc.VideoMID(0))
	if !ok {
		return errors.New("rtctest: no video from the bot yet")
	}
	return p.pc.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: bps, SSRCs: []uint32{ssrc}}})
}

func (p *Peer) remoteSSRC(mid string) (uint32, bool) {
	for _, t := range p.pc.GetTransceivers() {
		if t.Mid() != mid || t.Receiver() == nil {
			continue
		}
		if tr := t.Receiver().Track(); tr != nil && tr.SSRC() != 0 {
			return uint32(tr.SSRC()), true
		}
	}
	return 0, false
}

func (p *Peer) readRTCP(s *webrtc.RTPSender, mid string) {
	defer p.wg.Done()
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.mu.Lock()
				p.plis[mid]++
				p.mu.Unlock()
			case *rtcp.TransportLayerNack:
				p.mu.Lock()
				p.nacks[mid]++
				p.mu.Unlock()
			}
		}
	}
}

func (p *Peer) readTrack(track *webrtc.TrackRemote, mid string) {
	defer p.wg.Done()
	if track.Kind() == webrtc.RTPCodecTypeVideo {
		p.readVideo(track, mid)
		return
	}
	dec, err := opus.NewDecoder()
	if err != nil {
		return
	}
	defer dec.Close()
	pcm := make([]int16, opus.MaxFrameSamples)
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		if p.cfg.CountOnly {
			p.mu.Lock()
			p.audioRxPkts++
			p.mu.Unlock()
			continue
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		m, err := dec.Decode(pkt.Payload, pcm)
		p.mu.Lock()
		p.audioRxPkts++
		if len(pkt.CSRC) > 0 {
			p.audioSrc[pkt.CSRC[0]]++
		}
		if err == nil {
			p.audioRx = append(p.audioRx, pcm[:m]...)
		}
		p.mu.Unlock()
	}
}

// Close closes the peer connection and waits for the peer's goroutines.
func (p *Peer) Close() {
	p.once.Do(func() {
		close(p.closed)
		_ = p.pc.Close()
		p.wg.Wait()
		p.sendMu.Lock()
		for _, s := range p.audioTx {
			s.enc.Close()
		}
		for _, v := range p.videoTx {
			v.close()
		}
		p.sendMu.Unlock()
		p.mu.Lock()
		for _, v := range p.video {
			v.close()
		}
		p.mu.Unlock()
	})
}
