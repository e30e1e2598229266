package policies

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// fillIndex returns an index of hd-dimensional keys over blocks of b
// tokens fed tokens keys, and the keys [tokens·hd].
func fillIndex(r *rand.Rand, hd, b, tokens int) (*blockIndex, []float32) {
	x := newBlockIndex(hd, b)
	keys := gaussian(r, tokens*hd)
	for t := range tokens {
		x.add(keys[t*hd : (t+1)*hd])
	}
	return x, keys
}

// TestBlockIndexBounds checks the tree invariants: every level has half
// the nodes of the one below (rounded down), a leaf's box is exactly the
// per-dimension min and max of its block's keys, and an internal node's is
// exactly the union of its children's, so every box contains every key
// under it.
func TestBlockIndexBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct{ hd, b, tokens int }{{4, 1, 37}, {8, 16, 16*45 + 7}, {3, 5, 5 * 64}, {2, 4, 3}} {
		t.Run(fmt.Sprintf("hd%d/b%d/n%d", tc.hd, tc.b, tc.tokens), func(t *testing.T) {
			x, keys := fillIndex(r, tc.hd, tc.b, tc.tokens)
			hd := tc.hd
			if got, want := x.blocks(), tc.tokens/tc.b; got != want {
				t.Fatalf("%d leaves, want %d", got, want)
			}
			for l := range x.lo {
				n := len(x.lo[l]) / hd
				if l > 0 && n != len(x.lo[l-1])/hd/2 {
					t.Fatalf("level %d has %d nodes over %d", l, n, len(x.lo[l-1])/hd)
				}
				span := tc.b << l // tokens under a node
				for i := range n {
					for d := range hd {
						lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
						for tok := i * span; tok < (i+1)*span; tok++ {
							lo, hi = min(lo, keys[tok*hd+d]), max(hi, keys[tok*hd+d])
						}
						if x.lo[l][i*hd+d] != lo || x.hi[l][i*hd+d] != hi {
							t.Fatalf("level %d node %d dim %d: box [%v, %v], keys span [%v, %v]", l, i, d, x.lo[l][i*hd+d], x.hi[l][i*hd+d], lo, hi)
						}
					}
				}
			}
			if n := len(x.lo); x.blocks() > 0 && n != bitsLen(x.blocks()) {
				t.Fatalf("%d levels over %d leaves", n, x.blocks())
			}
		})
	}
}

func bitsLen(n int) int {
	l := 0
	for ; n > 0; n >>= 1 {
		l++
	}
	return l
}

// bruteTop returns the k best of the first limit leaves by bound (ties:
// the later leaf), computing every leaf's bound directly from its box.
func bruteTop(x *blockIndex, qs []float32, k, limit int) []int32 {
	limit = min(limit, x.blocks())
	idx := make([]int32, limit)
	ub := make([]float32, limit)
	for i := range idx {
		idx[i] = int32(i)
		best := float32(math.Inf(-1))
		for g := 0; g*x.hd < len(qs); g++ {
			var s float32
			for d, q := range qs[g*x.hd : (g+1)*x.hd] {
				s += max(q*x.lo[0][i*x.hd+d], q*x.hi[0][i*x.hd+d])
			}
			best = max(best, s)
		}
		ub[i] = best
	}
	slices.SortFunc(idx, func(a, b int32) int {
		if ub[a] != ub[b] {
			if ub[a] > ub[b] {
				return -1
			}
			return 1
		}
		return int(b - a)
	})
	return idx[:min(k, limit)]
}

// searchCases are the indexes (head dimension, block size, tokens), GQA
// group sizes, k and prefix limits the searches are checked on against
// brute force.
var searchCases = []struct{ hd, b, tokens, g, k, limit int }{
	{8, 16, 16 * 300, 1, 4, 1 << 30},
	{8, 16, 16*300 + 9, 4, 8, 1 << 30},
	{16, 4, 4 * 1000, 2, 1, 513},
	{4, 1, 777, 1, 20, 700},
	{8, 8, 8 * 5, 2, 10, 1 << 30}, // k above the leaves
	{8, 8, 7, 1, 3, 1 << 30},      // no leaf yet
}

// TestBlockIndexSearchExact: the best-first descent returns exactly the
// brute-force top k leaves by bound, in order, on random keys and queries,
// for one query and for the max over a GQA group, over the whole index and
// over a prefix of it.
func TestBlockIndexSearchExact(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 3))
	for _, tc := range searchCases {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			x, _ := fillIndex(r, tc.hd, tc.b, tc.tokens)
			for trial := range 20 {
				qs := gaussian(r, tc.g*tc.hd)
				got, visits := x.search(qs, tc.k, tc.limit, nil)
				want := bruteTop(x, qs, tc.k, tc.limit)
				if !slices.Equal(got, want) {
					t.Fatalf("trial %d: search %v, brute force %v", trial, got, want)
				}
				if nodes := 2 * x.blocks(); visits > nodes {
					t.Fatalf("trial %d: %d visits over %d nodes", trial, visits, nodes)
				}
			}
		})
	}
}

