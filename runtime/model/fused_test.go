package model_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
)

// matmuls is a backend counting its matrix products.
type matmuls struct {
	backend.Backend
	n int
}

func (m *matmuls) MatMul(dst, x, w, bias backend.Tensor) {
	m.n++
	m.Backend.MatMul(dst, x, w, bias)
}

// TestFusedDecoding checks that decoding with each layer's q, k, v and
// gate, up projections fused into one product each gives, on the CPU,
// bit for bit the logits of a model whose parts are separate tensors
// multiplied one at a time (model.LoadUnfused), and that prefill chunks
// over the fused weights' row slices do too: a product row by row sums
// the same terms whichever tensor a weight row lives in. Weights copied
// to the wrong rows, or q, k and v cut from the wrong columns, change the
// logits. It also counts the products of a decoding step: four a layer
// and the LM head's, against seven a layer unfused.
func TestFusedDecoding(t *testing.T) {
	for _, dir := range fixtureDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			fb, ub := &matmuls{Backend: cpu.New(0)}, &matmuls{Backend: cpu.New(0)}
			fused, err := model.Load(dir, fb)
			if err != nil {
				t.Fatal(err)
			}
			unfused, err := model.LoadUnfused(dir, ub)
			if err != nil {
				t.Fatal(err)
			}
			for pi, p := range readGolden(t, dir).Prompts {
				ids := p.IDs
				if len(ids) < 6 {
					t.Fatalf("prompt %d: %d tokens, too few to prefill and decode", pi, len(ids))
				}
				cut := min(len(ids)/2, 12)
				fs, us := fullSession(t, fused, 4), fullSession(t, unfused, 4)
				compare := func(what string, got, want []float32) {
					t.Helper()
					if len(got) != len(want) {
						t.Fatalf("prompt %d, %s: %d logits, want %d", pi, what, len(got), len(want))
					}
					for i := range want {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("prompt %d, %s: logit %d = %v fused, %v unfused", pi, what, i, got[i], want[i])
						}
					}
				}
				var want [][]float32
				if _, err := us.Prefill(context.Background(), ids[:cut], func(_ int64, l []float32) error {
					want = append(want, append([]float32(nil), l...))
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				chunk := 0
				if _, err := fs.Prefill(context.Background(), ids[:cut], func(_ int64, l []float32) error {
					compare("prefill", l, want[chunk])
					chunk++
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				for i := cut; i < len(ids); i++ {
					fb.n, ub.n = 0, 0
					got, err := fs.Decode(ids[i])
					if err != nil {
						t.Fatal(err)
					}
					want, err := us.Decode(ids[i])
					if err != nil {
						t.Fatal(err)
					}
					compare(fmt.Sprintf("decoding token %d", i), got, want)
					if l := fused.Layers; fb.n != 4*l+1 || ub.n != 7*l+1 {
						t.Fatalf("prompt %d: a decoding step ran %d products fused, %d unfused; want %d and %d", pi, fb.n, ub.n, 4*l+1, 7*l+1)
					}
				}
				fs.Close()
				us.Close()
			}
		})
	}
}
