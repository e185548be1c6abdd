package leg

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"
)

// bindingRequest is a binding request as a controlling ICE agent sends it to the leg.
func bindingRequest(tb testing.TB, user, pwd string, useCandidate bool) []byte {
	tb.Helper()
	m := new(stun.Message)
	m.SetType(stun.BindingRequest)
	m.TransactionID = stun.NewTransactionID()
	m.WriteHeader()
	if err := stun.NewUsername(user).AddTo(m); err != nil {
		tb.Fatal(err)
	}
	m.Add(stun.AttrICEControlling, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	if useCandidate {
		m.Add(stun.AttrUseCandidate, nil)
	}
	if err := stun.NewShortTermIntegrity(pwd).AddTo(m); err != nil {
		tb.Fatal(err)
	}
	if err := stun.Fingerprint.AddTo(m); err != nil {
		tb.Fatal(err)
	}
	return m.Raw
}

// TestSTUN: over a real socket, the Mux answers a binding request for its leg (integrity with
// the leg's password, fingerprint, the sender's address XOR-mapped), takes the sender's address
// for the leg on USE-CANDIDATE, and answers nothing with a wrong password or ufrag.
func TestSTUN(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b := newBench(t, srtp.ProtectionProfileAeadAes128Gcm)
	// Reattach the bench's leg to a Mux with its reader, unnominated.
	m := NewMux(conn)
	defer m.Close()
	l := b.leg
	l.mux = m
	l.remote.Store(nil)
	m.mu.Lock()
	m.byUfrag[benchUfrag] = l
	m.mu.Unlock()
	// Mux.Close would close this hand-made leg; it has no DTLS session, so forget it first.
	defer func() {
		m.mu.Lock()
		delete(m.byUfrag, benchUfrag)
		m.mu.Unlock()
	}()

	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	to := net.UDPAddrFromAddrPort(m.LocalAddr())
	read := func() *stun.Message {
		t.Helper()
		buf := make([]byte, 1500)
		if err := peer.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, _, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil {
			return nil
		}
		res := &stun.Message{Raw: buf[:n]}
		if err := res.Decode(); err != nil {
			t.Fatal(err)
		}
		return res
	}

	// Wrong password, wrong remote ufrag, unknown local ufrag: dropped. Then a good request
	// (without USE-CANDIDATE) is answered, and proves the bad ones got nothing.
	for _, req := range [][]byte{
		bindingRequest(t, benchUfrag+":"+benchPeer, "wrongpasswordwrongpassword", true),
		bindingRequest(t, benchUfrag+":someoneelse", benchPwd, true),
		bindingRequest(t, "nobody:"+benchPeer, benchPwd, true),
	} {
		if _, err := peer.WriteToUDP(req, to); err != nil {
			t.Fatal(err)
		}
	}
	good := bindingRequest(t, benchUfrag+":"+benchPeer, benchPwd, false)
	if _, err := peer.WriteToUDP(good, to); err != nil {
		t.Fatal(err)
	}
	res := read()
	if res == nil {
		t.Fatal("no answer to a good binding request")
	}
	var sent stun.Message
	sent.Raw = good
	if err := sent.Decode(); err != nil {
		t.Fatal(err)
	}
	if res.Type != stun.BindingSuccess || res.TransactionID != sent.TransactionID {
		t.Fatalf("answer %v, transaction %x (want %x)", res.Type, res.TransactionID, sent.TransactionID)
	}
	if err := stun.NewShortTermIntegrity(benchPwd).Check(res); err != nil {
		t.Fatalf("answer's integrity: %v", err)
	}
	if err := stun.Fingerprint.Check(res); err != nil {
		t.Fatalf("answer's fingerprint: %v", err)
	}
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(res); err != nil {
		t.Fatal(err)
	}
	if got := netip.AddrPortFrom(netip.MustParseAddr(xa.IP.String()), uint16(xa.Port)); got != peerAddr {
		t.Fatalf("XOR-MAPPED-ADDRESS %s, want %s", got, peerAddr)
	}
	if _, ok := l.remoteAddr(); ok {
		t.Fatal("a request without USE-CANDIDATE set the leg's address")
	}
	if s := m.Stats(); s.STUN != 1 || s.STUNDropped != 3 {
		t.Fatalf("stats %+v", s)
	}

	if _, err := peer.WriteToUDP(bindingRequest(t, benchUfrag+":"+benchPeer, benchPwd, true), to); err != nil {
		t.Fatal(err)
	}
	if read() == nil {
		t.Fatal("no answer to USE-CANDIDATE")
	}
	if a, ok := l.remoteAddr(); !ok || a != peerAddr {
		t.Fatalf("leg's address %v %v, want %s", a, ok, peerAddr)
	}
	m.mu.RLock()
	got := m.byAddr[peerAddr]
	m.mu.RUnlock()
	if got != l {
		t.Fatal("the Mux does not route the nominated address to the leg")
	}
}
