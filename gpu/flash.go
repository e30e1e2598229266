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
	flashWarps     = 4               // WARPS
	flashThreads   = 32 * flashWarps // THREADS
	flashQueryRows = 32 * flashWarps // BQ: queries per flash_fwd block
	flashKeyTile   = 64              // BK: keys per flash_fwd tile
	flashMassKeys  = 32 * flashWarps // BKM (and KTILE): keys per flash_mass block
	flashMassTile  = 64              // BQM: queries per flash_mass tile
	flashGather    = 32              // GR: rows per flash_keys and flash_queries block
	flashMinArch   = 8               // mma.sync bf16, ldmatrix, cp.async: sm_80
	flashMinRows   = 64              // fewer queries (decoding) go to attention.cu, which splits the keys
	// flash_fwd90 (Hopper, -DKVC_WGMMA): two consumer warpgroups of 64
	// queries and a producer warpgroup; key tiles of 128 in three stages.
	flashW90Threads = 3 * 128 // W_THREADS
	flashW90KeyTile = 128     // W_BK
	flashW90Stages  = 3       // W_STAGES (the default)
	// flash_mass90: blocks of flashMassKeys keys, query tiles of 128.
	flashW90QueryTile = 128 // W_MQ
)

// flashW90Tuning selects a compilation of flash_fwd90 and flash_mass90;
// the zero value is the default.
type flashW90Tuning struct {
	stages int  // W_STAGES, 0 for flashW90Stages
	noPipe bool // W_PIPE 0: a tile's softmax waits for the previous tile's P·V
	// pingPong is W_PINGPONG 1: the consumer warpgroups of flash_fwd90
	// and flash_mass90 take turns to issue their MMAs.
	pingPong bool
	// massPoly is W_MPOLY 8: flash_mass90 computes one term in eight's
	// exponential on the FMA pipe (ex2_fma) instead of the MUFU.
	massPoly bool
}

// nstages is W_STAGES.
func (t flashW90Tuning) nstages() int {
	if t.stages == 0 {
		return flashW90Stages
	}
	return t.stages
}

// opts are the compiler options that select t.
func (t flashW90Tuning) opts() []string {
	return []string{fmt.Sprintf("-DW_STAGES=%d", t.nstages()), fmt.Sprintf("-DW_PIPE=%d", boolInt(!t.noPipe)),
		fmt.Sprintf("-DW_PINGPONG=%d", boolInt(t.pingPong)), fmt.Sprintf("-DW_MPOLY=%d", 8*boolInt(t.massPoly))}
}

// flashW90Shared is W_SHARED, flash_fwd90's dynamic shared memory in
// bytes: 1024 to align to, the queries [BQ][hd] and key and value tiles
// [stages][128][hd] each, bf16, and per stage two mbarriers and the tile's
// 128 validity bits (225 KiB for hd 128 and 3 stages, 113 KiB for hd 64).
func flashW90Shared(hd, stages int) int {
	return 1024 + flashQueryRows*hd*2 + 2*stages*flashW90KeyTile*hd*2 + stages*(2*8+16)
}

// flashW90MassShared is W_MSHARED, flash_mass90's: 1024 to align to, the
// block's keys [BKM][hd] bf16, query tiles [stages][128][hd] bf16 with
// their statistics [stages][128] float32 pairs, and two mbarriers per stage
// (132 KiB for hd 128 and 3 stages).
func flashW90MassShared(hd, stages int) int {
	return 1024 + flashMassKeys*hd*2 + stages*flashW90QueryTile*(hd*2+8) + 2*stages*8
}

// flashWGMMA reports whether flash attention at head dimension hd runs
// its forward and mass kernels on Hopper's warpgroup MMA (flash_fwd90,
// flash_mass90): on sm_90 with enough shared memory, unless turned off.
func (b *Backend) flashWGMMA(hd int) bool {
	return !b.noWGMMA && b.canWGMMA(hd)
}

