package gpu

import "math"

// toBF16 rounds f to the nearest bfloat16, ties to even, as
// kernels/storage.cuh's from_f32<bf16> does on the device: overflow gives
// ±∞, and a NaN stays a (quiet) NaN with its sign.
func toBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}

// fromBF16 widens a bfloat16 to float32 (exactly).
func fromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
