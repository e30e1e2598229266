package policies

import (
	"kvcascade/runtime/backend"
)

// adakvSpec is Ada-KV (Feng et al. 2024) over SnapKV: the prompt's
// compression keeps the same number of tokens per layer as snapkv, but
// shares them across the layer's KV heads by score instead of giving each
// head the same number.
func adakvSpec() Spec {
	s := snapkvSpec()
	var ps []Param
	for _, p := range s.Params {
		if p.Name != "decode_every" && p.Name != "decode_target" {
			ps = append(ps, p)
		}
	}
	ps = append(ps, Param{Name: "safeguard", Kind: "float", Default: 0.2,
		Doc: "the paper's safeguard α: every KV head keeps at least ⌊α·(budget − window)⌋ of its own best scored tokens"})
	return Spec{
		Name: "adakv",
		Doc: "Ada-KV over SnapKV: the prompt's last `window` tokens in every KV head plus, per layer, the " +
			"KV heads × (budget − window) best pooled SnapKV scores of all its heads, at least a safeguard share each, so heads " +
			"hold different numbers of tokens from one pool of slots (cpu backend only); decoding appends",
		Params:  ps,
		Aliases: []string{"ada_kv", "ada_snapkv", "adasnapkv", "adakv_press"},
		Bounded: true,
		make: func(v Values) (Factory, error) {
			const name = "adakv"
			if err := atLeast(name, v, 1, "window", "kernel", "budget"); err != nil {
				return nil, err
			}
			c, err := newSnapkvConfig(name, v)
			if err != nil {
				return nil, err
			}
			alpha := v.Float("safeguard")
			if !(alpha >= 0 && alpha <= 1) {
				return nil, paramError(name, "safeguard", "must lie in [0, 1], got %v", alpha)
			}
			floor := int(alpha * float64(c.budget-c.window))
			return factoryFunc{name, func(_ int, s Shape) (Policy, error) {
				if err := checkShape(s); err != nil {
					return nil, err
				}
				return &adakv{snapkv: snapkv{c: c, tokenLists: newTokenLists(s, c.positions)}, floor: floor}, nil
			}}, nil
		},
	}
}

// adakv is one layer of Ada-KV. Its heads keep scores as snapkv's do (the
// mass of the prompt's last window of queries, averaged over each GQA
// group) and draw their storage slots from one pool, pools[0], shared by
// the layer. After the chunk that ends a prompt of T > budget tokens, each
// head keeps its last window, then its floor best pooled prefix scores;
// the rest of the layer's KV heads × (budget − window) scored slots go to
// the best pooled scores left in any head (ties: the more recent, then the
// lower head). Heads then hold different numbers of tokens and the layer
// exactly KV heads × budget. Before that, and while decoding, every token
// is kept.
type adakv struct {
	snapkv
	floor  int
	scores [][]float32 // [Hkv][prefix] pooled scores of each head
	cand   []candidate // scored prefix tokens not yet kept
	order  []int32     // indices into cand, best first after selectTop
	keep   [][]bool    // [Hkv][T] tokens kept
}

// candidate is a prefix token of one head competing for the layer's pool.
type candidate struct {
	h int32
	j int32
}

func (p *adakv) sharesSlots() bool { return true }

func (p *adakv) Reserve(n int) int {
	p.reserved = max(p.reserved, p.pools[0].need(n*p.s.KVHeads))
	return p.reserved
}

func (p *adakv) Plan(step Step, view *backend.View) {
	p.step = step
	view.QueryWeights = p.c.queryWeights(&p.weights, step)
	planRagged(p.lists, step, p.positions, view)
	view.Device = nil
}

func (p *adakv) Commit(mass []float32, place []int32) {
	n, L := p.step.N, maxLen(p.lists)
	checkMass(mass, p.s, L+n)
	for h := range p.lists {
		p.absorbRow(h, mass, L, p.step, place[h*n:(h+1)*n])
	}
	if p.step.EndsPrompt() {
		p.allocate()
	}
	for h := range p.lists {
		p.lists[h].store(&p.pools[0], p.step.Start, place[h*n:(h+1)*n])
	}
}

