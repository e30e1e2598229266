package gpu

import (
	"testing"

	"kvcascade/gpu/cuda"
	"kvcascade/runtime/backend"
)

// SetViewMass writes mass [Hq·(L+n)] into a device policy's view, as the
// attention kernel would, so that tests can drive Commit with chosen scores.
func SetViewMass(v backend.DeviceView, mass []float32) {
	dv := v.(*deviceView)
	b := dv.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	dv.leaveMass(dv.c.mass.ensure(b.dev, 4*len(mass)), pendingMass{})
	must(cuda.Upload(b.dev, dv.mass, mass))
}

// ViewSlots returns a device view's slots and positions [Hkv·L].
func ViewSlots(v backend.DeviceView) (slots, pos []int32) {
	dv := v.(*deviceView)
	b := dv.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	n := dv.c.kvHeads * dv.l
	slots, pos = make([]int32, n), make([]int32, n)
	must(cuda.Download(b.dev, slots, dv.c.vslot))
	must(cuda.Download(b.dev, pos, dv.c.vpos))
	return slots, pos
}

// LtPlans exposes to the tests how many cuBLASLt plans of b have an
// algorithm and how many have none (0, 0 without cuBLASLt).
func LtPlans(b *Backend) (withAlgo, without int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lt == nil {
		return 0, 0
	}
	return b.lt.Plans()
}

// ReuseViewMass points a device view at the mass its policy's buffer holds
// already (from an earlier SetViewMass of at least this size), as the
// attention kernel would leave it, without an upload: for benchmarks.
func ReuseViewMass(v backend.DeviceView) {
	dv := v.(*deviceView)
	dv.leaveMass(dv.c.mass.ptr, pendingMass{})
}

// AttentionKernels uploads the view, query positions and weights of the
// attention call a (a host view over a.View.K and a.View.V, bf16 storage)
// once and returns a function that queues only the call's kernels:
// decode.cu's, or attention.cu's split kernels when old is set, with the
// mass when a.View.QueryWeights is set (left on the device). Benchmarks
// time the kernels with it, without Attention's per-call uploads; free
// releases the uploads.
func AttentionKernels(b *Backend, a *backend.Attention, old bool) (run func(), free func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out, q, k, v := tensor(a.Out), tensor(a.Q), tensor(a.K), tensor(a.V)
	ck, cv := tensor(a.View.K), tensor(a.View.V)
	hd, hq, hkv, l := a.HeadDim, a.QHeads, a.KVHeads, a.View.ViewLen
	s := q.numel() / (hq * hd)
	n := l + s
	maxPos := 0
	for _, p := range a.View.Pos {
		maxPos = max(maxPos, int(p))
	}
	for _, p := range a.View.QueryPos {
		maxPos = max(maxPos, int(p)+s-1)
	}
	rt := b.table(a.InvFreq, a.AttnFactor, maxPos+1)
	words := make([]uint32, 0, 2*hkv*l+hkv+s)
	for _, x := range a.View.Slots {
		words = append(words, uint32(x))
	}
	for _, x := range a.View.Pos {
		words = append(words, uint32(x))
	}
	for _, x := range a.View.QueryPos {
		words = append(words, uint32(x))
	}
	for _, w := range a.View.QueryWeights {
		words = append(words, f32bits(w))
	}
	args, err := b.dev.Alloc(4 * len(words))
	must(err)
	must(cuda.Upload(b.dev, args, words))
	slots, pos := args, args.Add(4*hkv*l)
	qpos, wts := args.Add(4*2*hkv*l), args.Add(4*(2*hkv*l+hkv))
	c := &flashCall{out: out.ptr(), q: q.ptr(), k: k.ptr(), v: v.ptr(), ck: ck.ptr(), cv: cv.ptr(),
		slots: slots, pos: pos, qpos: qpos, cos: rt.cos(), sin: rt.sin(),
		s: s, l: l, capacity: ck.shape[1], hq: hq, hkv: hkv, hd: hd, scale: a.Scale}
	if a.View.QueryWeights != nil {
		c.stats = b.stats.ensure(b.dev, 4*2*hq*s)
		c.mass = b.mass.ensure(b.dev, 4*hq*n)
		c.weights = wts
	}
	kern, err := b.attnFor(hd, q.st)
	must(err)
	run = func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if !old {
			if !b.decodeAttention(c) {
				panic("gpu: decode.cu declines the benchmark's call")
			}
			return
		}
		blocks := (s + attnRows - 1) / attnRows
		split := b.splitFor(blocks*hq, (n+attnKeyTile-1)/attnKeyTile)
		part := b.part.ensure(b.dev, 4*split*s*hq*(hd+2))
		launch(kern.attention, cuda.Dim3{X: blocks, Y: hq, Z: split}, cuda.Dim3{X: attnThreads}, attnShared(hd),
			cuda.Ptr(c.out), cuda.Ptr(c.stats), cuda.Ptr(c.q), cuda.Ptr(c.k), cuda.Ptr(c.v),
			cuda.Ptr(c.ck), cuda.Ptr(c.cv), cuda.Ptr(slots), cuda.Ptr(pos), cuda.Ptr(qpos),
			cuda.Ptr(c.cos), cuda.Ptr(c.sin), cuda.Int(s), cuda.Int(l), cuda.Int(c.capacity),
			cuda.Int(hq), cuda.Int(hkv), cuda.Float(a.Scale), cuda.Int(split), cuda.Ptr(part))
		if split > 1 {
			launch(kern.combine, cuda.Dim3{X: s, Y: hq}, threadsFor(hd, rowThreads), 0,
				cuda.Ptr(c.out), cuda.Ptr(c.stats), cuda.Ptr(part), cuda.Int(s), cuda.Int(hq), cuda.Int(split))
		}
		if c.weights != 0 {
			launch(kern.mass, cuda.Dim3{X: (n + attnKeyTile - 1) / attnKeyTile, Y: hq}, cuda.Dim3{X: 32}, massShared(hd),
				cuda.Ptr(c.mass), cuda.Ptr(c.stats), cuda.Ptr(wts), cuda.Ptr(c.q), cuda.Ptr(c.k),
				cuda.Ptr(c.ck), cuda.Ptr(slots), cuda.Ptr(pos), cuda.Ptr(qpos),
				cuda.Ptr(c.cos), cuda.Ptr(c.sin), cuda.Int(s), cuda.Int(l), cuda.Int(c.capacity),
				cuda.Int(hq), cuda.Int(hkv), cuda.Float(a.Scale))
		}
	}
	free = func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		must(b.dev.Synchronize())
		must(b.dev.Free(args))
	}
	return run, free
}

