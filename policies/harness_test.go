package policies

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"kvcascade/runtime/backend"
)

// harness drives one layer's policy the way Cache does, over a fake storage
// that records which original position each slot of each head holds, and
// checks the invariants every policy must keep.
type harness struct {
	t        testing.TB
	name     string
	p        Policy
	s        Shape
	bounded  bool      // Reserve must be constant
	reserve  int       // first Reserve seen
	store    [][]int64 // [Hkv][slot] original position written there, −1 none
	seen     int64
	ctx      backend.View
	place    []int32
	massBuf  []float32
	viewOnly bool // Held is more than the view (bigbird)
	padded   bool // heads' views may end in padding (duo)
	pooled   bool // all heads draw from one pool of slots, store[0]; views are ragged (adakv)
	original bool // positions = original
	// mass, when set, fills the attention mass of the chunk: m [Hq·(L+n)],
	// given the original position of every view entry of every view row
	// (a KV head, or a query head when the view has a row per query head).
	mass func(m []float32, L, n int, orig [][]int64, step Step)
	orig [][]int64
	// rng draws the queries and keys a searcher is handed
	rng *rand.Rand
	// tier, when not nil, is the fake host tier of a tiered policy:
	// [Hkv][row] the original position written there, −1 none
	tier [][]int64
}

// newLayer returns layer 0 of the policy name(params) for shape s.
func newLayer(t testing.TB, name string, params map[string]any, s Shape) Policy {
	t.Helper()
	f, err := New(name, params)
	if err != nil {
		t.Fatalf("New(%s, %v): %v", name, params, err)
	}
	p, err := f.NewLayer(0, s)
	if err != nil {
		t.Fatalf("NewLayer: %v", err)
	}
	return p
}

func newHarness(t testing.TB, name string, params map[string]any, s Shape) *harness {
	t.Helper()
	f, err := New(name, params)
	if err != nil {
		t.Fatalf("New(%s, %v): %v", name, params, err)
	}
	if c, ok := f.(Calibrator); ok {
		if f, err = c.Calibrated(testScores(s)); err != nil {
			t.Fatalf("Calibrated: %v", err)
		}
	}
	p, err := f.NewLayer(0, s)
	if err != nil {
		t.Fatalf("NewLayer: %v", err)
	}
	h := &harness{t: t, name: fmt.Sprintf("%s%v", name, params), p: p, s: s, store: make([][]int64, s.KVHeads)}
	h.bounded = slices.Contains([]string{"cascade", "sink", "h2o", "random", "knorm", "tova", "expected_attention"}, name)
	h.viewOnly = name == "bigbird" || name == "hip_bigbird" || name == "logsearch" || name == "quest"
	h.padded = name == "duo"
	h.original = params["positions"] == "original" || name == "hip_bigbird" || name == "quest" && params["positions"] == nil
	if sh, ok := p.(slotSharer); ok && sh.sharesSlots() {
		h.pooled = true
	}
	if r, ok := p.(roped); ok {
		r.setRoPE(testRoPE(s.HeadDim))
	}
	if tp, ok := p.(tiered); ok && tp.tierOn() {
		h.tier = make([][]int64, s.KVHeads) // the fake storage follows the host tier's copies
	}
	return h
}

// run feeds tokens in chunks of the given sizes, cycling through them.
func (h *harness) run(tokens int, chunks []int, promptEnd int64) {
	for i := 0; h.seen < int64(tokens); i++ {
		n := min(chunks[i%len(chunks)], tokens-int(h.seen))
		pe := promptEnd
		if pe >= 0 && h.seen >= pe {
			pe = -1
		}
		if pe > h.seen && h.seen+int64(n) > pe {
			n = int(pe - h.seen) // a chunk never crosses the prompt's end
		}
		h.chunk(n, pe)
	}
}

