package gpu

import (
	_ "embed"
	"fmt"
	"math"
	"slices"

	"kvcascade/gpu/cuda"
)

// Tensor-core attention for prefill: kernels/flash.cu, bf16 operands on
// mma.sync with float32 accumulation, compiled per head dimension. It
// takes bf16 tensors, so Backend.Attention is to call flashAttention once
// its storage is bf16, and fall back to attention.cu's kernels where
// flashAttention declines (decoding, other head dimensions, pre-sm_80).

//go:embed kernels/flash.cu
var flashSource string

// Geometry of kernels/flash.cu; keep in step with its #defines
// (TestKernelsCompile checks).
const (
	flashWarps   = 8               // WARPS
	flashThreads = 32 * flashWarps // THREADS
	flashRows    = 16 * flashWarps // BQ (queries per flash_fwd block) and BKM (keys per flash_mass block)
	flashTileDim = 4096            // TR·hd: a streamed tile holds 4096/hd rows
	flashMinArch = 8               // mma.sync bf16, ldmatrix, cp.async: sm_80
	flashMinRows = 64              // fewer queries (decoding) go to attention.cu, which splits the keys
)

// flashHeadDims are the head dimensions flash.cu is compiled for.
var flashHeadDims = []int{64, 128}

// flashTile is TR, the rows (keys for flash_fwd, queries for flash_mass)
// of a tile streamed through shared memory: 32 for hd 128, 64 for hd 64.
func flashTile(hd int) int { return flashTileDim / hd }

// flashFwdShared is FWD_SHARED, flash_fwd's dynamic shared memory in
// bytes: rotated keys and values [2][TR][hd+8] bf16 each, the block's
// queries [flashRows][hd+8] bf16 and key metadata (69 KiB for hd 128, 56
// KiB for hd 64).
func flashFwdShared(hd int) int {
	tr := flashTile(hd)
	return 4*tr*(hd+8)*2 + flashRows*(hd+8)*2 + 6*tr*4 + 6*4
}

// flashMassShared is MASS_SHARED, flash_mass's: rotated queries
// [2][TR][hd+8] bf16, the block's keys [flashRows][hd+8] bf16 and two
// float32 [2][TR] arrays (52 KiB for hd 128, 37 KiB for hd 64).
func flashMassShared(hd int) int {
	tr := flashTile(hd)
	return 2*tr*(hd+8)*2 + flashRows*(hd+8)*2 + 4*tr*4
}

// flashKernels are the kernels of kernels/flash.cu for one head dimension.
type flashKernels struct {
	fwd, mass *cuda.Function
}

// flashFor returns the flash kernels for head dimension hd (one of
// flashHeadDims), compiling and loading them on first use. b.mu must be
// held.
func (b *Backend) flashFor(hd int) (*flashKernels, error) {
	if k := b.flash[hd]; k != nil {
		return k, nil
	}
	k := &flashKernels{}
	if err := b.load(flashProgram(hd), flashKernelNames[:], []**cuda.Function{&k.fwd, &k.mass}); err != nil {
		return nil, err
	}
	if b.flash == nil {
		b.flash = map[int]*flashKernels{}
	}
	b.flash[hd] = k
	return k, nil
}

// flashKernelNames are the kernels of kernels/flash.cu, in the order of
// flashKernels' fields.
var flashKernelNames = [...]string{"flash_fwd", "flash_mass"}

// flashProgram is kernels/flash.cu for head dimension hd.
func flashProgram(hd int) program {
	return newProgram("flash.cu", flashSource, fmt.Sprintf("-DHEAD_DIM=%d", hd))
}

// flashCall is one attention call for flashAttention: device addresses
// and sizes, with the semantics of backend.Attention (see
// kernels/flash.cu). bf16 buffers hold raw bf16 bit patterns.
type flashCall struct {
	// out [s, hq·hd] bf16 receives softmax(scale·q·kᵀ)·v.
	out cuda.DevicePtr
	// stats [2, hq, s] float32, unless 0, receives each query's row max m
	// of the scaled scores (natural units) at [qh·s+i], then its
	// denominator l = Σⱼ exp(sⱼ − m) at [(hq+qh)·s+i], as attention.cu's
	// attention writes them: p = exp(s − m)/l. Needed for the mass.
	stats cuda.DevicePtr
	// q [s, hq·hd] bf16 and k, v [s, hkv·hd] bf16: the chunk, q and k
	// before RoPE.
	q, k, v cuda.DevicePtr
	// ck, cv [hkv, capacity, hd] bf16: the cache storage, keys before
	// RoPE; 0 when capacity is 0.
	ck, cv cuda.DevicePtr
	// slots, pos [hkv·l] int32: the view, head by head; a negative slot
	// is padding. Every other slot is below capacity and every position
	// ≥ 0 and inside the table (the caller checks, as Attention does).
	slots, pos cuda.DevicePtr
	// qpos [hkv] int32: the position of the chunk's first token per KV
	// head; token i has qpos+i.
	qpos cuda.DevicePtr
	// cos, sin [P, hd/2] float32: the RoPE table (ropeTable.cos, .sin),
	// P above every position used.
	cos, sin cuda.DevicePtr
	// weights [s] float32 and mass [hq, l+s] float32: when weights is not
	// 0, mass[qh·(l+s)+j] receives Σᵢ weights[i]·p(qh, i, j); stats must
	// then be given.
	weights, mass cuda.DevicePtr

	s, l, capacity int // queries, view length, cache slots per KV head
	hq, hkv, hd    int // query heads, KV heads (hq a multiple), head dimension
	scale          float32
}

