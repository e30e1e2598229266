package gpu

import (
	_ "embed"
	"fmt"
	"strings"

	"kvcascade/gpu/cuda"
	"kvcascade/runtime/backend"
)

// The kernels, CUDA C compiled at run time by NVRTC. storageSource goes in
// front of each of the others (see program).
var (
	//go:embed kernels/storage.cuh
	storageSource string
	//go:embed kernels/ops.cu
	opsSource string
	//go:embed kernels/attention.cu
	attentionSource string
	//go:embed kernels/random.cu
	randomSource string
)

// storage indexes the per-type kernel tables: how a tensor is stored.
type storage int

// Storage types, in the order of storageNames.
const (
	stF32 storage = iota
	stBF16
	numStorage
)

// storageNames are the types' names in kernels/storage.cuh and in the
// names of the kernels' wrappers.
var storageNames = [numStorage]string{"f32", "bf16"}

// storageOf returns how tensors of dtype are stored: F32 as f32, BF16 and
// F16 as bf16 (F16 has no kernels of its own).
func storageOf(d backend.DType) storage {
	if d == backend.F32 {
		return stF32
	}
	return stBF16
}

// dtype returns the backend.DType a storage type reports.
func (s storage) dtype() backend.DType {
	if s == stF32 {
		return backend.F32
	}
	return backend.BF16
}

// size returns the bytes of one element.
func (s storage) size() int {
	if s == stF32 {
		return 4
	}
	return 2
}

// program is one NVRTC compilation: a kernel source after storage.cuh,
// with a #line so that messages name the source's own lines, and options.
type program struct {
	name, src string
	opts      []string
	// specific compiles for the device's architecture-specific target
	// (sm_90a): the code uses features of that architecture alone.
	specific bool
}

func newProgram(file, src string, opts ...string) program {
	name := file
	if len(opts) > 0 {
		name = fmt.Sprintf("%s (%s)", file, strings.Join(opts, " "))
	}
	return program{name: name, src: storageSource + fmt.Sprintf("#line 1 %q\n", file) + src, opts: opts}
}

func opsProgram() program    { return newProgram("ops.cu", opsSource) }
func randomProgram() program { return newProgram("random.cu", randomSource) }

// attentionProgram is kernels/attention.cu for head dimension hd and
// storage st.
func attentionProgram(hd int, st storage) program {
	return newProgram("attention.cu", attentionSource, fmt.Sprintf("-DHEAD_DIM=%d", hd), "-DSTORAGE="+storageNames[st])
}

// opsKernels are the kernels of kernels/ops.cu, by the storage types of
// their tensors in argument order (see the wrappers there).
type opsKernels struct {
	embed, add, addBias, scatter, copySlots, copyRows [numStorage][numStorage]*cuda.Function
	rmsnorm, addRMSNorm, swiglu, gemm                 [numStorage][numStorage][numStorage]*cuda.Function
	gemv                                              [numStorage]*cuda.Function // by the storage of the output
	ropeTable                                         *cuda.Function
}

// attnKey selects a compilation of kernels/attention.cu.
type attnKey struct {
	hd int
	st storage
}

// attnKernels are the kernels of kernels/attention.cu for one head
// dimension and storage type.
type attnKernels struct {
	attention, combine, mass *cuda.Function
}

// Geometry of kernels/attention.cu; keep in step with its #defines.
const (
	attnKeyTile   = 32     // BK
	attnRows      = 4 * 4  // BQ = ROWS·WARPS
	attnThreads   = 4 * 32 // WARPS·32
	maxHeadDim    = 256    // keeps the accumulators in registers
	gemmTile      = 64     // GT of gemm_nt
	gemmThreads   = 256
	gemvRows      = 4 * 4 // GV_WARPS·GV_ROWS: rows of w per block of gemv_nt
	gemvThreads   = 4 * 32
	rowThreads    = 256 // threads per block of row kernels
	elemThreads   = 256
	blocksPerSM   = 32 // grid-stride kernels launch at most this many blocks per SM
	minRopeLength = 1024
	// Splitting the keys of attention calls with few queries (decoding).
	splitBlocksPerSM = 8
	splitMinTiles    = 4
)

