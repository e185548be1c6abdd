//go:build linux

package loadgen

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// TestPoller: packets sent to a poller socket reach take with their arrival time, those it does
// not take reach the socket's reader, writes go out, and closing ends the reader.
func TestPoller(t *testing.T) {
	p, err := newPoller()
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	var taken [][]byte
	var times []int64
	take := func(b []byte, at int64) bool {
		if !isRTPOrRTCP(b) {
			return false
		}
		taken = append(taken, append([]byte(nil), b...))
		times = append(times, at)
		return true
	}
	c, err := p.listen(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, take)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	la := c.LocalAddr().(*net.UDPAddr)
	if la.Port == 0 {
		t.Fatal("no port")
	}
	before := time.Now().UnixNano()
	rtpPkt := []byte{0x80, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5}
	stun := []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	for _, b := range [][]byte{rtpPkt, stun, rtpPkt} {
		if _, err := peer.WriteToUDP(b, la); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for got := 0; got < 3 && time.Now().Before(deadline); {
		got += p.poll()
		time.Sleep(time.Millisecond)
	}
	if len(taken) != 2 || !bytes.Equal(taken[0], rtpPkt) {
		t.Fatalf("taken %x", taken)
	}
	if times[0] < before || times[0] > time.Now().UnixNano() {
		t.Fatalf("arrival %d not within the test (%d..now)", times[0], before)
	}
	buf := make([]byte, 1500)
	n, from, err := c.ReadFromAddrPort(buf)
	if err != nil || !bytes.Equal(buf[:n], stun) || from != peer.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("read %x from %v: %v", buf[:n], from, err)
	}
	if _, err := c.WriteToAddrPort([]byte("hello"), peer.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err = peer.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("peer read %q: %v", buf[:n], err)
	}
	done := make(chan error)
	go func() {
		_, _, err := c.ReadFromAddrPort(buf)
		done <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if err := <-done; err == nil {
		t.Fatal("read after close succeeded")
	}
	if _, err := c.WriteToAddrPort([]byte("x"), peer.LocalAddr().(*net.UDPAddr).AddrPort()); err == nil {
		t.Fatal("write after close succeeded")
	}
}

// TestPollAllocs: polling and taking an RTP packet allocates nothing.
func TestPollAllocs(t *testing.T) {
	p, err := newPoller()
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	n := 0
	c, err := p.listen(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, func([]byte, int64) bool { n++; return true })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := c.LocalAddr().(*net.UDPAddr).AddrPort()
	pkt := []byte{0x80, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5}
	allocs := testing.AllocsPerRun(100, func() {
		// The socket sends to itself, without allocating either.
		if _, err := c.WriteToAddrPort(pkt, to); err != nil {
			t.Fatal(err)
		}
		for p.poll() == 0 {
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations a packet", allocs)
	}
	if n < 100 {
		t.Fatalf("took %d packets", n)
	}
}

func BenchmarkPoll(b *testing.B) {
	p, err := newPoller()
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	c, err := p.listen(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, func([]byte, int64) bool { return true })
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	to := c.LocalAddr().(*net.UDPAddr).AddrPort()
	pkt := make([]byte, 120)
	pkt[0], pkt[1] = 0x80, 111
	b.ReportAllocs()
	for b.Loop() {
		_, _ = c.WriteToAddrPort(pkt, to)
		for p.poll() == 0 {
		}
	}
}