// allocate compresses the prompt: it shares the layer's scored slots
// among its heads (see adakv) and resets the scores.
func (p *adakv) allocate() {
	hk, win := len(p.lists), p.c.window
	T := p.lists[0].len()
	defer func() {
		for h := range p.lists {
			clear(p.lists[h].score)
		}
	}()
	if T <= p.c.budget {
		return
	}
	m := T - win // prefix tokens per head: all heads hold T before this
	share := p.c.budget - win
	floor := min(p.floor, share)
	p.scores = grow(p.scores, hk)
	p.keep = grow(p.keep, hk)
	p.cand = p.cand[:0]
	for h := range p.lists {
		l := &p.lists[h]
		p.scores[h] = grow(p.scores[h], m)
		pool1D(p.scores[h], l.score[:m], p.c.kernel, p.c.avg)
		p.keep[h] = grow(p.keep[h], T)
		k := p.keep[h]
		for j := range k {
			k[j] = j >= m
		}
		sc := p.scores[h]
		p.idx = grow(p.idx, m)
		for j := range p.idx {
			p.idx[j] = int32(j)
		}
		selectTop(p.idx, floor, func(i, j int32) bool { return sc[i] > sc[j] || (sc[i] == sc[j] && i > j) })
		for _, j := range p.idx[:floor] {
			k[j] = true
		}
		for _, j := range p.idx[floor:] {
			p.cand = append(p.cand, candidate{int32(h), j})
		}
	}
	rest := min(len(p.cand), hk*(share-floor))
	p.order = grow(p.order, len(p.cand))
	for i := range p.order {
		p.order[i] = int32(i)
	}
	selectTop(p.order, rest, func(a, b int32) bool {
		x, y := p.cand[a], p.cand[b]
		sx, sy := p.scores[x.h][x.j], p.scores[y.h][y.j]
		if sx != sy {
			return sx > sy
		}
		if x.j != y.j {
			return x.j > y.j
		}
		return x.h < y.h
	})
	for _, i := range p.order[:rest] {
		c := p.cand[i]
		p.keep[c.h][c.j] = true
	}
	for h := range p.lists {
		p.lists[h].keep(p.keep[h], &p.pools[0])
	}
}

// Held returns head h's tokens in order.
func (p *adakv) Held(h int, dst []int64) []int64 { return append(dst, p.lists[h].pos...) }

func (p *adakv) MetaBytes() int64 {
	b := p.snapkv.MetaBytes() + int64(cap(p.cand))*8 + int64(cap(p.order))*4
	for h := range p.scores {
		b += int64(cap(p.scores[h])) * 4
	}
	for h := range p.keep {
		b += int64(cap(p.keep[h]))
	}
	return b
}

// maxLen returns the length of the longest list.
func maxLen(lists []tokenList) int {
	L := 0
	for h := range lists {
		L = max(L, lists[h].len())
	}
	return L
}

// planRagged fills view with the view of per-head token lists of
// different lengths: each head's tokens in order, its row padded to the
// longest with negative slots, at cache positions (each head's chunk
// right after its own tokens) or original positions.
func planRagged(lists []tokenList, step Step, pos positions, view *backend.View) {
	hk := len(lists)
	L := maxLen(lists)
	sizeView(view, hk, L)
	for h := range lists {
		l := &lists[h]
		slots, p := view.Slots[h*L:(h+1)*L], view.Pos[h*L:(h+1)*L]
		copy(slots, l.slot)
		for j := l.len(); j < L; j++ {
			slots[j] = -1
		}
		for j := range p {
			switch {
			case j >= l.len():
				p[j] = 0
			case pos == originalPositions:
				p[j] = int32(l.pos[j])
			default:
				p[j] = int32(j)
			}
		}
		view.QueryPos[h] = int32(l.len())
		if pos == originalPositions {
			view.QueryPos[h] = int32(step.Start)
		}
	}
}
