package gpu

import (
	"fmt"

	"kvcascade/gpu/cuda"
	"kvcascade/runtime/backend"
)

// ropeKey identifies a set of RoPE frequencies, as the CPU backend does:
// by the slice's first element, its length and the cos/sin factor.
type ropeKey struct {
	first  *float32
	n      int
	factor float32
}

// ropeTable holds cos and sin of position·invFreq (times the factor) on
// the device for positions [0, n): buf is cos [n, half] then sin [n, half].
type ropeTable struct {
	buf, inv cuda.DevicePtr
	half, n  int
}

func (t *ropeTable) cos() cuda.DevicePtr { return t.buf }
func (t *ropeTable) sin() cuda.DevicePtr { return t.buf.Add(4 * t.n * t.half) }

// table returns a RoPE table covering positions [0, need), computing a
// larger one on the device when the cached table is too short.
func (b *Backend) table(invFreq []float32, factor float32, need int) *ropeTable {
	key := ropeKey{&invFreq[0], len(invFreq), factor}
	old := b.rope[key]
	if old != nil && old.n >= need {
		return old
	}
	half := len(invFreq)
	t := &ropeTable{half: half, n: max(need, minRopeLength)}
	if old != nil {
		t.n = max(t.n, 2*old.n)
		t.inv = old.inv
		must(b.dev.Synchronize()) // attention may still read the old table
		must(b.dev.Free(old.buf))
	} else {
		p, err := b.dev.Alloc(4 * half)
		must(err)
		t.inv = p
		must(cuda.Upload(b.dev, p, invFreq))
	}
	p, err := b.dev.Alloc(2 * 4 * t.n * half)
	must(err)
	t.buf = p
	total := t.n * half
	launch(b.k.ropeTable, b.elementGrid(total), cuda.Dim3{X: elemThreads}, 0,
		cuda.Ptr(t.cos()), cuda.Ptr(t.sin()), cuda.Ptr(t.inv), cuda.Int(half), cuda.Int64(int64(t.n)), cuda.Float(factor))
	b.rope[key] = t
	return t
}