// chunk runs one chunk of n tokens through the policy and checks it.
func (h *harness) chunk(n int, promptEnd int64) {
	t := h.t
	t.Helper()
	hk := h.s.KVHeads
	need := h.p.Reserve(n)
	if h.reserve == 0 {
		h.reserve = need
	}
	if need < h.reserve || (h.bounded && need != h.reserve) {
		t.Fatalf("%s at %d: Reserve(%d) = %d after %d", h.name, h.seen, n, need, h.reserve)
	}
	h.reserve = need
	for kh := range h.store {
		for len(h.store[kh]) < need {
			h.store[kh] = append(h.store[kh], -1)
		}
	}
	step := Step{Start: h.seen, N: n, PromptEnd: promptEnd}
	sp, search := h.p.(searcher)
	if search {
		if h.rng == nil {
			h.rng = rand.New(rand.NewPCG(7, uint64(h.seen)))
		}
		sp.setQuery(gaussian(h.rng, h.s.QHeads*h.s.HeadDim))
	}
	if qo, ok := h.p.(queryObserver); ok && qo.wantsQueries() {
		if h.rng == nil {
			h.rng = rand.New(rand.NewPCG(7, uint64(h.seen)))
		}
		qo.observeQueries(gaussian(h.rng, n*h.s.QHeads*h.s.HeadDim))
	}
	h.p.Plan(step, &h.ctx)
	if h.tier != nil {
		h.tierFetch(h.p.(tiered))
	}
	L := h.ctx.ViewLen
	rows, share := hk, 1 // view rows, and rows per KV head
	if h.ctx.PerQueryHead {
		rows, share = h.s.QHeads, h.s.Group()
	}
	if len(h.ctx.Slots) != rows*L || len(h.ctx.Pos) != rows*L || len(h.ctx.QueryPos) != rows {
		t.Fatalf("%s at %d: view of %d has %d slots, %d positions, %d query positions", h.name, h.seen, L,
			len(h.ctx.Slots), len(h.ctx.Pos), len(h.ctx.QueryPos))
	}
	original := h.original
	h.orig = grow(h.orig, rows)
	var inView map[int32]int // pooled: the head viewing each slot
	if h.pooled {
		inView = map[int32]int{}
	}
	for r := 0; r < rows; r++ {
		kh := r / share // the KV head whose storage row r reads
		slots, pos := h.ctx.Slots[r*L:(r+1)*L], h.ctx.Pos[r*L:(r+1)*L]
		h.orig[r] = h.orig[r][:0]
		store := h.storeOf(kh)
		// a head whose view is shorter than L (duo's) pads its end with
		// negative slots; what it attends to is the part before. A pooled
		// head's own keys are the ones it holds; the rest of its row is
		// padding
		Lh := L
		for h.padded && Lh > 0 && slots[Lh-1] < 0 {
			Lh--
		}
		if h.pooled {
			Lh = len(h.p.Held(kh, nil))
			for j := Lh; j < L; j++ {
				if slots[j] >= 0 {
					t.Fatalf("%s at %d head %d: view slot %d = %d past the head's %d keys", h.name, h.seen, kh, j, slots[j], Lh)
				}
			}
			for _, s := range slots[:Lh] {
				if o, ok := inView[s]; ok {
					t.Fatalf("%s at %d: pool slot %d in the views of heads %d and %d", h.name, h.seen, s, o, kh)
				}
				inView[s] = kh
			}
		}
		slots, pos = slots[:Lh], pos[:Lh]
		for j, s := range slots {
			if s < 0 || int(s) >= need {
				t.Fatalf("%s at %d head %d: view slot %d = %d outside [0, %d)", h.name, h.seen, kh, j, s, need)
			}
			h.orig[r] = append(h.orig[r], store[s])
			if store[s] < 0 {
				t.Fatalf("%s at %d head %d: view slot %d = %d was never written", h.name, h.seen, kh, j, s)
			}
		}
		for len(h.orig[kh]) < L {
			h.orig[kh] = append(h.orig[kh], -1) // padding: the mass functions skip it
		}
		if dup := firstDup(slots); dup >= 0 {
			t.Fatalf("%s at %d head %d: slot %d twice in the view", h.name, h.seen, kh, dup)
		}
		// positions: original mode gives the stored token's position,
		// cache mode 0..L−1 and L for the chunk
		for j := range pos {
			want := int32(j)
			if original {
				want = int32(h.orig[r][j])
			}
			if pos[j] != want {
				t.Fatalf("%s at %d row %d: view %d has position %d, want %d (slot %d holds %d)", h.name, h.seen, r, j,
					pos[j], want, slots[j], h.orig[r][j])
			}
		}
		if wantQ := int32(Lh); original && h.ctx.QueryPos[r] != int32(h.seen) || !original && h.ctx.QueryPos[r] != wantQ {
			t.Fatalf("%s at %d row %d: query position %d with %d keys in view", h.name, h.seen, r, h.ctx.QueryPos[r], Lh)
		}
		if h.ctx.PerQueryHead {
			if held := h.p.(*snapkvQuery).HeldByQuery(r, nil); !slices.Equal(held, h.orig[r]) {
				t.Fatalf("%s at %d query head %d: holds %v\nbut its view row holds %v", h.name, h.seen, r, clip(held), clip(h.orig[r]))
			}
			continue
		}
		held := h.p.Held(kh, nil)
		if h.viewOnly {
			for _, x := range h.orig[kh] {
				if _, ok := slices.BinarySearch(held, x); !ok {
					t.Fatalf("%s at %d head %d: view token %d not held", h.name, h.seen, kh, x)
				}
			}
		} else if !slices.Equal(held, h.orig[kh][:Lh]) {
			t.Fatalf("%s at %d head %d: Held %v\nbut the view slots hold %v", h.name, h.seen, kh, clip(held), clip(h.orig[kh]))
		}
	}
	if h.ctx.PerQueryHead {
		// a KV head holds the union of its query heads' rows
		for kh := 0; kh < hk; kh++ {
			var union []int64
			for r := kh * share; r < (kh+1)*share; r++ {
				union = append(union, h.orig[r]...)
			}
			slices.Sort(union)
			union = slices.Compact(union)
			if held := h.p.Held(kh, nil); !slices.Equal(held, union) {
				t.Fatalf("%s at %d head %d: Held %v\nbut its query heads' rows hold %v", h.name, h.seen, kh, clip(held), clip(union))
			}
		}
	}
	var mass []float32
	if h.ctx.QueryWeights != nil {
		if len(h.ctx.QueryWeights) != n {
			t.Fatalf("%s: %d query weights for %d queries", h.name, len(h.ctx.QueryWeights), n)
		}
		h.massBuf = grow(h.massBuf, h.s.QHeads*(L+n))
		mass = h.massBuf
		clear(mass)
		if h.mass != nil {
			h.mass(mass, L, n, h.orig, step)
		}
	}
	h.place = grow(h.place, hk*n)
	for i := range h.place {
		h.place[i] = -7 // Commit must write every entry
	}
	if search { // random keys drawn with its queries
		sp.observeKeys(gaussian(h.rng, n*hk*h.s.HeadDim))
	} else if ko, ok := h.p.(keyObserver); ok && ko.wantsKeys() {
		ko.observeKeys(testKeys(step, h.s))
	}
	if vo, ok := h.p.(valueObserver); ok && vo.wantsValues() {
		vo.observeValues(testKeys(Step{Start: step.Start + 3, N: n}, h.s))
	}
	h.p.Commit(mass, h.place)
	for kh := 0; kh < hk; kh++ {
		for i := 0; i < n; i++ {
			s := h.place[kh*n+i]
			if s == -1 {
				continue
			}
			if s < 0 || int(s) >= need {
				t.Fatalf("%s at %d head %d: token %d placed in slot %d outside [0, %d)", h.name, h.seen, kh, h.seen+int64(i), s, need)
			}
			h.storeOf(kh)[s] = h.seen + int64(i)
		}
	}
	if h.tier != nil {
		h.tierStore(h.p.(tiered), n)
	}
	h.seen += int64(n)
}

