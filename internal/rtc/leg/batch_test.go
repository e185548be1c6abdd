package leg

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// fromSocket moves the bench's leg to the address of a real socket on loopback, whose
// datagrams the Mux then reads from its own socket.
func (b *bench) fromSocket(tb testing.TB) *net.UDPConn {
	tb.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	delete(b.mux.byAddr, b.from)
	b.from = c.LocalAddr().(*net.UDPAddr).AddrPort()
	b.mux.byAddr[b.from] = b.leg
	b.leg.setRemote(b.from)
	// Liveness only: a lost datagram fails the test instead of hanging it.
	if err := b.mux.conn.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		tb.Fatal(err)
	}
	return c
}

// readAll reads batches until want more datagrams were handled; it returns the reads it took.
func (b *bench) readAll(tb testing.TB, want int) int {
	reads := 0
	for got := 0; got < want; reads++ {
		n, err := b.mux.readBatch()
		if err != nil {
			tb.Fatalf("read %d of %d datagrams: %v", got, want, err)
		}
		got += n
	}
	return reads
}

// TestReadBatch: datagrams read with recvmmsg are handled one by one in the order they were
// sent, over more than one batch; an empty one, one longer than the buffer and one from a
// stranger in the middle are counted and dropped without disturbing the rest.
func TestReadBatch(t *testing.T) {
	b := newBench(t, srtp.ProtectionProfileAeadAes128Gcm)
	peer := b.fromSocket(t)
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	var seqs []uint16
	b.leg.cfg.OnRTP = func(p *rtp.Packet) { seqs = append(seqs, p.SequenceNumber) }
	to := b.mux.LocalAddr()
	const n = 2*batchSize + 3
	pkts := b.packets(t, 7, n)
	sent := 0
	for i, p := range pkts {
		if i == batchSize-1 { // the odd ones straddle the first batch's end
			for _, odd := range [][]byte{{}, bytes.Repeat([]byte{0x80}, readBufferSize+1)} {
				if _, err := peer.WriteToUDPAddrPort(odd, to); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := stranger.WriteToUDPAddrPort(p, to); err != nil {
				t.Fatal(err)
			}
			sent += 3
		}
		if _, err := peer.WriteToUDPAddrPort(p, to); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	reads := b.readAll(t, sent)
	if len(seqs) != n {
		t.Fatalf("delivered %d of %d (%+v)", len(seqs), n, b.mux.Stats())
	}
	for i, s := range seqs {
		if s != uint16(7+i) {
			t.Fatalf("delivered out of order: %v", seqs)
		}
	}
	if s := b.mux.Stats(); s.RTP != n || s.Unknown != 3 || s.SRTPDropped != 0 {
		t.Fatalf("stats %+v", s)
	}
	t.Logf("%d datagrams in %d reads", sent, reads)
	if batchReads && reads >= sent {
		t.Fatalf("%d datagrams waiting took %d reads: no batching", sent, reads)
	}
}

// TestReadBatchAllocs: reading a batch with recvmmsg and handling its packets allocates
// nothing.
func TestReadBatchAllocs(t *testing.T) {
	b := newBench(t, srtp.ProtectionProfileAeadAes128Gcm)
	peer := b.fromSocket(t)
	to := b.mux.LocalAddr()
	const runs = 50
	pkts := b.packets(t, 1, (runs+2)*batchSize)
	send := func() {
		for _, p := range pkts[:batchSize] {
			if _, err := peer.WriteToUDPAddrPort(p, to); err != nil {
				t.Fatal(err)
			}
		}
		pkts = pkts[batchSize:]
	}
	send() // the SSRC's state is made once
	b.readAll(t, batchSize)
	allocs := testing.AllocsPerRun(runs, func() {
		send()
		b.readAll(t, batchSize)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch of %d", allocs, batchSize)
	}
	if want := (runs + 2) * batchSize; b.rtp != want {
		t.Fatalf("delivered %d of %d (%+v)", b.rtp, want, b.mux.Stats())
	}
}
