package gpu_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"kvcascade/gpu"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
)

// attnCase is one attention call: a chunk of s queries over a view of l
// cached keys (padding every third when pad) in a cache of capacity cap.
type attnCase struct {
	name                   string
	hq, hkv, hd, s, l, cap int
	pad                    bool
	posBase                int // added to every position (long contexts)
	mass                   bool
}

// attnCases cover GQA, padding, head dimensions 8–256, long positions,
// decoding, and split and unsplit key runs.
var attnCases = []attnCase{
	{"empty cache", 4, 2, 8, 5, 0, 0, false, 0, true},
	{"gqa with view", 4, 2, 8, 3, 6, 10, false, 0, true},
	{"mha decode", 2, 2, 16, 1, 9, 12, false, 0, true},
	{"padding slots", 6, 3, 8, 4, 5, 8, true, 0, true},
	{"no mass", 4, 2, 16, 20, 40, 64, true, 0, false},
	{"tiles hd64", 8, 2, 64, 37, 100, 128, true, 0, true},
	{"llama hd128", 8, 2, 128, 70, 300, 400, true, 0, true},
	{"long positions", 4, 1, 128, 33, 64, 80, false, 70000, true},
	{"decode hd128", 32, 8, 128, 1, 1000, 1024, true, 0, true},
	{"hd256", 4, 2, 256, 9, 40, 48, true, 0, true},
	{"hd32 chunk only", 8, 8, 32, 100, 0, 0, false, 0, true},
	// Few queries over many keys: the keys are split into runs
	// merged afterwards; many queries: one run.
	{"split runs", 4, 2, 64, 20, 2000, 2100, true, 0, true},
	{"split decode long", 32, 8, 128, 1, 20000, 20000, false, 5, true},
	{"one run", 32, 8, 64, 600, 500, 512, true, 0, true},
}

// TestAttention compares attention with the CPU backend, whose own test
// checks it against a float64 textbook version. Outputs are convex
// combinations of values of size ~1, computed here with other summation
// orders and expf for exp: 1e-5 absolute. Mass sums at most s
// probabilities times weights ≤ 1: 1e-5 absolute plus 1e-5 relative.
func TestAttention(t *testing.T) {
	g := openGPU(t, f32)
	for _, tc := range attnCases {
		t.Run(tc.name, func(t *testing.T) {
			runAttention(t, g, tc, rand.New(rand.NewPCG(uint64(tc.s), uint64(tc.l))), false)
		})
	}
}

// TestAttentionBF16 runs the same cases on a bf16 backend against the CPU
// on the bf16-rounded queries, keys and values. The kernel widens every
// load exactly and computes in float32 as in float32 storage, so the mass
// (float32) keeps TestAttention's bounds; each output is rounded to bf16
// once more: 2⁻⁸ of it on top.
func TestAttentionBF16(t *testing.T) {
	// attention.cu's kernels in bf16 storage; their bounds assume float32
	// probabilities, so the tensor-core path (which rounds P to bf16, and
	// has its own bounds in TestFlashAttention) is turned off
	opt := bf16
	opt.NoFlash = true
	g := openGPU(t, opt)
	for _, tc := range attnCases {
		t.Run(tc.name, func(t *testing.T) {
			runAttention(t, g, tc, rand.New(rand.NewPCG(uint64(tc.s), uint64(tc.l))), true)
		})
	}
}

// runAttention runs tc on g and the CPU; with round the CPU gets the
// inputs rounded to bf16, as a bf16 g stores them.
func runAttention(t *testing.T, g *gpu.Backend, tc attnCase, rng *rand.Rand, round bool) {
	c := cpu.New(2)
	q := randSlice(rng, tc.s*tc.hq*tc.hd)
	k := randSlice(rng, tc.s*tc.hkv*tc.hd)
	v := randSlice(rng, tc.s*tc.hkv*tc.hd)
	inv := make([]float32, tc.hd/2)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(10000, float64(2*i)/float64(tc.hd)))
	}
	var ctx backend.View
	ctx.ViewLen = tc.l
	for h := 0; h < tc.hkv; h++ {
		perm := rng.Perm(tc.cap)
		for j := 0; j < tc.l; j++ {
			slot := int32(perm[j])
			if tc.pad && j%3 == 1 {
				slot = -1
			}
			ctx.Slots = append(ctx.Slots, slot)
			ctx.Pos = append(ctx.Pos, int32(tc.posBase+3*j+h))
		}
		ctx.QueryPos = append(ctx.QueryPos, int32(tc.posBase+3*tc.l+h))
	}
	if tc.mass {
		for i := 0; i < tc.s; i++ {
			w := float32(i+1) / float32(tc.s)
			if i%5 == 3 {
				w = 0 // weights of zero are skipped; the result must not change
			}
			ctx.QueryWeights = append(ctx.QueryWeights, w)
		}
	}
	ck, cv := randSlice(rng, tc.hkv*tc.cap*tc.hd), randSlice(rng, tc.hkv*tc.cap*tc.hd)

	call := func(b backend.Backend, out backend.Tensor, q, k, v, ck, cv []float32) *backend.Attention {
		a := &backend.Attention{
			Out: out, Q: b.FromFloat32(q, tc.s, tc.hq*tc.hd),
			K: b.FromFloat32(k, tc.s, tc.hkv*tc.hd), V: b.FromFloat32(v, tc.s, tc.hkv*tc.hd),
			View: ctx, HeadDim: tc.hd, QHeads: tc.hq, KVHeads: tc.hkv,
			Scale: float32(1 / math.Sqrt(float64(tc.hd))), InvFreq: inv, AttnFactor: 1,
		}
		if tc.cap > 0 {
			a.View.K, a.View.V = b.FromFloat32(ck, tc.hkv, tc.cap, tc.hd), b.FromFloat32(cv, tc.hkv, tc.cap, tc.hd)
		}
		if tc.mass {
			a.Mass = poison(tc.hq * (tc.l + tc.s))
		}
		b.Attention(a)
		return a
	}
	got := call(g, g.FromFloat32(poison(tc.s*tc.hq*tc.hd), tc.s, tc.hq*tc.hd), q, k, v, ck, cv)
	atol, rtol := 1e-5, 0.0
	if round {
		q, k, v, ck, cv = roundBF16(q), roundBF16(k), roundBF16(v), roundBF16(ck), roundBF16(cv)
		atol, rtol = 1e-5*(1+bf16ULP), bf16ULP // the rounding of a result within 1e-5 of want
	}
	want := call(c, c.New(backend.F32, tc.s, tc.hq*tc.hd), q, k, v, ck, cv)
	if got.Out.DType() != g.DType() {
		t.Fatalf("output stored as %v", got.Out.DType())
	}
	compare(t, "out", read(g, got.Out), read(c, want.Out), atol, rtol)
	if tc.mass {
		compare(t, "mass", got.Mass, want.Mass, 1e-5, 1e-5)
	}
}
