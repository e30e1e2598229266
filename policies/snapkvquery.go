package policies

import (
	"slices"

	"kvcascade/runtime/backend"
)

// snapkvQueryFactory is the factory of snapkv and pyramidkv with select =
// "query_head". budgetOf, when not nil, gives a layer's budget for a
// prompt of T tokens (pyramidkv). Its policies need a backend with
// per-query-head views and refuse any other when the cache is built.
func snapkvQueryFactory(name string, c snapkvConfig, budgetOf func(layer int, s Shape, T int) int) dualFactory {
	return dualFactory{
		factoryFunc: factoryFunc{name, func(layer int, s Shape) (Policy, error) {
			if err := checkShape(s); err != nil {
				return nil, err
			}
			p := &snapkvQuery{c: c, s: s, lists: make([]tokenList, s.QHeads), pools: make([]slotPool, s.KVHeads),
				refs: make([][]int32, s.KVHeads)}
			if budgetOf != nil {
				p.budgetOf = func(T int) int { return budgetOf(layer, s, T) }
			}
			return p, nil
		}},
		// On the host, where the backend attends by query head.
		device: func(_ int, _ Shape, b backend.Backend) (devicePolicy, error) {
			return nil, checkFeature(name, "select", selectQueryHead, backend.QueryHeadViews, b)
		},
	}
}

// snapkvQuery is snapkv selecting per query head, as the official SnapKV
// does after repeating the KV heads (cascade_cache_2 at 4232407,
// cascade/models/pyramid_kv.py:1592-1601 and pyramid_kv_utils.py:147-172):
// every query head holds a tokenList of its own, scored by its own
// attention from the prompt's last `window` queries, and the chunk that
// ends the prompt cuts each list, as snapkv cuts a KV head's, to the
// window and the best pooled others, budget in all. Decoding appends to
// every list.
//
// Where the official code stores each query head's copy of the keys and
// values, the KV head here stores the union of its group's tokens once,
// one slot per token however many heads of the group hold it (refs
// counts them), and the view gives each query head its own row
// (backend.View.PerQueryHead): the same attention in at most the memory.
type snapkvQuery struct {
	c        snapkvConfig
	s        Shape
	lists    []tokenList // [Hq]
	pools    []slotPool  // [Hkv]
	refs     [][]int32   // [Hkv][slot] query heads of the group holding the slot
	budgetOf func(T int) int
	step     Step
	reserved int

	weights []float32 // [n] query weights of the chunk
	a       []float32 // [L+n] one head's mass
	pooled  []float32 // [prefix] pooled scores
	flags   []bool    // [T] tokens kept
	idx     []int32   // [prefix] candidates
	chunk   []int32   // [n] slot of each chunk token in the KV head being stored
}

func (p *snapkvQuery) Reserve(n int) int {
	for h := range p.pools {
		p.reserved = max(p.reserved, p.pools[h].need(n))
	}
	return p.reserved
}

func (p *snapkvQuery) Plan(step Step, view *backend.View) {
	p.step = step
	view.QueryWeights = p.c.queryWeights(&p.weights, step)
	view.MassMode = backend.MassExact
	view.PerQueryHead = true
	planList(p.lists, step, p.c.positions, view)
	view.Device = nil
}

func (p *snapkvQuery) Commit(mass []float32, place []int32) {
	n := p.step.N
	L := p.lists[0].len()
	w := L + n
	checkMass(mass, p.s, w)
	p.a = grow(p.a, w)
	for q := range p.lists {
		l := &p.lists[q]
		reduceMass(p.a, mass, w, q, q+1, reduceMean) // q's own row
		for j := range L {
			l.score[j] += p.a[j]
		}
		for i := range n {
			l.add(p.step.Start+int64(i), -1, p.a[L+i])
		}
		if p.step.EndsPrompt() {
			budget := p.c.budget
			if p.budgetOf != nil {
				budget = p.budgetOf(l.len())
			}
			p.compress(q, budget)
		}
	}
	g := p.s.Group()
	for h := range p.pools {
		p.store(h, p.lists[h*g:(h+1)*g], place[h*n:(h+1)*n])
	}
}

