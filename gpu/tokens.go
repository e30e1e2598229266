package gpu

import (
	_ "embed"
	"fmt"
	"math"
	"unsafe"

	"kvcascade/gpu/cuda"
	"kvcascade/policies/device"
	"kvcascade/runtime/backend"
)

//go:embed kernels/tokens.cu
var tokensSource string

// tokenKernels are the kernels of kernels/tokens.cu, and the cascade's
// reduction over GQA groups, which the token lists share.
type tokenKernels struct {
	plan, absorb, pool, sel, compact, store, move *cuda.Function
	reduce                                        massReducers // kernels/cascade.cu's
}

// listThreads is LIST_THREADS of kernels/tokens.cu: the block of the
// per-head kernels.
const listThreads = 1024

// tokenKernelNames are the kernels of kernels/tokens.cu, in the order
// tokenKernelsFor binds them.
var tokenKernelNames = [...]string{"tokens_plan", "tokens_absorb", "tokens_pool", "tokens_select", "tokens_compact", "tokens_store", "tokens_move"}

func tokensProgram() program { return newProgram("tokens.cu", tokensSource) }

// tokenKernelsFor compiles kernels/tokens.cu (and kernels/cascade.cu) on
// first use. Call with b.mu held.
func (b *Backend) tokenKernelsFor() (*tokenKernels, error) {
	if b.toks != nil {
		return b.toks, nil
	}
	casc, err := b.cascadeKernelsFor()
	if err != nil {
		return nil, err
	}
	k := &tokenKernels{reduce: casc.reduce}
	if err := b.load(tokensProgram(), tokenKernelNames[:],
		[]**cuda.Function{&k.plan, &k.absorb, &k.pool, &k.sel, &k.compact, &k.store, &k.move}); err != nil {
		return nil, err
	}
	b.toks = k
	return k, nil
}