// canWGMMA reports whether the GPU can run flash_fwd90 and flash_mass90 at
// head dimension hd: sm_90 with enough shared memory for both.
func (b *Backend) canWGMMA(hd int) bool {
	st := b.w90Tune.nstages()
	return b.dev.Major == 9 && b.dev.Minor == 0 && max(flashW90Shared(hd, st), flashW90MassShared(hd, st)) <= b.dev.SharedOptin
}

// flashHeadDims are the head dimensions flash.cu is compiled for.
var flashHeadDims = []int{64, 128}

// flashFwdShared is FWD_SHARED, flash_fwd's dynamic shared memory in
// bytes: the block's queries [BQ][hd+8] and key and value tiles
// [2][BK][hd+8] each, bf16 (102 KiB for hd 128, 54 KiB for hd 64: two
// blocks per multiprocessor).
func flashFwdShared(hd int) int {
	return (flashQueryRows + 4*flashKeyTile) * (hd + 8) * 2
}

// flashMassShared is MASS_SHARED, flash_mass's: the block's keys
// [BKM][hd+8] and query tiles [2][BQM][hd+8], bf16, and two float32
// [2][BQM] arrays (69 KiB for hd 128, 37 KiB for hd 64).
func flashMassShared(hd int) int {
	return (flashMassKeys+2*flashMassTile)*(hd+8)*2 + 4*flashMassTile*4
}

// flashScratch is where a call's gathered operands live in the backend's
// flash scratch buffer: kr, vr [hkv, np, hd] bf16 (the keys rotated, the
// values, padding and rows past l+s zero), bits [hkv, np/32] uint32 (a
// key's validity), qr [hq, sp, hd] bf16 (the queries rotated, rows past s
// zero) and qstat [hq, sp] float32 pairs (flash_fwd's statistics for
// flash_mass), at these byte offsets; bytes in all.
type flashScratch struct {
	np, sp                         int // keys rounded up to flashMassKeys, queries to flashQueryRows
	kr, vr, bits, qr, qstat, bytes int
}

func flashLayout(c *flashCall) flashScratch {
	np := (c.l + c.s + flashMassKeys - 1) / flashMassKeys * flashMassKeys
	sp := (c.s + flashQueryRows - 1) / flashQueryRows * flashQueryRows
	kv := c.hkv * np * c.hd * 2
	f := flashScratch{np: np, sp: sp, kr: 0, vr: kv, bits: 2 * kv}
	f.qr = f.bits + (c.hkv*np/32*4+255)/256*256
	f.qstat = f.qr + c.hq*sp*c.hd*2
	f.bytes = f.qstat + c.hq*sp*8
	return f
}

// flashKernels are the kernels of kernels/flash.cu for one head dimension.
type flashKernels struct {
	fns [len(flashKernelNames)]*cuda.Function
}

// flashFor returns the flash kernels for head dimension hd (one of
// flashHeadDims), compiling and loading them on first use: with
// flash_fwd90 where b.flashWGMMA(hd). b.mu must be held.
func (b *Backend) flashFor(hd int) (*flashKernels, error) {
	if k := b.flash[hd]; k != nil {
		return k, nil
	}
	k := &flashKernels{}
	names, p := flashKernelNames[:flashFwd90Kernel], flashProgram(hd)
	if b.flashWGMMA(hd) {
		names, p = flashKernelNames[:], flashW90Program(hd, b.w90Tune)
	}
	dst := make([]**cuda.Function, len(names))
	for i := range dst {
		dst[i] = &k.fns[i]
	}
	if err := b.load(p, names, dst); err != nil {
		return nil, err
	}
	if b.flash == nil {
		b.flash = map[int]*flashKernels{}
	}
	b.flash[hd] = k
	return k, nil
}

// The kernels of kernels/flash.cu, by index into flashKernelNames.
const (
	flashKeysKernel = iota
	flashQueriesKernel
	flashFwdKernel
	flashMassKernel
	flashFwd90Kernel // this and the next only in flashW90Program
	flashMass90Kernel
)

// flashKernelNames are the kernels of kernels/flash.cu, in the order of
// the flash*Kernel indices.
var flashKernelNames = [...]string{"flash_keys", "flash_queries", "flash_fwd", "flash_mass", "flash_fwd90", "flash_mass90"}

