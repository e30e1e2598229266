package gpu

import (
	_ "embed"
	"fmt"
	"slices"

	"kvcascade/gpu/cuda"
	"kvcascade/runtime/backend"
)

// Flash-decoding attention for chunks of few queries (decoding):
// kernels/decode.cu, bf16 storage, compiled per head dimension. Backend.
// Attention calls decodeAttention first for bf16 calls of at most
// decodeMaxQueries queries; where it declines (other head dimensions,
// unaligned tensors, Options.NoDecode), attention.cu's kernels run.

var (
	//go:embed kernels/decode.cu
	decodeSource string
	//go:embed kernels/sample.cu
	sampleSource string
)

// Geometry of kernels/decode.cu; keep in step with its #defines
// (TestKernelsCompile checks).
const (
	decodeRows       = 16 // DEC_ROWS: query rows (query head, query) per block, one m16 tile
	decodeMaxQueries = 16 // more queries go to the prefill kernels
	// Splitting the keys: about decodeWarpsPerSM warps per multiprocessor
	// (one wave), each run at least decodeMinKeys keys per KV head of its
	// block.
	decodeWarpsPerSM = 8
	decodeStages     = 2 // DEC_STAGES: steps in shared memory
	// decodeHeads is DEC_HEADS where the heads see the same positions: KV
	// heads per block, sharing the keys' RoPE rows. Elsewhere it is 1.
	decodeHeads    = 4
	decodeMinKeys  = 256
	combineThreads = 512  // COMBINE_THREADS
	decodeMaxSplit = 1024 // MAX_SPLIT
	massThreads    = 256  // MASS_THREADS
	massKeys       = 4    // MASS_KEYS
	// Argmax splits a row into parts of at least argmaxPerPart values (at
	// most argmaxMaxParts of them), one block of argmaxThreads each, and
	// merges the parts' picks in a second kernel.
	argmaxThreads  = 256
	argmaxPerPart  = 4096
	argmaxMaxParts = 256
)

// decodeHeadDims are the head dimensions decode.cu is compiled for.
var decodeHeadDims = []int{64, 128}

// decodeKernelNames are the kernels of kernels/decode.cu, in the order of
// decodeKernels' fields; sampleKernelNames those of kernels/sample.cu,
// in the order of sampleKernels' (argmax_part by the storage type of the
// logits, then argmax_merge).
var (
	decodeKernelNames = [...]string{"decode_attention", "decode_combine", "decode_mass"}
	sampleKernelNames = [...]string{"argmax_part_f32", "argmax_part_bf16", "argmax_merge"}
)

// sampleKernels are the kernels of kernels/sample.cu.
type sampleKernels struct {
	part  [numStorage]*cuda.Function // argmax_part by the storage of the logits
	merge *cuda.Function
}

// decodeKernels are the kernels of kernels/decode.cu for one head
// dimension and DEC_HEADS.
type decodeKernels struct {
	attention, combine, mass *cuda.Function
}

// decodeKey names one compilation of kernels/decode.cu.
type decodeKey struct{ hd, heads int }

// decodeTuning overrides decode.cu's defaults, for benchmarks: zero
// fields keep them.
type decodeTuning struct {
	minBlocks int // DEC_MINBLOCKS: blocks per multiprocessor the registers allow
	stages    int // DEC_STAGES: steps in shared memory, one computed, the rest in flight
	heads     int // DEC_HEADS where the heads see the same positions (1: never shared)
}

// withDefaults returns t with its zero fields set to decode.cu's defaults
// (decodeHeads for heads; minBlocks stays 0, the file's default).
func (t decodeTuning) withDefaults() decodeTuning {
	if t.stages <= 0 {
		t.stages = decodeStages
	}
	if t.heads <= 0 {
		t.heads = decodeHeads
	}
	return t
}

// decodeWarps is DEC_WARPS for DEC_HEADS = heads: warps per block.
func decodeWarps(heads int) int { return max(4, heads) }

// sharedBytes is decode_attention's dynamic shared memory (DEC_SHARED)
// under t at head dimension hd with DEC_HEADS = heads: per stage, 16 keys
// per warp, their key and value rows (64·w·hd bytes for w warps) and the
// RoPE rows of a head's keys, cos and sin padded by 8 floats each.
func (t decodeTuning) sharedBytes(hd, heads int) int {
	t = t.withDefaults()
	w := decodeWarps(heads)
	return t.stages * (64*w*hd + 128*(w/heads)*(hd/2+8))
}

