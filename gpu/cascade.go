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

//go:embed kernels/cascade.cu
var cascadeSource string

// cascadeKernels are the kernels of kernels/cascade.cu.
type cascadeKernels struct {
	plan, walk, step *cuda.Function
	reduce           massReducers
}

// cascadeKernelNames are the kernels of kernels/cascade.cu, in the order of
// cascadeKernels' fields.
var cascadeKernelNames = [...]string{"cascade_plan", "cascade_reduce", "cascade_reduce_scores", "cascade_walk", "cascade_step"}

func cascadeProgram() program { return newProgram("cascade.cu", cascadeSource) }

// Geometry of kernels/cascade.cu's cascade_walk; keep in step with its
// #defines (TestKernelsCompile checks).
const (
	cascadeWalkThreads = 512  // WALK_THREADS: the block that stages a head's walk
	cascadeWalkHead    = 2048 // WALK_HEAD: shared bytes before the staged windows
)

// cascadeWalkShared is the most dynamic shared memory cascade_walk needs
// for a chunk of n tokens through c cascades of w entries, every window
// as long as it can be (min(w, n+1) entries): the walk stages a chunk when
// its windows fit the bytes it is given (walking it in parallel when the
// event lists fit too), and walks on global memory otherwise.
func cascadeWalkShared(n, c, w int) int {
	e := c * min(w, n+1)
	return max(cascadeWalkStaged(n, e), cascadeWalkParallel(n, e, cascadeWalkThreads))
}

// cascadeWalkStaged is WALK_SHARED: the staged walk's bytes for a chunk of
// n tokens whose windows hold e entries.
func cascadeWalkStaged(n, e int) int {
	return cascadeWalkHead + (n+15)/16*16 + 16*e + 4*(n+1) + 8*n
}

// cascadeWalkParallel is WALK_PAR_SHARED: the parallel walk's bytes for a
// chunk of n tokens whose windows hold e entries, walked by a block of
// threads.
func cascadeWalkParallel(n, e, threads int) int {
	return cascadeWalkHead + (n+15)/16*16 + 16*e + 16*n + 2*((2*n+15)/16*16) + 16*threads
}

// cascadeKernelsFor compiles kernels/cascade.cu on first use. Call with b.mu
// held.
func (b *Backend) cascadeKernelsFor() (*cascadeKernels, error) {
	if b.casc != nil {
		return b.casc, nil
	}
	k := &cascadeKernels{}
	if err := b.load(cascadeProgram(), cascadeKernelNames[:], []**cuda.Function{&k.plan, &k.reduce.mass, &k.reduce.scores, &k.walk, &k.step}); err != nil {
		return nil, err
	}
	b.casc = k
	return k, nil
}

