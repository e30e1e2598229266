package policies

import (
	"fmt"
	"math"

	"kvcascade/runtime/backend"
)

// cascadeSpec is the cascading KV cache of the paper, with the semantics of
// the reference Triton kernel (_update_kv_cache_inner of
// jeffwillette/cascading_cache_2).
func cascadeSpec() Spec {
	return Spec{
		Name: "cascade",
		Doc:  "cascading KV cache: sinks + cascades of ring buffers keeping ever sparser, attention-scored history in fixed memory",
		Params: []Param{
			{Name: "sinks", Kind: "int", Default: 64, Doc: "first tokens kept for ever (attention sinks)"},
			{Name: "size", Kind: "int", Default: 65536, Doc: "cascade slots per KV head, all cascades together (sinks not included)"},
			{Name: "cascades", Kind: "int", Default: 8, Doc: "number of cascades; must divide size"},
			{Name: "rule", Kind: "string", Default: "pow2", Choices: []string{"pow2", "pow3", "pow4", "iplus1"},
				Doc: "cascade i accepts every 2^i, 3^i, 4^i or (i+1)-th token"},
			{Name: "beta", Kind: "float", Default: 0.9999, Doc: "EMA factor of the attention scores per query, in (0, 1)"},
			{Name: "reduction", Kind: "string", Default: "mean", Choices: []string{"mean", "max"},
				Doc: "how the scores of the query heads of a GQA group are combined"},
			{Name: "homogeneous", Kind: "bool", Default: false,
				Doc: "reduce over all query heads, so that every KV head keeps the same tokens"},
			{Name: "eager_fill", Kind: "bool", Default: true,
				Doc: "every cascade accepts every token until the cache has been filled once"},
			positionsParam(),
			{Name: "scoring", Kind: "string", Default: "exact", Choices: []string{"exact", "reference"}, OmitDefault: true,
				Doc: "exact: the attention mass as the method is written; reference: the scores of the official flash kernel, quirks included (docs/design.md); CPU only"},
		},
		make: makeCascade,
	}
}

// cascadeConfig is a checked cascade configuration.
type cascadeConfig struct {
	sinks, size, cascades int
	every                 []int64 // [C] cascade i accepts token t when (t−sinks) mod every[i] == 0
	beta                  float64
	reduce                reduction
	homogeneous           bool
	eagerFill             bool
	positions             positions
	// reference selects the official code's scoring (scoring =
	// "reference"): see Plan and Commit.
	reference bool
	// compareOldest selects the rule of the reference's older
	// CascadingKVCacheSlow class: a carried token that a cascade does not
	// accept is compared with the cascade's oldest token instead of its
	// newest (and, if it wins, still overwrites the newest). Tests only.
	compareOldest bool
}

func makeCascade(v Values) (Factory, error) {
	const name = "cascade"
	if err := atLeast(name, v, 0, "sinks"); err != nil {
		return nil, err
	}
	if err := atLeast(name, v, 1, "size", "cascades"); err != nil {
		return nil, err
	}
	c := &cascadeConfig{
		sinks:       v.Int("sinks"),
		size:        v.Int("size"),
		cascades:    v.Int("cascades"),
		beta:        v.Float("beta"),
		homogeneous: v.Bool("homogeneous"),
		eagerFill:   v.Bool("eager_fill"),
		positions:   positionsOf(v),
	}
	if c.cascades > maxCascades {
		return nil, paramError(name, "cascades", "%d is more than %d (the acceptance period of the last cascade would overflow)", c.cascades, maxCascades)
	}
	if c.size%c.cascades != 0 {
		return nil, paramError(name, "size", "%d is not a multiple of cascades (%d)", c.size, c.cascades)
	}
	if c.sinks+c.size > maxSlots {
		return nil, paramError(name, "size", "sinks + size = %d is more than %d slots", c.sinks+c.size, maxSlots)
	}
	if !(c.beta > 0 && c.beta < 1) {
		return nil, paramError(name, "beta", "must lie in (0, 1), got %v", c.beta)
	}
	if v.String("reduction") == "max" {
		c.reduce = reduceMax
	}
	if v.String("scoring") == "reference" {
		if (c.sinks+c.size)%backend.FlashBlockM != 0 {
			return nil, paramError(name, "scoring", "\"reference\" needs sinks + size to be a multiple of %d, got %d: the official flash kernel pads the cached keys and the chunk separately to %d and would misplace its causal mask (and read its cache mask out of bounds)",
				backend.FlashBlockM, c.sinks+c.size, backend.FlashBlockM)
		}
		c.reference = true
	}
	c.every = acceptEvery(v.String("rule"), c.cascades)
	return dualFactory{
		factoryFunc: factoryFunc{name, func(_ int, s Shape) (Policy, error) { return newCascade(c, s) }},
		device: func(_ int, s Shape, b backend.Backend) (devicePolicy, error) {
			if c.reference {
				return nil, checkReferenceBackend(b)
			}
			return newCascadeDevice(c, s, b)
		},
	}, nil
}

