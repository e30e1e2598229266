package policies

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// TestKNormKeepsLowestNorms: with neither sinks nor window, knorm holds
// exactly the budget tokens whose keys have the lowest norms so far, per KV
// head (testKeys gives norms that differ by head).
func TestKNormKeepsLowestNorms(t *testing.T) {
	const budget = 24
	h := newHarness(t, "knorm", map[string]any{"budget": budget}, gqa)
	h.run(700, []int{1, 9, 64, 2, 130}, -1)
	all := testKeys(Step{Start: 0, N: 700}, gqa)
	for kh := range gqa.KVHeads {
		type tn struct {
			t    int64
			norm float64
		}
		var ts []tn
		for tok := range int64(700) {
			var ss float64
			for d := range gqa.HeadDim {
				x := float64(all[(int(tok)*gqa.KVHeads+kh)*gqa.HeadDim+d])
				ss += x * x
			}
			ts = append(ts, tn{tok, float64(float32(math.Sqrt(ss)))})
		}
		// lowest norm first; ties: the more recent, as knorm breaks them
		sort.SliceStable(ts, func(i, j int) bool {
			return ts[i].norm < ts[j].norm || ts[i].norm == ts[j].norm && ts[i].t > ts[j].t
		})
		var want []int64
		for _, x := range ts[:budget] {
			want = append(want, x.t)
		}
		slices.Sort(want)
		if got := h.held(kh); !slices.Equal(got, want) {
			t.Errorf("head %d holds %v, want the lowest norms %v", kh, got, want)
		}
	}
}

// TestTOVA: every KV head holds the same tokens; the chunk's last token is
// always kept; a token that the last query attends to keeps its place.
func TestTOVA(t *testing.T) {
	h := newHarness(t, "tova", map[string]any{"budget": 16}, gqa)
	h.mass = focusMass(37, rand.New(rand.NewPCG(7, 8)), gqa.Group())
	for h.seen < 600 {
		n := int(1 + h.seen%13)
		h.chunk(n, -1)
		last := h.seen - 1
		first := h.held(0)
		for kh := range gqa.KVHeads {
			got := h.held(kh)
			if !slices.Equal(got, first) {
				t.Fatalf("at %d: head %d holds %v, head 0 %v", h.seen, kh, got, first)
			}
			if !slices.Contains(got, last) {
				t.Fatalf("at %d: head %d lost the last token %d: %v", h.seen, kh, last, got)
			}
			if h.seen > 37 && !slices.Contains(got, 37) {
				t.Fatalf("at %d: head %d evicted token 37, which every query attends to: %v", h.seen, kh, got)
			}
		}
	}
}

// TestRandomSeeded: the same seed draws the same tokens, another seed others,
// and the draws differ between KV heads.
func TestRandomSeeded(t *testing.T) {
	run := func(seed int) [][]int64 {
		h := newHarness(t, "random", map[string]any{"budget": 32, "seed": seed}, gqa)
		h.run(800, []int{1, 17, 64}, -1)
		var out [][]int64
		for kh := range gqa.KVHeads {
			out = append(out, h.held(kh))
		}
		return out
	}
	a, b, c := run(1), run(1), run(2)
	for kh := range a {
		if !slices.Equal(a[kh], b[kh]) {
			t.Errorf("head %d: seed 1 held %v then %v", kh, a[kh], b[kh])
		}
		if slices.Equal(a[kh], c[kh]) {
			t.Errorf("head %d: seeds 1 and 2 hold the same tokens %v", kh, a[kh])
		}
	}
	if slices.Equal(a[0], a[1]) {
		t.Errorf("heads 0 and 1 hold the same random tokens %v", a[0])
	}
}

// TestPyramidBudget checks the per-layer budgets against cases worked out
// by hand from the PyramidKV reference's formula, and that the layers keep
// the mean budget to within the reference's rounding.
func TestPyramidBudget(t *testing.T) {
	for _, c := range []struct {
		layers, budget, window, beta, T int
		want                            []int
	}{
		// b = 128, m = 6, M = 250, step 81
		{4, 136, 8, 20, 1000, []int{258, 177, 96, 15}},
		// M capped at T − window = 192, m = 256 − 192 = 64, step 42
		{4, 136, 8, 20, 200, []int{200, 158, 116, 74}},
		// a prompt within the budget is kept whole
		{4, 136, 8, 20, 100, []int{100, 100, 100, 100}},
		{1, 136, 8, 20, 1000, []int{136}},
	} {
		var got []int
		sum := 0
		for l := range c.layers {
			got = append(got, pyramidBudget(l, c.layers, c.budget, c.window, c.beta, c.T))
			sum += got[l]
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%+v: budgets %v, want %v", c, got, c.want)
		}
		if c.T > c.budget && (sum < c.layers*c.budget-c.layers || sum > c.layers*c.budget+c.layers*c.layers) {
			t.Errorf("%+v: budgets sum to %d, not about %d", c, sum, c.layers*c.budget)
		}
	}
	// and the policy holds them after the prompt
	s := Shape{Layers: 4, QHeads: 4, KVHeads: 2, HeadDim: 8}
	f, err := New("pyramidkv", map[string]any{"budget": 136, "window": 8, "kernel": 3})
	if err != nil {
		t.Fatal(err)
	}
	for l, want := range []int{258, 177, 96, 15} {
		p, err := f.NewLayer(l, s)
		if err != nil {
			t.Fatal(err)
		}
		h := &harness{t: t, name: "pyramidkv", p: p, s: s, store: make([][]int64, s.KVHeads)}
		h.mass = randomMass(rand.New(rand.NewPCG(1, uint64(l))))
		h.run(1000, []int{100}, 1000)
		if got := len(h.held(0)); got != want {
			t.Errorf("layer %d holds %d of the 1000-token prompt, want %d", l, got, want)
		}
	}
}

// TestSnapKVDecoding: with decode_every, snapkv (and pyramidkv) cut the
// cache to decode_target every decode_every decoded tokens, keeping the
// last window, so that decoding no longer grows memory without bound.
func TestSnapKVDecoding(t *testing.T) {
	for _, name := range []string{"snapkv", "pyramidkv"} {
		const every, target, window = 16, 40, 8
		h := newHarness(t, name, map[string]any{"budget": 60, "window": window, "kernel": 3,
			"decode_every": every, "decode_target": target}, gqa)
		h.mass = randomMass(rand.New(rand.NewPCG(9, 10)))
		h.run(300, []int{64}, 300)
		if got := len(h.held(0)); got != 60 {
			t.Fatalf("%s: %d held after the prompt, want the budget 60", name, got)
		}
		for i := 1; i <= 200; i++ {
			h.chunk(1, -1)
			held := h.held(0)
			want := target + i%every
			if i < every {
				want = 60 + i
			}
			if len(held) != want {
				t.Fatalf("%s: %d decoded: %d held, want %d", name, i, len(held), want)
			}
			if last := held[len(held)-window:]; last[0] != h.seen-window {
				t.Fatalf("%s: %d decoded: window lost: %v", name, i, last)
			}
		}
	}
	if _, err := New("snapkv", map[string]any{"decode_target": 10}); err == nil {
		t.Error("decode_target without decode_every accepted")
	}
	if _, err := New("snapkv", map[string]any{"decode_every": 4, "decode_target": 32, "window": 32}); err == nil {
		t.Error("decode_target not above window accepted")
	}
}