// Attention runs attention of a chunk over [view ; chunk (causal)] with
// RoPE applied by position, and fills a.Mass when it is not nil. Out, Q,
// K, V and the cache must share one storage type (the backend's DType, as
// the model and the policies' caches make them); the arithmetic is
// float32.
func (b *Backend) Attention(a *backend.Attention) {
	out, q, k, v := tensor(a.Out), tensor(a.Q), tensor(a.K), tensor(a.V)
	hd, hq, hkv := a.HeadDim, a.QHeads, a.KVHeads
	ctx := &a.View
	if hd <= 0 || hkv <= 0 || hq%hkv != 0 || len(a.InvFreq) != hd/2 {
		panic(fmt.Sprintf("gpu: Attention with %d query heads, %d KV heads, head dim %d, %d frequencies", hq, hkv, hd, len(a.InvFreq)))
	}
	s := q.numel() / (hq * hd)
	l := ctx.ViewLen
	n := l + s
	if q.numel() != s*hq*hd || out.numel() != q.numel() || k.numel() != s*hkv*hd || v.numel() != k.numel() {
		panic(fmt.Sprintf("gpu: Attention shapes: out %v, q %v, k %v, v %v for %d/%d heads of %d", out.shape, q.shape, k.shape, v.shape, hq, hkv, hd))
	}
	if ctx.PerQueryHead || a.Mass != nil && ctx.MassMode != backend.MassExact {
		// The policies that ask for these check backend.Supports first.
		panic(fmt.Sprintf("gpu: Attention has none of the optional features (per-query-head view %v, mass mode %d): the cpu backend has them", ctx.PerQueryHead, ctx.MassMode))
	}
	dv, _ := ctx.Device.(*deviceView)
	if ctx.Device != nil && (dv == nil || dv.c.b != b) {
		panic(fmt.Sprintf("gpu: Attention over a view planned on another device (%T)", ctx.Device))
	}
	if dv != nil && (dv.l != l || dv.n != s || a.Mass != nil || ctx.QueryWeights != nil && len(ctx.QueryWeights) != s || dv.c.kvHeads != hkv || dv.c.qHeads != hq) {
		panic(fmt.Sprintf("gpu: Attention of %d queries over a device view of %d keys planned for %d (%d query weights, mass slice %v)", s, l, dv.n, len(ctx.QueryWeights), a.Mass != nil))
	}
	if dv == nil && (len(ctx.Slots) != hkv*l || len(ctx.Pos) != hkv*l) || len(ctx.QueryPos) != hkv {
		panic(fmt.Sprintf("gpu: Attention context: %d slots, %d positions, %d query positions for %d KV heads × %d", len(ctx.Slots), len(ctx.Pos), len(ctx.QueryPos), hkv, l))
	}
	st := q.st
	if out.st != st || k.st != st || v.st != st {
		panic(fmt.Sprintf("gpu: Attention of out %v, q %v, k %v, v %v: one storage type for all", out.DType(), q.DType(), k.DType(), v.DType()))
	}
	var ck, cv cuda.DevicePtr
	capacity := 0
	if ctx.K != nil {
		kt, vt := tensor(ctx.K), tensor(ctx.V)
		if len(kt.shape) != 3 || kt.shape[0] != hkv || kt.shape[2] != hd || vt.numel() != kt.numel() {
			panic(fmt.Sprintf("gpu: Attention cache of shape %v for %d KV heads of %d", kt.shape, hkv, hd))
		}
		if kt.st != st || vt.st != st {
			panic(fmt.Sprintf("gpu: Attention cache of %v and %v for a chunk of %v: one storage type for all", kt.DType(), vt.DType(), q.DType()))
		}
		ck, cv, capacity = kt.ptr(), vt.ptr(), kt.shape[1]
	}
	if a.Mass != nil && (len(a.Mass) != hq*n || len(ctx.QueryWeights) != s) {
		panic(fmt.Sprintf("gpu: Attention mass of %d for %d×%d, %d query weights for %d queries", len(a.Mass), hq, n, len(ctx.QueryWeights), s))
	}
	if s == 0 {
		return
	}

	// Positions reach the table: check them here, not in the kernel. A
	// device view's were checked when it was planned.
	// Whether every head sees the same positions, so that decoding may
	// share each key's RoPE row among the heads: a device view knows; a
	// host view's rows are compared as they are checked.
	maxPos, samePos := 0, true
	if dv != nil {
		maxPos, samePos = dv.maxPos(), dv.samePos
	}
	for i, p := range ctx.Pos {
		if p < 0 {
			panic(fmt.Sprintf("gpu: Attention: negative position %d at %d", p, i))
		}
		if slot := ctx.Slots[i]; int(slot) >= capacity {
			panic(fmt.Sprintf("gpu: Attention: slot %d of a cache of %d", slot, capacity))
		}
		maxPos = max(maxPos, int(p))
		samePos = samePos && (i < l || p == ctx.Pos[i-l])
	}
	for _, p := range ctx.QueryPos {
		if p < 0 {
			panic(fmt.Sprintf("gpu: Attention: negative query position %d", p))
		}
		maxPos = max(maxPos, int(p)+s-1)
		samePos = samePos && p == ctx.QueryPos[0]
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	kern, err := b.attnFor(hd, st)
	must(err)
	rt := b.table(a.InvFreq, a.AttnFactor, maxPos+1)

	// One upload for the call: slots and positions (unless the view is on
	// the device already), query positions, weights.
	hostView := hkv * l
	if dv != nil {
		hostView = 0
	}
	wantMass := a.Mass != nil || dv != nil && ctx.QueryWeights != nil
	words := b.words(2*hostView + hkv + s)
	if dv == nil {
		for i, x := range ctx.Slots {
			words[i] = uint32(x)
		}
		for i, x := range ctx.Pos {
			words[hostView+i] = uint32(x)
		}
	}
	for i, x := range ctx.QueryPos {
		words[2*hostView+i] = uint32(x)
	}
	weights := words[2*hostView+hkv:]
	if wantMass {
		for i, w := range ctx.QueryWeights {
			weights[i] = f32bits(w)
		}
	}
	args := b.upload(words)
	slots, pos := args, args.Add(4*hostView)
	qpos, wts := args.Add(4*2*hostView), args.Add(4*(2*hostView+hkv))
	if dv != nil {
		slots, pos = dv.c.vslot, dv.c.vpos
	}

	var stats, mass cuda.DevicePtr
	if wantMass {
		stats = b.stats.ensure(b.dev, 4*2*hq*s)
		mass = b.mass.ensure(b.dev, 4*hq*n)
		if dv != nil {
			// the view's own buffer: sessions sharing the backend may run
			// attention between this call and the policy's Commit (room for
			// a decoding step's scores and statistics too)
			mass = dv.c.mass.ensure(b.dev, 4*hq*(n+2*s))
		}
	}
	// Flash-decoding where decode.cu covers the call (bf16, S ≤ 16, hd 64,
	// 128 or 256).
	if st == stBF16 && !b.noDecode && s <= decodeMaxQueries {
		c := &flashCall{out: out.ptr(), stats: stats, q: q.ptr(), k: k.ptr(), v: v.ptr(), ck: ck, cv: cv,
			slots: slots, pos: pos, qpos: qpos, cos: rt.cos(), sin: rt.sin(),
			s: s, l: l, capacity: capacity, hq: hq, hkv: hkv, hd: hd, scale: a.Scale,
			samePos: samePos, indexPos: dv != nil && !dv.original}
		// A decoding step of a device policy leaves its scores and row
		// statistics in the view's buffer, and the policy's Commit reduces
		// them (pendingMass): the mass of every query head is never stored.
		pend := wantMass && dv != nil && s == 1 && len(ctx.QueryWeights) == 1
		switch {
		case pend:
			c.scores, c.stats = mass, mass.Add(4*hq*n)
		case wantMass:
			c.weights, c.mass = wts, mass
		}
		if b.decodeAttention(c) {
			if pend {
				dv.leaveMass(0, pendingMass{scores: c.scores, stats: c.stats, n: n, w: ctx.QueryWeights[0]})
				return
			}
			b.finishMass(a, dv, mass, wantMass)
			return
		}
	}
	// Tensor cores where flash.cu covers the call (bf16, S ≥ 64, hd 64 or
	// 128), else attention.cu below.
	if st == stBF16 && !b.noFlash {
		c := &flashCall{out: out.ptr(), stats: stats, q: q.ptr(), k: k.ptr(), v: v.ptr(), ck: ck, cv: cv,
			slots: slots, pos: pos, qpos: qpos, cos: rt.cos(), sin: rt.sin(),
			s: s, l: l, capacity: capacity, hq: hq, hkv: hkv, hd: hd, scale: a.Scale}
		if wantMass {
			c.weights, c.mass = wts, mass
		}
		if b.flashAttention(c) {
			b.finishMass(a, dv, mass, wantMass)
			return
		}
	}
	blocks := (s + attnRows - 1) / attnRows
	split := b.splitFor(blocks*hq, (n+attnKeyTile-1)/attnKeyTile)
	var part cuda.DevicePtr
	if split > 1 {
		part = b.part.ensure(b.dev, 4*split*s*hq*(hd+2))
	}
	launch(kern.attention, cuda.Dim3{X: blocks, Y: hq, Z: split}, cuda.Dim3{X: attnThreads}, attnShared(hd),
		cuda.Ptr(out.ptr()), cuda.Ptr(stats), cuda.Ptr(q.ptr()), cuda.Ptr(k.ptr()), cuda.Ptr(v.ptr()),
		cuda.Ptr(ck), cuda.Ptr(cv), cuda.Ptr(slots), cuda.Ptr(pos), cuda.Ptr(qpos),
		cuda.Ptr(rt.cos()), cuda.Ptr(rt.sin()), cuda.Int(s), cuda.Int(l), cuda.Int(capacity),
		cuda.Int(hq), cuda.Int(hkv), cuda.Float(a.Scale), cuda.Int(split), cuda.Ptr(part))
	if split > 1 {
		launch(kern.combine, cuda.Dim3{X: s, Y: hq}, threadsFor(hd, rowThreads), 0,
			cuda.Ptr(out.ptr()), cuda.Ptr(stats), cuda.Ptr(part), cuda.Int(s), cuda.Int(hq), cuda.Int(split))
	}
	if !wantMass {
		return
	}
	launch(kern.mass, cuda.Dim3{X: (n + attnKeyTile - 1) / attnKeyTile, Y: hq}, cuda.Dim3{X: 32}, massShared(hd),
		cuda.Ptr(mass), cuda.Ptr(stats), cuda.Ptr(wts), cuda.Ptr(q.ptr()), cuda.Ptr(k.ptr()),
		cuda.Ptr(ck), cuda.Ptr(slots), cuda.Ptr(pos), cuda.Ptr(qpos),
		cuda.Ptr(rt.cos()), cuda.Ptr(rt.sin()), cuda.Int(s), cuda.Int(l), cuda.Int(capacity),
		cuda.Int(hq), cuda.Int(hkv), cuda.Float(a.Scale))
	b.finishMass(a, dv, mass, wantMass)
}

// finishMass hands the mass of an attention call on: to the device view's
// policy, in stream order, or to the host's a.Mass. b.mu must be held.
func (b *Backend) finishMass(a *backend.Attention, dv *deviceView, mass cuda.DevicePtr, wantMass bool) {
	switch {
	case !wantMass:
	case dv != nil:
		dv.leaveMass(mass, pendingMass{}) // for the policy's Commit
	default:
		must(cuda.Download(b.dev, a.Mass, mass))
	}
}

// splitFor returns how many runs to split the keys of an attention call
// into: one when its blocks already fill the GPU, else enough runs for
// about splitBlocksPerSM blocks per multiprocessor, each of at least
// splitMinTiles key tiles so that merging stays cheap.
func (b *Backend) splitFor(blocks, tiles int) int {
	want := splitBlocksPerSM * b.dev.Multiprocessors
	if blocks >= want {
		return 1
	}
	return max(1, min((want+blocks-1)/blocks, tiles/splitMinTiles))
}
