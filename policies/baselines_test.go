package policies

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"kvcascade/policies/device"
	"kvcascade/runtime/backend"
)

// TestHipBigbirdPattern works out hip_bigbird's view by hand: with a budget
// of 8, 2 sinks and blocks of 2, a chunk after 30 tokens sees tokens 0–1,
// two random 2-token blocks of [2, 26) (8/2 = 4 tokens) and the window
// 26–29 (8/2 = 4 tokens), all at their original positions, the chunk's
// queries from position 30.
func TestHipBigbirdPattern(t *testing.T) {
	s := Shape{Layers: 1, QHeads: 2, KVHeads: 1, HeadDim: 4}
	p := newLayer(t, "hip_bigbird", map[string]any{"window": 8, "sinks": 2, "block": 2, "seed": 3}, s)
	var ctx backend.View
	for _, n := range []int{10, 10, 10} {
		p.Reserve(n)
		p.Plan(Step{Start: 0, N: n, PromptEnd: -1}, &ctx)
		p.Commit(nil, make([]int32, n))
	}
	p.Reserve(4)
	p.Plan(Step{Start: 30, N: 4, PromptEnd: -1}, &ctx)
	if ctx.ViewLen != 10 {
		t.Fatalf("view of %d keys, want 2 sinks + 4 random + 4 window = 10", ctx.ViewLen)
	}
	pos := slices.Clone(ctx.Pos)
	if !slices.Equal(ctx.Slots, pos) {
		t.Errorf("positions %v are not the original positions (slots) %v", pos, ctx.Slots)
	}
	if !slices.Equal(pos[:2], []int32{0, 1}) || !slices.Equal(pos[6:], []int32{26, 27, 28, 29}) {
		t.Errorf("view %v: want sinks 0 1 first and the window 26–29 last", pos)
	}
	for b := 2; b < 6; b += 2 {
		lo := pos[b]
		if lo < 2 || lo+1 >= 26 || pos[b+1] != lo+1 || lo%2 != 0 {
			t.Errorf("view %v: random block at %d is not two aligned tokens in [2, 26)", pos, b)
		}
	}
	if pos[2] == pos[4] {
		t.Errorf("view %v: the same random block twice", pos)
	}
	if ctx.QueryPos[0] != 30 {
		t.Errorf("query position %d, want the original 30", ctx.QueryPos[0])
	}
}

// TestH2OReduction works out h2o's GQA reduction by hand: one KV head over
// two query heads, heavy = recent = 1, a first chunk of three tokens whose
// mass is [0.5 0.0 0.2] from query head 0 and [0.5 0.9 0.2] from head 1.
// Token 2 stays as the recent one; of tokens 0 and 1, the mean (0.5 vs
// 0.45) keeps token 0, the max (0.5 vs 0.9) token 1. With max the policy
// stays on the host.
func TestH2OReduction(t *testing.T) {
	s := Shape{Layers: 1, QHeads: 2, KVHeads: 1, HeadDim: 4}
	mass := []float32{0.5, 0.0, 0.2, 0.5, 0.9, 0.2}
	for _, c := range []struct {
		reduction string
		want      []int64
	}{
		{"mean", []int64{0, 2}},
		{"max", []int64{1, 2}},
	} {
		f, err := New("h2o", map[string]any{"heavy": 1, "recent": 1, "reduction": c.reduction})
		if err != nil {
			t.Fatal(err)
		}
		p, err := f.NewLayer(0, s)
		if err != nil {
			t.Fatal(err)
		}
		var ctx backend.View
		p.Reserve(3)
		p.Plan(Step{Start: 0, N: 3, PromptEnd: -1}, &ctx)
		p.Commit(mass, make([]int32, 3))
		if got := p.Held(0, nil); !slices.Equal(got, c.want) {
			t.Errorf("reduction %s: holds %v, want %v", c.reduction, got, c.want)
		}
		stub := &tokenListerStub{}
		if df, ok := f.(deviceFactory); ok {
			if _, err := df.onDevice(0, s, stub); err != nil {
				t.Fatal(err)
			}
		}
		if asked := stub.asked; asked != (c.reduction == "mean") {
			t.Errorf("reduction %s: asked the device for token lists: %v", c.reduction, asked)
		}
	}
}

// tokenListerStub is a backend whose token lists are unsupported; it
// records whether a policy asked for them.
type tokenListerStub struct {
	backend.Backend
	asked bool
}

func (b *tokenListerStub) NewTokenList(device.TokenListSpec) (device.TokenList, error) {
	b.asked = true
	return nil, errors.ErrUnsupported
}

