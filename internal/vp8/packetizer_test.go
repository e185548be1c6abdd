package vp8

import (
	"bytes"
	"testing"
)

func TestPacketizer(t *testing.T) {
	if _, err := NewPacketizer(4); err == nil {
		t.Error("NewPacketizer(4) accepted a size with no room for data")
	}
	p, err := NewPacketizer(100)
	if err != nil {
		t.Fatal(err)
	}
	p.SetPictureID(0x7ffe)
	var buf []byte
	var pls [][]byte
	for i, size := range []int{1, 96, 97, 1000, 5000} {
		frame := make([]byte, size)
		for j := range frame {
			frame[j] = byte(j * 7)
		}
		wantID := int32((0x7ffe + i) & 0x7fff)
		buf, pls = p.Packetize(buf[:0], pls[:0], frame)
		wantN := (size + 95) / 96
		if len(pls) != wantN {
			t.Fatalf("frame of %d bytes: %d payloads, want %d", size, len(pls), wantN)
		}
		var joined []byte
		for j, pl := range pls {
			if len(pl) > 100 {
				t.Errorf("payload of %d bytes", len(pl))
			}
			d, ok := ParseDescriptor(pl)
			if !ok || d.Len != 4 || d.PictureID != wantID || d.Start != (j == 0) || d.Partition != 0 {
				t.Fatalf("frame %d payload %d: descriptor %+v ok %v, want picture id %d", i, j, d, ok, wantID)
			}
			if min := len(pls[len(pls)-1]); len(pl)-min > 1 {
				t.Errorf("unbalanced payloads: %d and %d bytes", len(pl), min)
			}
			joined = append(joined, pl[d.Len:]...)
		}
		if !bytes.Equal(joined, frame) {
			t.Fatalf("frame of %d bytes does not survive packetization", size)
		}
	}
	id := p.PictureID()
	buf, pls = p.Packetize(buf[:0], pls[:0], nil)
	if len(pls) != 0 || len(buf) != 0 || p.PictureID() != id {
		t.Error("an empty frame made payloads or used a picture id")
	}
}

func TestParseDescriptor(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		ok   bool
		want Descriptor
	}{
		{[]byte{0x10, 0xaa}, true, Descriptor{Start: true, PictureID: -1, Len: 1}},
		{[]byte{0x03, 0xaa}, true, Descriptor{Partition: 3, PictureID: -1, Len: 1}},
		{[]byte{0x90, 0x80, 0x05, 0xaa}, true, Descriptor{Start: true, PictureID: 5, Len: 3}},
		{[]byte{0x90, 0x80, 0x81, 0x02, 0xaa}, true, Descriptor{Start: true, PictureID: 0x102, Len: 4}},
		{[]byte{0x80, 0xf0, 0x81, 0x02, 0x11, 0x22, 0xaa}, true, Descriptor{PictureID: 0x102, Len: 6}},
		{[]byte{0x80, 0x40, 0x11, 0xaa}, true, Descriptor{PictureID: -1, Len: 3}},
		{[]byte{0x80, 0x10, 0x11}, true, Descriptor{PictureID: -1, Len: 3}},
		{nil, false, Descriptor{}},
		{[]byte{0x80}, false, Descriptor{}},
		{[]byte{0x80, 0x80}, false, Descriptor{}},
		{[]byte{0x80, 0x80, 0x80}, false, Descriptor{}},
		{[]byte{0x80, 0x60, 0x11}, false, Descriptor{}},
	} {
		d, ok := ParseDescriptor(tc.in)
		if ok != tc.ok || (ok && d != tc.want) {
			t.Errorf("ParseDescriptor(% x) = %+v, %v; want %+v, %v", tc.in, d, ok, tc.want, tc.ok)
		}
	}
}