// compress keeps query head q's window and its best pooled prefix tokens,
// budget in all (ties: the more recent), then resets the scores.
func (p *snapkvQuery) compress(q, budget int) {
	l := &p.lists[q]
	T := l.len()
	if T > budget {
		m := T - p.c.window
		p.pooled = grow(p.pooled, m)
		pool1D(p.pooled, l.score[:m], p.c.kernel, p.c.avg)
		p.idx = grow(p.idx, m)
		for j := range p.idx {
			p.idx[j] = int32(j)
		}
		keep := budget - p.c.window
		selectTop(p.idx, keep, func(i, j int32) bool {
			si, sj := p.pooled[i], p.pooled[j]
			return si > sj || (si == sj && i > j)
		})
		p.flags = grow(p.flags, T)
		for j := range p.flags {
			p.flags[j] = j >= m
		}
		for _, j := range p.idx[:keep] {
			p.flags[j] = true
		}
		h := q / p.s.Group()
		k := 0
		for j, kept := range p.flags {
			if !kept {
				if s := l.slot[j]; s >= 0 {
					if p.refs[h][s]--; p.refs[h][s] == 0 {
						p.pools[h].put(s)
					}
				}
				continue
			}
			l.pos[k], l.slot[k], l.score[k] = l.pos[j], l.slot[j], l.score[j]
			k++
		}
		l.pos, l.slot, l.score = l.pos[:k], l.slot[:k], l.score[:k]
	}
	clear(l.score)
}

// store gives one slot of KV head h to every chunk token that a list of
// its group (lists) keeps, shared by those lists, and writes it into
// place, the chunk's row of h (−1: no list keeps the token).
func (p *snapkvQuery) store(h int, lists []tokenList, place []int32) {
	start := p.step.Start
	p.chunk = grow(p.chunk, len(place))
	for i := range p.chunk {
		p.chunk[i] = -1
	}
	for q := range lists {
		l := &lists[q]
		for j, s := range l.slot {
			if s >= 0 {
				continue
			}
			i := l.pos[j] - start
			if p.chunk[i] < 0 {
				p.chunk[i] = p.pools[h].get()
				if need := int(p.pools[h].next); len(p.refs[h]) < need {
					p.refs[h] = append(p.refs[h], make([]int32, need-len(p.refs[h]))...)
				}
			}
			l.slot[j] = p.chunk[i]
			p.refs[h][p.chunk[i]]++
		}
	}
	copy(place, p.chunk)
}

// Held returns the union of the tokens KV head h's query heads hold, in
// original order (each query head attends to its own, in that order).
func (p *snapkvQuery) Held(h int, dst []int64) []int64 {
	g := p.s.Group()
	from := len(dst)
	for q := h * g; q < (h+1)*g; q++ {
		dst = append(dst, p.lists[q].pos...)
	}
	slices.Sort(dst[from:])
	return dst[:from+len(slices.Compact(dst[from:]))]
}

// HeldByQuery returns the tokens query head q holds, in order.
func (p *snapkvQuery) HeldByQuery(q int, dst []int64) []int64 { return append(dst, p.lists[q].pos...) }

func (p *snapkvQuery) MetaBytes() int64 {
	b := int64(cap(p.weights)+cap(p.a)+cap(p.pooled)+cap(p.idx)+cap(p.chunk))*4 + int64(cap(p.flags))
	for q := range p.lists {
		b += p.lists[q].bytes()
	}
	for h := range p.pools {
		b += p.pools[h].bytes() + int64(cap(p.refs[h]))*4
	}
	return b
}

func (p *snapkvQuery) originalPositions() bool { return p.c.positions == originalPositions }
