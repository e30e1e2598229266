package model_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"kvcascade/policies"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
	"kvcascade/runtime/safetensors"
)

// overflow returns an edit for brokenDir that sets elements [lo, hi) of the
// F32 tensor name (all of it when hi is 0) to 3.4e38: finite, so Load
// accepts it, but large enough that the activations it scales overflow.
func overflow(name string, lo, hi int) func([]safetensors.Tensor) []safetensors.Tensor {
	return func(ts []safetensors.Tensor) []safetensors.Tensor {
		for i, x := range ts {
			if x.Name != name {
				continue
			}
			end := hi
			if end == 0 {
				end = len(x.Data) / 4
			}
			for j := lo; j < end; j++ {
				binary.LittleEndian.PutUint32(ts[i].Data[4*j:], math.Float32bits(3.4e38))
			}
		}
		return ts
	}
}

func TestNonFiniteLogitsFailGeneration(t *testing.T) {
	cases := []struct {
		name   string
		edit   func([]safetensors.Tensor) []safetensors.Tensor
		prompt []int32
		step   string // the generation step named
		pos    int64  // the position whose logits are not finite
		where  string // the first non-finite activation
		layer  int
	}{
		{"final norm", overflow("model.norm.weight", 0, 0), []int32{509, 5, 6, 7}, "generation step 0", 3, "model.norm output", -1},
		{"layer 1 mlp", overflow("model.layers.1.mlp.down_proj.weight", 0, 0), []int32{509, 5, 6}, "generation step 0", 2, "layer 1 mlp.down_proj output", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := model.Load(brokenDir(t, c.edit), cpu.New(1))
			if err != nil {
				t.Fatal(err)
			}
			s := fullSession(t, m, 2)
			defer s.Close()
			out, err := s.Generate(context.Background(), c.prompt, 4, nil)
			var nf *model.NonFiniteError
			if !errors.As(err, &nf) {
				t.Fatalf("Generate = %v, %v; want a *NonFiniteError", out, err)
			}
			if nf.Pos != c.pos || !strings.Contains(nf.Where, c.where) || nf.Layer != c.layer {
				t.Errorf("error at position %d, where %q, layer %d; want %d, %q, %d", nf.Pos, nf.Where, nf.Layer, c.pos, c.where, c.layer)
			}
			if msg := err.Error(); !strings.Contains(msg, c.step) || !strings.Contains(msg, c.where) {
				t.Errorf("error %q does not name %q and %q", msg, c.step, c.where)
			}
		})
	}
}

// poisonCache stores NaN values instead of layer 1's values of the decode
// step numbered at (1 is the first), so that the next step attends to them.
type poisonCache struct {
	model.Cache
	b       backend.Backend
	at      int
	decodes int // decode steps begun
}

func (c *poisonCache) View(layer, n int, promptEnd int64) (*backend.View, error) {
	if layer == 0 && promptEnd < 0 {
		c.decodes++
	}
	return c.Cache.View(layer, n, promptEnd)
}

func (c *poisonCache) Update(layer int, k, v backend.Tensor, mass []float32) error {
	if layer == 1 && c.decodes == c.at {
		nan := make([]float32, backend.Numel(v.Shape()))
		for i := range nan {
			nan[i] = float32(math.NaN())
		}
		v = c.b.FromFloat32(nan, v.Shape()...)
	}
	return c.Cache.Update(layer, k, v, mass)
}

// TestNonFiniteDecodeStep checks that non-finite values reaching a decoding
// step through the cache fail generation at that step, and that the error
// says the chunk alone computes finite values.
func TestNonFiniteDecodeStep(t *testing.T) {
	m, err := model.Load("testdata/llama", cpu.New(1))
	if err != nil {
		t.Fatal(err)
	}
	f, err := policies.New("full", nil)
	if err != nil {
		t.Fatal(err)
	}
	full, err := policies.NewCache(m.Backend(), f, policies.Shape{Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim}, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	s := m.NewSession(&poisonCache{Cache: full, b: m.Backend(), at: 1}, 4)
	defer s.Close()
	out, err := s.Generate(context.Background(), []int32{509, 5, 6}, 8, nil)
	var nf *model.NonFiniteError
	if !errors.As(err, &nf) {
		t.Fatalf("Generate = %v, %v; want a *NonFiniteError", out, err)
	}
	// Step 1 feeds the first generated token (position 3) and stores the
	// poison; step 2 (position 4) attends to it.
	if nf.Pos != 4 || nf.Where != "" || nf.Layer != -1 || len(out) != 2 {
		t.Errorf("error at position %d, where %q, layer %d after %d tokens; want position 4, no place, layer -1, 2 tokens", nf.Pos, nf.Where, nf.Layer, len(out))
	}
	if msg := err.Error(); !strings.Contains(msg, "generation step 2") || !strings.Contains(msg, "from the cache") {
		t.Errorf("error %q does not name step 2 and the cache", msg)
	}
}
