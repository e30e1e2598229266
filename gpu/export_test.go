package gpu

import (
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
	dv.mass = dv.c.mass.ensure(b.dev, 4*len(mass))
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
	dv.mass = dv.c.mass.ptr
}
