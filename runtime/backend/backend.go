// Package backend defines the small set of tensor operations a decoder-only
// transformer needs, so that a model is written once and runs on any device.
//
// A Backend owns tensor storage. Tensors are dense, row-major and at most
// three-dimensional. The model code never touches tensor memory directly; it
// only calls Backend methods. The CPU implementation lives in runtime/cpu and
// the CUDA one in gpu/.
package backend

import (
	"fmt"
	"math"
)

// DType is the element type of a tensor.
type DType int

// Element types.
const (
	F32 DType = iota
	BF16
	F16
)

// String returns the safetensors spelling of the type.
func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case BF16:
		return "BF16"
	case F16:
		return "F16"
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// Size returns the size of one element in bytes.
func (d DType) Size() int {
	if d == F32 {
		return 4
	}
	return 2
}

// Tensor is a buffer owned by a Backend.
type Tensor interface {
	// Shape returns the dimensions, outermost first.
	Shape() []int
	// DType returns the element type.
	DType() DType
}

// ValidShape reports whether shape has no negative dimension.
func ValidShape(shape []int) bool {
	for _, d := range shape {
		if d < 0 {
			return false
		}
	}
	return true
}

// Numel returns the number of elements of a shape.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Backend is the device a model runs on.
//
// Shapes in comments use S for the tokens of a chunk, D for the hidden size,
// Hq and Hkv for query and key/value heads and hd for the head dimension.
type Backend interface {
	// Name identifies the backend ("cpu", "cuda").
	Name() string

	// DType returns the element type the backend stores weights,
	// activations and KV caches in: FromFloat32 converts to it, and
	// callers pass it to New for activations and to the KV cache.
	DType() DType

	// New returns a zeroed tensor of dtype, or of the nearest type the
	// backend stores (see the backend's documentation).
	New(dtype DType, shape ...int) Tensor
	// FromFloat32 uploads host data into a new tensor of the backend's
	// DType, rounding where that type is narrower than float32.
	FromFloat32(data []float32, shape ...int) Tensor
	// Read copies a tensor to host memory as float32; dst must hold Numel elements.
	Read(t Tensor, dst []float32)
	// Free releases a tensor's storage. Using it afterwards is a bug.
	Free(t Tensor)
	// Slice returns a view of rows [lo, hi) of the outermost dimension.
	Slice(t Tensor, lo, hi int) Tensor
	// Reshape returns a view of the elements of t, a whole tensor or a
	// Slice, under shape, which must have t's number of elements. Like a
	// Slice, it shares t's storage and is not to be freed.
	Reshape(t Tensor, shape ...int) Tensor

	// Embed gathers rows of table [V, D] into dst [S, D].
	Embed(dst, table Tensor, ids []int32)
	// RMSNorm sets dst [S, D] to x·w/rms(x) row by row.
	RMSNorm(dst, x, w Tensor, eps float32)
	// MatMul sets dst [S, N] = x [S, K] · wᵀ with w [N, K], the layout of a
	// Hugging Face linear layer; bias [N] is added when not nil.
	MatMul(dst, x, w, bias Tensor)
	// SwiGLU sets dst = silu(gate) ⊙ up, all [S, F].
	SwiGLU(dst, gate, up Tensor)
	// Add sets dst += x, both of the same shape.
	Add(dst, x Tensor)

	// Attention runs attention of a chunk over its cached context; see Attention.
	Attention(a *Attention)
	// Scatter writes rows of the chunk's keys or values src [S, Hkv·hd] into
	// the cache storage dst [Hkv, Cap, hd]: row i of head h goes to slot
	// slots[h·S+i]; a negative slot skips the row. When several rows of one
	// head name the same slot the last one wins. On a SlotPooler, dst may
	// also be a pool [1, Cap, hd] that every head's slots index.
	Scatter(dst, src Tensor, slots []int32)
	// CopySlots copies slots [0, n) of every head of src [Hkv, Cap₁, hd] into
	// dst [Hkv, Cap₂, hd], used when a cache grows.
	CopySlots(dst, src Tensor, n int)
}