// SetDecodeTuning makes b compile decode.cu with DEC_MINBLOCKS =
// minBlocks, DEC_STAGES = stages and, where the heads see
// the same positions, DEC_HEADS = heads (0: the defaults; heads 1: never
// shared) from its next attention call on, for benchmarks and tests.
func SetDecodeTuning(b *Backend, minBlocks, stages, heads int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.decodeTune = decodeTuning{minBlocks, stages, heads}
	b.decode = nil
}

// SetWGMMA turns flash_fwd90 and flash_mass90 on (where the GPU has them)
// or off (Options.NoWGMMA) for b's next attention calls.
func SetWGMMA(b *Backend, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.noWGMMA = !on
	b.flash = nil
}

// SetWGMMATuning makes b compile flash_fwd90 and flash_mass90 with
// W_STAGES = stages (0: the default), unless pipe W_PIPE 0, with pingPong
// W_PINGPONG 1 and with massPoly W_MPOLY 8 from its next attention call
// on, for benchmarks and tests.
func SetWGMMATuning(b *Backend, stages int, pipe, pingPong, massPoly bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.w90Tune = flashW90Tuning{stages: stages, noPipe: !pipe, pingPong: pingPong, massPoly: massPoly}
	b.flash = nil
}

// HasWGMMA reports whether b's GPU runs flash_fwd90 and flash_mass90 at
// head dimension hd (where SetWGMMA leaves them on).
func HasWGMMA(b *Backend, hd int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.canWGMMA(hd)
}

// SetGEMV turns Options.GEMV on or off for b's next matrix products.
func SetGEMV(b *Backend, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gemv = on
}

// Profile starts (on) or stops the range a profiler started with its
// collection off records.
func Profile(b *Backend, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	must(b.dev.Profile(on))
}

// TimeCalls times call for a benchmark: once untimed (it compiles the
// kernels and builds the tables it needs), then bm.N times on the clock,
// with b's device done at both ends. It returns the seconds per call.
func TimeCalls(bm *testing.B, b *Backend, call func()) float64 {
	bm.Helper()
	call()
	if err := b.Synchronize(); err != nil {
		bm.Fatal(err)
	}
	bm.ResetTimer()
	for range bm.N {
		call()
	}
	if err := b.Synchronize(); err != nil {
		bm.Fatal(err)
	}
	bm.StopTimer()
	return bm.Elapsed().Seconds() / float64(bm.N)
}
