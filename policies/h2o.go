package policies

import "kvcascade/runtime/backend"

// The GQA reductions of h2o's reduction parameter.
const (
	h2oMean     = "mean"
	h2oMax      = "max"
	h2oQueryMax = "query_max"
)

// h2oSpec is Heavy-Hitter Oracle: the most recent tokens plus those that
// have received the most attention so far.
func h2oSpec() Spec {
	return Spec{
		Name: "h2o",
		Doc:  "H2O: the `recent` latest tokens plus the `heavy` others with the most attention accumulated over all queries, fixed memory",
		Params: []Param{
			{Name: "heavy", Kind: "int", Default: 2048, Doc: "heavy-hitter budget: older tokens kept for their accumulated attention"},
			{Name: "recent", Kind: "int", Default: 2048, Doc: "most recent tokens always kept"},
			positionsParam(),
			{Name: "reduction", Kind: "string", Default: h2oMean, Choices: []string{h2oMean, h2oMax, h2oQueryMax},
				Doc: "how a GQA group's attention mass becomes one score per KV head: mean of the group's chunk sums " +
					"(kvcascade's definition); max of the group's chunk sums, which equals the official H2O's score " +
					"for one-token chunks (decoding) and is a lower bound of it for longer chunks; or query_max, the official " +
					"H2O's (cascade_cache_2 h2o.py): each query's largest probability over the group, summed over queries, " +
					"in float32 (fp16 there), cpu backend only; max and query_max keep the policy on the host", OmitDefault: true},
		},
		make: func(v Values) (Factory, error) {
			if err := atLeast("h2o", v, 0, "heavy", "recent"); err != nil {
				return nil, err
			}
			heavy, recent, pos := v.Int("heavy"), v.Int("recent"), positionsOf(v)
			reduce, mode := reduceMean, backend.MassExact
			switch v.String("reduction") {
			case h2oMax:
				reduce = reduceMax
			case h2oQueryMax:
				// The backend gives every head of a group the group's
				// row, which the max copies exactly.
				reduce, mode = reduceMax, backend.MassGroupMax
			}
			if heavy+recent == 0 {
				return nil, paramError("h2o", "recent", "heavy + recent must be positive")
			}
			if heavy+recent > maxSlots {
				return nil, paramError("h2o", "heavy", "heavy + recent is more than %d slots", maxSlots)
			}
			host := factoryFunc{"h2o", func(_ int, s Shape) (Policy, error) {
				if err := checkShape(s); err != nil {
					return nil, err
				}
				p := newH2O(s, heavy, recent, pos)
				p.reduce, p.mode = reduce, mode
				return p, nil
			}}
			if mode == backend.MassGroupMax {
				return dualFactory{
					factoryFunc: host,
					// On the host, where the backend computes the mass.
					device: func(_ int, _ Shape, b backend.Backend) (devicePolicy, error) {
						return nil, checkFeature("h2o", "reduction", h2oQueryMax, backend.GroupMaxMass, b)
					},
				}, nil
			}
			if reduce != reduceMean {
				// The device's token lists combine a group's mass by its
				// mean only: a max-reduced h2o stays on the host.
				return host, nil
			}
			return dualFactory{
				factoryFunc: host,
				device: func(_ int, s Shape, b backend.Backend) (devicePolicy, error) {
					l, ok, err := newDeviceLists(s, pos, b)
					if !ok {
						return nil, err
					}
					return &h2oDevice{deviceLists: l, heavy: heavy, recent: recent}, nil
				},
			}, nil
		},
	}
}

// h2o holds per KV head a tokenList whose scores are the attention mass
// each token received, summed over every query since it arrived and averaged
// over the query heads of the group (reduction = "max": their max; with
// "query_max" the backend takes each query's max over the group before the
// sum, backend.MassGroupMax). After a chunk, a head holding more
// than heavy+recent tokens keeps its last `recent` and, among the others,
// the `heavy` with the highest score (ties: the more recent); a chunk token
// that does not survive is never stored, and survivors take the slots of
// evicted tokens, so the storage is heavy+recent slots. On a backend that
// keeps token lists on its device the same happens there (h2oDevice).
type h2o struct {
	tokenLists
	heavy, recent int
	step          Step
	ones          []float32 // [n] query weights
}

func newH2O(s Shape, heavy, recent int, pos positions) *h2o {
	return &h2o{tokenLists: newTokenLists(s, pos), heavy: heavy, recent: recent}
}

func (p *h2o) Reserve(int) int { return p.heavy + p.recent }

func (p *h2o) Plan(step Step, view *backend.View) {
	p.step = step
	p.ones = ones(p.ones, step.N)
	p.plan(step, view, p.ones)
}

// ones returns n ones, reusing w when it holds n.
func ones(w []float32, n int) []float32 {
	if len(w) != n {
		w = grow(w, n)
		for i := range w {
			w[i] = 1
		}
	}
	return w
}

func (p *h2o) Commit(mass []float32, place []int32) {
	n := p.step.N
	w := p.lists[0].len() + n
	checkMass(mass, p.s, w)
	for h := range p.lists {
		pl := place[h*n : (h+1)*n]
		p.absorb(h, mass, p.step, pl)
		if w > p.heavy+p.recent {
			p.evict(h, p.recent, p.heavy, p.lists[h].better)
		}
		p.lists[h].store(&p.pools[h], p.step.Start, pl)
	}
}

func (p *h2o) MetaBytes() int64 {
	return p.bytes() + int64(cap(p.ones))*4
}