// TestBigbirdDraw holds bigbird's draw of random blocks (a bitset marks
// the blocks taken) to Floyd's sampling written plainly, with a search of
// the blocks taken so far and a sort: the same blocks for every seed,
// layer, head, chunk start, number of blocks and of draws, so that a seed
// names the same pattern as before.
func TestBigbirdDraw(t *testing.T) {
	plain := func(seed, layer uint64, h int, s, blocks, r int64) []int64 {
		var pick []int64
		if r == blocks {
			for b := range blocks {
				pick = append(pick, b)
			}
			return pick
		}
		rng := splitmix(mix(mix(mix(seed, layer), uint64(h)), uint64(s)))
		for j := blocks - r; j < blocks; j++ {
			b := int64(rng.below(uint64(j + 1)))
			if slices.Contains(pick, b) {
				b = j
			}
			pick = append(pick, b)
		}
		slices.Sort(pick)
		return pick
	}
	for _, c := range []struct {
		draws  int
		blocks []int64
	}{
		{0, []int64{0, 1, 5}},
		{1, []int64{1, 2, 63, 64, 65}},
		{3, []int64{3, 4, 10, 100}},
		{40, []int64{40, 41, 64, 127, 128, 129, 1000}},
		{512, []int64{600, 1000, 15000}},
	} {
		for _, blocks := range c.blocks {
			for seed := range uint64(3) {
				p := &bigbird{c: bigbirdConfig{blocks: c.draws, seed: seed}, layer: seed * 7}
				for h := range 3 {
					for _, s := range []int64{0, 1, 4096, 1 << 20} {
						p.choose(h, s, blocks)
						want := plain(seed, seed*7, h, s, blocks, min(int64(c.draws), blocks))
						if !slices.Equal(p.pick, want) {
							t.Fatalf("%d draws of %d blocks (seed %d, head %d, start %d): %v, want %v",
								c.draws, blocks, seed, h, s, p.pick, want)
						}
					}
				}
				for w, m := range p.mark {
					if m != 0 {
						t.Fatalf("%d draws of %d blocks: word %d of the bitset left %#x", c.draws, blocks, w, m)
					}
				}
			}
		}
	}
}

// featureStub is a backend that has the optional attention features or
// none of them.
type featureStub struct {
	backend.Backend
	has bool
}

func (b featureStub) Name() string             { return "stub" }
func (b featureStub) Has(backend.Feature) bool { return b.has }
func (b featureStub) NewTokenList(device.TokenListSpec) (device.TokenList, error) {
	return nil, errors.ErrUnsupported
}

