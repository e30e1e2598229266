package gpu_test

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"kvcascade/gpu"
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

// run feeds prompt through a fresh cache of the policy in chunks, then
// decodes the tokens of more one by one, and returns the logits of every
// position and the original positions each layer's KV heads hold at the
// end.
func run(t *testing.T, m *model.Model, policy string, params map[string]any, chunk int, prompt, more []int32) ([][]float32, [][]int64) {
	t.Helper()
	f, err := policies.New(policy, params)
	if err != nil {
		t.Fatal(err)
	}
	shape := policies.Shape{Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim}
	c, err := policies.NewCache(m.Backend(), f, shape, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Free()
	s := m.NewSession(c, chunk)
	defer s.Close()
	var rows [][]float32
	_, err = s.Prefill(context.Background(), prompt, func(_ int64, logits []float32) error {
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

// TestModelParity runs each fixture on the GPU and the CPU through the
// same policies and chunkings and compares the logits of every position,
// prefill and decode, and for cascade also which tokens the caches keep
// (the eviction decisions follow the attention mass, so a wrong mass
// shows up there first).
func TestModelParity(t *testing.T) {
	g := openGPU(t, gpu.Options{})
	c := cpu.New(0)
	runs := []struct {
		policy string
		params map[string]any
		chunks []int
	}{
		{"full", nil, []int{16, 7}},
		{"cascade", map[string]any{"sinks": 4, "size": 32, "cascades": 4}, []int{16, 5}},
	}
	for _, dir := range fixtures {
		if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
			t.Logf("skip %s: %v", dir, err)
			continue
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			mc, err := model.Load(dir, c)
			if err != nil {
				t.Fatal(err)
			}
			mg, err := model.Load(dir, g)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(7, uint64(mc.Vocab)))
			ids := make([]int32, 110)
			for i := range ids {
				ids[i] = int32(rng.IntN(mc.Vocab))
			}
			prompt, more := ids[:100], ids[100:]
			for _, r := range runs {
				for _, chunk := range r.chunks {
					want, wantHeld := run(t, mc, r.policy, r.params, chunk, prompt, more)
					got, gotHeld := run(t, mg, r.policy, r.params, chunk, prompt, more)
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
						t.Errorf("%s chunk %d: max |Δlogit| = %.3g at position %d, want ≤ %g", r.policy, chunk, worst, at, parityTol)
					} else {
						t.Logf("%s chunk %d: max |Δlogit| = %.2g over %d positions", r.policy, chunk, worst, len(want))
					}
					for i := range wantHeld {
						if !slices.Equal(gotHeld[i], wantHeld[i]) {
							t.Errorf("%s chunk %d: layer %d KV head %d holds %v on the GPU, %v on the CPU",
								r.policy, chunk, i/mc.KVHeads, i%mc.KVHeads, gotHeld[i], wantHeld[i])
							break
						}
					}
				}
			}
		})
	}
}
