package gpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"kvcascade/gpu"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/model"
)

// TestDecodeMatchesAttention holds decode.cu's flash-decoding kernels to
// attention.cu's on the same bf16 inputs (Options.NoDecode), for one query
// at the Llama-3.1-8B shape over long views, the mass included: both
// compute in float32 and round the output once, so outputs agree within
// two bf16 roundings of a value of size ~1 and the mass within 1e-5. The
// views give every head the same positions (which decode.cu's blocks of
// several heads share) or each head its own, under 1, 4 and 8 heads per
// block. Running the decode kernel twice must give identical bits (no
// atomics).
func TestDecodeMatchesAttention(t *testing.T) {
	g := openGPU(t, bf16)
	old := bf16
	old.NoDecode = true
	o := openGPU(t, old)
	defer gpu.SetDecodeTuning(g, 0, 0, 0)
	const hq, hkv, hd = 32, 8, 128
	for _, l := range []int{1, 4095, 40000} {
		for _, same := range []bool{true, false} {
			rng := rand.New(rand.NewPCG(uint64(l), 15))
			q, k, v := randSlice(rng, hq*hd), randSlice(rng, hkv*hd), randSlice(rng, hkv*hd)
			ck, cv := randSlice(rng, hkv*l*hd), randSlice(rng, hkv*l*hd)
			var ctx backend.View
			ctx.ViewLen = l
			for h := 0; h < hkv; h++ {
				perm := rng.Perm(l)
				for j := 0; j < l; j++ {
					slot := int32(perm[j])
					if j%7 == 2 {
						slot = -1
					}
					p := int32(j)
					if !same {
						p = int32(2*j + h)
					}
					ctx.Slots = append(ctx.Slots, slot)
					ctx.Pos = append(ctx.Pos, p)
				}
				ctx.QueryPos = append(ctx.QueryPos, int32(2*l))
			}
			ctx.QueryWeights = []float32{1}
			inv := make([]float32, hd/2)
			for i := range inv {
				inv[i] = float32(1 / math.Pow(500000, float64(2*i)/hd))
			}
			call := func(b *gpu.Backend) ([]float32, []float32) {
				a := &backend.Attention{
					Out: b.FromFloat32(poison(hq*hd), 1, hq*hd), Q: b.FromFloat32(q, 1, hq*hd),
					K: b.FromFloat32(k, 1, hkv*hd), V: b.FromFloat32(v, 1, hkv*hd),
					View: ctx, HeadDim: hd, QHeads: hq, KVHeads: hkv,
					Scale: float32(1 / math.Sqrt(hd)), InvFreq: inv, AttnFactor: 1,
					Mass: poison(hq * (l + 1)),
				}
				a.View.K, a.View.V = b.FromFloat32(ck, hkv, l, hd), b.FromFloat32(cv, hkv, l, hd)
				b.Attention(a)
				out := read(b, a.Out)
				for _, x := range []backend.Tensor{a.Out, a.Q, a.K, a.V, a.View.K, a.View.V} {
					b.Free(x)
				}
				return out, a.Mass
			}
			wantOut, wantMass := call(o)
			for _, heads := range []int{1, 4, 8} {
				t.Run(fmt.Sprintf("L=%d/same=%v/heads=%d", l, same, heads), func(t *testing.T) {
					gpu.SetDecodeTuning(g, 0, 0, heads)
					out, mass := call(g)
					compare(t, "out", out, wantOut, 1e-5, 2*bf16ULP)
					compare(t, "mass", mass, wantMass, 1e-5, 1e-5)
					out2, mass2 := call(g)
					for i := range out {
						if math.Float32bits(out[i]) != math.Float32bits(out2[i]) {
							t.Fatalf("out[%d]: %g, then %g", i, out[i], out2[i])
						}
					}
					for i := range mass {
						if math.Float32bits(mass[i]) != math.Float32bits(mass2[i]) {
							t.Fatalf("mass[%d]: %g, then %g", i, mass[i], mass2[i])
						}
					}
				})
			}
		}
	}
}

// TestArgmax checks the device's greedy pick against model.Argmax on rows
// with ties and extremes, and −1 for rows holding a NaN or ±Inf, for logits
// stored as float32 and bf16.
func TestArgmax(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	const v = 128256
	rng := rand.New(rand.NewPCG(5, 6))
	var flat []float32
	rows := 9
	for r := 0; r < rows; r++ {
		row := randSlice(rng, v)
		switch r {
		case 1: // a tie for the largest: the first wins
			row[77777], row[1234] = 9, 9
		case 2: // NaNs: −1
			row[5], row[100000], row[99999] = nan, 50, nan
		case 3: // a NaN first: −1
			row[0] = nan
		case 4: // all −∞ but a NaN: −1
			for i := range row {
				row[i] = -inf
			}
			row[3] = nan
		case 5: // +Inf: −1
			row[v-1] = inf
		case 8: // the largest finite value last
			row[v-1] = 3e38
		case 6: // the largest in the first place
			row[0] = 1e30
		case 7: // equal values everywhere: the first
			for i := range row {
				row[i] = 0.5
			}
		}
		flat = append(flat, row...)
	}
	for _, opt := range []gpu.Options{f32, bf16} {
		g := openGPU(t, opt)
		x := g.FromFloat32(flat, rows, v)
		host := read(g, x) // the values as stored
		got := make([]int32, rows)
		g.Argmax(x, got)
		for i := range got {
			w := model.Argmax(host[i*v : (i+1)*v])
			if !finiteRow(host[i*v : (i+1)*v]) {
				w = -1
			}
			if got[i] != w {
				if got[i] < 0 || w < 0 {
					t.Errorf("%v row %d: Argmax %d, want %d", opt.DType, i, got[i], w)
					continue
				}
				t.Errorf("%v row %d: Argmax %d (%g), host %d (%g)", opt.DType, i, got[i], host[i*v+int(got[i])], w, host[i*v+int(w)])
			}
		}
		g.Free(x)
	}
}

// TestArgmaxLengths checks the device's greedy pick against model.Argmax
// on rows of lengths that split into one part, into parts of unequal
// lengths and into the most parts, with the largest value tied at the
// start and end of parts.
func TestArgmaxLengths(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	g := openGPU(t, f32)
	for _, v := range []int{1, 33, 4095, 8193, 70001, 1 << 20} {
		const rows = 3
		flat := randSlice(rng, rows*v)
		for r := 0; r < rows; r++ {
			row := flat[r*v : (r+1)*v]
			for _, at := range []int{v - 1, v / 2, v / 3, 0} {
				if r > 0 || at%2 == 0 {
					row[at] = 7 // ties: the first wins
				}
			}
		}
		x := g.FromFloat32(flat, rows, v)
		got := make([]int32, rows)
		g.Argmax(x, got)
		for r := range got {
			if w := model.Argmax(flat[r*v : (r+1)*v]); got[r] != w {
				t.Errorf("v=%d row %d: Argmax %d, want %d", v, r, got[r], w)
			}
		}
		g.Free(x)
	}
}

// finiteRow reports whether every value of row is finite.
func finiteRow(row []float32) bool {
	for _, x := range row {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}