// NewTokenList returns one layer's token lists with their bookkeeping on
// the device (device.TokenLister), for h2o, snapkv, full and truncated. With
// Options.HostPolicies it returns an error wrapping errors.ErrUnsupported,
// and the policy stays on the host.
func (b *Backend) NewTokenList(spec device.TokenListSpec) (device.TokenList, error) {
	if b.hostPolicies {
		return nil, fmt.Errorf("gpu: token list bookkeeping kept on the host by Options.HostPolicies: %w", errUnsupported)
	}
	if spec.KVHeads <= 0 || spec.QHeads%spec.KVHeads != 0 {
		return nil, fmt.Errorf("gpu: token list for %d query heads and %d KV heads", spec.QHeads, spec.KVHeads)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	k, err := b.tokenKernelsFor()
	if err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	d := &deviceTokens{viewState: viewState{b: b, qHeads: spec.QHeads, kvHeads: spec.KVHeads}, k: k, spec: spec}
	d.view.c = &d.viewState
	return d, nil
}

// deviceTokens is one layer's token lists on the device
// (device.TokenList); kernels/tokens.cu documents the layout of its
// state. The lists live in one allocation of cap entries per head, grown
// (doubling) when a chunk would not fit.
type deviceTokens struct {
	viewState // vslot and vpos lie in mem
	k         *tokenKernels
	spec      device.TokenListSpec

	cap   int            // entries per head of every array below
	mem   cuda.DevicePtr // everything below
	bytes int
	cur   tokenBuf // the lists
	alt   tokenBuf // where a compaction writes them
	freed cuda.DevicePtr

	// Known on the host, the same for every head: the tokens held, the
	// depth of the free stack and the lowest slot never handed out.
	l, free, next int
	wantMass      bool // the view asked for the chunk's mass
	// evicted: some chunk evicted tokens, so that the heads may hold
	// different ones (until then they hold the same, at the same
	// positions).
	evicted bool

	// Per chunk, grown on demand: the mass reduced per KV head [Hkv, L+n],
	// the slots of the chunk's tokens [Hkv, n], the pooled scores [Hkv, m]
	// and the selection thresholds [Hkv].
	reduced, place, pooled, thresh scratch

	view deviceView
}

// tokenBuf is one copy of the lists: [Hkv, cap] each.
type tokenBuf struct{ pos, slot, score cuda.DevicePtr }

// Len returns the tokens each head holds.
func (d *deviceTokens) Len() int { return d.l }

// Reserve returns the slots per head needed before a chunk of n tokens, as
// policies' slotPool.need counts them.
func (d *deviceTokens) Reserve(n int) int { return d.next + max(0, n-d.free) }

// grow makes room for need entries per head, moving the lists and free
// stacks. Call with b.mu held.
func (d *deviceTokens) grow(need int) {
	b, hk := d.b, d.kvHeads
	c := max(need, 2*d.cap, 256)
	if c > math.MaxInt32 {
		panic(fmt.Sprintf("gpu: token lists of %d entries", need))
	}
	var nb, na tokenBuf
	var freed, vslot, vpos cuda.DevicePtr
	// One allocation: the 8-byte arrays first, then the 4-byte ones.
	layout := []struct {
		p     *cuda.DevicePtr
		bytes int
	}{
		{&nb.pos, 8 * hk * c}, {&na.pos, 8 * hk * c},
		{&nb.slot, 4 * hk * c}, {&na.slot, 4 * hk * c}, {&nb.score, 4 * hk * c}, {&na.score, 4 * hk * c},
		{&freed, 4 * hk * c}, {&vslot, 4 * hk * c}, {&vpos, 4 * hk * c},
	}
	bytes := 0
	for _, l := range layout {
		bytes += l.bytes
	}
	mem, err := b.dev.Alloc(bytes)
	if err != nil {
		panic(fmt.Sprintf("gpu: token lists of %d bytes: %v", bytes, err))
	}
	off := 0
	for _, l := range layout {
		*l.p = mem.Add(off)
		off += l.bytes
	}
	if d.mem != 0 {
		if w := max(d.l, d.free); w > 0 {
			launch(d.k.move, cuda.Dim3{X: (w + elemThreads - 1) / elemThreads, Y: hk}, cuda.Dim3{X: elemThreads}, 0,
				cuda.Ptr(nb.pos), cuda.Ptr(nb.slot), cuda.Ptr(nb.score), cuda.Ptr(freed),
				cuda.Ptr(d.cur.pos), cuda.Ptr(d.cur.slot), cuda.Ptr(d.cur.score), cuda.Ptr(d.freed),
				cuda.Int(d.cap), cuda.Int(c), cuda.Int(d.l), cuda.Int(d.free))
		}
		must(b.dev.Synchronize())
		must(b.dev.Free(d.mem))
	}
	d.mem, d.bytes, d.cap = mem, bytes, c
	d.cur, d.alt, d.freed, d.vslot, d.vpos = nb, na, freed, vslot, vpos
}

// Plan lays out the view of the next chunk on the device.
func (d *deviceTokens) Plan(first int64, n int, mass bool) backend.DeviceView {
	if n <= 0 {
		panic(fmt.Sprintf("gpu: token list Plan of %d tokens", n))
	}
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if d.l+n > d.cap {
		d.grow(d.l + n)
	}
	d.view = deviceView{c: &d.viewState, first: first, n: n, l: d.l, original: d.spec.Original,
		samePos: !d.spec.Original || !d.evicted}
	d.wantMass = mass
	if d.l > 0 {
		launch(d.k.plan, cuda.Dim3{X: (d.l + elemThreads - 1) / elemThreads, Y: d.kvHeads}, cuda.Dim3{X: elemThreads}, 0,
			cuda.Ptr(d.vslot), cuda.Ptr(d.vpos), cuda.Ptr(d.cur.slot), cuda.Ptr(d.cur.pos),
			cuda.Int(d.cap), cuda.Int(d.l), cuda.Int(boolInt(d.spec.Original)))
	}
	return &d.view
}

// Commit absorbs the chunk's mass and tokens, evicts as e says, gives the
// chunk's surviving tokens slots and stores their rows.
func (d *deviceTokens) Commit(k, v, chunkK, chunkV backend.Tensor, e device.Eviction) {
	vw := &d.view
	if vw.n == 0 {
		panic("gpu: token list Commit without Plan")
	}
	if d.wantMass && !vw.hasMass() {
		panic("gpu: token list Commit without the attention mass of its view")
	}
	if e.Budget < 0 || e.Recent < 0 || e.Recent > e.Budget || e.Pool > 1 && e.Pool%2 == 0 {
		panic(fmt.Sprintf("gpu: token list eviction %+v", e))
	}
	hk, n, L := d.kvHeads, vw.n, vw.l
	T := L + n
	evict := 0
	if e.Budget > 0 && T > e.Budget {
		evict = T - e.Budget
		d.evicted = true
	}
	// the pools' counts after the chunk: freed slots are used before fresh ones
	next := d.next + max(0, n-evict-d.free)
	held := T - evict
	ks, vs, ck, cv := tensor(k), tensor(v), tensor(chunkK), tensor(chunkV)
	if len(ks.shape) != 3 || ks.shape[0] != hk || ks.shape[1] < next || vs.numel() != ks.numel() {
		panic(fmt.Sprintf("gpu: token list Commit into storage %v for %d KV heads × %d slots", ks.shape, hk, next))
	}
	hd, capacity := ks.shape[2], ks.shape[1]
	if ck.numel() != n*hk*hd || cv.numel() != ck.numel() {
		panic(fmt.Sprintf("gpu: token list Commit of chunk rows %v, %v for %d tokens", ck.shape, cv.shape, n))
	}
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	place := d.place.ensure(b.dev, 4*hk*n)
	var red cuda.DevicePtr
	if vw.hasMass() {
		red = d.reduced.ensure(b.dev, 4*hk*T)
		vw.reduceMass(d.k.reduce, red, T, false, false, 0, 0, 0, 0) // the mean over each group, no aging
	}
	launch(d.k.absorb, cuda.Dim3{X: (T + elemThreads - 1) / elemThreads, Y: hk}, cuda.Dim3{X: elemThreads}, 0,
		cuda.Ptr(d.cur.pos), cuda.Ptr(d.cur.slot), cuda.Ptr(d.cur.score), cuda.Ptr(place), cuda.Ptr(red),
		cuda.Int(d.cap), cuda.Int(L), cuda.Int(n), cuda.Int64(vw.first))
	if evict > 0 {
		m, keep := T-e.Recent, e.Budget-e.Recent // candidates, and how many of them stay
		s, stride := d.cur.score, d.cap
		if e.Pool > 1 {
			s, stride = d.pooled.ensure(b.dev, 4*hk*m), m
			launch(d.k.pool, cuda.Dim3{X: (m + elemThreads - 1) / elemThreads, Y: hk}, cuda.Dim3{X: elemThreads}, 0,
				cuda.Ptr(s), cuda.Ptr(d.cur.score), cuda.Int(d.cap), cuda.Int(m), cuda.Int(e.Pool), cuda.Int(boolInt(e.PoolAvg)))
		}
		thresh := d.thresh.ensure(b.dev, 8*hk)
		if keep > 0 {
			launch(d.k.sel, cuda.Dim3{X: hk}, cuda.Dim3{X: listThreads}, 0,
				cuda.Ptr(thresh), cuda.Ptr(s), cuda.Int(stride), cuda.Int(m), cuda.Int(keep))
		}
		launch(d.k.compact, cuda.Dim3{X: hk}, cuda.Dim3{X: listThreads}, 0,
			cuda.Ptr(d.alt.pos), cuda.Ptr(d.alt.slot), cuda.Ptr(d.alt.score),
			cuda.Ptr(d.cur.pos), cuda.Ptr(d.cur.slot), cuda.Ptr(d.cur.score),
			cuda.Ptr(d.freed), cuda.Ptr(place), cuda.Ptr(s), cuda.Int(stride), cuda.Ptr(thresh),
			cuda.Int(d.cap), cuda.Int(L), cuda.Int(T), cuda.Int(m), cuda.Int(keep), cuda.Int(d.free), cuda.Int(d.next),
			cuda.Int64(vw.first), cuda.Int(n), cuda.Int(boolInt(e.Reset)))
		d.cur, d.alt = d.alt, d.cur
	} else {
		launch(d.k.store, cuda.Dim3{X: (T + elemThreads - 1) / elemThreads, Y: hk}, cuda.Dim3{X: elemThreads}, 0,
			cuda.Ptr(d.cur.slot), cuda.Ptr(d.cur.score), cuda.Ptr(place), cuda.Ptr(d.freed),
			cuda.Int(d.cap), cuda.Int(L), cuda.Int(T), cuda.Int(d.free), cuda.Int(d.next), cuda.Int(boolInt(e.Reset)))
	}
	// A slot names at most one row of the chunk: no de-duplication needed.
	b.scatterPlaced(ks, ck, vs, cv, place, n, hk, capacity, hd)
	d.l, d.next, d.free = held, next, next-held
	vw.dropMass()
	vw.n = 0
}

// Held appends the original positions head h holds.
func (d *deviceTokens) Held(h int, dst []int64) []int64 { return appendHead(d, h, d.cur.pos, dst) }

// Scores appends the scores of those tokens.
func (d *deviceTokens) Scores(h int, dst []float32) []float32 {
	return appendHead(d, h, d.cur.score, dst)
}

// appendHead appends to dst the first d.l entries of head h's row of a
// per-token array src [Hkv, cap].
func appendHead[T cuda.Plain](d *deviceTokens, h int, src cuda.DevicePtr, dst []T) []T {
	d.checkHead(h)
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	i := len(dst)
	dst = append(dst, make([]T, d.l)...)
	must(cuda.Download(b.dev, dst[i:], src.Add(int(unsafe.Sizeof(dst[0]))*h*d.cap)))
	return dst
}

func (d *deviceTokens) checkHead(h int) {
	if h < 0 || h >= d.kvHeads {
		panic(fmt.Sprintf("gpu: token list head %d of %d", h, d.kvHeads))
	}
}

// Bytes is the device memory of the lists and their per-chunk buffers.
func (d *deviceTokens) Bytes() int64 {
	return int64(d.bytes + d.mass.bytes + d.reduced.bytes + d.place.bytes + d.pooled.bytes + d.thresh.bytes)
}

// Free releases the state once queued work is done with it.
func (d *deviceTokens) Free() {
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if d.mem != 0 {
		must(b.dev.Synchronize())
		must(b.dev.Free(d.mem))
		d.mem, d.bytes, d.cap, d.l, d.free, d.next = 0, 0, 0, 0, 0, 0
	}
	for _, s := range []*scratch{&d.mass, &d.reduced, &d.place, &d.pooled, &d.thresh} {
		must(s.release(b.dev))
	}
}

var _ device.TokenLister = (*Backend)(nil)
