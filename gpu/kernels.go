package gpu

import (
	_ "embed"
	"fmt"

	"kvcascade/gpu/cuda"
)

// The kernels, CUDA C compiled at run time by NVRTC.
var (
	//go:embed kernels/ops.cu
	opsSource string
	//go:embed kernels/attention.cu
	attentionSource string
)

// opsKernels are the kernels of kernels/ops.cu.
type opsKernels struct {
	embed, rmsnorm, swiglu, add, addBias *cuda.Function
	scatter, copySlots, ropeTable, sgemm *cuda.Function
}

// attnKernels are the kernels of kernels/attention.cu for one head
// dimension.
type attnKernels struct {
	module                   *cuda.Module
	attention, combine, mass *cuda.Function
}

// Geometry of kernels/attention.cu; keep in step with its #defines.
const (
	attnKeyTile   = 32     // BK
	attnRows      = 4 * 4  // BQ = ROWS·WARPS
	attnThreads   = 4 * 32 // WARPS·32
	maxHeadDim    = 256    // keeps the accumulators in registers
	gemmTile      = 64     // GT of sgemm_nt
	gemmThreads   = 256
	rowThreads    = 256 // threads per block of row kernels
	elemThreads   = 256
	blocksPerSM   = 32 // grid-stride kernels launch at most this many blocks per SM
	minRopeLength = 1024
	// Splitting the keys of attention calls with few queries (decoding).
	splitBlocksPerSM = 8
	splitMinTiles    = 4
)

// load compiles src with opts (through the disk cache), loads it and looks
// up the named kernels into dst, in order.
func (b *Backend) load(name, src string, opts []string, names []string, dst []**cuda.Function) (*cuda.Module, error) {
	img, err := b.comp.Compile(name, src, opts...)
	if err != nil {
		return nil, err
	}
	m, err := b.dev.LoadModule(img.Code)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	for i, n := range names {
		f, err := m.Function(n)
		if err != nil {
			m.Unload()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		*dst[i] = f
	}
	return m, nil
}

func (b *Backend) loadOps() error {
	k := &b.k
	m, err := b.load("ops.cu", opsSource, nil,
		[]string{"embed", "rmsnorm", "swiglu", "add", "add_bias", "scatter", "copy_slots", "rope_table", "sgemm_nt"},
		[]**cuda.Function{&k.embed, &k.rmsnorm, &k.swiglu, &k.add, &k.addBias, &k.scatter, &k.copySlots, &k.ropeTable, &k.sgemm})
	if err != nil {
		return err
	}
	b.modules = append(b.modules, m)
	return nil
}

// attnFor returns the attention kernels for head dimension hd, compiling
// them on first use.
func (b *Backend) attnFor(hd int) (*attnKernels, error) {
	if k := b.attn[hd]; k != nil {
		return k, nil
	}
	if hd <= 0 || hd%2 != 0 || hd > maxHeadDim {
		return nil, fmt.Errorf("head dimension %d: the attention kernel takes even sizes up to %d", hd, maxHeadDim)
	}
	k := &attnKernels{}
	m, err := b.load(fmt.Sprintf("attention.cu (HEAD_DIM=%d)", hd), attentionSource, []string{fmt.Sprintf("-DHEAD_DIM=%d", hd)},
		[]string{"attention", "attention_combine", "attention_mass"}, []**cuda.Function{&k.attention, &k.combine, &k.mass})
	if err != nil {
		return nil, err
	}
	k.module = m
	b.attn[hd] = k
	return k, nil
}

// attnShared is the dynamic shared memory of the attention kernel: the
// block's queries, one key tile (rows padded by one float) and one value
// tile.
func attnShared(hd int) int { return 4 * (attnRows*hd + attnKeyTile*(hd+1) + attnKeyTile*hd) }

// massShared is that of the mass kernel: one key tile and 32 queries.
func massShared(hd int) int { return 4 * (attnKeyTile*(hd+1) + 32*hd) }