// plantedIndex returns an index of blocks of b noise keys (σ = 0.1) with
// k blocks, spread over the stream, whose keys are 3·q plus noise: the
// setting where the bounds separate the relevant blocks from the rest.
func plantedIndex(r *rand.Rand, q []float32, b, blocks, k int) (*blockIndex, []int32) {
	hd := len(q)
	x := newBlockIndex(hd, b)
	var needles []int32
	for j := range k {
		needles = append(needles, int32((2*j+1)*blocks/(2*k)))
	}
	key := make([]float32, hd)
	for j := range blocks {
		needle := slices.Contains(needles, int32(j))
		for range b {
			for d := range key {
				key[d] = 0.1 * float32(r.NormFloat64())
				if needle {
					key[d] += 3 * q[d]
				}
			}
			x.add(key)
		}
	}
	return x, needles
}

// TestBlockIndexLogVisits: where the bounds separate the k relevant blocks
// (planted), the descent computes at most 2 bounds per level per result
// plus the roots, so the visits grow by a constant per doubling of N at
// fixed k (2k = 8 here), while a scan would double. On unstructured random keys the loose upper levels
// prune little; that count is logged, not bounded.
func TestBlockIndexLogVisits(t *testing.T) {
	const hd, b, k = 16, 16, 4
	r := rand.New(rand.NewPCG(5, 8))
	q := gaussian(r, hd)
	visitsAt := map[int]int{}
	for _, lg := range []int{6, 8, 10, 12, 14} {
		blocks := 1 << lg
		x, needles := plantedIndex(r, q, b, blocks, k)
		got, visits := x.search(q, k, blocks, nil)
		slices.Sort(got)
		if !slices.Equal(got, needles) {
			t.Fatalf("%d blocks: found %v, planted %v", blocks, got, needles)
		}
		if limit := 2*k*lg + lg + 1; visits > limit {
			t.Errorf("%d blocks: %d visits, more than 2·k·log₂N + roots = %d", blocks, visits, limit)
		}
		visitsAt[lg] = visits
		u, _ := fillIndex(r, hd, b, blocks*b)
		_, rv := u.search(q, k, blocks, nil)
		t.Logf("N = %6d blocks: %3d visits planted, %5d on random keys (of %d nodes)", blocks, visits, rv, 2*blocks-1)
	}
	// logarithmic: a constant number of visits more per doubling of N
	for lg := 8; lg <= 14; lg += 2 {
		if d := visitsAt[lg] - visitsAt[lg-2]; d > 2*(2*k+1) {
			t.Errorf("visits grew by %d from 2^%d to 2^%d blocks, more than 2·(2k+1) = %d per 4× N", d, lg-2, lg, 2*(2*k+1))
		}
	}
}

// TestLogsearchNeedle: one KV head, keys noise except a needle token whose
// key matches the final query. After 2,000 tokens sink (4 sinks + 32)
// lost it; logsearch with the same working set and one retrieved block of
// 4 attends to it, at the positions of the rest of its view.
func TestLogsearchNeedle(t *testing.T) {
	const hd, tokens, needle, chunk = 8, 2000, 300, 50
	s := Shape{Layers: 1, QHeads: 2, KVHeads: 1, HeadDim: hd}
	r := rand.New(rand.NewPCG(9, 9))
	dir := gaussian(r, hd)
	for _, pos := range []string{"cache", "original"} {
		t.Run(pos, func(t *testing.T) {
			ls := newHarness(t, "logsearch", map[string]any{"sinks": 4, "window": 32, "block": 4, "topk": 1, "positions": pos}, s)
			sk := newHarness(t, "sink", map[string]any{"sinks": 4, "window": 32, "positions": pos}, s)
			p := ls.p.(*logsearch)
			for seen := 0; seen < tokens; seen += chunk {
				keys := make([]float32, chunk*hd)
				for i := range keys {
					keys[i] = 0.1 * float32(r.NormFloat64())
				}
				if seen <= needle && needle < seen+chunk {
					copy(keys[(needle-seen)*hd:], dir)
				}
				var view = &ls.ctx
				p.setQuery(append(gaussian(r, hd), dir...)) // head 1 of the group looks for it
				p.Plan(Step{Start: int64(seen), N: chunk, PromptEnd: -1}, view)
				p.observeKeys(keys)
				place := make([]int32, chunk)
				p.Commit(nil, place)
				sk.chunk(chunk, -1)
			}
			p.setQuery(append(gaussian(r, hd), dir...))
			p.Plan(Step{Start: tokens, N: 1, PromptEnd: -1}, &ls.ctx)
			got := p.viewed(0, nil)
			if !slices.Contains(got, needle) {
				t.Fatalf("logsearch view lacks the needle %d: %v", needle, got)
			}
			if want := 4 + 4 + 32; len(got) < want || len(got) > want+3 || ls.ctx.ViewLen != len(got) {
				t.Fatalf("logsearch view of %d tokens (ViewLen %d), want %d to %d", len(got), ls.ctx.ViewLen, want, want+3)
			}
			j := slices.Index(got, needle)
			wantPos := int32(j)
			if pos == "original" {
				wantPos = needle
			}
			if ls.ctx.Pos[j] != wantPos || ls.ctx.Slots[j] != needle {
				t.Fatalf("needle at view index %d: slot %d, position %d; want slot %d, position %d", j, ls.ctx.Slots[j], ls.ctx.Pos[j], needle, wantPos)
			}
			if slices.Contains(sk.held(0), needle) {
				t.Fatalf("sink still holds the needle: %v", sk.held(0))
			}
		})
	}
}

