package sfu

import (
	"encoding/binary"
	"testing"
	"time"
)

// BenchmarkForwardAudio is the SFU's own per-packet cost for one audio packet forwarded to 19
// receivers (a 20-person conference), without pion's write path: parse, level, 19 rewrites.
func BenchmarkForwardAudio(b *testing.B) {
	u, _, _ := testUpstream(b, StreamAudio, 19)
	pkts := make([][]byte, 1024)
	for i := range pkts {
		pkts[i] = audioPacket(uint16(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u.handle(pkts[i%len(pkts)], int64(i)*20e6)
	}
}

// BenchmarkForwardVideo: one 1 kB VP8 packet of the forwarded layer to 4 receivers (copy, picture
// id rewrite, header rewrite).
func BenchmarkForwardVideo(b *testing.B) {
	u, _, _ := testUpstream(b, StreamVideo, 4)
	pkts := make([][]byte, 1024)
	for i := range pkts {
		pkts[i] = videoPacket(uint16(i), uint16(i), i == 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u.handle(pkts[i%len(pkts)], int64(i)*33e6)
	}
}

// BenchmarkForwardAudioPion is the whole forwarding cost of one audio packet to one receiver
// through pion's write path (interceptors: NACK buffer, TWCC, reports; SRTP; UDP on loopback).
func BenchmarkForwardAudioPion(b *testing.B) {
	t := &testing.T{}
	s, err := New(Config{Loopback: true})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	c, _ := s.Conference("bench")
	api := clientAPI(t)
	a := joinPeer(t, api, c, "A", false)
	r := joinPeer(t, api, c, "R", false)
	defer a.close()
	defer r.close()
	src := a.p.SourceID(StreamAudio)
	eventually(t, "R hears A", func() bool { rs, ok := r.stream(trackID(StreamAudio, src)); return ok && rs.packets > 5 })
	if t.Failed() {
		b.Fatal("setup failed")
	}
	a.quiet()
	time.Sleep(100 * time.Millisecond)
	c.mu.Lock()
	u := c.pubs[src].layers[0].Load()
	c.mu.Unlock()
	pkt := audioPacket(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq := uint16(30000 + i) // always new, so that the receiver's SRTP replay check passes
		binary.BigEndian.PutUint16(pkt[2:], seq)
		binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*960)
		u.handle(pkt, time.Now().UnixNano())
	}
}
