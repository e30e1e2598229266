package gpu

import (
	_ "embed"
	"fmt"
	"math"

	"kvcascade/gpu/cuda"
	"kvcascade/policies/device"
	"kvcascade/runtime/backend"
)

//go:embed kernels/pattern.cu
var patternSource string

// patternKernels are the kernels of kernels/pattern.cu.
type patternKernels struct {
	plan, place *cuda.Function
}

// patternKernelNames are the kernels of kernels/pattern.cu, in the order of
// patternKernels' fields.
var patternKernelNames = [...]string{"pattern_plan", "pattern_place"}

func patternProgram() program { return newProgram("pattern.cu", patternSource) }

// patternKernelsFor compiles kernels/pattern.cu on first use. Call with
// b.mu held.
func (b *Backend) patternKernelsFor() (*patternKernels, error) {
	if b.pat != nil {
		return b.pat, nil
	}
	k := &patternKernels{}
	if err := b.load(patternProgram(), patternKernelNames[:], []**cuda.Function{&k.plan, &k.place}); err != nil {
		return nil, err
	}
	b.pat = k
	return k, nil
}

// NewPattern returns one layer's pattern laid out on the device
// (device.Patterner), for sink, bigbird and hip_bigbird. With
// Options.HostPolicies it returns an error wrapping errors.ErrUnsupported,
// and the policy stays on the host.
func (b *Backend) NewPattern(spec device.PatternSpec) (device.Pattern, error) {
	if b.hostPolicies {
		return nil, fmt.Errorf("gpu: pattern views planned on the host by Options.HostPolicies: %w", errUnsupported)
	}
	switch {
	case spec.KVHeads <= 0 || spec.QHeads%spec.KVHeads != 0:
		return nil, fmt.Errorf("gpu: pattern for %d query heads and %d KV heads", spec.QHeads, spec.KVHeads)
	case spec.Sinks < 0 || spec.Ring < 0 || spec.Sinks+spec.Ring > math.MaxInt32:
		return nil, fmt.Errorf("gpu: pattern of %d sinks and a ring of %d", spec.Sinks, spec.Ring)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	k, err := b.patternKernelsFor()
	if err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	d := &devicePattern{viewState: viewState{b: b, qHeads: spec.QHeads, kvHeads: spec.KVHeads}, k: k, spec: spec}
	d.view.c = &d.viewState
	return d, nil
}

// devicePattern is one layer's pattern on the device (device.Pattern);
// kernels/pattern.cu documents its buffers. It holds no state between
// chunks but the buffers themselves.
type devicePattern struct {
	viewState // vslot and vpos lie in vbuf
	k         *patternKernels
	spec      device.PatternSpec

	// Per chunk, grown on demand: the view [2, Hkv, L] (slots, then
	// positions) and the slots of the chunk's tokens [Hkv, n].
	vbuf, place scratch

	view deviceView
}

// Plan lays out the view v on the device, uploading only its block starts.
func (d *devicePattern) Plan(v device.PatternView) backend.DeviceView {
	s, hk := d.spec, d.kvHeads
	if v.N <= 0 || v.Head < 0 || v.Head > v.Tail || v.Tail > v.Start || v.Start+int64(v.N) > math.MaxInt32 ||
		len(v.Blocks)%hk != 0 || len(v.Blocks) > 0 && v.Block <= 0 {
		panic(fmt.Sprintf("gpu: pattern Plan of %d tokens at %d over [0, %d), %d blocks of %d, [%d, %d)",
			v.N, v.Start, v.Head, len(v.Blocks), v.Block, v.Tail, v.Start))
	}
	r := len(v.Blocks) / hk
	for _, x := range v.Blocks {
		// each block is held in full, between the head and the tail
		if int64(x) < v.Head || int64(x)+int64(v.Block) > v.Tail {
			panic(fmt.Sprintf("gpu: pattern block [%d, %d) outside [%d, %d)", x, int64(x)+int64(v.Block), v.Head, v.Tail))
		}
	}
	L := v.Len(hk)
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	// bigbird draws its random blocks per head; without them every head
	// sees the same positions
	d.view = deviceView{c: &d.viewState, first: v.Start, n: v.N, l: L, original: s.Original,
		samePos: !s.Original || r == 0}
	buf := d.vbuf.ensure(b.dev, 8*hk*max(L, 1)) // never a nil view, even an empty one
	d.vslot, d.vpos = buf, buf.Add(4*hk*L)
	if L > 0 {
		var blocks cuda.DevicePtr
		if r > 0 {
			w := b.words(len(v.Blocks))
			for i, x := range v.Blocks {
				w[i] = uint32(x)
			}
			blocks = b.upload(w)
		}
		launch(d.k.plan, cuda.Dim3{X: (L + elemThreads - 1) / elemThreads, Y: hk}, cuda.Dim3{X: elemThreads}, 0,
			cuda.Ptr(d.vslot), cuda.Ptr(d.vpos), cuda.Ptr(blocks), cuda.Int(int(v.Head)), cuda.Int(r), cuda.Int(v.Block),
			cuda.Int64(v.Tail), cuda.Int(L), cuda.Int(s.Sinks), cuda.Int(s.Ring), cuda.Int(boolInt(s.Original)))
	}
	return &d.view
}

// Commit places the planned chunk's tokens and stores the rows of those
// that stay.
func (d *devicePattern) Commit(k, v, chunkK, chunkV backend.Tensor) {
	s, vw, hk := d.spec, &d.view, d.kvHeads
	if vw.n == 0 {
		panic("gpu: pattern Commit without Plan")
	}
	n := vw.n
	need := vw.first + int64(n) // one past the highest slot the chunk uses
	if s.Ring > 0 {
		need = min(need, int64(s.Sinks+s.Ring))
	}
	ks, vs, ck, cv := tensor(k), tensor(v), tensor(chunkK), tensor(chunkV)
	if len(ks.shape) != 3 || ks.shape[0] != hk || int64(ks.shape[1]) < need || vs.numel() != ks.numel() {
		panic(fmt.Sprintf("gpu: pattern Commit into storage %v for %d KV heads × %d slots", ks.shape, hk, need))
	}
	hd, capacity := ks.shape[2], ks.shape[1]
	if ck.numel() != n*hk*hd || cv.numel() != ck.numel() {
		panic(fmt.Sprintf("gpu: pattern Commit of chunk rows %v, %v for %d tokens", ck.shape, cv.shape, n))
	}
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	place := d.place.ensure(b.dev, 4*hk*n)
	launch(d.k.place, cuda.Dim3{X: (n + elemThreads - 1) / elemThreads, Y: hk}, cuda.Dim3{X: elemThreads}, 0,
		cuda.Ptr(place), cuda.Int64(vw.first), cuda.Int(n), cuda.Int(s.Sinks), cuda.Int(s.Ring))
	// A slot names at most one row: a chunk token whose slot a later one
	// takes has place −1, so the scatter needs no de-duplication.
	b.scatterPlaced(ks, ck, vs, cv, place, n, hk, capacity, hd)
	vw.n = 0
}

// Bytes is the device memory of the per-chunk buffers.
func (d *devicePattern) Bytes() int64 { return int64(d.vbuf.bytes + d.place.bytes + d.mass.bytes) }

// Free releases the buffers once queued work is done with them.
func (d *devicePattern) Free() {
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range []*scratch{&d.vbuf, &d.place, &d.mass} {
		must(s.release(b.dev))
	}
	d.vslot, d.vpos = 0, 0
}

var _ device.Patterner = (*Backend)(nil)