// TestLogsearchWithoutQuery: a chunk planned without a query retrieves
// nothing and attends to the working set alone.
func TestLogsearchWithoutQuery(t *testing.T) {
	s := Shape{Layers: 1, QHeads: 2, KVHeads: 1, HeadDim: 4}
	h := newHarness(t, "logsearch", map[string]any{"sinks": 2, "window": 8, "block": 2, "topk": 3}, s)
	h.run(100, []int{5}, -1)
	p := h.p.(*logsearch)
	p.Plan(Step{Start: 100, N: 1, PromptEnd: -1}, &h.ctx)
	if got, want := h.ctx.ViewLen, 2+8; got < want || got > want+1 {
		t.Fatalf("view of %d tokens without a query, want %d or %d", got, want, want+1)
	}
}

// TestLogsearchParams: bad parameters are errors naming the parameter.
func TestLogsearchParams(t *testing.T) {
	for _, tc := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"block": 0}, "block"},
		{map[string]any{"topk": -1}, "topk"},
		{map[string]any{"window": -2}, "window"},
		{map[string]any{"window": 1 << 30}, "topk"},
	} {
		_, err := New("logsearch", tc.params)
		if err == nil || !containsWord(err.Error(), tc.want) {
			t.Errorf("New(logsearch, %v) = %v, want an error naming %s", tc.params, err, tc.want)
		}
	}
}

func containsWord(s, w string) bool { return slices.Contains(splitWords(s), w) }

func splitWords(s string) []string {
	var out []string
	cur := []rune{}
	for _, c := range s {
		if c == ' ' || c == ':' || c == ',' {
			if len(cur) > 0 {
				out = append(out, string(cur))
			}
			cur = cur[:0]
			continue
		}
		cur = append(cur, c)
	}
	return append(out, string(cur))
}

// TestBlockIndexBeam: searchBeam with a beam of at least the number of
// leaves is the exact top k by bound (brute force); with a narrow beam it
// computes at most the roots plus 2·beam bounds per level on random keys,
// where the exact search computes a large share of the tree; and where the
// bounds separate planted blocks, a beam of 2k finds them all.
func TestBlockIndexBeam(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, tc := range searchCases {
		x, _ := fillIndex(r, tc.hd, tc.b, tc.tokens)
		for trial := range 10 {
			qs := gaussian(r, tc.g*tc.hd)
			got, _ := x.searchBeam(qs, tc.k, tc.limit, 2*x.blocks(), nil)
			if want := bruteTop(x, qs, tc.k, tc.limit); !slices.Equal(got, want) {
				t.Fatalf("%+v trial %d: full-width beam %v, brute force %v", tc, trial, got, want)
			}
		}
	}
	const hd, b, k, beam = 16, 16, 4, 8
	for _, lg := range []int{6, 10, 14} {
		blocks := 1 << lg
		q := gaussian(r, hd)
		u, _ := fillIndex(r, hd, b, blocks*b)
		got, visits := u.searchBeam(q, k, blocks, beam, nil)
		_, exact := u.search(q, k, blocks, nil)
		if limit := lg + 1 + 2*beam*lg; len(got) != k || visits > limit {
			t.Errorf("random keys, %d blocks: %d results, %d bounds; want %d and at most roots + 2·beam·levels = %d", blocks, len(got), visits, k, limit)
		}
		t.Logf("random keys, N = %5d blocks: beam %d computes %3d bounds, the exact search %5d (of %d nodes)", blocks, beam, visits, exact, 2*blocks-1)
		x, needles := plantedIndex(r, q, b, blocks, k)
		found, _ := x.searchBeam(q, k, blocks, 2*k, nil)
		slices.Sort(found)
		if !slices.Equal(found, needles) {
			t.Errorf("planted, %d blocks: beam %d found %v, planted %v", blocks, 2*k, found, needles)
		}
	}
}
