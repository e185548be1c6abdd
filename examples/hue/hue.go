package main

import (
	"math"

	"github.com/switchboard-rtc/switchboard/media"
)

// rotation turns the hue of NV12 frames by a fixed angle: every chroma pair (U, V), taken as a
// vector around the neutral point (128, 128), is rotated. Luma is untouched, so the picture
// keeps its detail and only its colours change. In 12-bit fixed point, two multiplications
// per output value, for one chroma pair per four pixels.
type rotation struct {
	cos, sin int32 // ×4096
}

func newRotation(degrees float64) rotation {
	rad := degrees * math.Pi / 180
	return rotation{cos: int32(math.Round(math.Cos(rad) * 4096)), sin: int32(math.Round(math.Sin(rad) * 4096))}
}

// apply rotates the chroma of an NV12 frame in place.
func (r rotation) apply(b *media.VideoBuffer) {
	planes, _ := b.Planes()
	r.rotate(planes[1])
}

// rotate rotates interleaved U,V pairs in place.
func (r rotation) rotate(uv []byte) {
	uv = uv[:len(uv)&^1]
	for i := 0; i < len(uv); i += 2 {
		u, v := int32(uv[i])-128, int32(uv[i+1])-128
		nu := (u*r.cos - v*r.sin + 2048) >> 12
		nv := (u*r.sin + v*r.cos + 2048) >> 12
		uv[i] = byte(min(max(nu+128, 0), 255))
		uv[i+1] = byte(min(max(nv+128, 0), 255))
	}
}