// checkReferenceBackend returns an error unless b computes the official
// flash kernel's mass (backend.MassFlashReference), which scoring =
// "reference" needs; the cascade then keeps its bookkeeping on the host.
func checkReferenceBackend(b backend.Backend) error {
	if rm, ok := b.(backend.ReferenceMasser); ok && rm.ReferenceMass() {
		return nil
	}
	return fmt.Errorf("cascade: scoring = \"reference\" runs on the cpu backend only; the %s backend's attention does not compute the official flash kernel's scores", b.Name())
}

// maxCascades bounds the number of cascades: 2^62 tokens is the longest
// acceptance period that means anything.
const maxCascades = 63

// acceptEvery returns the acceptance period of each cascade under a rule,
// saturating at MaxInt64 (a cascade that then accepts only the first token
// after the sinks).
func acceptEvery(rule string, cascades int) []int64 {
	every := make([]int64, cascades)
	var base int64
	switch rule {
	case "pow2":
		base = 2
	case "pow3":
		base = 3
	case "pow4":
		base = 4
	case "iplus1":
		for i := range every {
			every[i] = int64(i + 1)
		}
		return every
	default:
		panic("policies: unknown cascade rule " + rule) // Choices keep it out
	}
	p := int64(1)
	for i := range every {
		every[i] = p
		if p > math.MaxInt64/base {
			p = math.MaxInt64
		} else {
			p *= base
		}
	}
	return every
}

// cascade is one layer of the cascading cache.
//
// Per KV head h it keeps C ring buffers of W = size/C entries. Entry e of
// cascade i of head h lives at index h·size + i·W + e of slot, pos and
// score; start and stored [Hkv·C] give each ring's oldest entry and fill.
// The entry names the storage slot its token was written to; tokens never
// move in storage, only between entries, so a token evicted from one
// cascade into the next keeps its slot. Sinks are token t in slot t, the
// same for every head. Cascade slots come from a per-head slotPool above the
// sinks; the storage holds exactly sinks + size slots per head.
type cascade struct {
	c    *cascadeConfig
	s    Shape
	w    int // entries per cascade
	sunk int // sinks stored, same for every head

	slot  []int32   // [Hkv·size] storage slot of each entry
	pos   []int64   // [Hkv·size] original position of each entry's token
	score []float32 // [Hkv·size] EMA of the attention each entry's token received

	start, stored []int32 // [Hkv·C] oldest entry and number of entries of each ring

	pools []slotPool // [Hkv]

	step    Step
	viewLen int
	weights []float32 // [n] query weights of the last chunk size
	flashW  []float32 // [n padded to 64] the official flash kernel's query weights
	flash   bool      // the chunk was planned as the official flash path (reference scoring, n > 1)

	a     []float32 // [L+n] reduced mass of one KV head
	depth []int32   // [n] cascades accepting each chunk token
}