// load compiles p (through the disk cache), loads it, looks up the named
// kernels into dst, in order, and keeps the module for Close to unload.
func (b *Backend) load(p program, names []string, dst []**cuda.Function) error {
	compile := b.comp.Compile
	if p.specific {
		compile = b.comp.CompileSpecific
	}
	img, err := compile(p.name, p.src, p.opts...)
	if err != nil {
		return err
	}
	m, err := b.dev.LoadModule(img.Code)
	if err != nil {
		return fmt.Errorf("load %s: %w", p.name, err)
	}
	for i, n := range names {
		f, err := m.Function(n)
		if err != nil {
			m.Unload()
			return fmt.Errorf("%s: %w", p.name, err)
		}
		*dst[i] = f
	}
	b.modules = append(b.modules, m)
	return nil
}

// table lists the kernels of kernels/ops.cu by name, with where each goes.
func (k *opsKernels) table() (names []string, dst []**cuda.Function) {
	names = []string{"rope_table"}
	dst = []**cuda.Function{&k.ropeTable}
	two := func(kernel string, tab *[numStorage][numStorage]*cuda.Function) {
		for i, a := range storageNames {
			for j, c := range storageNames {
				names = append(names, kernel+"_"+a+"_"+c)
				dst = append(dst, &tab[i][j])
			}
		}
	}
	three := func(kernel string, tab *[numStorage][numStorage][numStorage]*cuda.Function) {
		for i, a := range storageNames {
			for j, c := range storageNames {
				for l, e := range storageNames {
					names = append(names, kernel+"_"+a+"_"+c+"_"+e)
					dst = append(dst, &tab[i][j][l])
				}
			}
		}
	}
	two("embed", &k.embed)
	two("add", &k.add)
	two("add_bias", &k.addBias)
	two("scatter", &k.scatter)
	two("copy_slots", &k.copySlots)
	two("copy_rows", &k.copyRows)
	three("rmsnorm", &k.rmsnorm)
	three("add_rmsnorm", &k.addRMSNorm)
	three("swiglu", &k.swiglu)
	three("gemm_nt", &k.gemm)
	for i, c := range storageNames {
		names = append(names, "gemv_nt_"+c)
		dst = append(dst, &k.gemv[i])
	}
	return names, dst
}

// Kernel names of kernels/random.cu (by storage) and kernels/attention.cu.
var (
	randomKernels    = [numStorage]string{"fill_normal_f32", "fill_normal_bf16"}
	attentionKernels = []string{"attention", "attention_combine", "attention_mass"}
)

func (b *Backend) loadOps() error {
	names, dst := b.k.table()
	return b.load(opsProgram(), names, dst)
}

// attnFor returns the attention kernels for head dimension hd and storage
// st, compiling them on first use.
func (b *Backend) attnFor(hd int, st storage) (*attnKernels, error) {
	key := attnKey{hd, st}
	if k := b.attn[key]; k != nil {
		return k, nil
	}
	if hd <= 0 || hd%2 != 0 || hd > maxHeadDim {
		return nil, fmt.Errorf("head dimension %d: the attention kernel takes even sizes up to %d", hd, maxHeadDim)
	}
	k := &attnKernels{}
	if err := b.load(attentionProgram(hd, st), attentionKernels, []**cuda.Function{&k.attention, &k.combine, &k.mass}); err != nil {
		return nil, err
	}
	b.attn[key] = k
	return k, nil
}

// attnShared is the dynamic shared memory of the attention kernel: the
// block's queries, one key tile (rows padded by one float) and one value
// tile, all float32 whatever the storage.
func attnShared(hd int) int { return 4 * (attnRows*hd + attnKeyTile*(hd+1) + attnKeyTile*hd) }

// massShared is that of the mass kernel: one key tile and 32 queries.
func massShared(hd int) int { return 4 * (attnKeyTile*(hd+1) + 32*hd) }
