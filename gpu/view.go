package gpu

import (
	"fmt"

	"kvcascade/gpu/cuda"
)

// viewState is the part of a device-side policy's state that the attention
// kernel reads and writes: the view of the chunk being processed and the
// mass the chunk's attention leaves for the policy. The cascade
// (deviceCascade) and the token lists (deviceTokens) embed it.
type viewState struct {
	b               *Backend
	qHeads, kvHeads int
	vslot, vpos     cuda.DevicePtr // [Hkv, L] storage slot and RoPE position of every view key
	// mass [Hq, L+n] is the attention's own buffer, not the backend's:
	// sessions sharing the backend may run attention between this call and
	// the policy's Commit. A decoding step leaves its scores [Hq, L+1] and
	// row statistics [2, Hq] there instead (pendingMass).
	mass scratch
}

// deviceView is the view of the chunk being processed (backend.DeviceView):
// Attention reads its slots and positions and, when the chunk's query
// weights ask for it, leaves the mass in mass.
type deviceView struct {
	c        *viewState
	first    int64 // original position of the chunk's first token
	n        int   // tokens in the chunk
	l        int   // view length
	original bool  // keys at their original positions (else at their view index)
	// samePos: every KV head sees view key j at the same position (the
	// first head's, or j itself unless original), which lets decoding
	// attention share each key's RoPE row among the heads.
	samePos bool
	sunk    int // the cascade's sinks in the view
	mass    cuda.DevicePtr
	// pending, where its scores are set, is the mass of a decoding step
	// that its attention left as scores for the policy's Commit to reduce
	// (mass is 0 then).
	pending pendingMass
}

// pendingMass is what a decoding step's attention (one query) leaves in
// place of its mass: each query head's scores and row statistics, which
// cascade_reduce_scores turns into the mass reduced per KV head without
// storing the mass of every query head first.
type pendingMass struct {
	scores, stats cuda.DevicePtr // [Hq, n] and [2, Hq] float32: the scores, then each row's max and denominator
	n             int            // keys: the view and the query
	w             float32        // the query's weight
}

// massReducers are kernels/cascade.cu's reductions of a view's mass per KV
// head: of the mass of a chunk, and of the scores a decoding step left.
type massReducers struct {
	mass   *cuda.Function // cascade_reduce
	scores *cuda.Function // cascade_reduce_scores
}

// hasMass reports whether the view's attention left its mass, as mass or
// as scores.
func (v *deviceView) hasMass() bool { return v.mass != 0 || v.pending.scores != 0 }

// leaveMass records what the view's attention leaves for its policy's
// Commit: the mass, or (mass 0, p's scores set) a decoding step's scores.
func (v *deviceView) leaveMass(mass cuda.DevicePtr, p pendingMass) { v.mass, v.pending = mass, p }

// dropMass forgets the view's mass once its policy has taken it.
func (v *deviceView) dropMass() { v.leaveMass(0, pendingMass{}) }

// reduceMass queues the reduction of the view's mass per KV head into red
// [Hkv, wd] (wd = L+n): the maximum, or the mean over each GQA group (over
// all query heads where homogeneous), aging the held scores by it where
// score is not 0 (ventry, l and bn as cascade_reduce takes them). It runs
// cascade_reduce, or cascade_reduce_scores where a decoding step left its
// scores. b.mu must be held.
func (v *deviceView) reduceMass(k massReducers, red cuda.DevicePtr, wd int, reduceMax, homogeneous bool, score, ventry cuda.DevicePtr, l int, bn float32) {
	grid := cuda.Dim3{X: (wd + elemThreads - 1) / elemThreads, Y: v.c.kvHeads}
	args := []cuda.Arg{cuda.Ptr(red), cuda.Ptr(v.mass)}
	fn := k.mass
	if p := v.pending; p.scores != 0 {
		if p.n != wd {
			panic(fmt.Sprintf("gpu: mass of %d keys reduced over %d", p.n, wd))
		}
		args, fn = []cuda.Arg{cuda.Ptr(red), cuda.Ptr(p.scores), cuda.Ptr(p.stats), cuda.Float(p.w)}, k.scores
	}
	args = append(args, cuda.Int(v.c.qHeads), cuda.Int(v.c.kvHeads), cuda.Int(wd), cuda.Int(boolInt(reduceMax)),
		cuda.Int(boolInt(homogeneous)), cuda.Ptr(score), cuda.Ptr(ventry), cuda.Int(l), cuda.Float(bn))
	launch(fn, grid, cuda.Dim3{X: elemThreads}, 0, args...)
}

// Len returns the view length.
func (v *deviceView) Len() int { return v.l }

// maxPos is the largest RoPE position the chunk's attention uses.
func (v *deviceView) maxPos() int {
	if v.original {
		return int(v.first) + v.n - 1
	}
	return v.l + v.n - 1
}
