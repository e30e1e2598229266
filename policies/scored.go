package policies

import (
	"math"

	"kvcascade/runtime/backend"
)

// The scored policies: fixed memory of `budget` slots per KV head holding
// the first `sinks` tokens, the last `window` tokens and, of the others,
// those with the best score, where the score is what tells the policies
// apart (kvpress's ScorerPress, made to evict continuously in fixed
// memory instead of once after prefill):
//
//   - random (kvpress's RandomPress): a seeded uniform draw per token and KV
//     head, fixed when the token arrives; the floor every figure needs;
//   - knorm (Devoto et al. 2024, kvpress's KnormPress): the negated L2 norm
//     of the token's key in the KV head, so keys of low norm stay. RoPE
//     rotates pairs of coordinates, so the norm is the same before and
//     after it, and the cache's unrotated keys serve;
//   - tova (Oren et al. 2024, kvpress's TOVAPress): the attention the
//     chunk's last query pays each token, averaged over every query head of
//     the layer, so that every KV head keeps the same tokens; each chunk's
//     scores replace the previous ones and its last token is always kept.
//     During decoding (one-token chunks) this is the paper's TOVA; a longer
//     chunk is judged by its last query alone.
const (
	scoreRandom = "random"
	scoreKNorm  = "knorm"
	scoreTOVA   = "tova"
)

// newSpecs returns the policies added with the budget vocabulary.
func newSpecs() []Spec {
	return []Spec{
		scoredSpec(scoreRandom, []string{"random_press"},
			"Random: sinks + window + a seeded random choice of the other tokens per KV head, fixed memory (the floor)",
			Param{Name: "seed", Kind: "int", Default: 0, Doc: "seed of the draws, mixed with layer, KV head and token position"}),
		scoredSpec(scoreKNorm, []string{"knorm_press", "key_norm", "l2norm"},
			"KNorm (KVCache-Factory's L2Norm): sinks + window + the other tokens whose keys have the lowest L2 norm per KV head, fixed memory"),
		scoredSpec(scoreTOVA, []string{"tova_press"},
			"TOVA: sinks + window + the tokens the chunk's last query attends to most, averaged over all heads; its last token always stays; fixed memory"),
		pyramidkvSpec(),
	}
}

// scoredSpec is the spec of a scored policy.
func scoredSpec(name string, aliases []string, doc string, extra ...Param) Spec {
	ps := []Param{
		{Name: budgetKey, Kind: "int", Default: 2048, Doc: "key/value slots per KV head: sinks + window + scored tokens"},
		{Name: "sinks", Kind: "int", Default: 0, Doc: "first tokens kept for ever (kvpress keeps none)"},
		{Name: "window", Kind: "int", Default: 0, Doc: "most recent tokens always kept (kvpress keeps none)"},
	}
	ps = append(ps, extra...)
	ps = append(ps, positionsParam())
	return Spec{
		Name: name, Doc: doc, Params: ps, Aliases: aliases, Bounded: true,
		make: func(v Values) (Factory, error) {
			if err := atLeast(name, v, 0, "sinks", "window"); err != nil {
				return nil, err
			}
			c := scoredConfig{kind: name, budget: v.Int(budgetKey), sinks: v.Int("sinks"), window: v.Int("window"),
				positions: positionsOf(v)}
			if c.sinks+c.window > c.budget {
				return nil, paramError(name, budgetKey, "%d cannot hold sinks (%d) + window (%d)", c.budget, c.sinks, c.window)
			}
			if v.Has("seed") {
				c.seed = uint64(v.Int("seed"))
			}
			return factoryFunc{name, func(layer int, s Shape) (Policy, error) {
				if err := checkShape(s); err != nil {
					return nil, err
				}
				return &scored{tokenLists: newTokenLists(s, c.positions), c: c, layer: uint64(layer)}, nil
			}}, nil
		},
	}
}

type scoredConfig struct {
	kind                  string
	budget, sinks, window int
	seed                  uint64
	positions             positions
}

