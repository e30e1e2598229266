package gpu_test

import (
	"encoding/binary"
	"math"

	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/safetensors"
)

// bf16ULP is bfloat16's unit roundoff: with 8 significant bits, rounding to
// nearest moves a value by at most 2⁻⁸ of itself (2⁻⁹ of the next power of
// two above it).
const bf16ULP = 0x1p-8

// roundBF16 returns data rounded to bfloat16 (nearest, ties to even) and
// widened back, through runtime/safetensors' encoder: an independent
// reference for the GPU's rounding.
func roundBF16(data []float32) []float32 {
	raw := safetensors.BF16Bytes(data)
	out := make([]float32, len(data))
	for i := range out {
		out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
	}
	return out
}

// roundWeights is the CPU backend with every FromFloat32 rounded to bf16:
// a model loaded on it has the weights a bf16 GPU backend has, and computes
// in float32 from there. It is the reference of the bf16 parity test.
type roundWeights struct{ *cpu.Backend }

func (r roundWeights) FromFloat32(data []float32, shape ...int) backend.Tensor {
	return r.Backend.FromFloat32(roundBF16(data), shape...)
}

// bf16Emulator is the CPU backend rounding what a bf16 GPU backend rounds:
// weights, and every result stored in an activation or cache tensor (not
// the float32 logits, which it tells by their storage). It computes each
// result in float32 and rounds it once, as the GPU's kernels do; only
// summation orders differ. TestBF16Tolerances measures against it how far
// bf16 storage alone moves the logits, which the GPU's bf16 parity test's
// tolerances are set from.
type bf16Emulator struct {
	*cpu.Backend
	f32 map[*float32]bool // first elements of tensors asked for as F32
}

func newBF16Emulator() *bf16Emulator {
	return &bf16Emulator{Backend: cpu.New(0), f32: map[*float32]bool{}}
}

func (e *bf16Emulator) DType() backend.DType { return backend.BF16 }

func (e *bf16Emulator) New(dtype backend.DType, shape ...int) backend.Tensor {
	t := e.Backend.New(dtype, shape...)
	if d := t.(*cpu.Tensor).Data(); dtype == backend.F32 && len(d) > 0 {
		e.f32[&d[0]] = true
	}
	return t
}

func (e *bf16Emulator) FromFloat32(data []float32, shape ...int) backend.Tensor {
	return e.Backend.FromFloat32(roundBF16(data), shape...)
}

// round rounds t's elements to bf16 in place unless t is float32 storage.
func (e *bf16Emulator) round(t backend.Tensor) {
	d := t.(*cpu.Tensor).Data()
	if len(d) == 0 || e.f32[&d[0]] {
		return
	}
	copy(d, roundBF16(d))
}

func (e *bf16Emulator) RMSNorm(dst, x, w backend.Tensor, eps float32) {
	e.Backend.RMSNorm(dst, x, w, eps)
	e.round(dst)
}

func (e *bf16Emulator) MatMul(dst, x, w, bias backend.Tensor) {
	e.Backend.MatMul(dst, x, w, bias)
	e.round(dst)
}

func (e *bf16Emulator) SwiGLU(dst, gate, up backend.Tensor) {
	e.Backend.SwiGLU(dst, gate, up)
	e.round(dst)
}

func (e *bf16Emulator) Add(dst, x backend.Tensor) {
	e.Backend.Add(dst, x)
	e.round(dst)
}

func (e *bf16Emulator) Attention(a *backend.Attention) {
	e.Backend.Attention(a)
	e.round(a.Out)
}

// logitStats compares logits position by position: worst is the largest
// |Δlogit| divided by the spread (standard deviation) of want's logits at
// that position, and agree the fraction of positions whose largest logit
// is the same token.
func logitStats(got, want [][]float32) (worst float64, at int, agree float64) {
	same := 0
	for p := range want {
		var mean, sq float64
		for _, v := range want[p] {
			mean += float64(v)
		}
		mean /= float64(len(want[p]))
		for _, v := range want[p] {
			sq += (float64(v) - mean) * (float64(v) - mean)
		}
		spread := math.Sqrt(sq / float64(len(want[p])))
		for i := range want[p] {
			d := math.Abs(float64(got[p][i])-float64(want[p][i])) / spread
			if d > worst || math.IsNaN(d) {
				worst, at = d, p
			}
		}
		if argmax(got[p]) == argmax(want[p]) {
			same++
		}
	}
	return worst, at, float64(same) / float64(len(want))
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
