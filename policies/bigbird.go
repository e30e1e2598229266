package policies

import (
	"math/bits"

	"kvcascade/policies/device"
	"kvcascade/runtime/backend"
)

// bigbirdSpec is a BigBird-style sparse pattern over a cache that keeps
// everything.
func bigbirdSpec() Spec {
	return Spec{
		Name: "bigbird",
		Doc: "BigBird: each chunk attends to `global` first tokens, `random_blocks` random blocks and a `window` of recent " +
			"tokens; every token is kept, so memory grows like full (kvcascade's BigBird; the paper's is hip_bigbird)",
		Params: []Param{
			{Name: "global", Kind: "int", Default: 4, Doc: "first tokens every chunk attends to"},
			{Name: "window", Kind: "int", Default: 1024, Doc: "tokens right before the chunk that it attends to"},
			{Name: "random_blocks", Kind: "int", Default: 4, Doc: "random blocks each chunk attends to, per KV head"},
			{Name: "block", Kind: "int", Default: 64, Doc: "block size in tokens; blocks are aligned to the end of the globals"},
			{Name: "seed", Kind: "int", Default: 0, Doc: "seed of the random blocks, mixed with layer, KV head and chunk start"},
			positionsParam(),
		},
		make: func(v Values) (Factory, error) {
			const name = "bigbird"
			if err := atLeast(name, v, 0, "global", "window", "random_blocks"); err != nil {
				return nil, err
			}
			if err := atLeast(name, v, 1, "block"); err != nil {
				return nil, err
			}
			c := bigbirdConfig{global: int64(v.Int("global")), window: int64(v.Int("window")),
				blocks: v.Int("random_blocks"), block: int64(v.Int("block")), seed: uint64(v.Int("seed")),
				positions: positionsOf(v)}
			return bigbirdFactory(name, c), nil
		},
	}
}

// bigbirdFactory makes the layers of bigbird (or hip_bigbird) with c: on
// the host, or on a backend that lays out patterns on its device
// (device.Patterner), where the host still draws the random blocks and
// hands over only their starts, Hkv·random_blocks numbers per chunk,
// instead of every view key's slot and position.
func bigbirdFactory(name string, c bigbirdConfig) dualFactory {
	newBigbird := func(layer int, s Shape) (*bigbird, error) {
		if err := checkShape(s); err != nil {
			return nil, err
		}
		return &bigbird{c: c, s: s, layer: uint64(layer)}, nil
	}
	return dualFactory{
		factoryFunc: factoryFunc{name, func(l int, s Shape) (Policy, error) { return newBigbird(l, s) }},
		device: func(l int, s Shape, b backend.Backend) (devicePolicy, error) {
			p, err := newBigbird(l, s)
			if err != nil {
				return nil, err
			}
			return newPatternDevice(p, s, device.PatternSpec{}, b) // token t in slot t
		},
	}
}

type bigbirdConfig struct {
	global, window int64
	blocks         int
	block          int64
	seed           uint64
	positions      positions
}

// bigbird keeps token t in slot t. A chunk starting at s attends, per KV
// head, to tokens [0, g) with g = min(global, s); the window
// [max(g, s−window), s); and r random blocks among the complete blocks
// [g+b·block, g+(b+1)·block) that end at or before the window's start,
// drawn without replacement by a generator seeded from (seed, layer, KV
// head, s) alone, so a pattern is reproducible and independent of anything
// else; then to itself, causally. All parts are in original order.
type bigbird struct {
	c     bigbirdConfig
	s     Shape
	layer uint64
	seen  int64
	step  Step
	pick  []int64  // [r] chosen blocks of one head
	mark  []uint64 // [⌈blocks/64⌉] choose's bitset of taken blocks, zero between calls
	start []int32  // [Hkv·r] the chosen blocks' first tokens (pattern)
}

func (p *bigbird) Reserve(n int) int { return int(p.seen) + n }

// bounds returns the end of the globals, the window's start and the number
// of complete blocks between them for a chunk starting at s.
func (p *bigbird) bounds(s int64) (g, w0 int64, blocks int64) {
	g = min(p.c.global, s)
	w0 = max(g, s-p.c.window)
	return g, w0, (w0 - g) / p.c.block
}

