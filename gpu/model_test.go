package gpu_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"kvcascade/policies"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
)

// parityTol is the largest |Δlogit| allowed between the GPU and the CPU:
// the same bound the CPU backend meets against the reference (see
// runtime/model's TestParityLogits); float32 everywhere, so the two differ
// only in summation order and exp/sqrt rounding.
const parityTol = 1e-3

// fixtures are the model fixtures of runtime/model/testdata and the
// embedded model.
var fixtures = []string{
	"../runtime/model/testdata/llama",   // GQA 4/2, llama3 RoPE scaling
	"../runtime/model/testdata/qwen2",   // attention biases, tied embeddings
	"../runtime/model/testdata/mistral", // GQA 8/2
	"../models/tiny",                    // the embedded model: hidden 256, head dim 32
}

// openSession opens a session of m in chunks of chunk tokens over a cache
// of the named policy; done closes both.
func openSession(tb testing.TB, m *model.Model, policy string, params map[string]any, chunk int) (s *model.Session, c *policies.Cache, done func()) {
	tb.Helper()
	f, err := policies.New(policy, params)
	if err != nil {
		tb.Fatal(err)
	}
	shape := policies.Shape{Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim}
	if c, err = policies.NewCache(m.Backend(), f, shape, m.Backend().DType()); err != nil {
		tb.Fatal(err)
	}
	s = m.NewSession(c, chunk)
	return s, c, func() {
		s.Close()
		c.Free()
	}
}