// flashProgram is kernels/flash.cu for head dimension hd.
func flashProgram(hd int) program {
	return newProgram("flash.cu", flashSource, fmt.Sprintf("-DHEAD_DIM=%d", hd))
}

// flashW90Program is kernels/flash.cu for head dimension hd with
// flash_fwd90 and flash_mass90 tuned by t, for sm_90a.
func flashW90Program(hd int, t flashW90Tuning) program {
	p := newProgram("flash.cu", flashSource, append([]string{fmt.Sprintf("-DHEAD_DIM=%d", hd), "-DKVC_WGMMA"}, t.opts()...)...)
	p.specific = true
	return p
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
	// scores [hq·s, l+s] float32, where not 0, receives the scaled scores
	// in place of the mass (decodeAttention only; weights then 0, stats
	// given): what the policy's Commit reduces (pendingMass).
	scores cuda.DevicePtr

	// scratch is at least flashLayout(c).bytes of device memory for the
	// gathered operands (flashAttention sets it).
	scratch cuda.DevicePtr

	s, l, capacity int // queries, view length, cache slots per KV head
	hq, hkv, hd    int // query heads, KV heads (hq a multiple), head dimension
	scale          float32
	// samePos: every head sees view key j at position pos[j] (the first
	// head's row) and has the same qpos; indexPos (with samePos): view
	// key j is at position j, whatever pos holds. decode.cu then shares
	// each key's RoPE row among the heads.
	samePos, indexPos bool
	// w90Stages, unless 0, runs the forward and mass kernels as
	// flash_fwd90 and flash_mass90 (Hopper) compiled with W_STAGES =
	// w90Stages.
	w90Stages int
}

// flashLaunch is one kernel launch of a flash attention call.
type flashLaunch struct {
	kernel  int // index into flashKernelNames
	grid    cuda.Dim3
	threads int // per block
	shared  int // bytes of dynamic shared memory
	args    []cuda.Arg
}

// flashCovers reports whether flashAttention takes c on a GPU of compute
// capability major.x that lets a block opt in to sharedOptin bytes of
// shared memory: not for fewer than flashMinRows queries, a head
// dimension not in flashHeadDims, a GPU older than sm_80 or short of
// shared memory, or q, k, v, ck, cv, cos, sin not 16-byte aligned (out not
// 4-byte aligned).
func flashCovers(c *flashCall, major, sharedOptin int) bool {
	if c.s < flashMinRows || !slices.Contains(flashHeadDims, c.hd) || major < flashMinArch {
		return false
	}
	if max(flashFwdShared(c.hd), flashMassShared(c.hd)) > sharedOptin {
		return false
	}
	return aligned16(c.q, c.k, c.v, c.ck, c.cv, c.cos, c.sin) && c.out%4 == 0
}