func newCascade(c *cascadeConfig, s Shape) (*cascade, error) {
	if err := checkShape(s); err != nil {
		return nil, err
	}
	h := s.KVHeads
	p := &cascade{
		c: c, s: s, w: c.size / c.cascades,
		slot:   make([]int32, h*c.size),
		pos:    make([]int64, h*c.size),
		score:  make([]float32, h*c.size),
		start:  make([]int32, h*c.cascades),
		stored: make([]int32, h*c.cascades),
		pools:  make([]slotPool, h),
	}
	for i := range p.pools {
		p.pools[i] = slotPool{free: make([]int32, 0, c.size), next: int32(c.sinks)}
	}
	return p, nil
}

// Reserve returns sinks + size: the storage never grows.
func (p *cascade) Reserve(int) int { return p.c.sinks + p.c.size }

// held returns the number of cascade entries head 0 holds; every head holds
// as many, since fills and rotations do not depend on scores.
func (p *cascade) held() int { return sum32(p.stored[:p.c.cascades]) }

// sum32 returns the sum of s.
func sum32(s []int32) int {
	n := 0
	for _, x := range s {
		n += int(x)
	}
	return n
}

// ring returns the entries of cascade i of head h in order, oldest first,
// as two ranges of entry indices: [a0, a1) then [b0, b1). A ring is either
// not full, with start 0, or full and read from start round to start−1.
func (p *cascade) ring(h, i int) (a0, a1, b0, b1 int) {
	st, s0 := int(p.stored[h*p.c.cascades+i]), int(p.start[h*p.c.cascades+i])
	off := h*p.c.size + i*p.w
	end := s0 + st
	if end <= p.w {
		return off + s0, off + end, off, off
	}
	return off + s0, off + p.w, off, off + end - p.w
}

// each calls f with every entry head h holds in attention order: from the
// last (oldest) cascade to the first, each from its oldest entry to its
// newest. Hot loops use ring directly.
func (p *cascade) each(h int, f func(e int)) {
	for i := p.c.cascades - 1; i >= 0; i-- {
		a0, a1, b0, b1 := p.ring(h, i)
		for e := a0; e < a1; e++ {
			f(e)
		}
		for e := b0; e < b1; e++ {
			f(e)
		}
	}
}

// Plan lays out the view: sinks, then the cascades in attention order.
// With reference scoring a chunk of more than one token is laid out as the
// official flash path lays out its keys instead (planFlash).
func (p *cascade) Plan(step Step, view *backend.View) {
	p.step = step
	p.flash = p.c.reference && step.N > 1
	if p.flash {
		p.planFlash(step, view)
		return
	}
	view.MassMode = backend.MassExact
	hk := p.s.KVHeads
	L := p.sunk + p.held()
	p.viewLen = L
	view.Device = nil
	sizeView(view, hk, L)
	for h := 0; h < hk; h++ {
		slots, pos := view.Slots[h*L:(h+1)*L], view.Pos[h*L:(h+1)*L]
		for j := 0; j < p.sunk; j++ {
			slots[j], pos[j] = int32(j), int32(j)
		}
		j := p.sunk
		for i := p.c.cascades - 1; i >= 0; i-- {
			a0, a1, b0, b1 := p.ring(h, i)
			j += copy(slots[j:], p.slot[a0:a1])
			j += copy(slots[j:], p.slot[b0:b1])
		}
		if p.c.positions == originalPositions {
			j = p.sunk
			for i := p.c.cascades - 1; i >= 0; i-- {
				a0, a1, b0, b1 := p.ring(h, i)
				for _, t := range p.pos[a0:a1] {
					pos[j] = int32(t)
					j++
				}
				for _, t := range p.pos[b0:b1] {
					pos[j] = int32(t)
					j++
				}
			}
			view.QueryPos[h] = int32(step.Start)
			continue
		}
		for j := p.sunk; j < L; j++ {
			pos[j] = int32(j)
		}
		view.QueryPos[h] = int32(L)
	}
	p.weights = p.c.queryWeights(p.weights, step.N)
	view.QueryWeights = p.weights
}