// run feeds prompt through a fresh cache of the policy in chunks, then
// decodes the tokens of more one by one, and returns the logits of every
// position and the original positions each layer's KV heads hold at the
// end.
func run(t *testing.T, m *model.Model, policy string, params map[string]any, chunk int, prompt, more []int32) ([][]float32, [][]int64) {
	t.Helper()
	s, c, done := openSession(t, m, policy, params, chunk)
	defer done()
	var rows [][]float32
	_, err := s.Prefill(context.Background(), prompt, func(_ int64, logits []float32) error {
		for i := 0; i < len(logits); i += m.Vocab {
			rows = append(rows, slices.Clone(logits[i:i+m.Vocab]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range more {
		l, err := s.Decode(id)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, slices.Clone(l))
	}
	var held [][]int64
	for l := 0; l < m.Layers; l++ {
		for h := 0; h < m.KVHeads; h++ {
			held = append(held, c.Held(l, h))
		}
	}
	return rows, held
}

// parityRuns are the policies and prefill chunkings every fixture is run
// with.
var parityRuns = []struct {
	policy string
	params map[string]any
	chunks []int
}{
	{"full", nil, []int{16, 7}},
	{"cascade", map[string]any{"sinks": 4, "size": 32, "cascades": 4}, []int{16, 5}},
	// a host policy that reads queries and keys back from the device
	// (issue 19): 9 evicted blocks of 8 after 100 tokens, 2 retrieved
	{"logsearch", map[string]any{"sinks": 4, "window": 24, "block": 8, "topk": 2}, []int{16, 5}},
}

// parityCheck compares one run's logits and held tokens (got on the backend
// under test, want on the reference).
type parityCheck func(t *testing.T, policy string, chunk int, got, want [][]float32, gotHeld, wantHeld [][]int64)

// parity loads each fixture on ref and dut, runs both through the same
// policies, chunkings and tokens (100 prompt tokens prefilled, 10 decoded)
// and hands the results to check.
func parity(t *testing.T, ref, dut backend.Backend, check parityCheck) {
	eachFixture(t, ref, dut, 7, 110, func(t *testing.T, mr, md *model.Model, ids []int32) {
		prompt, more := ids[:100], ids[100:]
		for _, r := range parityRuns {
			for _, chunk := range r.chunks {
				want, wantHeld := run(t, mr, r.policy, r.params, chunk, prompt, more)
				got, gotHeld := run(t, md, r.policy, r.params, chunk, prompt, more)
				check(t, r.policy, chunk, got, want, gotHeld, wantHeld)
			}
		}
	})
}

// eachFixture loads each fixture that is present on ref and on dut and
// runs fn on the two models and n random token ids (seeded with seed and
// the vocabulary size), in a subtest named after the fixture.
func eachFixture(t *testing.T, ref, dut backend.Backend, seed uint64, n int, fn func(t *testing.T, mr, md *model.Model, ids []int32)) {
	for _, dir := range fixtures {
		if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
			t.Logf("skip %s: %v", dir, err)
			continue
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			mr, err := model.Load(dir, ref)
			if err != nil {
				t.Fatal(err)
			}
			md, err := model.Load(dir, dut)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(seed, uint64(mr.Vocab)))
			ids := make([]int32, n)
			for i := range ids {
				ids[i] = int32(rng.IntN(mr.Vocab))
			}
			fn(t, mr, md, ids)
		})
	}
}

// TestModelParity runs each fixture on the GPU in float32 and on the CPU
// through the same policies and chunkings and compares the logits of every
// position, prefill and decode, and for cascade also which tokens the
// caches keep (the eviction decisions follow the attention mass, so a wrong
// mass shows up there first).
func TestModelParity(t *testing.T) {
	g := openGPU(t, f32)
	parity(t, cpu.New(0), g, func(t *testing.T, policy string, chunk int, got, want [][]float32, gotHeld, wantHeld [][]int64) {
		var worst float64
		at := 0
		for p := range want {
			for i := range want[p] {
				d := math.Abs(float64(got[p][i] - want[p][i]))
				if d > worst || math.IsNaN(d) {
					worst, at = d, p
				}
			}
		}
		if !(worst <= parityTol) {
			t.Errorf("%s chunk %d: max |Δlogit| = %.3g at position %d, want ≤ %g", policy, chunk, worst, at, parityTol)
		} else {
			t.Logf("%s chunk %d: max |Δlogit| = %.2g over %d positions", policy, chunk, worst, len(want))
		}
		for i := range wantHeld {
			if !slices.Equal(gotHeld[i], wantHeld[i]) {
				t.Errorf("%s chunk %d: cache %d (layer × KV head) holds %v on the GPU, %v on the CPU", policy, chunk, i, gotHeld[i], wantHeld[i])
				break
			}
		}
	})
}

// Bounds of the bf16 parity tests, in units of the spread (standard
// deviation) of the reference's logits at each position. A bf16 backend
// rounds every stored activation, key and value to 8 significant bits
// (2⁻⁸ relative), so its logits cannot meet float32's 1e-3. How far that
// rounding alone moves them is measured, without a GPU, by
// TestBF16Tolerances, which runs these checks on a CPU emulation of bf16
// storage (bf16Emulator). On the fixtures, with the test's tokens and six
// other draws of them: with full at most 0.085 of the spread, the greedy
// token the same on at least 95.5% of the positions. With cascade a
// different rounding may flip an eviction, which changes the context of
// every later position: up to 0.68 of the spread, 92.7% of the greedy
// tokens, 97.2% of the held tokens. The GPU sums in other orders (tensor
// cores, split attention runs), so its roundings fall differently again;
// the bounds leave it a margin of about three (full) and two (cascade) over
// the emulation while an indexing or conversion bug, whose errors are of
// the order of the spread, or a wrong mass (the caches would hold other
// tokens), still fails.
const (
	bf16FullTol    = 0.25 // max |Δlogit| / spread with full
	bf16CascadeTol = 1.5  // the same with cascade, evictions may differ
	bf16MinAgree   = 0.9  // fraction of positions with the same greedy token (full)
	bf16MinAgreeC  = 0.85 // the same with cascade
	bf16MinHeld    = 0.9  // fraction of the reference's held tokens held too
)

// checkBF16 is the parityCheck of a bf16 backend against the float32 CPU
// backend on bf16-rounded weights (roundWeights).
func checkBF16(t *testing.T, policy string, chunk int, got, want [][]float32, gotHeld, wantHeld [][]int64) {
	t.Helper()
	tol, minAgree := bf16FullTol, bf16MinAgree
	if policy != "full" {
		tol, minAgree = bf16CascadeTol, bf16MinAgreeC
	}
	worst, at, agree := logitStats(got, want)
	held, total := 0, 0
	for i := range wantHeld {
		for _, p := range gotHeld[i] {
			if slices.Contains(wantHeld[i], p) {
				held++
			}
		}
		total += len(wantHeld[i])
	}
	heldFrac := float64(held) / float64(max(total, 1))
	msg := fmt.Sprintf("%s chunk %d: max |Δlogit| = %.3g of the spread (at position %d), greedy tokens agree on %.1f%% of %d positions, %d of %d held tokens held",
		policy, chunk, worst, at, 100*agree, len(want), held, total)
	if !(worst <= tol) || agree < minAgree || heldFrac < bf16MinHeld {
		t.Errorf("%s; want ≤ %g, ≥ %g%%, ≥ %g%%", msg, tol, 100*minAgree, 100*bf16MinHeld)
	} else {
		t.Log(msg)
	}
}

// TestModelParityBF16 runs the fixtures on the GPU in bf16 against the CPU
// backend computing in float32 from the same bf16-rounded weights, with the
// bounds above.
func TestModelParityBF16(t *testing.T) {
	g := openGPU(t, bf16)
	parity(t, roundWeights{cpu.New(0)}, g, checkBF16)
}

// TestBF16Tolerances runs the bf16 parity checks on the CPU's emulation of
// bf16 storage (no GPU needed): the bounds must hold for what bf16 rounding
// alone does, or they are too tight for any bf16 backend.
func TestBF16Tolerances(t *testing.T) {
	parity(t, roundWeights{cpu.New(0)}, newBF16Emulator(), checkBF16)
}
