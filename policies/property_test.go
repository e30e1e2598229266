package policies

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

var gqa = Shape{Layers: 1, QHeads: 6, KVHeads: 3, HeadDim: 8}

// TestPropertyInvariants runs every policy over long random streams, in
// chunks of mixed sizes and token by token, in both position modes. The
// harness checks, chunk by chunk: Reserve constant for bounded policies and
// never shrinking; every view and placed slot below it; no slot twice in a
// view; view slots written and holding what Held says, so no placement ever
// overwrote a token still held; cache positions 0..L−1 with the chunk at L,
// or original positions.
func TestPropertyInvariants(t *testing.T) {
	type tc struct {
		name   string
		params map[string]any
		tokens int
		chunks []int
		prompt int64 // prompt end, −1: none
	}
	mixed := []int{1, 7, 64, 3, 200, 1, 1, 33}
	cases := []tc{
		{"cascade", map[string]any{"sinks": 4, "size": 64, "cascades": 4}, 3000, mixed, -1},
		{"cascade", map[string]any{"sinks": 4, "size": 64, "cascades": 4}, 700, []int{1}, -1},
		{"cascade", map[string]any{"sinks": 0, "size": 30, "cascades": 3, "rule": "iplus1", "eager_fill": false}, 2000, mixed, -1},
		{"cascade", map[string]any{"sinks": 3, "size": 48, "cascades": 4, "rule": "pow3", "reduction": "max"}, 2000, mixed, -1},
		{"cascade", map[string]any{"sinks": 2, "size": 40, "cascades": 2, "rule": "pow4", "homogeneous": true}, 2000, mixed, -1},
		{"cascade", map[string]any{"sinks": 64, "size": 16, "cascades": 16}, 1000, mixed, -1},
		{"sink", map[string]any{"sinks": 4, "window": 50}, 2000, mixed, -1},
		{"sink", map[string]any{"sinks": 0, "window": 1}, 300, mixed, -1},
		{"h2o", map[string]any{"heavy": 20, "recent": 10}, 2000, mixed, -1},
		{"h2o", map[string]any{"heavy": 0, "recent": 10}, 500, mixed, -1},
		{"h2o", map[string]any{"heavy": 10, "recent": 0}, 500, mixed, -1},
		{"snapkv", map[string]any{"window": 8, "kernel": 3, "budget": 40}, 1200, mixed, 900},
		{"snapkv", map[string]any{"window": 8, "kernel": 5, "budget": 40, "pooling": "avg"}, 300, []int{1}, 200},
		{"snapkv", map[string]any{"window": 8, "budget": 400}, 500, mixed, 300},
		{"bigbird", map[string]any{"global": 3, "window": 20, "random_blocks": 2, "block": 8, "seed": 5}, 1500, mixed, -1},
		{"bigbird", map[string]any{"global": 0, "window": 0, "random_blocks": 3, "block": 4}, 400, mixed, -1},
		{"full", nil, 500, mixed, -1},
		{"random", map[string]any{"budget": 40, "sinks": 4, "window": 8, "seed": 3}, 1500, mixed, -1},
		{"random", map[string]any{"budget": 20}, 500, []int{1}, -1},
		{"knorm", map[string]any{"budget": 40, "sinks": 4, "window": 8}, 1500, mixed, -1},
		{"knorm", map[string]any{"budget": 16}, 500, mixed, -1},
		{"tova", map[string]any{"budget": 40, "sinks": 4, "window": 8}, 1500, mixed, -1},
		{"tova", map[string]any{"budget": 12}, 500, []int{1}, -1},
		{"pyramidkv", map[string]any{"window": 8, "kernel": 3, "budget": 40}, 1200, mixed, 900},
		{"snapkv", map[string]any{"window": 8, "kernel": 5, "budget": 40, "pooling": "avg", "select": "query_head"}, 1200, mixed, 900},
		{"snapkv", map[string]any{"window": 4, "budget": 12, "select": "query_head"}, 300, []int{1}, 200},
		{"pyramidkv", map[string]any{"window": 8, "kernel": 3, "budget": 40, "select": "query_head"}, 1200, mixed, 900},
		{"h2o", map[string]any{"heavy": 20, "recent": 10, "reduction": "query_max"}, 2000, mixed, -1},
		{"snapkv", map[string]any{"window": 8, "kernel": 3, "budget": 40, "decode_every": 5, "decode_target": 30}, 1200, mixed, 700},
		{"snapkv", map[string]any{"window": 4, "budget": 20, "decode_every": 1}, 600, mixed, -1},
		{"adakv", map[string]any{"window": 8, "kernel": 3, "budget": 40}, 1200, mixed, 900},
		{"adakv", map[string]any{"window": 4, "budget": 20, "safeguard": 0.0}, 300, []int{1}, 200},
		{"adakv", map[string]any{"window": 4, "budget": 30, "safeguard": 1.0}, 500, mixed, 300},
		{"expected_attention", map[string]any{"budget": 40, "sinks": 4, "window": 8, "queries": 16, "future": 32}, 1500, mixed, -1},
		{"expected_attention", map[string]any{"budget": 12, "covariance": false, "vnorm": false}, 500, []int{1}, -1},
		{"logsearch", map[string]any{"sinks": 4, "window": 20, "block": 4, "topk": 3}, 1500, mixed, -1},
		{"logsearch", map[string]any{"sinks": 0, "window": 0, "block": 1, "topk": 2}, 300, mixed, -1},
		{"logsearch", map[string]any{"sinks": 4, "window": 20, "block": 4, "topk": 3, "device_tokens": 40}, 1500, mixed, -1},
		{"logsearch", map[string]any{"sinks": 0, "window": 0, "block": 1, "topk": 2, "device_tokens": 3}, 300, mixed, -1},
		{"quest", map[string]any{"sinks": 4, "page": 4, "topk": 3}, 1500, mixed, -1},
		{"quest", map[string]any{"sinks": 0, "window": 9, "page": 1, "topk": 2}, 300, mixed, -1},
		{"duo", map[string]any{"sinks": 4, "window": 20}, 1500, mixed, -1},
		{"duo", map[string]any{"sinks": 4, "window": 24, "streaming": "cascade", "cascades": 3}, 1500, mixed, -1},
		{"duo", map[string]any{"window": 12, "streaming": "cascade", "retrieval_ratio": 0.0, "cascades": 2}, 700, []int{1}, -1},
		{"duo", map[string]any{"window": 12, "heads": "random", "seed": 3, "retrieval_ratio": 0.34}, 700, mixed, -1},
		{"duo", map[string]any{"window": 12, "retrieval_ratio": 1.0}, 300, mixed, -1},
	}
	for _, c := range cases {
		for _, mode := range []string{"cache", "original"} {
			params := map[string]any{}
			for k, v := range c.params {
				params[k] = v
			}
			if c.name != "full" {
				params["positions"] = mode
			} else if mode == "original" {
				continue
			}
			t.Run(fmt.Sprintf("%s%v/%v", c.name, params, c.chunks), func(t *testing.T) {
				h := newHarness(t, c.name, params, gqa)
				h.original = mode == "original" || c.name == "full"
				h.mass = randomMass(rand.New(rand.NewPCG(1, 2)))
				h.run(c.tokens, c.chunks, c.prompt)
				h.chunk(1, -1) // checks the final state
			})
		}
	}
}

