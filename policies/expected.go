package policies

import (
	"math"

	"kvcascade/runtime/backend"
)

// expectedSpec is Expected Attention (kvpress's ExpectedAttentionPress),
// written from its description and made to evict continuously in fixed
// memory like the other scored policies.
func expectedSpec() Spec {
	s := scoredSpec("expected_attention", []string{"expected_attention_press", "expectedattention"},
		"Expected Attention: sinks + window + the other tokens future queries are expected to attend to most, from the mean "+
			"and covariance of recent queries rotated to the next positions, times the value norm; fixed memory",
		Param{Name: "queries", Kind: "int", Default: 128, Doc: "recent queries per layer whose mean and covariance model the future ones"},
		Param{Name: "future", Kind: "int", Default: 512, Doc: "future positions the RoPE rotation is averaged over (kvpress's n_future_positions)"},
		Param{Name: "covariance", Kind: "bool", Default: true, Doc: "add the queries' covariance term ½·kᵀΣk/d to the expected logit"},
		Param{Name: "vnorm", Kind: "bool", Default: true, Doc: "multiply each token's expected attention by the L2 norm of its value"},
		Param{Name: "epsilon", Kind: "float", Default: 0.0, Doc: "added to the expected attention before the value norm multiplies it"},
	)
	scoredMake := s.make
	s.make = func(v Values) (Factory, error) {
		const name = "expected_attention"
		if err := atLeast(name, v, 1, "queries", "future"); err != nil {
			return nil, err
		}
		f, err := scoredMake(v)
		if err != nil {
			return nil, err
		}
		e := expectedConfig{queries: v.Int("queries"), future: v.Int("future"), covariance: v.Bool("covariance"),
			vnorm: v.Bool("vnorm"), epsilon: float32(v.Float("epsilon"))}
		return factoryFunc{name, func(layer int, s Shape) (Policy, error) {
			p, err := f.NewLayer(layer, s)
			if err != nil {
				return nil, err
			}
			return &expected{scored: *p.(*scored), e: e, held: make([][]float32, s.KVHeads), vn: make([][]float32, s.KVHeads)}, nil
		}}, nil
	}
	return s
}

type expectedConfig struct {
	queries, future   int
	covariance, vnorm bool
	epsilon           float32
}

// expected is one layer of expected_attention: a scored layer whose score
// is recomputed, for every token a head holds, each time the head must
// drop some. For each query head of the KV head's group, the last
// `queries` queries (before RoPE) give a mean μ and covariance Σ; R̄, the
// mean of the RoPE rotations to the next `future` positions, turns them
// into μ̄ = R̄μ and Σ̄ = R̄ΣR̄ᵀ; a key k at its position is expected the logit
// μ̄·k/√d + ½·kᵀΣ̄k/d (the mean of exp(q·k/√d) for a Gaussian q, in log),
// and the softmax of those logits over the head's tokens, averaged over
// the group, plus epsilon, times the value's L2 norm, is its score. The
// layer keeps a host copy of its held keys and the norms of their values.
type expected struct {
	scored
	e    expectedConfig
	rope rope
	held [][]float32 // [Hkv][T·hd] held keys, before RoPE, in list order
	vn   [][]float32 // [Hkv][T] L2 norms of their values
	vals []float32   // [n, Hkv·hd] the chunk's values, from the Cache

	ring  []float32 // [queries, Hq·hd] recent queries, oldest overwritten first
	nq    int       // rows of ring filled
	qnext int       // next row of ring to write

	// scratch of score
	kr       []float32 // [T·hd] held keys rotated to their positions
	logit    []float32 // [T]
	acc      []float32 // [T]
	mu, r    []float32 // [hd], [queries·hd]: μ̄ and R̄(qᵢ − μ)
	cbar     []float32 // [hd/2] mean rotation from position meanAt
	sbar     []float32 // [hd/2]
	meanAt   int64     // first future position of cbar, sbar (set while len(cbar) = hd/2)
	tmp, row []float32 // [hd]
}

func (p *expected) setRoPE(r rope) { p.rope, p.cbar = r, p.cbar[:0] }

func (p *expected) wantsKeys() bool { return true }

func (p *expected) wantsQueries() bool { return true }

func (p *expected) observeQueries(q []float32) {
	w := p.s.QHeads * p.s.HeadDim
	p.ring = grow(p.ring, p.e.queries*w)
	for i := 0; i+w <= len(q); i += w {
		copy(p.ring[p.qnext*w:], q[i:i+w])
		p.qnext = (p.qnext + 1) % p.e.queries
		p.nq = min(p.nq+1, p.e.queries)
	}
}

func (p *expected) wantsValues() bool { return p.e.vnorm }

func (p *expected) observeValues(v []float32) { p.vals = append(p.vals[:0], v...) }

func (p *expected) Plan(step Step, view *backend.View) {
	p.step = step
	p.plan(step, view, nil)
}

func (p *expected) Commit(_ []float32, place []int32) {
	n, hd, hk := p.step.N, p.s.HeadDim, p.s.KVHeads
	for h := range p.lists {
		l := &p.lists[h]
		pl := place[h*n : (h+1)*n]
		for i := range pl {
			pl[i] = -1
			l.add(p.step.Start+int64(i), -1, 0)
			row := (i*hk + h) * hd
			k := zeros(hd)
			if row+hd <= len(p.keys) {
				k = p.keys[row : row+hd]
			}
			p.held[h] = append(p.held[h], k...)
			norm := float32(1)
			if p.e.vnorm && row+hd <= len(p.vals) {
				var ss float64
				for _, x := range p.vals[row : row+hd] {
					ss += float64(x) * float64(x)
				}
				norm = float32(math.Sqrt(ss))
			}
			p.vn[h] = append(p.vn[h], norm)
		}
		if l.len() > p.c.budget {
			p.score(h)
			p.trim(h)
			p.compact(h)
		}
		l.store(&p.pools[h], p.step.Start, pl)
	}
	p.keys, p.vals = p.keys[:0], p.vals[:0]
}

