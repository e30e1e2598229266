package policies

import (
	"math"

	"kvcascade/runtime/backend"
)

// snapkvSpec is SnapKV: full prefill, then one compression of the prompt
// guided by the attention of its last queries.
func snapkvSpec() Spec {
	return Spec{
		Name: "snapkv",
		Doc: "SnapKV: full attention over the prompt, then keep the prompt's last `window` tokens plus the `budget`−`window` " +
			"others its last `window` queries attend to most (pooled); decoding appends, so memory is budget + tokens generated",
		Params: []Param{
			{Name: "window", Kind: "int", Default: 32, Doc: "observation window: the prompt's last queries, whose keys are always kept"},
			{Name: "kernel", Kind: "int", Default: 7, Doc: "pooling kernel size over neighbouring keys (odd)"},
			{Name: "pooling", Kind: "string", Default: "max", Choices: []string{"max", "avg"},
				Doc: "1-D pooling of the window's scores: max, or avg counting the zero padding (PyTorch's default)"},
			{Name: "budget", Kind: "int", Default: 2048, Doc: "prompt tokens kept, window included; must exceed window"},
			positionsParam(),
			{Name: "decode_every", Kind: "int",
				Doc: "compress while decoding (kvpress's DecodingPress): every decode_every tokens after the prompt, the same " +
					"selection, scored by the attention of the queries since the last compression, cuts the cache to decode_target " +
					"(unset: decoding appends); host only"},
			{Name: "decode_target", Kind: "int", Doc: "tokens kept by each decoding compression, window included (unset: budget)"},
			selectParam(),
		},
		make: func(v Values) (Factory, error) {
			const name = "snapkv"
			if err := atLeast(name, v, 1, "window", "kernel", "budget"); err != nil {
				return nil, err
			}
			c, err := newSnapkvConfig(name, v)
			if err != nil {
				return nil, err
			}
			if c.perQuery {
				return snapkvQueryFactory(name, c, nil), nil
			}
			host := factoryFunc{name, func(_ int, s Shape) (Policy, error) {
				if err := checkShape(s); err != nil {
					return nil, err
				}
				return &snapkv{c: c, tokenLists: newTokenLists(s, c.positions)}, nil
			}}
			if c.decodeEvery > 0 {
				return host, nil // the device lists compress once
			}
			return dualFactory{
				factoryFunc: host,
				device: func(_ int, s Shape, b backend.Backend) (devicePolicy, error) {
					l, ok, err := newDeviceLists(s, c.positions, b)
					if !ok {
						return nil, err
					}
					return &snapkvDevice{deviceLists: l, c: c}, nil
				},
			}, nil
		},
	}
}

type snapkvConfig struct {
	window, kernel, budget int
	avg                    bool
	positions              positions
	// decodeEvery > 0 compresses to decodeTarget every decodeEvery
	// tokens decoded.
	decodeEvery, decodeTarget int
	// perQuery selects per query head (select = "query_head").
	perQuery bool
}

// The values of snapkv's and pyramidkv's select parameter.
const (
	selectKVHead    = "kv_head"
	selectQueryHead = "query_head"
)

// selectParam is the parameter snapkv and pyramidkv take to choose whose
// tokens a compression selects.
func selectParam() Param {
	return Param{Name: "select", Kind: "string", Default: selectKVHead, Choices: []string{selectKVHead, selectQueryHead}, OmitDefault: true,
		Doc: "kv_head: each KV head keeps the tokens its GQA group's mean score ranks best (kvcascade's definition); " +
			"query_head: each query head keeps its own, as the official SnapKV (which repeats the KV heads before compressing); " +
			"the KV head stores their union once and each query head attends to its own; cpu backend only, no decode_every"}
}

// newSnapkvConfig checks the parameters snapkv and pyramidkv share.
func newSnapkvConfig(name string, v Values) (snapkvConfig, error) {
	c := snapkvConfig{window: v.Int("window"), kernel: v.Int("kernel"), budget: v.Int("budget"),
		avg: v.String("pooling") == "avg", positions: positionsOf(v), perQuery: v.String("select") == selectQueryHead}
	if c.kernel%2 == 0 {
		return c, paramError(name, "kernel", "must be odd, got %d", c.kernel)
	}
	if c.budget <= c.window {
		return c, paramError(name, "budget", "must exceed window (%d), got %d", c.window, c.budget)
	}
	if v.Has("decode_target") && !v.Has("decode_every") {
		return c, paramError(name, "decode_target", "needs decode_every")
	}
	if v.Has("decode_every") && c.perQuery {
		return c, paramError(name, "select", "%q does not take decode_every", selectQueryHead)
	}
	if v.Has("decode_every") {
		c.decodeEvery, c.decodeTarget = v.Int("decode_every"), c.budget
		if v.Has("decode_target") {
			c.decodeTarget = v.Int("decode_target")
		}
		if c.decodeEvery < 1 {
			return c, paramError(name, "decode_every", "must be at least 1, got %d", c.decodeEvery)
		}
		if c.decodeTarget <= c.window {
			return c, paramError(name, "decode_target", "must exceed window (%d), got %d", c.window, c.decodeTarget)
		}
	}
	return c, nil
}

