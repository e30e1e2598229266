package policies

import (
	"math"
	"slices"
	"testing"

	"kvcascade/runtime/backend"
)

// one is a shape with one query head per KV head, so that the mass handed
// to Commit is each key's score as is.
var one = Shape{Layers: 1, QHeads: 1, KVHeads: 1, HeadDim: 8}

func newCascadeLayer(t *testing.T, params map[string]any, s Shape) *cascade {
	t.Helper()
	return newLayer(t, "cascade", params, s).(*cascade)
}

// feed runs one chunk whose mass is given per view entry and per chunk
// token (single head) and returns the slots placed.
func feed(t *testing.T, p Policy, start int64, view, chunk []float32) []int32 {
	t.Helper()
	var ctx backend.View
	p.Plan(Step{Start: start, N: len(chunk), PromptEnd: -1}, &ctx)
	if ctx.ViewLen != len(view) {
		t.Fatalf("view of %d keys, test gives mass for %d", ctx.ViewLen, len(view))
	}
	place := make([]int32, len(chunk))
	p.Commit(append(slices.Clone(view), chunk...), place)
	return place
}

// TestCascadeHandWorked follows the kernel's walk by hand on sinks = 2 and
// two cascades of two entries: tokens 2..6 fill the cache eagerly (t ≤
// size + sinks), token 6 pushes token 2 out of the last cascade; token 7 is
// not accepted by cascade 1 and competes with its newest entry, token 4;
// token 8 is accepted and pushes out cascade 1's oldest.
func TestCascadeHandWorked(t *testing.T) {
	params := map[string]any{"sinks": 2, "size": 4, "cascades": 2}
	for _, c := range []struct {
		name   string
		scores []float32 // of tokens 0..8
		held   []int64
	}{
		{"5 beats 4", []float32{9, 9, 0, 0, 1, 2, 0, 0, 0}, []int64{0, 1, 5, 6, 7, 8}},
		{"5 ties 4", []float32{9, 9, 0, 0, 1, 1, 0, 0, 0}, []int64{0, 1, 5, 6, 7, 8}},
		{"5 loses", []float32{9, 9, 0, 0, 1, 0.5, 0, 0, 0}, []int64{0, 1, 4, 6, 7, 8}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newCascadeLayer(t, params, one)
			place := feed(t, p, 0, nil, c.scores)
			if got := p.Held(0, nil); !slices.Equal(got, c.held) {
				t.Fatalf("held %v, want %v", got, c.held)
			}
			// every held chunk token has a distinct slot, the others none
			used := map[int32]bool{}
			for i, s := range place {
				kept := slices.Contains(c.held, int64(i))
				if kept != (s >= 0) || (s >= 0 && used[s]) || s >= 6 {
					t.Fatalf("place %v for held %v", place, c.held)
				}
				used[s] = true
			}
			var ctx backend.View
			p.Plan(Step{Start: 9, N: 1, PromptEnd: -1}, &ctx)
			if !slices.Equal(ctx.Pos, []int32{0, 1, 2, 3, 4, 5}) || ctx.QueryPos[0] != 6 {
				t.Fatalf("positions %v, query at %d", ctx.Pos, ctx.QueryPos[0])
			}
		})
	}
}

// TestCascadeSlowRule shows the one rule in which the Triton kernel differs
// from the reference's older CascadingKVCacheSlow class: a token a cascade
// does not accept competes with the cascade's newest entry in the kernel,
// with its oldest in the Slow class. Non-eager, no sinks, two cascades of
// two: tokens 0,1 fill cascade 0; 2 pushes 0 into cascade 1; 3 pushes 1,
// which cascade 1 does not accept and which loses to 0 (score 5 > 1) under
// both rules; 4 pushes 2 into cascade 1 = [0, 2]; 5 pushes 3 (score 3),
// which the kernel compares with the newest, 2 (score 1), and keeps, while
// the Slow rule compares it with the oldest, 0 (score 5), and drops it.
func TestCascadeSlowRule(t *testing.T) {
	params := map[string]any{"sinks": 0, "size": 4, "cascades": 2, "eager_fill": false}
	scores := []float32{5, 1, 1, 3, 0, 0}
	for _, c := range []struct {
		oldest bool
		held   []int64
		kept   []float32
	}{
		{false, []int64{0, 3, 4, 5}, []float32{5, 3, 0, 0}},
		{true, []int64{0, 2, 4, 5}, []float32{5, 1, 0, 0}},
	} {
		p := newCascadeLayer(t, params, one)
		p.c.compareOldest = c.oldest
		feed(t, p, 0, nil, scores)
		if got := p.Held(0, nil); !slices.Equal(got, c.held) {
			t.Errorf("compare with oldest %v: held %v, want %v", c.oldest, got, c.held)
		}
		if got := p.Scores(0, nil); !slices.Equal(got, c.kept) {
			t.Errorf("compare with oldest %v: scores %v, want %v", c.oldest, got, c.kept)
		}
	}
}

// TestCascadeScoreUpdate: cached scores age by β^n and add the chunk's mass
// in two float32 roundings before the chunk's tokens walk; the query
// weights are (1−β)·β^(n−1−q).
func TestCascadeScoreUpdate(t *testing.T) {
	const beta = 0.9
	p := newCascadeLayer(t, map[string]any{"sinks": 1, "size": 8, "cascades": 2, "beta": beta}, one)
	first := []float32{0.5, 0.1, 0.2, 0.3}
	feed(t, p, 0, nil, first)
	var ctx backend.View
	p.Plan(Step{Start: 4, N: 3, PromptEnd: -1}, &ctx)
	for q, w := range ctx.QueryWeights {
		want := float32((1 - beta) * math.Pow(beta, float64(2-q)))
		if w != want {
			t.Fatalf("query weight %d = %v, want %v", q, w, want)
		}
	}
	view := []float32{7, 0.25, 0.5, 0.125} // sink, then tokens 1..3
	chunk := []float32{0.01, 0.02, 0.03}
	place := make([]int32, 3)
	p.Commit(append(slices.Clone(view), chunk...), place)
	bn := float32(math.Pow(beta, 3))
	var want []float32
	for i, s := range first[1:] {
		want = append(want, float32(bn*s)+view[1+i])
	}
	want = append(want, chunk...)
	if got := p.Scores(0, nil); !slices.Equal(got, want) {
		t.Fatalf("scores %v, want %v", got, want)
	}
}

func TestAcceptEvery(t *testing.T) {
	for _, c := range []struct {
		rule string
		want []int64
	}{
		{"pow2", []int64{1, 2, 4, 8}},
		{"pow3", []int64{1, 3, 9, 27}},
		{"pow4", []int64{1, 4, 16, 64}},
		{"iplus1", []int64{1, 2, 3, 4}},
	} {
		if got := acceptEvery(c.rule, 4); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.rule, got, c.want)
		}
	}
	if got := acceptEvery("pow4", 40); got[39] != math.MaxInt64 || got[31] != 1<<62 {
		t.Errorf("pow4 over 40 cascades does not saturate: %v", got)
	}
}
