package policies_test

import (
	"testing"

	"kvcascade/policies"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
)

// TestSlotsAfter holds the estimate to the storage a Cache really holds
// after reading n tokens in chunks: growing (full) and bounded policies.
func TestSlotsAfter(t *testing.T) {
	s := policies.Shape{Layers: 1, QHeads: 4, KVHeads: 2, HeadDim: 8}
	b := cpu.New(1)
	for _, tc := range []struct {
		policy   string
		params   map[string]any
		n, chunk int
	}{
		{"full", nil, 100, 32},
		{"full", nil, 8, 32},
		{"full", nil, 300, 7},
		{"sink", map[string]any{"sinks": 4, "window": 40}, 300, 16},
		{"cascade", map[string]any{"sinks": 2, "size": 24, "cascades": 3}, 200, 16},
	} {
		f, err := policies.New(tc.policy, tc.params)
		if err != nil {
			t.Fatal(err)
		}
		want, err := policies.SlotsAfter(f, s, tc.n, tc.chunk)
		if err != nil {
			t.Fatal(err)
		}
		c, err := policies.NewCache(b, f, s, backend.F32)
		if err != nil {
			t.Fatal(err)
		}
		meta := c.Policy(0).MetaBytes
		for seen := 0; seen < tc.n; seen += tc.chunk {
			n := min(tc.chunk, tc.n-seen)
			view, err := c.View(0, n, int64(tc.n))
			if err != nil {
				t.Fatal(err)
			}
			var mass []float32
			if view.QueryWeights != nil {
				mass = make([]float32, s.QHeads*(view.ViewLen+n))
			}
			k := b.New(backend.F32, n, s.KVHeads*s.HeadDim)
			v := b.New(backend.F32, n, s.KVHeads*s.HeadDim)
			if err := c.Update(0, k, v, mass); err != nil {
				t.Fatal(err)
			}
		}
		row := int64(2 * s.KVHeads * s.HeadDim * 4) // key and value of one slot
		if got := (c.Bytes() - meta()) / row; got != int64(want) {
			t.Errorf("%s, %d tokens in chunks of %d: the cache holds %d slots, SlotsAfter says %d", tc.policy, tc.n, tc.chunk, got, want)
		}
		c.Free()
	}
}
