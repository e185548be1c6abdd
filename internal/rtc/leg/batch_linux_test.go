//go:build linux && !386

package leg

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"unsafe"
)

// TestAddrPort: the kernel's socket addresses become the AddrPorts the table keys on.
func TestAddrPort(t *testing.T) {
	for _, a := range []string{"127.0.0.1:5004", "[::1]:40000", "[fe80::1%3]:9"} {
		want := netip.MustParseAddrPort(a)
		var sa syscall.RawSockaddrAny
		if want.Addr().Is4() {
			s := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&sa))
			s.Family, s.Addr = syscall.AF_INET, want.Addr().As4()
			binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&s.Port))[:], want.Port())
		} else {
			s := (*syscall.RawSockaddrInet6)(unsafe.Pointer(&sa))
			s.Family, s.Addr = syscall.AF_INET6, want.Addr().As16()
			binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&s.Port))[:], want.Port())
			if z := want.Addr().Zone(); z != "" {
				id, err := strconv.Atoi(z)
				if err != nil {
					t.Fatal(err)
				}
				s.Scope_id = uint32(id)
			}
		}
		var b batch
		if got, ok := b.addrPort(&sa); !ok || got != want {
			t.Fatalf("%s came back as %s (%v)", want, got, ok)
		}
	}
	var b batch
	if _, ok := b.addrPort(&syscall.RawSockaddrAny{}); ok {
		t.Fatal("an address of no family was read")
	}
}