// snapkv holds per KV head a tokenList whose scores are the attention mass
// each key received from the prompt's last `window` queries, averaged over
// the query heads of the group. After the chunk that ends a prompt, a head
// holding more than budget tokens keeps the last `window` and the
// budget−window others with the highest pooled score (ties: the more
// recent), in order; the scores are then reset, so a later prompt is judged
// by its own window. Until then, and while decoding, every token is kept.
// On a backend that keeps token lists on its device the same happens there
// (snapkvDevice), and the prompt's mass never leaves the device.
type snapkv struct {
	tokenLists
	c        snapkvConfig
	step     Step
	reserved int
	weights  []float32 // [n] query weights of the chunk
	decoded  int       // tokens decoded since the last compression
	// budgetOf, when set (pyramidkv), gives the layer's budget for a
	// prompt of T tokens instead of c.budget.
	budgetOf func(T int) int
	pooled   []float32 // [prefix] pooled scores
}

func (p *snapkv) Reserve(n int) int {
	p.reserved = max(p.reserved, p.pools[0].need(n))
	return p.reserved
}

func (p *snapkv) Plan(step Step, view *backend.View) {
	p.step = step
	p.plan(step, view, p.c.queryWeights(&p.weights, step))
}

// queryWeights returns the chunk's query weights, kept in *buf: query i
// weighs 1 when it lies in the prompt's last window. It returns nil, asking
// for no mass, for a chunk with no such query.
func (c *snapkvConfig) queryWeights(buf *[]float32, step Step) []float32 {
	if step.PromptEnd < 0 {
		if c.decodeEvery == 0 {
			return nil
		}
		*buf = ones(*buf, step.N)
		return *buf
	}
	from := step.PromptEnd - int64(c.window)
	if step.Start+int64(step.N) <= from {
		return nil
	}
	w := grow(*buf, step.N)
	for i := range w {
		w[i] = 0
		if t := step.Start + int64(i); t >= from && t < step.PromptEnd {
			w[i] = 1
		}
	}
	*buf = w
	return w
}

func (p *snapkv) Commit(mass []float32, place []int32) {
	n := p.step.N
	checkMass(mass, p.s, p.lists[0].len()+n)
	decodeCut := false
	if p.step.PromptEnd < 0 && p.c.decodeEvery > 0 {
		p.decoded += n
		decodeCut = p.decoded >= p.c.decodeEvery
	}
	for h := range p.lists {
		pl := place[h*n : (h+1)*n]
		p.absorb(h, mass, p.step, pl)
		switch {
		case p.step.EndsPrompt():
			budget := p.c.budget
			if p.budgetOf != nil {
				budget = p.budgetOf(p.lists[h].len())
			}
			p.compress(h, budget)
		case decodeCut:
			p.compress(h, p.c.decodeTarget)
		}
		p.lists[h].store(&p.pools[h], p.step.Start, pl)
	}
	if decodeCut || p.step.EndsPrompt() {
		p.decoded = 0
	}
}

// compress keeps head h's window and its best pooled prefix tokens, budget
// in all, then resets the scores.
func (p *snapkv) compress(h, budget int) {
	l := &p.lists[h]
	if T := l.len(); T > budget {
		m := T - p.c.window // prefix
		p.pooled = grow(p.pooled, m)
		pool1D(p.pooled, l.score[:m], p.c.kernel, p.c.avg)
		p.evict(h, p.c.window, budget-p.c.window, func(i, j int32) bool {
			si, sj := p.pooled[i], p.pooled[j]
			return si > sj || (si == sj && i > j)
		})
	}
	clear(l.score)
}

// pool1D sets dst[i] to the max, or the mean over k with zero padding, of
// src[i−k/2 .. i+k/2]: F.max_pool1d / F.avg_pool1d with stride 1 and
// padding k/2 for odd k.
func pool1D(dst, src []float32, k int, avg bool) {
	r := k / 2
	for i := range dst {
		lo, hi := max(0, i-r), min(len(src), i+r+1)
		if avg {
			var s float32
			for _, x := range src[lo:hi] {
				s += x
			}
			dst[i] = s / float32(k)
			continue
		}
		m := float32(math.Inf(-1))
		for _, x := range src[lo:hi] {
			m = max(m, x)
		}
		dst[i] = m
	}
}

func (p *snapkv) MetaBytes() int64 {
	return p.bytes() + int64(cap(p.weights)+cap(p.pooled))*4
}