// planFlash lays out the view as the official flash path does: every sink
// slot, then every cascade entry in storage order (cascade i's entry e at
// sinks + i·W + e), slots not yet filled as padding, each key at the same
// position as in the attention-order view; the mass it asks for is
// backend.MassFlashReference with the kernel's query weights.
func (p *cascade) planFlash(step Step, view *backend.View) {
	c, hk := p.c, p.s.KVHeads
	held := p.sunk + p.held() // the attention-order view's length
	L := c.sinks + c.size
	p.viewLen = L
	view.Device = nil
	sizeView(view, hk, L)
	for h := 0; h < hk; h++ {
		slots, pos := view.Slots[h*L:(h+1)*L], view.Pos[h*L:(h+1)*L]
		for j := 0; j < c.sinks; j++ {
			slots[j], pos[j] = -1, 0
			if j < p.sunk {
				slots[j], pos[j] = int32(j), int32(j)
			}
		}
		below := p.sunk // attention index of cascade i's oldest entry
		for i := c.cascades - 1; i >= 0; i-- {
			ri := h*c.cascades + i
			st, s0 := int(p.stored[ri]), int(p.start[ri])
			for e := 0; e < p.w; e++ {
				k, j := h*c.size+i*p.w+e, c.sinks+i*p.w+e
				switch {
				case e >= st:
					slots[j], pos[j] = -1, 0
				case c.positions == originalPositions:
					slots[j], pos[j] = p.slot[k], int32(p.pos[k])
				default:
					slots[j], pos[j] = p.slot[k], int32(below+(e-s0+p.w)%p.w)
				}
			}
			below += st
		}
		view.QueryPos[h] = int32(held)
		if c.positions == originalPositions {
			view.QueryPos[h] = int32(step.Start)
		}
	}
	p.flashW = p.c.flashWeights(p.flashW, step.N)
	view.QueryWeights = p.flashW
	view.MassMode = backend.MassFlashReference
}

// flashWeights returns the official flash kernel's query weights for a
// chunk of n queries padded to a multiple of backend.FlashBlockM:
// (1−β)·β^(63 − q mod 64), computed in float32 as the kernel does (the
// exponent through exp2 of k·log2 β). It reuses w when it has that length.
func (c *cascadeConfig) flashWeights(w []float32, n int) []float32 {
	bm := backend.FlashBlockM
	np := (n + bm - 1) / bm * bm
	if len(w) == np {
		return w
	}
	w = grow(w, np)
	for q := range w {
		w[q] = flashWeight(c.beta, bm-1-q%bm)
	}
	return w
}

// flashWeight is the kernel's coefficient exp2(k·log2 β)·(1−β) in float32.
func flashWeight(beta float64, k int) float32 {
	lb := float32(math.Log2(float64(float32(beta))))
	return float32(math.Exp2(float64(float32(k)*lb))) * float32(1-beta)
}

// queryWeights returns (1−β)·β^(n−1−q) for q < n: the chunk's contribution
// to an exponential moving average over queries, later queries weighing more.
// It reuses w, the weights of a previous call, when they are for n queries.
func (c *cascadeConfig) queryWeights(w []float32, n int) []float32 {
	if len(w) != n {
		w = grow(w, n)
		for q := range w {
			w[q] = float32((1 - c.beta) * math.Pow(c.beta, float64(n-1-q)))
		}
	}
	return w
}