// Attention is one attention call: the queries of a chunk of S tokens
// attend, head by head, to a view of the cached keys followed by the chunk's
// own keys under a causal mask. Keys and queries arrive before RoPE and are
// rotated inside the call with the positions given here, so that a cache can
// store keys once and re-position them every chunk (cache-relative RoPE).
type Attention struct {
	Out Tensor // [S, Hq·hd] result
	Q   Tensor // [S, Hq·hd] queries before RoPE
	K   Tensor // [S, Hkv·hd] the chunk's keys before RoPE
	V   Tensor // [S, Hkv·hd] the chunk's values

	View View // the part of the cache the chunk attends to

	HeadDim int
	QHeads  int
	KVHeads int
	Scale   float32 // usually 1/√hd

	// InvFreq [hd/2] are the RoPE inverse frequencies, scaling already applied.
	InvFreq []float32
	// AttnFactor multiplies cos and sin (1 except for some scaled RoPE types).
	AttnFactor float32

	// Window, when positive, is the model's sliding window: a query at RoPE
	// position p attends only to keys at RoPE positions above p − Window
	// (itself and the Window−1 keys before it), as Hugging Face's
	// sliding-window mask does; 0 attends to every key. It is measured in
	// RoPE positions, so the view must give keys their original positions.
	// Only backends that implement WindowMasker honour it.
	Window int

	// Mass, when not nil, receives for every query head h and every key j of
	// [view ; chunk] the attention probability summed over the chunk's queries
	// with weights View.QueryWeights: Mass[h·(L+S)+j] = Σᵢ wᵢ·p(h,i,j), where L
	// is View.ViewLen. Its length is Hq·(L+S).
	Mass []float32
}

// AddNormer is implemented by backends that fuse a residual sum with the
// RMS norm after it: AddRMSNorm(dst, x, h, w, eps) does what Add(x, h)
// then RMSNorm(dst, x, w, eps) do, with the same results, in one pass; dst
// may be h. The model uses it where the backend has it.
type AddNormer interface {
	AddRMSNorm(dst, x, h, w Tensor, eps float32)
}

// SlotPooler is implemented by backends that address pooled storage: a
// cache storage [1, Cap, hd] (View.K and V, Scatter's dst) that every KV
// head's slots index, instead of [Hkv, Cap, hd] where head h's slot s is
// row s of head h. Heads may then hold different numbers of keys without
// the storage being padded to the largest; a head's shorter view row is
// padded with negative slots. A cache that needs a pool refuses a backend
// without it.
type SlotPooler interface {
	// PoolsSlots reports whether Attention and Scatter take pooled storage.
	PoolsSlots() bool
}

// HostTier is implemented by backends that can keep cache rows in host
// memory their kernels address directly, so that a cache may hold more
// rows than the device's memory (logsearch's device_tokens): every row is
// written through to the host tensors as it is stored, and the rows a
// chunk needs are copied to device storage before its attention. A cache
// whose policy needs the tier refuses a backend without it.
type HostTier interface {
	// NewHostTensor returns a zeroed tensor of dtype (or the nearest type
	// the backend stores) in host memory: page-locked and mapped into the
	// device's address space on a GPU. It is a storage tensor like New's
	// [Hkv, Cap, hd]: Scatter writes into it, CopyRows reads from it, Read
	// reads it; Free releases it.
	NewHostTensor(dtype DType, shape ...int) Tensor
	// CopyRows copies, for every KV head h of dst [Hkv, Cap₁, hd] and
	// every i < n = len(dstRows)/Hkv, row srcRows[h·n+i] of head h of src
	// [Hkv, Cap₂, hd] into row dstRows[h·n+i] of head h of dst; a negative
	// entry in either list skips the pair. Either tensor may be a host
	// tensor of NewHostTensor. The copy is queued in order with the
	// backend's other work (no host synchronisation); no two pairs of a
	// head may name one dst row.
	CopyRows(dst, src Tensor, dstRows, srcRows []int32)
}

// View is the part of one layer's cache that a chunk attends to: which
// stored keys, in which order, at which RoPE positions. (It was once called
// Context, a name it shared with context.Context.)
type View struct {
	// K and V are the cache storage [Hkv, Cap, hd] (nil when Cap is 0), or
	// a pool [1, Cap, hd] shared by every head (see SlotPooler).
	K, V Tensor
	// ViewLen is the number of cached keys each head attends to (L).
	ViewLen int
	// Slots [Hkv·L] are the storage slots of those keys, head by head, in
	// attention order; a negative slot is padding and gets no attention.
	Slots []int32
	// Pos [Hkv·L] are their RoPE positions.
	Pos []int32
	// QueryPos [Hkv] is the RoPE position of the chunk's first token for each
	// KV head (and the query heads of its group); token i gets QueryPos+i.
	QueryPos []int32
	// QueryWeights [S] weight the chunk's queries in Attention.Mass; nil
	// asks for no mass.
	QueryWeights []float32
	// MassMode selects how Attention.Mass is computed: MassExact (the zero
	// value), MassFlashReference, which only backends implementing
	// ReferenceMasser honour, or MassGroupMax, which only backends that
	// have the GroupMaxMass feature honour.
	MassMode MassMode
	// PerQueryHead, when true, gives every query head a row of its own:
	// Slots and Pos are then [Hq·L] and QueryPos [Hq], and query head q
	// reads its L keys from the storage of KV head q/(Hq/Hkv), whose
	// chunk keys it also attends to. Row q of Attention.Mass indexes
	// q's own view. Only backends that have the QueryHeadViews feature
	// honour it.
	PerQueryHead bool
	// Device, when not nil, is a view planned on the backend's device (see
	// DeviceView): Slots and Pos
	// are then empty, and the mass, when QueryWeights asks for it, goes
	// into the view instead of Attention.Mass, which must be nil.
	Device DeviceView
}