// TestPropertySinksStay: cascade and sink never evict a sink token.
func TestPropertySinksStay(t *testing.T) {
	for _, c := range []struct {
		name   string
		params map[string]any
	}{
		{"cascade", map[string]any{"sinks": 5, "size": 32, "cascades": 4}},
		{"cascade", map[string]any{"sinks": 5, "size": 32, "cascades": 4, "eager_fill": false}},
		{"sink", map[string]any{"sinks": 5, "window": 32}},
		{"random", map[string]any{"sinks": 5, "budget": 32}},
		{"knorm", map[string]any{"sinks": 5, "budget": 32, "window": 3}},
		{"tova", map[string]any{"sinks": 5, "budget": 32}},
		{"expected_attention", map[string]any{"sinks": 5, "budget": 32, "queries": 8}},
	} {
		h := newHarness(t, c.name, c.params, gqa)
		h.mass = randomMass(rand.New(rand.NewPCG(3, 4)))
		want := []int64{0, 1, 2, 3, 4}
		for h.seen < 2000 {
			h.chunk(int(1+h.seen%37), -1)
			for kh := range gqa.KVHeads {
				if h.seen < 5 {
					break
				}
				if got := h.held(kh)[:5]; !slices.Equal(got, want) {
					t.Fatalf("%s%v at %d head %d: first held %v, want the sinks %v", c.name, c.params, h.seen, kh, got, want)
				}
			}
		}
	}
}