// Commit first ages the scores of every cached token and adds the mass the
// chunk gave it, s ← β^n·s + a, then walks the chunk's tokens one by one
// through the cascades with the mass they received as their score.
//
// With reference scoring the reduced mass and every score are rounded to
// float16 as the official code stores them (s ← f16(f16(β^n·s) + a)), and
// after a flash-path chunk cascade entry k (i·W + e) of a head is credited
// with the mass of key k of the flash layout — the sinks' for the first
// slots, as the official code's slicing does — instead of its own.
func (p *cascade) Commit(mass []float32, place []int32) {
	n, hk, g := p.step.N, p.s.KVHeads, p.s.Group()
	L := p.viewLen
	w := L + n
	checkMass(mass, p.s, w)
	p.a = grow(p.a, w)
	bn := float32(math.Pow(p.c.beta, float64(n)))
	p.depth = grow(p.depth, n)
	for i := range p.depth {
		p.depth[i] = int32(p.c.accepting(p.step.Start + int64(i)))
	}
	for h := 0; h < hk; h++ {
		switch {
		case p.c.homogeneous && h == 0:
			reduceMass(p.a, mass, w, 0, p.s.QHeads, p.c.reduce)
		case !p.c.homogeneous:
			reduceMass(p.a, mass, w, h*g, (h+1)*g, p.c.reduce)
		}
		switch {
		case p.c.reference:
			p.ageReference(h, bn)
		default:
			a := p.a[p.sunk:L]
			for i := p.c.cascades - 1; i >= 0; i-- {
				a0, a1, b0, b1 := p.ring(h, i)
				a = age(p.score[a0:a1], a, bn)
				a = age(p.score[b0:b1], a, bn)
			}
		}
		pl := place[h*n : (h+1)*n]
		for i := range pl {
			t := p.step.Start + int64(i)
			if t < int64(p.c.sinks) {
				pl[i] = int32(t)
				continue
			}
			pl[i] = -1
			p.walk(h, t, p.a[L+i], int(p.depth[i]), pl)
		}
	}
	p.sunk = int(min(int64(p.c.sinks), p.step.Start+int64(n)))
}

// ageReference ages head h's scores as the official code does: p.a, the
// reduced mass of the chunk, is rounded to float16, and so is each step of
// s ← β^n·s + a. After a flash-path chunk entry k of cascade storage takes
// p.a[k], the mass of key k of [sinks ; cascade storage]: the official
// code slices the cached keys' scores without skipping the sinks. After a
// single-token chunk (the official eager path) each entry takes its own.
func (p *cascade) ageReference(h int, bn float32) {
	for j := range p.a {
		p.a[j] = backend.RoundF16(p.a[j])
	}
	c := p.c
	j := p.sunk // attention index, for the eager path
	for i := c.cascades - 1; i >= 0; i-- {
		ri := h*c.cascades + i
		st, s0 := int(p.stored[ri]), int(p.start[ri])
		for e := 0; e < st; e++ {
			k := i*p.w + e
			a := p.a[k]
			if !p.flash {
				a = p.a[j+(e-s0+p.w)%p.w]
			}
			s := &p.score[h*c.size+k]
			*s = backend.RoundF16(backend.RoundF16(bn**s) + a)
		}
		j += st
	}
}

// age sets s[i] = β^n·s[i] + a[i] in two float32 roundings, as the
// reference's two tensor operations, and returns the rest of a.
func age(s, a []float32, bn float32) []float32 {
	a, rest := a[:len(s)], a[len(s):]
	for i := range s {
		s[i] = float32(bn*s[i]) + a[i]
	}
	return rest
}

// accepting returns how many cascades, from the first, accept token t:
// the walk of t can only pass a cascade that accepts it.
func (c *cascadeConfig) accepting(t int64) int {
	if c.eagerFill && t <= int64(c.size+c.sinks) {
		return c.cascades
	}
	k := t - int64(c.sinks)
	d := 0
	for d < c.cascades && k%c.every[d] == 0 {
		d++
	}
	return d
}