// flashLaunch is one kernel launch of a flash attention call.
type flashLaunch struct {
	mass   bool // flash_mass, else flash_fwd
	grid   cuda.Dim3
	shared int // bytes of dynamic shared memory
	args   []cuda.Arg
}

// flashPlan returns the launches that run c (flash_fwd, then flash_mass
// when c.weights is not 0) on a GPU of compute capability major.x that
// lets a block opt in to sharedOptin bytes of shared memory, or nil when
// flashAttention declines c: fewer than flashMinRows queries, a head
// dimension not in flashHeadDims, a GPU older than sm_80 or short of
// shared memory, or q, k, v, ck, cv, cos, sin not 16-byte aligned (out not
// 4-byte aligned).
func flashPlan(c *flashCall, major, sharedOptin int) []flashLaunch {
	if c.s < flashMinRows || !slices.Contains(flashHeadDims, c.hd) || major < flashMinArch {
		return nil
	}
	if max(flashFwdShared(c.hd), flashMassShared(c.hd)) > sharedOptin {
		return nil
	}
	for _, p := range []cuda.DevicePtr{c.q, c.k, c.v, c.ck, c.cv, c.cos, c.sin} {
		if p%16 != 0 {
			return nil
		}
	}
	if c.out%4 != 0 {
		return nil
	}
	if c.hkv <= 0 || c.hq%c.hkv != 0 || c.l < 0 || (c.l > 0 && (c.slots == 0 || c.pos == 0)) {
		panic(fmt.Sprintf("gpu: flash attention with %d query heads, %d KV heads, view of %d", c.hq, c.hkv, c.l))
	}
	if c.weights != 0 && (c.stats == 0 || c.mass == 0) {
		panic("gpu: flash attention mass without stats or mass buffer")
	}
	scale2 := float32(float64(c.scale) * math.Log2E) // the kernels work in powers of 2
	plan := []flashLaunch{{
		grid: cuda.Dim3{X: (c.s + flashRows - 1) / flashRows, Y: c.hq}, shared: flashFwdShared(c.hd),
		args: []cuda.Arg{
			cuda.Ptr(c.out), cuda.Ptr(c.stats), cuda.Ptr(c.q), cuda.Ptr(c.k), cuda.Ptr(c.v),
			cuda.Ptr(c.ck), cuda.Ptr(c.cv), cuda.Ptr(c.slots), cuda.Ptr(c.pos), cuda.Ptr(c.qpos),
			cuda.Ptr(c.cos), cuda.Ptr(c.sin), cuda.Int(c.s), cuda.Int(c.l), cuda.Int(c.capacity),
			cuda.Int(c.hq), cuda.Int(c.hkv), cuda.Float(scale2),
		},
	}}
	if c.weights != 0 {
		plan = append(plan, flashLaunch{
			mass: true,
			grid: cuda.Dim3{X: (c.l + c.s + flashRows - 1) / flashRows, Y: c.hkv}, shared: flashMassShared(c.hd),
			args: []cuda.Arg{
				cuda.Ptr(c.mass), cuda.Ptr(c.stats), cuda.Ptr(c.weights), cuda.Ptr(c.q), cuda.Ptr(c.k),
				cuda.Ptr(c.ck), cuda.Ptr(c.slots), cuda.Ptr(c.pos), cuda.Ptr(c.qpos),
				cuda.Ptr(c.cos), cuda.Ptr(c.sin), cuda.Int(c.s), cuda.Int(c.l), cuda.Int(c.capacity),
				cuda.Int(c.hq), cuda.Int(c.hkv), cuda.Float(scale2),
			},
		})
	}
	return plan
}

// flashAttention runs the attention call c on tensor cores and reports
// true, or reports false without doing anything when it does not cover
// the call (see flashPlan). The work is queued on the device: out, stats
// and mass are ready at the next synchronising call. b.mu must be held.
func (b *Backend) flashAttention(c *flashCall) bool {
	plan := flashPlan(c, b.dev.Major, b.dev.SharedOptin)
	if plan == nil {
		return false
	}
	kern, err := b.flashFor(c.hd)
	must(err)
	for _, l := range plan {
		f := kern.fwd
		if l.mass {
			f = kern.mass
		}
		launch(f, l.grid, cuda.Dim3{X: flashThreads}, l.shared, l.args...)
	}
	return true
}
