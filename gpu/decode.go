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
	decodeThreads    = 4 * 32 // DEC_THREADS
	decodeRows       = 4      // DEC_ROWS: query rows (query head, query) per block
	decodeMaxQueries = 16     // more queries go to the prefill kernels
	// Splitting the keys: about decodeBlocksPerSM blocks per multiprocessor,
	// each of at least decodeMinKeys keys.
	decodeBlocksPerSM = 4
	decodeUnroll      = 2 // DEC_UNROLL: keys per unit and step
	decodeStages      = 3 // DEC_STAGES: steps in shared memory
	decodeChunks      = 4 // CHUNKS: 16-byte copies per key and thread
	decodeMinKeys     = 256
	combineThreads    = 128  // COMBINE_THREADS
	decodeMaxSplit    = 1024 // MAX_SPLIT
	massThreads       = 256
	argmaxThreads     = 1024
)

// decodeHeadDims are the head dimensions decode.cu is compiled for.
var decodeHeadDims = []int{64, 128, 256}

// decodeKernelNames are the kernels of kernels/decode.cu, in the order of
// decodeKernels' fields; sampleKernelNames those of kernels/sample.cu by
// the storage type of the logits.
var (
	decodeKernelNames = [...]string{"decode_attention", "decode_combine", "decode_mass"}
	sampleKernelNames = [numStorage]string{"argmax_f32", "argmax_bf16"}
)

// decodeKernels are the kernels of kernels/decode.cu for one head dimension.
type decodeKernels struct {
	attention, combine, mass *cuda.Function
}

// decodeTuning overrides decode.cu's defaults, for benchmarks: zero
// fields keep them.
type decodeTuning struct {
	unroll    int // DEC_UNROLL: keys per unit and step
	minBlocks int // DEC_MINBLOCKS: blocks per multiprocessor the registers allow
	stages    int // DEC_STAGES: steps in shared memory, one computed, the rest in flight
}

// sharedBytes is decode_attention's dynamic shared memory under t
// (DEC_SHARED): the stages' 16-byte copies.
func (t decodeTuning) sharedBytes() int {
	u, st := decodeUnroll, decodeStages
	if t.unroll > 0 {
		u = t.unroll
	}
	if t.stages > 0 {
		st = t.stages
	}
	return st * u * decodeChunks * decodeThreads * 16
}

// blocksPerSM is how many blocks of decode_attention the split aims at
// per multiprocessor.
func (t decodeTuning) blocksPerSM() int {
	if t.minBlocks > 0 {
		return t.minBlocks
	}
	return decodeBlocksPerSM
}

// decodeProgram is kernels/decode.cu for head dimension hd under tuning t.
func decodeProgram(hd int, t decodeTuning) program {
	opts := []string{fmt.Sprintf("-DHEAD_DIM=%d", hd)}
	if t.unroll > 0 {
		opts = append(opts, fmt.Sprintf("-DDEC_UNROLL=%d", t.unroll))
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
// decodeHeadDims), compiling and loading them on first use. b.mu must be
// held.
func (b *Backend) decodeFor(hd int) (*decodeKernels, error) {
	if k := b.decode[hd]; k != nil {
		return k, nil
	}
	k := &decodeKernels{}
	if err := b.load(decodeProgram(hd, b.decodeTune), decodeKernelNames[:], []**cuda.Function{&k.attention, &k.combine, &k.mass}); err != nil {
		return nil, err
	}
	if b.decode == nil {
		b.decode = map[int]*decodeKernels{}
	}
	b.decode[hd] = k
	return k, nil
}

// decodeSplit returns how many runs decode_attention splits n keys into
// when blocks blocks already share each run, on a GPU of sms
// multiprocessors: enough for about perSM blocks per multiprocessor (one
// wave), each run at least decodeMinKeys long.
func decodeSplit(n, blocks, sms, perSM int) int {
	want := (perSM*sms + blocks - 1) / blocks
	return max(1, min(want, n/decodeMinKeys, decodeMaxSplit))
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
	for _, p := range []cuda.DevicePtr{c.q, c.k, c.v, c.ck, c.cv, c.cos, c.sin} {
		if p%16 != 0 {
			return false
		}
	}
	if c.weights != 0 && (c.stats == 0 || c.mass == 0) {
		panic("gpu: decode attention mass without stats or mass buffer")
	}
	kern, err := b.decodeFor(c.hd)
	must(err)
	n := c.l + c.s
	groups := (c.hq/c.hkv*c.s + decodeRows - 1) / decodeRows
	split := decodeSplit(n, c.hkv*groups, b.dev.Multiprocessors, b.decodeTune.blocksPerSM())
	per := (n + split - 1) / split
	split = (n + per - 1) / per // no empty run
	rows := c.hq * c.s
	part := b.part.ensure(b.dev, 4*split*rows*(c.hd+2))
	var scores cuda.DevicePtr
	if c.weights != 0 {
		scores = b.scores.ensure(b.dev, 4*rows*n)
	}
	launch(kern.attention, cuda.Dim3{X: c.hkv * groups, Y: split}, cuda.Dim3{X: decodeThreads}, b.decodeTune.sharedBytes(),
		cuda.Ptr(part), cuda.Ptr(scores), cuda.Ptr(c.q), cuda.Ptr(c.k), cuda.Ptr(c.v),
		cuda.Ptr(c.ck), cuda.Ptr(c.cv), cuda.Ptr(c.slots), cuda.Ptr(c.pos), cuda.Ptr(c.qpos),
		cuda.Ptr(c.cos), cuda.Ptr(c.sin), cuda.Int(c.s), cuda.Int(c.l), cuda.Int(c.capacity),
		cuda.Int(c.hq), cuda.Int(c.hkv), cuda.Float(c.scale), cuda.Int(per), cuda.Int(split))
	launch(kern.combine, cuda.Dim3{X: rows}, cuda.Dim3{X: combineThreads}, 0,
		cuda.Ptr(c.out), cuda.Ptr(c.stats), cuda.Ptr(part), cuda.Int(c.s), cuda.Int(c.hq), cuda.Int(split))
	if c.weights != 0 {
		launch(kern.mass, cuda.Dim3{X: (n + massThreads - 1) / massThreads, Y: c.hq}, cuda.Dim3{X: massThreads}, 0,
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
	if b.argmax[t.st] == nil {
		var fs [numStorage]*cuda.Function
		must(b.load(sampleProgram(), sampleKernelNames[:], []**cuda.Function{&fs[stF32], &fs[stBF16]}))
		b.argmax = fs
	}
	out := b.tokens.ensure(b.dev, 4*rows)
	launch(b.argmax[t.st], cuda.Dim3{X: rows}, cuda.Dim3{X: argmaxThreads}, 0,
		cuda.Ptr(out), cuda.Ptr(t.ptr()), cuda.Int(v))
	// into the backend's own slice: cgo refuses dst where it lies in a
	// struct holding Go pointers (a Session's)
	if cap(b.picked) < rows {
		b.picked = make([]int32, rows)
	}
	must(cuda.Download(b.dev, b.picked[:rows], out))
	copy(dst, b.picked[:rows])
}