// flashPlan returns the launches that run c, which flashCovers takes:
// flash_keys, flash_queries, flash_fwd, then flash_mass when c.weights is
// not 0.
func flashPlan(c *flashCall) []flashLaunch {
	if c.hkv <= 0 || c.hq%c.hkv != 0 || c.l < 0 || (c.l > 0 && (c.slots == 0 || c.pos == 0)) {
		panic(fmt.Sprintf("gpu: flash attention with %d query heads, %d KV heads, view of %d", c.hq, c.hkv, c.l))
	}
	if c.weights != 0 && (c.stats == 0 || c.mass == 0) {
		panic("gpu: flash attention mass without stats or mass buffer")
	}
	if c.scratch == 0 {
		panic("gpu: flash attention without scratch")
	}
	f := flashLayout(c)
	kr, vr, bits, qr := c.scratch.Add(f.kr), c.scratch.Add(f.vr), c.scratch.Add(f.bits), c.scratch.Add(f.qr)
	var qstat cuda.DevicePtr // for flash_mass
	if c.weights != 0 {
		qstat = c.scratch.Add(f.qstat)
	}
	scale2 := float32(float64(c.scale) * math.Log2E) // the kernels work in powers of 2
	fwd, fwdThreads, fwdShared := flashFwdKernel, flashThreads, flashFwdShared(c.hd)
	mass, massThreads, massShared := flashMassKernel, flashThreads, flashMassShared(c.hd)
	if c.w90Stages > 0 {
		fwd, fwdThreads, fwdShared = flashFwd90Kernel, flashW90Threads, flashW90Shared(c.hd, c.w90Stages)
		mass, massThreads, massShared = flashMass90Kernel, flashW90Threads, flashW90MassShared(c.hd, c.w90Stages)
	}
	plan := []flashLaunch{{
		kernel: flashKeysKernel, grid: cuda.Dim3{X: f.np / flashGather, Y: c.hkv}, threads: flashThreads,
		args: []cuda.Arg{
			cuda.Ptr(kr), cuda.Ptr(vr), cuda.Ptr(bits), cuda.Ptr(c.k), cuda.Ptr(c.v), cuda.Ptr(c.ck), cuda.Ptr(c.cv),
			cuda.Ptr(c.slots), cuda.Ptr(c.pos), cuda.Ptr(c.qpos), cuda.Ptr(c.cos), cuda.Ptr(c.sin),
			cuda.Int(c.s), cuda.Int(c.l), cuda.Int(c.capacity), cuda.Int(c.hkv), cuda.Int(f.np),
		},
	}, {
		kernel: flashQueriesKernel, grid: cuda.Dim3{X: f.sp / flashGather, Y: c.hq}, threads: flashThreads,
		args: []cuda.Arg{
			cuda.Ptr(qr), cuda.Ptr(c.q), cuda.Ptr(c.qpos), cuda.Ptr(c.cos), cuda.Ptr(c.sin),
			cuda.Int(c.s), cuda.Int(c.hq), cuda.Int(c.hkv), cuda.Int(f.sp),
		},
	}, {
		kernel: fwd, grid: cuda.Dim3{X: f.sp / flashQueryRows, Y: c.hq}, threads: fwdThreads, shared: fwdShared,
		args: []cuda.Arg{
			cuda.Ptr(c.out), cuda.Ptr(c.stats), cuda.Ptr(qstat), cuda.Ptr(c.weights),
			cuda.Ptr(qr), cuda.Ptr(kr), cuda.Ptr(vr), cuda.Ptr(bits),
			cuda.Int(c.s), cuda.Int(f.sp), cuda.Int(c.l), cuda.Int(f.np), cuda.Int(c.hq), cuda.Int(c.hkv),
			cuda.Float(scale2),
		},
	}}
	if c.weights != 0 {
		plan = append(plan, flashLaunch{
			kernel: mass, grid: cuda.Dim3{X: f.np / flashMassKeys, Y: c.hkv}, threads: massThreads, shared: massShared,
			args: []cuda.Arg{
				cuda.Ptr(c.mass), cuda.Ptr(qstat), cuda.Ptr(qr), cuda.Ptr(kr), cuda.Ptr(bits),
				cuda.Int(c.s), cuda.Int(f.sp), cuda.Int(c.l), cuda.Int(f.np), cuda.Int(c.hq), cuda.Int(c.hkv),
				cuda.Float(scale2),
			},
		})
	}
	return plan
}

// flashAttention runs the attention call c on tensor cores and reports
// true, or reports false without doing anything when it does not cover
// the call (see flashCovers). The work is queued on the device: out, stats
// and mass are ready at the next synchronising call. b.mu must be held.
func (b *Backend) flashAttention(c *flashCall) bool {
	if !flashCovers(c, b.dev.Major, b.dev.SharedOptin) {
		return false
	}
	kern, err := b.flashFor(c.hd)
	must(err)
	if kern.fns[flashFwd90Kernel] != nil {
		c.w90Stages = b.w90Tune.nstages()
	}
	c.scratch = b.flashBuf.ensure(b.dev, flashLayout(c).bytes)
	for _, l := range flashPlan(c) {
		launch(kern.fns[l.kernel], l.grid, cuda.Dim3{X: l.threads}, l.shared, l.args...)
	}
	return true
}
