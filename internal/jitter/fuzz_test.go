package jitter

import (
	"encoding/binary"
	"testing"
	"time"
)

// opSize is the length of one operation in FuzzPush's input:
// op, seq delta, timestamp delta (2 bytes, in 2.5 ms units), arrival offset
// (ms, signed), payload length, TOC byte.
const opSize = 7

// encodeOps turns a packet sequence into FuzzPush's input format, with a
// pop every 20 ms of arrival time: the seeds are realistic streams.
func encodeOps(pkts []Packet) []byte {
	var out []byte
	var seq uint16
	var ts uint32
	now := time.Duration(0)
	for i, p := range pkts {
		for p.Arrival >= now+tick {
			out = append(out, 1, 0, 0, 0, 0, 0, 0)
			now += tick
		}
		dseq, dts := p.Seq-seq, (p.Timestamp-ts)/120
		if i == 0 {
			dseq, dts = 0, 0
		}
		seq, ts = p.Seq, p.Timestamp
		out = append(out, 0, byte(dseq), 0, 0, byte((p.Arrival-now)/time.Millisecond), byte(len(p.Payload)), p.Payload[0])
		binary.LittleEndian.PutUint16(out[len(out)-5:], uint16(dts))
	}
	return out
}

func FuzzPush(f *testing.F) {
	f.Add(encodeOps(stream(120, 65500, 1<<32-9600, 0, constDelay(3*time.Millisecond))))
	var mixed []Packet
	for _, p := range stream(120, 10, 0, 0, func(i int) time.Duration { return time.Duration(i*7%40) * time.Millisecond }) {
		if p.Seq%9 != 0 {
			mixed = append(mixed, p)
		}
		if p.Seq%13 == 0 {
			mixed = append(mixed, p)
		}
	}
	f.Add(encodeOps(mixed))
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 2, 1, 8, 0, 1, 50, 0x48, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(runOps)
}

func runOps(t *testing.T, ops []byte) {
	if len(ops) > 4096 {
		ops = ops[:4096]
	}
	{
		b := New(Config{Capacity: 16})
		var seq uint16
		var ts uint32
		now := time.Duration(0)
		payload := make([]byte, MaxPayload+10)
		for len(ops) >= opSize {
			op := ops[:opSize]
			ops = ops[opSize:]
			switch op[0] & 3 {
			case 0, 2:
				if op[0]&3 == 2 { // jump anywhere
					seq = binary.LittleEndian.Uint16(op[2:])
					ts = uint32(op[1]) << 24
				} else {
					seq += uint16(int8(op[1]))
					ts += uint32(int32(int16(binary.LittleEndian.Uint16(op[2:])))) * 120
				}
				n := int(op[5])
				if n == 255 {
					n = MaxPayload + 1
				}
				payload[0] = op[6]
				if n > 1 {
					payload[1] = op[1]
				}
				err := b.Push(Packet{Seq: seq, Timestamp: ts, Payload: payload[:n],
					Arrival: now + time.Duration(int8(op[4]))*time.Millisecond})
				if err != nil && err != ErrTooLarge && err != ErrDuplicate && err != ErrLate && err != ErrOutlier {
					t.Fatalf("unexpected error %v", err)
				}
			case 1:
				fr := b.Pop(now)
				if fr.Kind > Stretch || len(fr.Payload) > MaxPayload || fr.Ticks < 0 || fr.Ticks > maxPacketTicks {
					t.Fatalf("bad frame %+v", fr)
				}
				if fr.Kind == Play && (fr.Ticks == 0 || fr.Payload == nil) {
					t.Fatalf("play frame without media: %+v", fr)
				}
				now += tick
			case 3:
				now += time.Duration(op[1]) * 10 * time.Millisecond
			}
			checkInvariants(t, b)
		}
	}
}