// WindowMasker is implemented by backends whose Attention honours
// Attention.Window. A model with a sliding window refuses to run past the
// window on a backend without it.
type WindowMasker interface {
	// MasksWindow reports whether Attention masks keys outside the window.
	MasksWindow() bool
}

// MassMode is how Attention.Mass is computed.
type MassMode int

const (
	// MassExact is Σᵢ wᵢ·p(h,i,j) with the final softmax probabilities,
	// as Attention.Mass describes; QueryWeights has S weights.
	MassExact MassMode = iota
	// MassFlashReference reproduces the score estimate of the official
	// cascading-cache flash kernel (jeffwillette/cascading_cache_2,
	// cascade/models/flash_attention.py), quirks included:
	//
	//   - the chunk's queries are padded with zero queries to a multiple of
	//     FlashBlockM, and the keys [view ; chunk] with zero keys to a
	//     multiple of FlashBlockM; ViewLen must itself be a multiple of
	//     FlashBlockM, or the kernel's causal mask would be misplaced. A
	//     padded query attends, with logit 0, to every view key that is not
	//     padding and to the chunk and padding keys up to its own index;
	//   - each query row scans the keys in blocks of FlashBlockN with a
	//     running maximum and a running softmax denominator l; after key
	//     block b of nb, a key of the block is credited
	//     exp(s − m) / (l·(1 + (nb−b−1)/(b+1)) + 1e−6), not its softmax
	//     probability, times the query's weight;
	//   - the credits of each query block of FlashBlockM rows are summed in
	//     float32, rounded to float16 and added to a float16 accumulator per
	//     key, query blocks in ascending order (the kernel's atomic adds run
	//     in an order the hardware chooses, so its sums can differ from this
	//     fixed order by float16 roundings).
	//
	// QueryWeights then has one weight per padded query row (S rounded up to
	// a multiple of FlashBlockM). Mass receives the float16 sums of the
	// L+S keys that are not padding, as float32 values.
	MassFlashReference
	// MassGroupMax takes, for every query of the chunk, the largest
	// probability the query heads of a GQA group give a key, and sums it
	// over the queries with weights View.QueryWeights:
	// Mass[h·(L+S)+j] = Σᵢ wᵢ·max over the heads g of h's group of p(g,i,j),
	// the same row for every query head h of a group (the official H2O's
	// score, cascade/models/h2o.py of jeffwillette/cascading_cache_2).
	MassGroupMax
)

// The official flash kernel's block sizes: FlashBlockM query rows per
// program, FlashBlockN keys per step of its scan.
const (
	FlashBlockM = 64
	FlashBlockN = 32
)

// ReferenceMasser is implemented by backends whose Attention computes
// MassFlashReference.
type ReferenceMasser interface {
	// ReferenceMass reports whether Attention honours MassFlashReference.
	ReferenceMass() bool
}

// Feature is an optional capability of a backend's Attention that some
// cache policies need.
type Feature string

// The optional attention features.
const (
	// FlashReferenceMass is View.MassMode = MassFlashReference.
	FlashReferenceMass Feature = "the official flash kernel's mass"
	// GroupMaxMass is View.MassMode = MassGroupMax.
	GroupMaxMass Feature = "the per-query group-max mass"
	// QueryHeadViews is View.PerQueryHead.
	QueryHeadViews Feature = "per-query-head views"
)

// Featured is implemented by backends that have optional attention
// features.
type Featured interface {
	// Has reports whether Attention honours f.
	Has(f Feature) bool
}

// Supports reports whether b has feature f.
func Supports(b Backend, f Feature) bool {
	if fb, ok := b.(Featured); ok {
		return fb.Has(f)
	}
	return false
}

// RoundF16 returns x rounded to the nearest IEEE binary16 value, ties to
// even, as a float32 (overflow gives ±Inf, NaN stays NaN): what storing a
// float32 into a float16 tensor does on a GPU.
func RoundF16(x float32) float32 {
	b := math.Float32bits(x)
	sign, a := b&0x80000000, b&^0x80000000
	switch {
	case a >= 0x7f800000: // Inf or NaN
		return x
	case a >= 0x477ff000: // from 65520 up: rounds past the largest half, 65504
		return math.Float32frombits(sign | 0x7f800000)
	case a >= 0x38800000: // a normal half (from 2⁻¹⁴): keep 10 of 23 mantissa bits
		a += 0xfff + (a>>13)&1
		return math.Float32frombits(sign | a&^0x1fff)
	default: // a subnormal half: multiples of 2⁻²⁴
		q := math.RoundToEven(float64(math.Float32frombits(a))*(1<<24)) / (1 << 24)
		return math.Float32frombits(sign | math.Float32bits(float32(q)))
	}
}