// blocksPerSM is how many blocks of decode_attention with DEC_HEADS =
// heads the split aims at per multiprocessor.
func (t decodeTuning) blocksPerSM(heads int) int {
	if t.minBlocks > 0 {
		return t.minBlocks
	}
	return max(1, decodeWarpsPerSM/decodeWarps(heads))
}

// decodeProgram is kernels/decode.cu for head dimension hd under tuning t
// with DEC_HEADS = heads.
func decodeProgram(hd, heads int, t decodeTuning) program {
	opts := []string{fmt.Sprintf("-DHEAD_DIM=%d", hd)}
	if heads > 1 {
		opts = append(opts, fmt.Sprintf("-DDEC_HEADS=%d", heads))
	}
	if t.minBlocks > 0 {
		opts = append(opts, fmt.Sprintf("-DDEC_MINBLOCKS=%d", t.minBlocks))
	}
	if t.stages > 0 {
		opts = append(opts, fmt.Sprintf("-DDEC_STAGES=%d", t.stages))
	}
	return newProgram("decode.cu", decodeSource, opts...)
}

func sampleProgram() program { return newProgram("sample.cu", sampleSource) }

// decodeFor returns the decode kernels for head dimension hd (one of
// decodeHeadDims) and DEC_HEADS = heads, compiling and loading them on
// first use. b.mu must be held.
func (b *Backend) decodeFor(hd, heads int) (*decodeKernels, error) {
	key := decodeKey{hd, heads}
	if k := b.decode[key]; k != nil {
		return k, nil
	}
	k := &decodeKernels{}
	if err := b.load(decodeProgram(hd, heads, b.decodeTune), decodeKernelNames[:], []**cuda.Function{&k.attention, &k.combine, &k.mass}); err != nil {
		return nil, err
	}
	if b.decode == nil {
		b.decode = map[decodeKey]*decodeKernels{}
	}
	b.decode[key] = k
	return k, nil
}

// decodeSplit returns how many runs decode_attention splits n keys into
// when blocks blocks already share each run, on a GPU of sms
// multiprocessors: enough for about perSM blocks per multiprocessor (one
// wave), each run at least minKeys long.
func decodeSplit(n, blocks, sms, perSM, minKeys int) int {
	want := (perSM*sms + blocks - 1) / blocks
	return max(1, min(want, n/minKeys, decodeMaxSplit))
}