// choose sets p.pick to the random blocks head h sees in the chunk
// starting at s, ascending.
func (p *bigbird) choose(h int, s, blocks int64) {
	r := min(int64(p.c.blocks), blocks)
	p.pick = p.pick[:0]
	if r == blocks {
		for b := range blocks {
			p.pick = append(p.pick, b)
		}
		return
	}
	rng := splitmix(mix(mix(mix(p.c.seed, p.layer), uint64(h)), uint64(s)))
	// Floyd's sampling of r distinct values in [0, blocks): a draw already
	// taken is replaced by j, which no earlier step can have taken. The
	// taken blocks are marked in a bitset, which also lists them in order;
	// its words are cleared again as they are read.
	p.mark = grow(p.mark, int((blocks+63)/64))
	for j := blocks - r; j < blocks; j++ {
		b := int64(rng.below(uint64(j + 1)))
		if p.mark[b>>6]&(1<<(b&63)) != 0 {
			b = j
		}
		p.mark[b>>6] |= 1 << (b & 63)
	}
	for w, m := range p.mark {
		for ; m != 0; m &= m - 1 {
			p.pick = append(p.pick, int64(w)*64+int64(bits.TrailingZeros64(m)))
		}
		p.mark[w] = 0
	}
}

func (p *bigbird) Plan(step Step, view *backend.View) {
	p.step = step
	hk := p.s.KVHeads
	g, w0, blocks := p.bounds(p.seen)
	r := min(int64(p.c.blocks), blocks)
	L := int(g + r*p.c.block + p.seen - w0)
	sizeView(view, hk, L)
	for h := 0; h < hk; h++ {
		slots, pos := view.Slots[h*L:(h+1)*L], view.Pos[h*L:(h+1)*L]
		j := 0
		add := func(lo, hi int64) {
			for t := lo; t < hi; t++ {
				slots[j] = int32(t)
				pos[j] = int32(j)
				if p.c.positions == originalPositions {
					pos[j] = int32(t)
				}
				j++
			}
		}
		add(0, g)
		p.choose(h, p.seen, blocks)
		for _, b := range p.pick {
			add(g+b*p.c.block, g+(b+1)*p.c.block)
		}
		add(w0, p.seen)
		view.QueryPos[h] = int32(L)
		if p.c.positions == originalPositions {
			view.QueryPos[h] = int32(step.Start)
		}
	}
	view.QueryWeights = nil
}

// pattern is the view Plan lists: the globals, each head's random blocks
// (the same draw) and the window.
func (p *bigbird) pattern(step Step) device.PatternView {
	p.step = step
	g, w0, blocks := p.bounds(p.seen)
	p.start = p.start[:0]
	for h := range p.s.KVHeads {
		p.choose(h, p.seen, blocks)
		for _, b := range p.pick {
			p.start = append(p.start, int32(g+b*p.c.block))
		}
	}
	return device.PatternView{Start: step.Start, N: step.N, Head: g, Blocks: p.start, Block: int(p.c.block), Tail: w0}
}

// advance counts n tokens committed.
func (p *bigbird) advance(n int) { p.seen += int64(n) }

func (p *bigbird) Commit(_ []float32, place []int32) {
	n := p.step.N
	for h := 0; h < p.s.KVHeads; h++ {
		for i := 0; i < n; i++ {
			place[h*n+i] = int32(p.seen) + int32(i)
		}
	}
	p.seen += int64(n)
}

// Held returns every token: bigbird evicts nothing.
func (p *bigbird) Held(_ int, dst []int64) []int64 {
	for t := range p.seen {
		dst = append(dst, t)
	}
	return dst
}

func (p *bigbird) MetaBytes() int64 {
	return int64(cap(p.pick)+cap(p.mark))*8 + int64(cap(p.start))*4
}

// splitmix is the SplitMix64 generator: tiny, fast and fixed forever, so
// that a seed names the same pattern in every build.
type splitmix uint64

func (x *splitmix) next() uint64 {
	*x += 0x9e3779b97f4a7c15
	z := uint64(*x)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// below returns a uniform value in [0, n), n > 0, by rejection.
func (x *splitmix) below(n uint64) uint64 {
	limit := -n % n // 2^64 mod n
	for {
		if v := x.next(); v >= limit {
			return v % n
		}
	}
}

// mix folds v into the hash h.
func mix(h, v uint64) uint64 {
	s := splitmix(h ^ (v * 0xff51afd7ed558ccd))
	return s.next()
}