// TestH2OQueryMax checks h2o's reduction = "query_max": Plan asks the
// backend for the group-max mass (which gives every head of a group the
// group's row, runtime/cpu's TestGroupMaxMassByHand works one out), the
// policy keeps the token that row ranks best, and a cache refuses a
// backend without that mass.
func TestH2OQueryMax(t *testing.T) {
	s := Shape{Layers: 1, QHeads: 2, KVHeads: 1, HeadDim: 4}
	f, err := New("h2o", map[string]any{"heavy": 1, "recent": 1, "reduction": "query_max"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.NewLayer(0, s)
	if err != nil {
		t.Fatal(err)
	}
	var view backend.View
	p.Reserve(3)
	p.Plan(Step{Start: 0, N: 3, PromptEnd: -1}, &view)
	if view.MassMode != backend.MassGroupMax {
		t.Errorf("mass mode %d, want MassGroupMax", view.MassMode)
	}
	p.Commit([]float32{0.4, 0.7, 0.2, 0.4, 0.7, 0.2}, make([]int32, 3))
	if got := p.Held(0, nil); !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("holds %v, want [1 2]", got)
	}
	df := f.(deviceFactory)
	if dp, err := df.onDevice(0, s, featureStub{has: true}); dp != nil || err != nil {
		t.Errorf("on a backend with the group-max mass: device policy %v, error %v; want the host policy", dp, err)
	}
	if _, err := df.onDevice(0, s, featureStub{}); err == nil || !strings.Contains(err.Error(), "parameter reduction") {
		t.Errorf("on a backend without the group-max mass: error %v, want one naming parameter reduction", err)
	}
	if err := CheckBackend("h2o", mustResolve(t, "h2o", map[string]any{"reduction": "query_max"}), "cuda", func(backend.Feature) bool { return false }); err == nil {
		t.Error("CheckBackend accepted query_max on a backend without the group-max mass")
	}
	if err := CheckBackend("h2o", mustResolve(t, "h2o", map[string]any{"reduction": "max"}), "cuda", func(backend.Feature) bool { return false }); err != nil {
		t.Errorf("CheckBackend refused max: %v", err)
	}
}

func mustResolve(t *testing.T, name string, raw map[string]any) Values {
	t.Helper()
	s, ok := Lookup(name)
	if !ok {
		t.Fatalf("no policy %s", name)
	}
	v, err := s.Resolve(raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSnapkvQueryHead works select = "query_head" out by hand: one KV head
// over two query heads, window 2, kernel 1 (no pooling), budget 4, a
// prompt of 6 tokens read in chunks of 4 and 2. The second chunk holds the
// window and brings the mass [9 8 0 5 1 1] from head 0, [9 0 8 5 1 1] from
// head 1. Head 0 keeps 0 1 and the window 4 5, head 1 0 2 4 5; the KV
// head stores their union 0 1 2 4 5 once (token 3, which kv_head's mean
// [9 4 4 5] keeps, is dropped and its slot freed), each head's view row
// reads its own four, token 4 takes token 3's freed slot and the decoded
// token a fresh one.
func TestSnapkvQueryHead(t *testing.T) {
	s := Shape{Layers: 1, QHeads: 2, KVHeads: 1, HeadDim: 4}
	mass := []float32{9, 8, 0, 5, 1, 1, 9, 0, 8, 5, 1, 1}
	for _, c := range []struct {
		sel        string
		held       []int64
		head0      []int64 // view row of query head 0 (query_head only)
		head1      []int64
		reservedAt int // Reserve(1) after the prompt
	}{
		{"kv_head", []int64{0, 3, 4, 5}, nil, nil, 6},
		{"query_head", []int64{0, 1, 2, 4, 5}, []int64{0, 1, 4, 5}, []int64{0, 2, 4, 5}, 6},
	} {
		p := newLayer(t, "snapkv", map[string]any{"window": 2, "kernel": 1, "budget": 4, "select": c.sel}, s)
		var view backend.View
		slotOf := map[int64]int32{}
		for _, ch := range []struct {
			start int64
			n     int
			mass  []float32
		}{{0, 4, nil}, {4, 2, mass}} {
			p.Reserve(ch.n)
			p.Plan(Step{Start: ch.start, N: ch.n, PromptEnd: 6}, &view)
			if (view.QueryWeights != nil) != (ch.mass != nil) {
				t.Fatalf("%s: chunk at %d asks for mass %v", c.sel, ch.start, view.QueryWeights)
			}
			place := make([]int32, ch.n)
			p.Commit(ch.mass, place)
			for i, sl := range place {
				if sl >= 0 {
					slotOf[ch.start+int64(i)] = sl
				}
			}
		}
		if got := p.Held(0, nil); !slices.Equal(got, c.held) {
			t.Errorf("%s: holds %v, want %v", c.sel, got, c.held)
		}
		if got := p.Reserve(1); got != c.reservedAt {
			t.Errorf("%s: Reserve(1) = %d after the prompt, want %d", c.sel, got, c.reservedAt)
		}
		p.Plan(Step{Start: 6, N: 1, PromptEnd: -1}, &view)
		if c.head0 != nil {
			if !view.PerQueryHead || view.ViewLen != 4 || len(view.Slots) != 8 || len(view.QueryPos) != 2 {
				t.Fatalf("%s: view per query head %v of %d keys, %d slots, %d query positions; want 2 rows of 4",
					c.sel, view.PerQueryHead, view.ViewLen, len(view.Slots), len(view.QueryPos))
			}
			for q, want := range [][]int64{c.head0, c.head1} {
				for j, tok := range want {
					if got := view.Slots[q*4+j]; got != slotOf[tok] {
						t.Errorf("%s: query head %d, key %d: slot %d, want token %d's %d", c.sel, q, j, got, tok, slotOf[tok])
					}
				}
			}
		}
		place := make([]int32, 1)
		p.Commit(nil, place)
		if c.sel == "query_head" && (slotOf[4] != 3 || place[0] != 5) {
			t.Errorf("%s: token 4 in slot %d, the decoded one in %d; want token 3's freed slot 3 and the fresh 5", c.sel, slotOf[4], place[0])
		}
	}
	f, err := New("snapkv", map[string]any{"select": "query_head"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.(deviceFactory).onDevice(0, s, featureStub{}); err == nil || !strings.Contains(err.Error(), "parameter select") {
		t.Errorf("on a backend without per-query-head views: error %v, want one naming parameter select", err)
	}
	if _, err := New("snapkv", map[string]any{"select": "query_head", "decode_every": 4}); err == nil {
		t.Error("select = query_head took decode_every")
	}
}