// lockstep runs two policies on the same chunks and mass and fails when
// their held tokens or view positions ever differ.
func lockstep(t *testing.T, a, b *harness, tokens int, chunks []int) {
	t.Helper()
	for i := 0; a.seen < int64(tokens); i++ {
		n := chunks[i%len(chunks)]
		a.chunk(n, -1)
		b.chunk(n, -1)
		if !slices.Equal(a.ctx.Pos, b.ctx.Pos) || !slices.Equal(a.ctx.QueryPos, b.ctx.QueryPos) {
			t.Fatalf("at %d: view positions differ:\n%s: %v %v\n%s: %v %v", a.seen, a.name, a.ctx.Pos, a.ctx.QueryPos,
				b.name, b.ctx.Pos, b.ctx.QueryPos)
		}
		for kh := range a.s.KVHeads {
			if ha, hb := a.held(kh), b.held(kh); !slices.Equal(ha, hb) {
				t.Fatalf("at %d head %d: held differ:\n%s: %v\n%s: %v", a.seen, kh, a.name, clip(ha), b.name, clip(hb))
			}
		}
	}
}

// TestPropertyCascadeOneIsSink: a cascade of one cascade is StreamingLLM.
func TestPropertyCascadeOneIsSink(t *testing.T) {
	for _, chunks := range [][]int{{1}, {5, 64, 1, 17, 200, 2}} {
		for _, eager := range []bool{true, false} {
			for _, mode := range []string{"cache", "original"} {
				name := fmt.Sprintf("chunks%v/eager=%v/%s", chunks, eager, mode)
				t.Run(name, func(t *testing.T) {
					c := newHarness(t, "cascade", map[string]any{"sinks": 4, "size": 50, "cascades": 1,
						"eager_fill": eager, "positions": mode}, gqa)
					c.mass = randomMass(rand.New(rand.NewPCG(5, 6)))
					s := newHarness(t, "sink", map[string]any{"sinks": 4, "window": 50, "positions": mode}, gqa)
					lockstep(t, c, s, 3000, chunks)
				})
			}
		}
	}
}

// TestPropertyH2OHeavyZeroIsWindow: h2o without heavy hitters is a sliding
// window.
func TestPropertyH2OHeavyZeroIsWindow(t *testing.T) {
	for _, chunks := range [][]int{{1}, {5, 64, 1, 17, 200, 2}} {
		h := newHarness(t, "h2o", map[string]any{"heavy": 0, "recent": 40}, gqa)
		h.mass = randomMass(rand.New(rand.NewPCG(7, 8)))
		s := newHarness(t, "sink", map[string]any{"sinks": 0, "window": 40}, gqa)
		lockstep(t, h, s, 2000, chunks)
	}
}

// TestPropertyBigBirdSeed: the pattern of a chunk depends on the seed, the
// layer, the head and the chunk's start only.
func TestPropertyBigBirdSeed(t *testing.T) {
	params := func(seed int) map[string]any {
		return map[string]any{"global": 2, "window": 16, "random_blocks": 3, "block": 4, "seed": seed}
	}
	views := func(seed int, chunks []int) map[int64][]int32 {
		h := newHarness(t, "bigbird", params(seed), gqa)
		out := map[int64][]int32{}
		for i := 0; h.seen < 1000; i++ {
			start := h.seen
			h.chunk(chunks[i%len(chunks)], -1)
			out[start] = slices.Clone(h.ctx.Slots)
		}
		return out
	}
	a, b, c := views(1, []int{1}), views(1, []int{3, 1, 8}), views(2, []int{1})
	common, differ := 0, 0
	for start, va := range b {
		if !slices.Equal(va, a[start]) {
			t.Fatalf("seed 1, chunk at %d: views differ with the chunking:\n%v\n%v", start, va, a[start])
		}
		common++
	}
	for start, va := range a {
		if !slices.Equal(va, c[start]) {
			differ++
		}
	}
	if common == 0 || differ < len(a)/2 {
		t.Fatalf("%d common chunk starts; seeds 1 and 2 differ at %d of %d", common, differ, len(a))
	}
	// heads differ too, at least sometimes
	sameHeads := 0
	for _, v := range a {
		L := len(v) / gqa.KVHeads
		if slices.Equal(v[:L], v[L:2*L]) {
			sameHeads++
		}
	}
	if sameHeads > len(a)*3/4 {
		t.Fatalf("heads 0 and 1 see the same blocks in %d of %d chunks", sameHeads, len(a))
	}
}