// zeros is a key for a chunk whose keys were not handed over (a driver
// without a Cache): it scores as every other such key.
func zeros(n int) []float32 { return make([]float32, n) }

// compact drops from head h's keys and value norms the tokens trim
// dropped (p.flags).
func (p *expected) compact(h int) {
	hd := p.s.HeadDim
	k, v := p.held[h], p.vn[h]
	n := 0
	for j, keep := range p.flags {
		if keep {
			copy(k[n*hd:(n+1)*hd], k[j*hd:(j+1)*hd])
			v[n] = v[j]
			n++
		}
	}
	p.held[h], p.vn[h] = k[:n*hd], v[:n]
}

// score sets the scores of every token head h holds (see expected). Keys
// sit at their positions in the frame the policy's views use: list index
// in cache mode, where the next query comes at the list's length, or the
// original position, where it comes after the chunk.
func (p *expected) score(h int) {
	l := &p.lists[h]
	T, hd, g := l.len(), p.s.HeadDim, p.s.Group()
	next := int64(T)
	if p.positions == originalPositions {
		next = p.step.Start + int64(p.step.N)
	}
	p.kr = grow(p.kr, T*hd)
	for j := range T {
		pos := int64(j)
		if p.positions == originalPositions {
			pos = l.pos[j]
		}
		p.rope.rotate(p.kr[j*hd:(j+1)*hd], p.held[h][j*hd:(j+1)*hd], pos)
	}
	if half := hd / 2; len(p.cbar) != half || p.meanAt != next {
		// in cache mode next is the same once the cache is full
		p.cbar, p.sbar, p.meanAt = grow(p.cbar, half), grow(p.sbar, half), next
		p.rope.mean(p.cbar, p.sbar, next, p.e.future)
	}
	p.logit, p.acc = grow(p.logit, T), grow(p.acc, T)
	clear(p.acc)
	p.mu, p.tmp, p.row = grow(p.mu, hd), grow(p.tmp, hd), grow(p.row, hd)
	p.r = grow(p.r, p.nq*hd)
	scale := float32(1 / math.Sqrt(float64(hd)))
	w := p.s.QHeads * hd
	for qh := h * g; qh < (h+1)*g; qh++ {
		// μ, then R̄μ and R̄(qᵢ − μ)
		clear(p.tmp)
		for i := range p.nq {
			for d, x := range p.ring[i*w+qh*hd : i*w+(qh+1)*hd] {
				p.tmp[d] += x
			}
		}
		if p.nq > 0 {
			for d := range p.tmp {
				p.tmp[d] /= float32(p.nq)
			}
		}
		applyMean(p.mu, p.tmp, p.cbar, p.sbar)
		cov := p.e.covariance && p.nq > 0
		if cov {
			for i := range p.nq {
				for d, x := range p.ring[i*w+qh*hd : i*w+(qh+1)*hd] {
					p.row[d] = x - p.tmp[d]
				}
				applyMean(p.r[i*hd:(i+1)*hd], p.row, p.cbar, p.sbar)
			}
		}
		m := float32(math.Inf(-1))
		for j := range T {
			k := p.kr[j*hd : (j+1)*hd]
			x := scale * dot(p.mu, k)
			if cov {
				var c float32
				for i := range p.nq {
					d := dot(p.r[i*hd:(i+1)*hd], k)
					c += d * d
				}
				x += 0.5 * scale * scale * c / float32(p.nq)
			}
			p.logit[j] = x
			m = max(m, x)
		}
		var sum float64
		for j, x := range p.logit[:T] {
			e := math.Exp(float64(x - m))
			p.logit[j] = float32(e)
			sum += e
		}
		for j, e := range p.logit[:T] {
			p.acc[j] += e / float32(sum) / float32(g)
		}
	}
	for j := range T {
		l.score[j] = (p.acc[j] + p.e.epsilon) * p.vn[h][j]
	}
}

// dot returns a·b.
func dot(a, b []float32) float32 {
	var s float32
	for i, x := range a {
		s += x * b[i]
	}
	return s
}

func (p *expected) MetaBytes() int64 {
	b := p.scored.MetaBytes() + int64(cap(p.vals)+cap(p.ring)+cap(p.kr)+cap(p.logit)+cap(p.acc)+cap(p.mu)+cap(p.r)+
		cap(p.cbar)+cap(p.sbar)+cap(p.tmp)+cap(p.row))*4
	for h := range p.held {
		b += int64(cap(p.held[h])+cap(p.vn[h])) * 4
	}
	return b
}

// queryObserver is implemented by host policies that score by the chunk's
// queries (expected_attention): when wantsQueries says so, the Cache reads
// every row of the chunk's queries [n, Hq·hd], before RoPE, to the host
// and hands them over before View.
type queryObserver interface {
	wantsQueries() bool
	observeQueries(q []float32)
}

// valueObserver is implemented by host policies that score by the chunk's
// values: when wantsValues says so, the Cache reads the chunk's values
// [n, Hkv·hd] to the host and hands them over before Commit.
type valueObserver interface {
	wantsValues() bool
	observeValues(v []float32)
}