// storeOf returns the fake storage head kh's slots index: its own, or the
// layer's pool.
func (h *harness) storeOf(kh int) []int64 {
	if h.pooled {
		return h.store[0]
	}
	return h.store[kh]
}

// held returns what head kh holds now.
func (h *harness) held(kh int) []int64 { return h.p.Held(kh, nil) }

func firstDup(s []int32) int32 {
	seen := make(map[int32]bool, len(s))
	for _, x := range s {
		if seen[x] {
			return x
		}
		seen[x] = true
	}
	return -1
}

// testScores are calibration scores for a Calibrator in the harness: the
// heads of every layer in a fixed, uneven order, so that a layer holds
// retrieval and streaming heads at once.
func testScores(s Shape) HeadScores {
	sc := make(HeadScores, s.Layers)
	for l := range sc {
		sc[l] = make([]float64, s.KVHeads)
		for h := range sc[l] {
			sc[l][h] = float64((h*5 + l*3) % 7)
		}
	}
	return sc
}

// clip shortens long slices in failure messages.
func clip(s []int64) any {
	if len(s) <= 40 {
		return s
	}
	return fmt.Sprintf("%v … %v (%d)", s[:20], s[len(s)-20:], len(s))
}

// randomMass fills m with random values; query weights are not modelled.
func randomMass(r *rand.Rand) func(m []float32, L, n int, orig [][]int64, step Step) {
	return func(m []float32, L, n int, orig [][]int64, step Step) {
		for i := range m {
			m[i] = r.Float32()
		}
	}
}

// focusMass gives every query head all the mass on original position
// target while it is in view or in the chunk, and a little noise elsewhere.
func focusMass(target int64, r *rand.Rand, g int) func(m []float32, L, n int, orig [][]int64, step Step) {
	return func(m []float32, L, n int, orig [][]int64, step Step) {
		w := L + n
		for q := 0; q*w < len(m); q++ {
			row := m[q*w : (q+1)*w]
			for j := range row {
				row[j] = r.Float32() * 1e-3
			}
			for j, x := range orig[q/g] {
				if x == target {
					row[j] = 1
				}
			}
			if i := target - step.Start; i >= 0 && i < int64(n) {
				row[L+int(i)] = 1
			}
		}
	}
}

// testKeys returns made-up keys [n, Hkv·hd] for the chunk of step, a fixed
// function of token, KV head and dimension whose norms vary from token to
// token.
func testKeys(step Step, s Shape) []float32 {
	k := make([]float32, step.N*s.KVHeads*s.HeadDim)
	for i := range step.N {
		t := step.Start + int64(i)
		for h := range s.KVHeads {
			for d := range s.HeadDim {
				k[(i*s.KVHeads+h)*s.HeadDim+d] = float32(math.Sin(float64(t*7+int64(h*3+d)))) * float32(1+(t*int64(h+1))%5)
			}
		}
	}
	return k
}

// testRoPE is a RoPE of base 10000 for head dimension hd.
func testRoPE(hd int) rope {
	f := make([]float32, hd/2)
	for i := range f {
		f[i] = float32(math.Pow(10000, -float64(2*i)/float64(hd)))
	}
	return rope{invFreq: f, factor: 1}
}

// gaussian returns n standard normal values.
func gaussian(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}
