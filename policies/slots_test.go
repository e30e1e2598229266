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

// TestCacheViewRows holds ViewRows to the closed form of full attention,
// whose view after s tokens holds all s: a chunk of n tokens adds
// (s + n)·Hkv rows a layer, prefill and decoding steps alike.
func TestCacheViewRows(t *testing.T) {
	s := policies.Shape{Layers: 3, QHeads: 4, KVHeads: 2, HeadDim: 8}
	b := cpu.New(1)
	f, err := policies.New("full", nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := policies.NewCache(b, f, s, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Free()
	var want int64
	seen := 0
	for _, n := range []int{32, 32, 32, 4, 1, 1, 1} { // a prompt of 100, then 3 decoding steps
		for l := range s.Layers {
			view, err := c.View(l, n, 100)
			if err != nil {
				t.Fatal(err)
			}
			k := b.New(backend.F32, n, s.KVHeads*s.HeadDim)
			v := b.New(backend.F32, n, s.KVHeads*s.HeadDim)
			var mass []float32
			if view.QueryWeights != nil {
				mass = make([]float32, s.QHeads*(view.ViewLen+n))
			}
			if err := c.Update(l, k, v, mass); err != nil {
				t.Fatal(err)
			}
			want += int64((seen + n) * s.KVHeads)
		}
		seen += n
		if got := c.ViewRows(); got != want {
			t.Fatalf("after %d tokens ViewRows = %d, want %d", seen, got, want)
		}
	}
	if want != 3*2*(32+64+96+100+101+102+103) {
		t.Fatalf("the closed form drifted: %d", want)
	}
}