// NewCascade returns one layer of the cascading cache with its bookkeeping
// on the device (device.Cascader). With Options.HostPolicies it returns
// an error wrapping errors.ErrUnsupported, and the policy stays on the host.
func (b *Backend) NewCascade(spec device.CascadeSpec) (device.Cascade, error) {
	if b.hostPolicies {
		return nil, fmt.Errorf("gpu: cascade bookkeeping kept on the host by Options.HostPolicies: %w", errUnsupported)
	}
	hk, c := spec.KVHeads, spec.Cascades
	switch {
	case hk <= 0 || spec.QHeads%hk != 0:
		return nil, fmt.Errorf("gpu: cascade for %d query heads and %d KV heads", spec.QHeads, hk)
	case c <= 0 || c > 64 || spec.Size%c != 0 || len(spec.Every) != c:
		return nil, fmt.Errorf("gpu: cascade of %d entries in %d cascades (%d periods)", spec.Size, c, len(spec.Every))
	case spec.Sinks < 0 || spec.Sinks+spec.Size > math.MaxInt32:
		return nil, fmt.Errorf("gpu: cascade of %d sinks and %d entries", spec.Sinks, spec.Size)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	k, err := b.cascadeKernelsFor()
	if err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	d := &deviceCascade{viewState: viewState{b: b, qHeads: spec.QHeads, kvHeads: hk}, k: k, spec: spec, w: spec.Size / c}
	d.view.c = &d.viewState
	// One allocation: the 8-byte arrays first, then the 4-byte ones.
	e, v := hk*spec.Size, hk*(spec.Sinks+spec.Size)
	layout := []struct {
		p     *cuda.DevicePtr
		bytes int
	}{
		{&d.pos, 8 * e}, {&d.every, 8 * c},
		{&d.slot, 4 * e}, {&d.score, 4 * e}, {&d.freed, 4 * e},
		{&d.start, 4 * hk * c}, {&d.stored, 4 * hk * c}, {&d.top, 4 * hk}, {&d.next, 4 * hk},
		{&d.vslot, 4 * v}, {&d.vpos, 4 * v}, {&d.ventry, 4 * v},
	}
	for _, l := range layout {
		d.bytes += l.bytes
	}
	if d.mem, err = b.dev.Alloc(d.bytes); err != nil {
		return nil, fmt.Errorf("gpu: cascade state of %d bytes: %w", d.bytes, err)
	}
	off := 0
	for _, l := range layout {
		*l.p = d.mem.Add(off)
		off += l.bytes
	}
	must(b.dev.Memset32(d.mem, 0, d.bytes/4))
	next := make([]int32, hk)
	for i := range next {
		next[i] = int32(spec.Sinks) // cascade slots come after the sinks
	}
	must(cuda.Upload(b.dev, d.next, next))
	must(cuda.Upload(b.dev, d.every, spec.Every))
	return d, nil
}

// deviceCascade is one layer's cascade on the device (device.Cascade);
// kernels/cascade.cu documents the layout of its state.
type deviceCascade struct {
	viewState // vslot and vpos lie in mem
	k         *cascadeKernels
	spec      device.CascadeSpec
	w         int // entries per cascade

	mem                                          cuda.DevicePtr // everything below
	bytes                                        int
	pos, every                                   cuda.DevicePtr // int64
	slot, score, freed, start, stored, top, next cuda.DevicePtr
	ventry                                       cuda.DevicePtr // the view's entries, [Hkv, L]

	// Per chunk, grown on demand: the mass reduced per KV head [Hkv, L+n]
	// and the slots of the chunk's tokens [Hkv, n].
	reduced, place scratch

	view deviceView
}

// Plan lays out the view on the device.
func (d *deviceCascade) Plan(first int64, n, sunk, viewLen int) backend.DeviceView {
	s := d.spec
	if n <= 0 || sunk < 0 || sunk > s.Sinks || viewLen < sunk || viewLen > s.Sinks+s.Size {
		panic(fmt.Sprintf("gpu: cascade Plan of %d tokens over %d sinks and a view of %d", n, sunk, viewLen))
	}
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	d.view = deviceView{c: &d.viewState, first: first, n: n, sunk: sunk, l: viewLen, original: s.Original, samePos: !s.Original}
	if viewLen > 0 {
		launch(d.k.plan, cuda.Dim3{X: (viewLen + elemThreads - 1) / elemThreads, Y: s.KVHeads}, cuda.Dim3{X: elemThreads}, 0,
			cuda.Ptr(d.vslot), cuda.Ptr(d.vpos), cuda.Ptr(d.ventry), cuda.Ptr(d.slot), cuda.Ptr(d.pos),
			cuda.Ptr(d.start), cuda.Ptr(d.stored), cuda.Int(s.Size), cuda.Int(s.Cascades), cuda.Int(d.w),
			cuda.Int(sunk), cuda.Int(viewLen), cuda.Int(boolInt(s.Original)))
	}
	return &d.view
}

// Commit reduces the chunk's mass per KV head, ages the held scores, walks
// the chunk's tokens through the cascades and stores the kept rows.
func (d *deviceCascade) Commit(k, v, chunkK, chunkV backend.Tensor) {
	s, vw := d.spec, &d.view
	if !vw.hasMass() {
		panic("gpu: cascade Commit without the attention mass of its view")
	}
	ks, vs, ck, cv := tensor(k), tensor(v), tensor(chunkK), tensor(chunkV)
	if len(ks.shape) != 3 || ks.shape[0] != s.KVHeads || ks.shape[1] < s.Sinks+s.Size || vs.numel() != ks.numel() {
		panic(fmt.Sprintf("gpu: cascade Commit into storage %v for %d KV heads × %d slots", ks.shape, s.KVHeads, s.Sinks+s.Size))
	}
	hd, capacity, n, l := ks.shape[2], ks.shape[1], vw.n, vw.l
	if ck.numel() != n*s.KVHeads*hd || cv.numel() != ck.numel() {
		panic(fmt.Sprintf("gpu: cascade Commit of chunk rows %v, %v for %d tokens", ck.shape, cv.shape, n))
	}
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	wd := l + n
	red := d.reduced.ensure(b.dev, 4*s.KVHeads*wd)
	place := d.place.ensure(b.dev, 4*s.KVHeads*n)
	// One kernel reduces the mass per KV head and ages the held scores by
	// it (none are held while the view is all sinks).
	var score cuda.DevicePtr
	if l > vw.sunk {
		score = d.score
	}
	vw.reduceMass(d.k.reduce, red, wd, s.ReduceMax, s.Homogeneous, score, d.ventry, l, float32(math.Pow(s.Beta, float64(n))))
	if n == 1 { // a decoding step: one warp a head, which also stores the token's rows where it can
		store := stepStores(ks, ck, vs, cv)
		var kc, vc, kn, vn cuda.DevicePtr
		if store {
			kc, vc, kn, vn = ks.ptr(), vs.ptr(), ck.ptr(), cv.ptr()
		}
		launch(d.k.step, cuda.Dim3{X: s.KVHeads}, cuda.Dim3{X: 32}, 0,
			cuda.Ptr(d.slot), cuda.Ptr(d.pos), cuda.Ptr(d.score), cuda.Ptr(d.start), cuda.Ptr(d.stored),
			cuda.Ptr(d.freed), cuda.Ptr(d.top), cuda.Ptr(d.next), cuda.Ptr(place), cuda.Ptr(red), cuda.Ptr(d.every),
			cuda.Int64(vw.first), cuda.Int(l), cuda.Int(wd), cuda.Int(s.Sinks), cuda.Int(s.Size),
			cuda.Int(s.Cascades), cuda.Int(d.w), cuda.Int(boolInt(s.EagerFill)),
			cuda.Ptr(kc), cuda.Ptr(vc), cuda.Ptr(kn), cuda.Ptr(vn), cuda.Int64(int64(capacity)), cuda.Int(hd*ks.st.size()))
		if !store {
			b.scatterPlaced(ks, ck, vs, cv, place, n, s.KVHeads, capacity, hd)
		}
		vw.dropMass()
		return
	}
	// The walk stages the chunk in shared memory when it fits what the
	// device allows a block, and walks on global memory otherwise.
	shared := max(min(cascadeWalkShared(n, s.Cascades, d.w), b.dev.SharedOptin), cascadeWalkHead)
	launch(d.k.walk, cuda.Dim3{X: s.KVHeads}, cuda.Dim3{X: cascadeWalkThreads}, shared,
		cuda.Ptr(d.slot), cuda.Ptr(d.pos), cuda.Ptr(d.score), cuda.Ptr(d.start), cuda.Ptr(d.stored),
		cuda.Ptr(d.freed), cuda.Ptr(d.top), cuda.Ptr(d.next), cuda.Ptr(place), cuda.Ptr(red), cuda.Ptr(d.every),
		cuda.Int64(vw.first), cuda.Int(n), cuda.Int(l), cuda.Int(wd), cuda.Int(s.Sinks), cuda.Int(s.Size),
		cuda.Int(s.Cascades), cuda.Int(d.w), cuda.Int(boolInt(s.EagerFill)), cuda.Int(shared))
	// A slot names at most one row: a chunk token that lost its slot to a
	// later one has place −1, so the scatter needs no de-duplication.
	b.scatterPlaced(ks, ck, vs, cv, place, n, s.KVHeads, capacity, hd)
	vw.dropMass()
}

// stepStores reports whether cascade_step can store a decoding step's key
// and value rows (k, v [Hkv, cap, hd] the cache, ck, cv the token's
// [1, Hkv·hd]) in place of scatter: one storage type for all, so that rows
// copy as bytes, in whole 16-byte chunks from 16-byte aligned rows.
func stepStores(k, ck, v, cv *Tensor) bool {
	if k.st != ck.st || v.st != k.st || cv.st != k.st {
		return false
	}
	return k.shape[2]*k.st.size()%16 == 0 && aligned16(k.ptr(), ck.ptr(), v.ptr(), cv.ptr())
}

// entries downloads head h's rings and calls f with each entry index
// (relative to the head) in attention order.
func (d *deviceCascade) entries(h int, f func(e int)) {
	s := d.spec
	if h < 0 || h >= s.KVHeads {
		panic(fmt.Sprintf("gpu: cascade head %d of %d", h, s.KVHeads))
	}
	st := make([]int32, 2*s.Cascades)
	b := d.b
	must(cuda.Download(b.dev, st[:s.Cascades], d.start.Add(4*h*s.Cascades)))
	must(cuda.Download(b.dev, st[s.Cascades:], d.stored.Add(4*h*s.Cascades)))
	for i := s.Cascades - 1; i >= 0; i-- {
		s0, n := int(st[i]), int(st[s.Cascades+i])
		for k := range n {
			f(i*d.w + (s0+k)%d.w)
		}
	}
}

// Held appends the original positions head h holds in its cascades.
func (d *deviceCascade) Held(h int, dst []int64) []int64 { return inRingOrder(d, h, d.pos, dst) }

// Scores appends the scores of those tokens.
func (d *deviceCascade) Scores(h int, dst []float32) []float32 {
	return inRingOrder(d, h, d.score, dst)
}

// inRingOrder downloads head h's row of a per-entry array src [Hkv, Size]
// and appends the entries it holds to dst, in attention order.
func inRingOrder[T cuda.Plain](d *deviceCascade, h int, src cuda.DevicePtr, dst []T) []T {
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	row := make([]T, d.spec.Size)
	must(cuda.Download(b.dev, row, src.Add(int(unsafe.Sizeof(row[0]))*h*d.spec.Size)))
	d.entries(h, func(e int) { dst = append(dst, row[e]) })
	return dst
}

// Bytes is the device memory of the state and its per-chunk buffers.
func (d *deviceCascade) Bytes() int64 {
	return int64(d.bytes + d.mass.bytes + d.reduced.bytes + d.place.bytes)
}

// Free releases the state once queued work is done with it.
func (d *deviceCascade) Free() {
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if d.mem != 0 {
		must(b.dev.Synchronize())
		must(b.dev.Free(d.mem))
		d.mem = 0
	}
	for _, s := range []*scratch{&d.mass, &d.reduced, &d.place} {
		must(s.release(b.dev))
	}
}

// aligned16 reports whether every address in ps is a multiple of 16 bytes,
// as kernels that move 16-byte vectors need.
func aligned16(ps ...cuda.DevicePtr) bool {
	for _, p := range ps {
		if p%16 != 0 {
			return false
		}
	}
	return true
}

// boolInt is 1 for true, 0 for false (a kernel argument or -D value).
func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

var _ device.Cascader = (*Backend)(nil)