// scored is one layer of a scored policy: per KV head a tokenList whose
// scores the policy's kind gives. After each chunk a head holding more
// than budget tokens keeps its sinks, its last window and the best of the
// rest (ties: the more recent); a chunk token that does not survive is
// never stored.
type scored struct {
	tokenLists
	c       scoredConfig
	layer   uint64
	step    Step
	weights []float32 // [n] tova: one-hot on the chunk's last query
	keys    []float32 // [n, Hkv·hd] knorm: the chunk's keys, from the Cache
	mean    []float32 // [L+n] tova: mass averaged over all query heads
}

func (p *scored) Reserve(int) int { return p.c.budget }

func (p *scored) Plan(step Step, view *backend.View) {
	p.step = step
	var w []float32
	if p.c.kind == scoreTOVA {
		w = grow(p.weights, step.N)
		clear(w)
		w[step.N-1] = 1
		p.weights = w
	}
	p.plan(step, view, w)
}

// wantsKeys reports whether the Cache must hand the policy the chunk's keys.
func (p *scored) wantsKeys() bool { return p.c.kind == scoreKNorm }

// observeKeys receives the chunk's keys [n, Hkv·hd] before Commit.
func (p *scored) observeKeys(k []float32) { p.keys = append(p.keys[:0], k...) }

func (p *scored) Commit(mass []float32, place []int32) {
	n := p.step.N
	L := p.lists[0].len()
	if p.c.kind == scoreTOVA {
		checkMass(mass, p.s, L+n)
		p.mean = grow(p.mean, L+n)
		clear(p.mean)
		for q := range p.s.QHeads {
			for j, m := range mass[q*(L+n) : (q+1)*(L+n)] {
				p.mean[j] += m
			}
		}
		for j := range p.mean {
			p.mean[j] /= float32(p.s.QHeads)
		}
		p.mean[L+n-1] = float32(math.Inf(1)) // the last token stays
	}
	hd := p.s.HeadDim
	for h := range p.lists {
		l := &p.lists[h]
		pl := place[h*n : (h+1)*n]
		if p.c.kind == scoreTOVA {
			copy(l.score, p.mean[:L])
		}
		for i := range pl {
			pl[i] = -1
			t := p.step.Start + int64(i)
			var s float32
			switch p.c.kind {
			case scoreRandom:
				x := splitmix(mix(mix(mix(p.c.seed, p.layer), uint64(h)), uint64(t)))
				s = float32(x.next()>>40) / (1 << 24)
			case scoreKNorm:
				if row := (i*p.s.KVHeads + h) * hd; row+hd <= len(p.keys) {
					var ss float64
					for _, x := range p.keys[row : row+hd] {
						ss += float64(x) * float64(x)
					}
					s = -float32(math.Sqrt(ss))
				}
			case scoreTOVA:
				s = p.mean[L+i]
			}
			l.add(t, -1, s)
		}
		if l.len() > p.c.budget {
			p.trim(h)
		}
		l.store(&p.pools[h], p.step.Start, pl)
	}
	p.keys = p.keys[:0]
}

// trim keeps head h's sinks, last window and best budget − sinks − window
// others, in order.
func (p *scored) trim(h int) {
	l := &p.lists[h]
	T := l.len()
	ns := 0
	for ns < T && l.pos[ns] < int64(p.c.sinks) {
		ns++
	}
	hi := max(ns, T-p.c.window)
	p.flags = grow(p.flags, T)
	for j := range p.flags {
		p.flags[j] = j < ns || j >= hi
	}
	p.idx = grow(p.idx, hi-ns)
	for j := range p.idx {
		p.idx[j] = int32(ns + j)
	}
	keep := min(len(p.idx), p.c.budget-ns-(T-hi))
	selectTop(p.idx, keep, l.better)
	for _, j := range p.idx[:keep] {
		p.flags[j] = true
	}
	l.keep(p.flags, &p.pools[h])
}

func (p *scored) MetaBytes() int64 {
	return p.bytes() + int64(cap(p.weights)+cap(p.keys)+cap(p.mean))*4
}

// keyObserver is implemented by host policies that score the keys
// themselves (knorm): when wantsKeys says so, the Cache reads the chunk's
// keys [n, Hkv·hd] to the host and hands them over before Commit.
type keyObserver interface {
	wantsKeys() bool
	observeKeys(k []float32)
}