// decodeAttention runs the attention call c (bf16 storage; see flashCall)
// with kernels/decode.cu and reports true, or reports false without doing
// anything when it does not cover the call: more than decodeMaxQueries
// queries, a head dimension not in decodeHeadDims, or q, k, v, ck, cv, cos,
// sin not 16-byte aligned. The mass, when c.weights asks for it, comes
// from the scores the kernel saves, with the merged row statistics: one
// more pass over Hq·S·(L+S) floats, no second pass over the keys. b.mu
// must be held.
func (b *Backend) decodeAttention(c *flashCall) bool {
	if c.s > decodeMaxQueries || !slices.Contains(decodeHeadDims, c.hd) {
		return false
	}
	if !aligned16(c.q, c.k, c.v, c.ck, c.cv, c.cos, c.sin) {
		return false
	}
	if c.weights != 0 && (c.stats == 0 || c.mass == 0) || c.scores != 0 && (c.stats == 0 || c.weights != 0) {
		panic("gpu: decode attention mass without stats or mass buffer, or with scores to leave")
	}
	// KV heads per block: decodeHeads (or the tuning's) sharing the keys'
	// RoPE rows where the heads see the same positions, else one.
	heads := 1
	if hb := b.decodeTune.withDefaults().heads; c.samePos && hb > 1 && c.hkv%hb == 0 {
		heads = hb
	}
	kern, err := b.decodeFor(c.hd, heads)
	must(err)
	n := c.l + c.s
	groups := (c.hq/c.hkv*c.s + decodeRows - 1) / decodeRows
	split := decodeSplit(n, c.hkv/heads*groups, b.dev.Multiprocessors, b.decodeTune.blocksPerSM(heads), max(32, decodeMinKeys/heads))
	per := (n + split - 1) / split
	split = (n + per - 1) / per // no empty run
	rows := c.hq * c.s
	part := b.part.ensure(b.dev, 4*split*rows*(c.hd+2))
	scores := c.scores
	if c.weights != 0 {
		scores = b.scores.ensure(b.dev, 4*rows*n)
	}
	launch(kern.attention, cuda.Dim3{X: c.hkv / heads * groups, Y: split}, cuda.Dim3{X: 32 * decodeWarps(heads)}, b.decodeTune.sharedBytes(c.hd, heads),
		cuda.Ptr(part), cuda.Ptr(scores), cuda.Ptr(c.q), cuda.Ptr(c.k), cuda.Ptr(c.v),
		cuda.Ptr(c.ck), cuda.Ptr(c.cv), cuda.Ptr(c.slots), cuda.Ptr(c.pos), cuda.Ptr(c.qpos),
		cuda.Ptr(c.cos), cuda.Ptr(c.sin), cuda.Int(c.s), cuda.Int(c.l), cuda.Int(c.capacity),
		cuda.Int(c.hq), cuda.Int(c.hkv), cuda.Float(c.scale), cuda.Int(per), cuda.Int(split),
		cuda.Int(boolInt(c.indexPos)))
	launch(kern.combine, cuda.Dim3{X: rows}, cuda.Dim3{X: combineThreads}, 0,
		cuda.Ptr(c.out), cuda.Ptr(c.stats), cuda.Ptr(part), cuda.Int(c.s), cuda.Int(c.hq), cuda.Int(split))
	if c.weights != 0 {
		launch(kern.mass, cuda.Dim3{X: (n + massThreads*massKeys - 1) / (massThreads * massKeys), Y: c.hq}, cuda.Dim3{X: massThreads}, 0,
			cuda.Ptr(c.mass), cuda.Ptr(scores), cuda.Ptr(c.stats), cuda.Ptr(c.weights),
			cuda.Int(c.s), cuda.Int(n), cuda.Int(c.hq))
	}
	return true
}

// Argmax sets dst[r] to the index of the largest value of row r of logits
// [rows, V] (float32 or bf16), the first on ties, computed on the device:
// only the indices cross to the host, once queued work is done. It picks
// what model.Argmax picks on the host from finite rows; a row holding a NaN
// or ±Inf gives −1.
func (b *Backend) Argmax(logits backend.Tensor, dst []int32) {
	t := tensor(logits)
	if len(t.shape) != 2 || len(dst) != t.shape[0] {
		panic(fmt.Sprintf("gpu: Argmax of %v into %d indices", t.shape, len(dst)))
	}
	rows, v := t.shape[0], t.shape[1]
	if rows == 0 {
		return
	}
	if v == 0 {
		panic("gpu: Argmax of rows of no values")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.argmax == nil {
		k := new(sampleKernels)
		must(b.load(sampleProgram(), sampleKernelNames[:], []**cuda.Function{&k.part[stF32], &k.part[stBF16], &k.merge}))
		b.argmax = k
	}
	parts := min(argmaxMaxParts, max(1, v/argmaxPerPart))
	per := (v + parts - 1) / parts
	// the picks, then each part's value, index and finiteness
	out := b.tokens.ensure(b.dev, 4*rows+12*rows*parts)
	pv := out + cuda.DevicePtr(4*rows)
	pi := pv + cuda.DevicePtr(4*rows*parts)
	pbad := pi + cuda.DevicePtr(4*rows*parts)
	launch(b.argmax.part[t.st], cuda.Dim3{X: parts, Y: rows}, cuda.Dim3{X: argmaxThreads}, 0,
		cuda.Ptr(pv), cuda.Ptr(pi), cuda.Ptr(pbad), cuda.Ptr(t.ptr()), cuda.Int(v), cuda.Int(per))
	launch(b.argmax.merge, cuda.Dim3{X: rows}, cuda.Dim3{X: 32}, 0,
		cuda.Ptr(out), cuda.Ptr(pv), cuda.Ptr(pi), cuda.Ptr(pbad), cuda.Int(parts))
	// into the backend's own slice: cgo refuses dst where it lies in a
	// struct holding Go pointers (a Session's)
	if cap(b.picked) < rows {
		b.picked = make([]int32, rows)
	}
	must(cuda.Download(b.dev, b.picked[:rows], out))
	copy(dst, b.picked[:rows])
}