// walk runs token t with score a through the cascades of head h, as the
// reference kernel does; the first `accepting` cascades accept t. It
// records in place (the chunk's row of head h) the slot t gets, and clears
// the place of any token of the chunk that t's arrival pushes out.
func (p *cascade) walk(h int, t int64, a float32, accepting int, place []int32) {
	c := p.c
	w := int32(p.w)
	// the carried token; t itself has no slot yet and gets one once the walk
	// is over, after the walk has freed one if the cache was full
	slot, pos, score := int32(-1), t, a
	rest := -1 // entry where t came to rest
	i := 0
	for ; i < c.cascades; i++ {
		ri := h*c.cascades + i
		st, s0 := p.stored[ri], p.start[ri]
		off := h*c.size + i*p.w
		if i < accepting {
			if st < w {
				// not full, so start is 0: append
				e := off + int(st)
				p.slot[e], p.pos[e], p.score[e] = slot, pos, score
				if slot < 0 {
					rest = e
				}
				p.stored[ri]++
				break
			}
			// full: the carried token takes the oldest entry, whose token
			// is carried on to the next cascade
			e := off + int(s0)
			oslot, opos, oscore := p.slot[e], p.pos[e], p.score[e]
			p.slot[e], p.pos[e], p.score[e] = slot, pos, score
			if slot < 0 {
				rest = e
			}
			slot, pos, score = oslot, opos, oscore
			if s0++; s0 == w {
				s0 = 0
			}
			p.start[ri] = s0
			continue
		}
		if st == 0 {
			e := off // empty, so start is 0
			p.slot[e], p.pos[e], p.score[e] = slot, pos, score
			if slot < 0 {
				rest = e
			}
			p.stored[ri] = 1
			break
		}
		// not accepted: the carried token competes with the newest entry,
		// (start−1) mod stored as Python computes it
		newest := off + int(st) - 1
		if s0 > 0 {
			newest = off + int(s0) - 1
		}
		against := newest
		if c.compareOldest {
			against = off + int(s0)
		}
		if score >= p.score[against] {
			p.drop(h, p.slot[newest], p.pos[newest], place)
			p.slot[newest], p.pos[newest], p.score[newest] = slot, pos, score
			if slot < 0 {
				rest = newest
			}
		} else {
			p.drop(h, slot, pos, place)
		}
		break
	}
	if i == c.cascades {
		p.drop(h, slot, pos, place) // pushed out of the last cascade
	}
	if rest >= 0 {
		s := p.pools[h].get()
		p.slot[rest] = s
		place[t-p.step.Start] = s
	}
}

// drop frees the slot of a token that leaves head h's cache; a token of the
// current chunk loses its place. Slot −1 is the walked token, not stored.
func (p *cascade) drop(h int, slot int32, pos int64, place []int32) {
	if slot < 0 {
		return
	}
	p.pools[h].put(slot)
	if i := pos - p.step.Start; i >= 0 {
		place[i] = -1
	}
}

// Held returns the sinks, then the cascades' tokens in attention order.
func (p *cascade) Held(h int, dst []int64) []int64 {
	dst = appendSinks(dst, p.sunk)
	p.each(h, func(e int) { dst = append(dst, p.pos[e]) })
	return dst
}

// appendSinks appends the positions of the first sunk tokens to dst.
func appendSinks(dst []int64, sunk int) []int64 {
	for j := 0; j < sunk; j++ {
		dst = append(dst, int64(j))
	}
	return dst
}

// Scores returns the scores of the tokens head h holds in its cascades, in
// attention order (sinks have none), appended to dst.
func (p *cascade) Scores(h int, dst []float32) []float32 {
	p.each(h, func(e int) { dst = append(dst, p.score[e]) })
	return dst
}

// MetaBytes counts the entries, ring indices, free lists and scratch.
func (p *cascade) MetaBytes() int64 {
	b := int64(len(p.slot))*(4+8+4) + int64(len(p.start))*8 + int64(cap(p.a)+cap(p.weights)+cap(p.flashW)+cap(p.depth))*4
	for i := range p.pools {
		b += p.pools[i].bytes()
	}
	return b
}

func (p *cascade) String() string { return p.c.String() }

func (c *cascadeConfig) String() string {
	return fmt.Sprintf("cascade(sinks=%d, %d×%d)", c.sinks, c.cascades, c.size/c.cascades)
}