// TestPropertySnapKVBudget: right after the prompt a head holds exactly
// budget tokens, the prompt's window among them, and the keys the window
// attends to most; decoding then appends.
func TestPropertySnapKVBudget(t *testing.T) {
	const prompt, window, budget = 700, 16, 100
	for _, chunks := range [][]int{{1}, {64}, {100, 7, 300}} {
		for _, pooling := range []string{"max", "avg"} {
			h := newHarness(t, "snapkv", map[string]any{"window": window, "budget": budget, "pooling": pooling}, gqa)
			const target = 123
			h.mass = focusMass(target, rand.New(rand.NewPCG(9, 10)), gqa.Group())
			h.run(prompt, chunks, prompt)
			for kh := range gqa.KVHeads {
				held := h.held(kh)
				if len(held) != budget {
					t.Fatalf("%v %s head %d: %d held after the prompt, want %d", chunks, pooling, kh, len(held), budget)
				}
				if !slices.Contains(held, target) {
					t.Fatalf("%v %s head %d: the attended token %d was evicted: %v", chunks, pooling, kh, target, held)
				}
				for x := int64(prompt - window); x < prompt; x++ {
					if !slices.Contains(held, x) {
						t.Fatalf("%v %s head %d: window token %d was evicted", chunks, pooling, kh, x)
					}
				}
			}
			h.run(prompt+50, []int{1}, -1)
			if n := len(h.held(0)); n != budget+50 {
				t.Fatalf("%v %s: %d held after 50 generated tokens, want %d", chunks, pooling, n, budget+50)
			}
		}
	}
}

// lastHeld runs a policy with all attention on target and returns the
// last token count at which target was still held.
func lastHeld(t *testing.T, name string, params map[string]any, target int64, tokens int) (last, seen int64) {
	h := newHarness(t, name, params, gqa)
	h.mass = focusMass(target, rand.New(rand.NewPCG(11, 12)), gqa.Group())
	last = -1
	for i := 0; h.seen < int64(tokens); i++ {
		h.chunk([]int{1, 9, 30, 2}[i%4], -1)
		if slices.Contains(h.held(0), target) {
			last = h.seen
		}
	}
	return last, h.seen
}

// TestPropertyFocusSurvives: a token that takes all the attention outlives
// the window of StreamingLLM in the cascade, and in h2o, of the same memory,
// and in a streaming head of duo with streaming = "cascade".
func TestPropertyFocusSurvives(t *testing.T) {
	const target, tokens = 300, 6000
	sink, _ := lastHeld(t, "sink", map[string]any{"sinks": 4, "window": 64}, target, tokens)
	cascade, _ := lastHeld(t, "cascade", map[string]any{"sinks": 4, "size": 64, "cascades": 4}, target, tokens)
	h2o, end := lastHeld(t, "h2o", map[string]any{"heavy": 34, "recent": 34}, target, tokens)
	// head 0 is a streaming head beside a retrieval head (testScores), so
	// its view is padded and its mass mapped by duo
	duo, _ := lastHeld(t, "duo", map[string]any{"sinks": 4, "window": 64, "cascades": 4, "streaming": "cascade", "retrieval_ratio": 0.34}, target, tokens)
	t.Logf("token %d last held after %d tokens by sink, %d by cascade, %d by h2o, %d by duo's cascade", target, sink, cascade, h2o, duo)
	if duo <= sink || duo == end {
		t.Fatalf("the attended token did not outlive the sink window in duo's streaming cascade: sink %d, duo %d", sink, duo)
	}
	if sink > target+64+30 {
		t.Fatalf("sink held %d until %d", target, sink)
	}
	if cascade <= sink || h2o <= sink {
		t.Fatalf("the attended token did not outlive the sink window: sink %d, cascade %d, h2o %d", sink, cascade, h2o)
	}
	if h2o != end {
		t.Fatalf("h2o dropped the heavy hitter at %d", h2o)
	}
}

// TestPropertyNoAllocs: the hot path of the bounded policies does not
// allocate once warm.
func TestPropertyNoAllocs(t *testing.T) {
	for _, c := range []struct {
		name   string
		params map[string]any
	}{
		{"cascade", map[string]any{"sinks": 4, "size": 256, "cascades": 4}},
		{"sink", map[string]any{"sinks": 4, "window": 256}},
		{"h2o", map[string]any{"heavy": 100, "recent": 100}},
	} {
		h := newHarness(t, c.name, c.params, gqa)
		h.mass = randomMass(rand.New(rand.NewPCG(13, 14)))
		h.run(2000, []int{1, 64}, -1)
		p, mass, place := h.p, h.massBuf, h.place
		seen := h.seen
		for _, n := range []int{1, 64} {
			allocs := testing.AllocsPerRun(50, func() {
				p.Reserve(n)
				p.Plan(Step{Start: seen, N: n, PromptEnd: -1}, &h.ctx)
				var m []float32
				if h.ctx.QueryWeights != nil {
					m = mass[:gqa.QHeads*(h.ctx.ViewLen+n)]
				}
				p.Commit(m, place[:gqa.KVHeads*n])
				seen += int64(n)
			})
			if allocs != 0 {
				t.Errorf("%s: %v allocations per chunk of %d", c.name, allocs, n)
			}
		}
	}
}
