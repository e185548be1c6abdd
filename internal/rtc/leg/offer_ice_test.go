package leg

import (
	"net"
	"net/netip"
	"testing"

	"github.com/pion/stun/v4"
)

// iceBench is an offering leg's ICE client on a Mux without its reader (tests call handle),
// its peer a loopback socket of the test's that takes the checks and "sends" the responses.
type iceBench struct {
	mux  *Mux
	ice  *iceClient
	peer netip.AddrPort
}

const benchRemotePwd = "remotepasswordremotepassword"

func newICEBench(tb testing.TB) *iceBench {
	tb.Helper()
	conns := make([]*net.UDPConn, 2)
	for i := range conns {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = c.Close() })
		conns[i] = c
	}
	b := &iceBench{mux: newMux(conns[0]), peer: conns[1].LocalAddr().(*net.UDPAddr).AddrPort()}
	cert, fp := testCert(tb)
	l, err := newLeg(b.mux, Config{LocalUfrag: benchUfrag, LocalPwd: benchPwd, RemoteUfrag: benchPeer, RemoteFingerprints: []Fingerprint{fp}, Certificate: cert})
	if err != nil {
		tb.Fatal(err)
	}
	if l.ice, err = newICEClient(l, OfferConfig{Config: l.cfg, RemotePwd: benchRemotePwd, RemoteCandidate: b.peer}); err != nil {
		tb.Fatal(err)
	}
	if err := b.mux.add(l); err != nil { // no goroutine: the test drives the client
		tb.Fatal(err)
	}
	b.ice = l.ice
	return b
}

// response is the answerer's binding success response to id, its integrity made with pwd.
func (b *iceBench) response(tb testing.TB, id [stun.TransactionIDSize]byte, pwd string) []byte {
	tb.Helper()
	m, err := stun.Build(stun.NewTransactionIDSetter(id), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: b.mux.LocalAddr().Addr().AsSlice(), Port: int(b.mux.LocalAddr().Port())},
		stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
	if err != nil {
		tb.Fatal(err)
	}
	return m.Raw
}

// TestOfferICE: the checks the offering leg sends are what an ICE-lite answerer wants
// (USERNAME remote:local, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE when nominating, integrity
// with the remote password, FINGERPRINT); a response counts only when it answers a pending
// request with the remote password; building a request and taking a response allocate nothing.
func TestOfferICE(t *testing.T) {
	b := newICEBench(t)
	id := stun.NewTransactionID()
	if err := b.ice.build(id, true); err != nil {
		t.Fatal(err)
	}
	req := &stun.Message{Raw: append([]byte(nil), b.ice.req.Raw...)}
	if err := req.Decode(); err != nil {
		t.Fatal(err)
	}
	var user stun.Username
	if err := user.GetFrom(req); err != nil || string(user) != benchPeer+":"+benchUfrag {
		t.Fatalf("USERNAME %q %v", user, err)
	}
	for _, a := range []stun.AttrType{stun.AttrPriority, stun.AttrICEControlling, stun.AttrUseCandidate} {
		if !req.Contains(a) {
			t.Errorf("check without %v", a)
		}
	}
	if err := stun.NewShortTermIntegrity(benchRemotePwd).Check(req); err != nil {
		t.Errorf("check's integrity: %v", err)
	}
	if err := stun.Fingerprint.Check(req); err != nil {
		t.Errorf("check's fingerprint: %v", err)
	}

	// Not pending, wrong password: dropped. Pending with the remote password: ICE succeeds.
	b.mux.handle(b.response(t, id, benchRemotePwd), b.peer)
	b.ice.expect(id)
	b.mux.handle(b.response(t, id, "wrongpasswordwrongpassword"), b.peer)
	select {
	case <-b.ice.ok:
		t.Fatal("ICE succeeded on a response it should drop")
	default:
	}
	good := b.response(t, id, benchRemotePwd)
	b.mux.handle(good, b.peer)
	select {
	case <-b.ice.ok:
	default:
		t.Fatalf("a good response did not count (stats %+v)", b.mux.Stats())
	}
	if s := b.mux.Stats(); s.STUNResponses != 1 || s.STUNDropped != 2 {
		t.Fatalf("stats %+v", s)
	}

	const runs = 200
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops what pion/stun pools; allocations are checked without -race")
	}
	if allocs := testing.AllocsPerRun(runs, func() { b.mux.handle(good, b.peer) }); allocs != 0 {
		t.Errorf("%v allocations per binding response", allocs)
	}
	if allocs := testing.AllocsPerRun(runs, func() { b.ice.send(id, false) }); allocs != 0 {
		t.Errorf("%v allocations per consent check", allocs)
	}
	if s := b.mux.Stats(); s.STUNResponses != runs+2 { // AllocsPerRun runs once more
		t.Fatalf("stats %+v", s)
	}
}

// FuzzBindingResponse feeds the offering leg's response handling any datagram from its peer's
// address, a real response to a pending check among the seeds. Nothing may panic, and only a
// success response to a pending check with the remote password's integrity counts.
func FuzzBindingResponse(f *testing.F) {
	b := newICEBench(f)
	id := stun.NewTransactionID()
	b.ice.expect(id)
	f.Add(b.response(f, id, benchRemotePwd))
	f.Add(b.response(f, id, "wrongpasswordwrongpassword"))
	f.Add(b.response(f, stun.NewTransactionID(), benchRemotePwd))
	f.Add(bindingRequest(f, benchUfrag+":"+benchPeer, benchPwd, false))
	f.Add([]byte{1, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42})
	f.Fuzz(func(t *testing.T, data []byte) {
		before := b.mux.Stats().STUNResponses
		b.mux.handle(data, b.peer)
		counted := b.mux.Stats().STUNResponses > before
		// pion/stun's own checks say what should count.
		m := &stun.Message{Raw: append([]byte(nil), data...)}
		valid := len(data) > 0 && data[0] <= 3 && stun.IsMessage(data) && m.Decode() == nil &&
			m.Type == stun.BindingSuccess && m.TransactionID == id &&
			stun.Fingerprint.Check(m) == nil && stun.NewShortTermIntegrity(benchRemotePwd).Check(m) == nil
		if counted != valid {
			t.Fatalf("response counted %v, pion/stun says valid %v (type %v)", counted, valid, m.Type)
		}
	})
}

// BenchmarkBindingResponse: the reader takes one consent response (decode, match, fingerprint,
// integrity) and the leg builds and sends one consent check.
func BenchmarkBindingResponse(b *testing.B) {
	ib := newICEBench(b)
	id := stun.NewTransactionID()
	ib.ice.expect(id)
	good := ib.response(b, id, benchRemotePwd)
	b.Run("receive", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ib.mux.handle(good, ib.peer)
		}
	})
	b.Run("send", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ib.ice.send(id, false)
		}
	})
}
