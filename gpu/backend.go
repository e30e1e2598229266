// Package gpu is the CUDA implementation of backend.Backend, so that
// runtime/model runs unchanged on an NVIDIA GPU.
//
// Nothing of CUDA is needed to build it: package gpu/cuda loads the driver
// (libcuda.so.1) and NVRTC with dlopen when New is called, and New returns
// an error on a machine without them. The kernels are CUDA C files embedded
// in the binary (kernels/), compiled by NVRTC for the device's architecture
// on first use and cached on disk.
//
// A Backend stores weights, activations and KV caches in one type, its
// DType: bfloat16 by default (New), or float32 (Options.DType). Every
// kernel loads its tensors whatever their storage type, computes in float32
// and rounds each result once to the type it stores. Logits are float32
// tensors (Backend.New honours F32 and BF16; F16 is stored as BF16). Matrix
// products of bf16 tensors go through cuBLASLt (float32 accumulation, the
// bias fused where it has the output's type), float32 products through
// cuBLAS (cublasSgemm, strict float32, no TF32); without them, or where
// cuBLASLt has no algorithm, through the embedded tiled kernel. In F32 mode
// the backend matches the CPU backend to float32 rounding; in BF16 mode to
// bf16 rounding of each stored result (2⁻⁸ relative).
//
// Attention rotates keys and queries by RoPE while loading them, at the
// positions the cache gives, and never stores the score matrix (online
// softmax); the attention mass per key, when asked for, is a second pass
// over the keys using each query's saved softmax max and denominator.
//
// backend.Backend has no error results, so a failing device call panics
// with the driver's message; Synchronize reports pending asynchronous
// failures as an error. A Backend is safe for concurrent use: its methods
// are serialised.
package gpu

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"kvcascade/gpu/cuda"
	"kvcascade/runtime/backend"
)

// Options tune NewWithOptions.
type Options struct {
	// DType is the type the backend stores weights, activations and KV
	// caches in (Backend.DType): backend.BF16, what New uses, or
	// backend.F32, the strict float32 path. F16 is stored as BF16. Being
	// backend.DType's zero value, F32 is also what Options{} asks for.
	DType backend.DType
	// NoCUBLAS uses the embedded GEMM kernel even where cuBLAS and
	// cuBLASLt load.
	NoCUBLAS bool
	// NoFlash runs every attention call through attention.cu's CUDA-core
	// kernels, also where the tensor-core kernels of flash.cu would take it
	// (bf16 storage, head dimension 64 or 128, at least 64 queries).
	NoFlash bool
	// NoWGMMA runs flash attention's forward and mass kernels on mma.sync
	// (flash_fwd, flash_mass) also on Hopper, where flash_fwd90 and
	// flash_mass90 would take them.
	NoWGMMA bool
	// NoDecode runs attention calls of few queries (decoding) through
	// attention.cu's CUDA-core kernels, also where the flash-decoding
	// kernels of decode.cu would take them (bf16 storage, head dimension
	// 64, 128 or 256, at most 16 queries).
	NoDecode bool
	// GEMV runs the products of one row of bf16 (decoding) through the
	// gemv_nt kernel of ops.cu instead of cuBLASLt. It is off until a GPU
	// has timed it against cuBLASLt (BenchmarkGEMV) and run the tests
	// under it; so far it has run on the CPU emulator only
	// (tools/opsemu).
	GEMV bool
	// KernelDir holds compiled kernels; "" is cuda.DefaultKernelDir(), "-"
	// disables the disk cache.
	KernelDir string
	// HostPolicies keeps every policy's bookkeeping on the host (the mass
	// of each chunk is read back, the views uploaded), as for a backend
	// without device-side policies; by default the cascade, h2o, snapkv,
	// full and truncated run on the device and sink, bigbird and
	// hip_bigbird plan their views there (NewCascade, NewTokenList,
	// NewPattern).
	HostPolicies bool
}

// Backend runs on one GPU. The zero value is not usable; call New.
type Backend struct {
	mu      sync.Mutex
	st      storage // Backend.DType
	drv     *cuda.Driver
	dev     *cuda.Device
	nvrtc   *cuda.NVRTC
	comp    *cuda.Compiler
	blas    *cuda.BLAS   // float32 products; nil: the gemm_nt kernel
	blasErr error        // why blas is nil
	lt      *cuda.BLASLt // bf16 products; nil: the gemm_nt kernel
	ltErr   error        // why lt is nil
	ltWork  cuda.DevicePtr
	modules []*cuda.Module
	k       opsKernels
	attn    map[attnKey]*attnKernels
	rope    map[ropeKey]*ropeTable

	args  scratch // per-call uploads too large for stage
	stage stage   // per-call uploads: ids, slots, positions, weights
	stats scratch // [2, Hq, S] softmax max and denominator
	mass  scratch // [Hq, L+S]
	part  scratch // split attention runs: [split, S, Hq, hd+2]
	// flashBuf holds flash.cu's gathered operands (flashLayout)
	flashBuf scratch

	scores scratch // decode.cu's saved scores for the mass: [Hq·S, L+S]
	tokens scratch // Argmax's indices
	picked []int32 // Argmax's indices on the host

	hostPolicies bool
	noFlash      bool
	noWGMMA      bool
	w90Tune      flashW90Tuning
	noDecode     bool
	gemv         bool
	decode       map[decodeKey]*decodeKernels // kernels/decode.cu by head dimension and DEC_HEADS, compiled on first use
	decodeTune   decodeTuning                 // decode.cu's defaults unless a benchmark varies them
	argmax       *sampleKernels               // kernels/sample.cu, compiled by Argmax on first use
	flash        map[int]*flashKernels        // kernels/flash.cu by head dimension, compiled on first use
	casc         *cascadeKernels              // kernels/cascade.cu, compiled by NewCascade on first use
	toks         *tokenKernels                // kernels/tokens.cu, compiled by NewTokenList on first use
	pat          *patternKernels              // kernels/pattern.cu, compiled by NewPattern on first use

	host []uint32 // packing space for uploads
	half []uint16 // conversion space for bf16 uploads and downloads
	// stamps finds a row named twice in a head (Scatter, CopyRows)
	stamps backend.RowStamps

	fillNormal [numStorage]*cuda.Function // kernels/random.cu, compiled by RandomNormal on first use
}

// ltWorkspace is the device memory cuBLASLt may use per product.
const ltWorkspace = 32 << 20

// convertChunk is how many elements FromFloat32 and Read convert between
// float32 and bf16 on the host per copy, bounding the host buffer.
const convertChunk = 1 << 22

// New opens GPU device (0 for the first) storing tensors as bf16, with
// the other options at their defaults.
func New(device int) (*Backend, error) { return NewWithOptions(device, Options{DType: backend.BF16}) }

// NewWithOptions opens GPU device, loads NVRTC and (unless opt.NoCUBLAS)
// cuBLAS and cuBLASLt, and compiles the elementwise kernels. A missing
// cuBLAS or cuBLASLt is no error: the products fall back to the embedded
// kernel (Info says why). Errors wrap cuda.ErrNoDriver or cuda.ErrNoDevice
// on machines without a GPU, and cuda.ErrNoNVRTC where the driver is there
// and NVRTC is not.
func NewWithOptions(device int, opt Options) (_ *Backend, err error) {
	b := &Backend{st: storageOf(opt.DType), attn: map[attnKey]*attnKernels{}, rope: map[ropeKey]*ropeTable{}, hostPolicies: opt.HostPolicies, noFlash: opt.NoFlash, noWGMMA: opt.NoWGMMA, noDecode: opt.NoDecode, gemv: opt.GEMV}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if b.drv, err = cuda.OpenDriver(); err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	if b.dev, err = b.drv.Open(device); err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	if b.nvrtc, err = cuda.OpenNVRTC(); err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	dir := opt.KernelDir
	switch dir {
	case "":
		dir = cuda.DefaultKernelDir()
	case "-":
		dir = ""
	}
	b.comp = cuda.NewCompiler(b.nvrtc, b.dev.Major, b.dev.Minor, dir)
	if err = b.loadOps(); err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	b.stage = newStage(b.dev)
	if opt.NoCUBLAS {
		b.blasErr = errors.New("disabled by Options.NoCUBLAS")
		b.ltErr = b.blasErr
		return b, nil
	}
	if b.blas, b.blasErr = cuda.OpenCUBLAS(b.dev); b.blasErr != nil {
		b.blas = nil
	}
	if b.ltWork, err = b.dev.Alloc(ltWorkspace); err != nil {
		return nil, fmt.Errorf("gpu: cuBLASLt workspace: %w", err)
	}
	if b.lt, b.ltErr = cuda.OpenCUBLASLt(b.dev, b.ltWork, ltWorkspace); b.ltErr != nil {
		b.lt = nil
	}
	return b, nil
}

// Close releases everything the backend holds on the device. Tensors must
// not be used afterwards.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	if b.dev != nil {
		errs = append(errs, b.dev.Synchronize())
		for _, t := range b.rope {
			errs = append(errs, b.dev.Free(t.buf), b.dev.Free(t.inv))
		}
		errs = append(errs, b.stage.release(b.dev))
		for _, s := range []*scratch{&b.args, &b.stats, &b.mass, &b.part, &b.flashBuf, &b.scores, &b.tokens} {
			errs = append(errs, s.release(b.dev))
		}
		for _, m := range b.modules {
			errs = append(errs, m.Unload())
		}
		if b.blas != nil {
			errs = append(errs, b.blas.Close())
		}
		if b.lt != nil {
			errs = append(errs, b.lt.Close())
		}
		if b.ltWork != 0 {
			errs = append(errs, b.dev.Free(b.ltWork))
		}
		errs = append(errs, b.dev.Close())
	}
	if b.nvrtc != nil {
		b.nvrtc.Close()
	}
	if b.drv != nil {
		b.drv.Close()
	}
	b.rope, b.attn, b.modules, b.blas, b.lt, b.ltWork, b.dev, b.nvrtc, b.drv = nil, nil, nil, nil, nil, 0, nil, nil, nil
	return errors.Join(errs...)
}

// DType returns the type the backend stores weights, activations and KV
// caches in: BF16 or F32 (Options.DType).
func (b *Backend) DType() backend.DType { return b.st.dtype() }

// Name returns "cuda".
func (b *Backend) Name() string { return "cuda" }

// Info describes the device and the libraries in use, for logs.
func (b *Backend) Info() string {
	d := b.dev
	gemm := fmt.Sprintf("float32 gemm_nt kernel (no cuBLAS: %v)", b.blasErr)
	if b.blas != nil {
		gemm = fmt.Sprintf("float32 cuBLAS %d (%s)", b.blas.Version, b.blas.Path)
	}
	if b.lt != nil {
		gemm += fmt.Sprintf(", bf16 cuBLASLt %d (%s)", b.lt.Version, b.lt.Path)
	} else {
		gemm += fmt.Sprintf(", bf16 gemm_nt kernel (no cuBLASLt: %v)", b.ltErr)
	}
	cache := b.comp.KernelDir
	if cache == "" {
		cache = "off"
	}
	return fmt.Sprintf("%s (%s, %d SMs, %.1f GiB), driver CUDA %d.%d, NVRTC %s (%s), storage %s, GEMM %s, kernel cache %s",
		d.Name, d.Arch(), d.Multiprocessors, float64(d.TotalMem)/(1<<30),
		b.drv.Version/1000, b.drv.Version%1000/10, b.nvrtc.Version(), b.nvrtc.Path, b.DType(), gemm, cache)
}

// CUBLAS reports whether float32 matrix products go through cuBLAS.
func (b *Backend) CUBLAS() bool { return b.blas != nil }

// CUBLASLt reports whether bf16 matrix products go through cuBLASLt
// (where it has an algorithm for them).
func (b *Backend) CUBLASLt() bool { return b.lt != nil }

// Synchronize waits for all queued work and returns the first failure of
// it, if any.
func (b *Backend) Synchronize() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dev.Synchronize()
}

// must panics on a device failure: backend.Backend has no error results,
// and a device that failed a call is in no state to go on.
func must(err error) {
	if err != nil {
		panic("gpu: " + err.Error())
	}
}

// Tensor is a tensor in device memory, stored as float32 or bf16.
type Tensor struct {
	buf   *buffer
	off   int // bytes into buf
	shape []int
	st    storage
	view  bool // made by Slice or Reshape: shares buf, cannot be freed
}

// buffer is one device allocation, shared by a tensor and its slices.
type buffer struct {
	ptr   cuda.DevicePtr // 0 for an empty tensor
	freed bool
	// host is the allocation of a host tensor (NewHostTensor): page-locked
	// host memory mapped at ptr in the device's address space
	host []byte
}

// Shape returns the dimensions.
func (t *Tensor) Shape() []int { return t.shape }

// DType returns the element type: F32 or BF16.
func (t *Tensor) DType() backend.DType { return t.st.dtype() }

func (t *Tensor) numel() int { return backend.Numel(t.shape) }

// ptr is the device address of the first element.
func (t *Tensor) ptr() cuda.DevicePtr {
	if t.buf.freed {
		panic("gpu: use of a freed tensor")
	}
	return t.buf.ptr.Add(t.off)
}

func tensor(t backend.Tensor) *Tensor {
	g, ok := t.(*Tensor)
	if !ok {
		panic(fmt.Sprintf("gpu: tensor of another backend (%T)", t))
	}
	return g
}

// bytes returns the size of t's elements in device memory.
func (t *Tensor) bytes() int { return t.numel() * t.st.size() }

// alloc returns an uninitialised tensor. The allocation is rounded up to
// whole 32-bit words, so that New can clear it with Memset32.
func (b *Backend) alloc(st storage, shape []int) *Tensor {
	if !backend.ValidShape(shape) {
		panic(fmt.Sprintf("gpu: negative dimension in shape %v", shape))
	}
	t := &Tensor{buf: &buffer{}, shape: append([]int(nil), shape...), st: st}
	if n := t.bytes(); n > 0 {
		p, err := b.dev.Alloc((n + 3) / 4 * 4)
		must(err)
		t.buf.ptr = p
	}
	return t
}

// New returns a zeroed tensor of dtype: F32 is stored as float32, BF16 and
// F16 as bf16, whatever the backend's DType.
func (b *Backend) New(dtype backend.DType, shape ...int) backend.Tensor {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.alloc(storageOf(dtype), shape)
	must(b.dev.Memset32(t.ptr(), 0, (t.bytes()+3)/4))
	return t
}

// FromFloat32 uploads data into a new tensor of the backend's DType; for
// bf16 each value is rounded to the nearest, ties to even, on the host.
func (b *Backend) FromFloat32(data []float32, shape ...int) backend.Tensor {
	if len(data) != backend.Numel(shape) {
		panic(fmt.Sprintf("gpu: %d elements for shape %v", len(data), shape))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.alloc(b.st, shape)
	if t.st == stF32 {
		must(cuda.Upload(b.dev, t.ptr(), data))
		return t
	}
	for lo := 0; lo < len(data); lo += convertChunk {
		part := data[lo:min(lo+convertChunk, len(data))]
		h := b.halves(len(part))
		for i, v := range part {
			h[i] = toBF16(v)
		}
		must(cuda.Upload(b.dev, t.ptr().Add(2*lo), h))
	}
	return t
}

// Read copies t to dst as float32 after all queued work has finished; bf16
// elements are widened on the host (exactly).
func (b *Backend) Read(t backend.Tensor, dst []float32) {
	g := tensor(t)
	n := g.numel()
	if len(dst) < n {
		panic(fmt.Sprintf("gpu: Read of %v into %d elements", g.shape, len(dst)))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if g.st == stF32 {
		must(cuda.Download(b.dev, dst[:n], g.ptr()))
		return
	}
	for lo := 0; lo < n; lo += convertChunk {
		part := dst[lo:min(lo+convertChunk, n)]
		h := b.halves(len(part))
		must(cuda.Download(b.dev, h, g.ptr().Add(2*lo)))
		for i, v := range h {
			part[i] = fromBF16(v)
		}
	}
}

// halves returns the host conversion buffer with length n.
func (b *Backend) halves(n int) []uint16 {
	if cap(b.half) < n {
		b.half = make([]uint16, n)
	}
	return b.half[:n]
}

// Free releases t's device memory once queued work is done with it.
// Freeing a slice or a reshape is a bug: free the tensor it was made from.
func (b *Backend) Free(t backend.Tensor) {
	g := tensor(t)
	if g.view {
		panic("gpu: Free of a slice or a reshape")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if g.buf.freed {
		panic("gpu: tensor freed twice")
	}
	g.buf.freed = true
	if g.buf.host != nil {
		must(b.dev.Synchronize())
		must(b.dev.FreeHost(g.buf.host))
		g.buf.host = nil
		return
	}
	if g.buf.ptr != 0 {
		// Work queued on the tensor must finish before the memory can be
		// handed out again.
		must(b.dev.Synchronize())
		must(b.dev.Free(g.buf.ptr))
	}
}

// Slice returns a view of rows [lo, hi) of the outermost dimension.
func (b *Backend) Slice(t backend.Tensor, lo, hi int) backend.Tensor {
	g := tensor(t)
	if len(g.shape) == 0 || lo < 0 || hi < lo || hi > g.shape[0] {
		panic(fmt.Sprintf("gpu: Slice [%d, %d) of shape %v", lo, hi, g.shape))
	}
	row := backend.Numel(g.shape[1:])
	shape := append([]int{hi - lo}, g.shape[1:]...)
	return &Tensor{buf: g.buf, off: g.off + g.st.size()*lo*row, shape: shape, st: g.st, view: true}
}

// Reshape returns a view of t's elements under shape, which must have as
// many elements; like a slice, it cannot be freed.
func (b *Backend) Reshape(t backend.Tensor, shape ...int) backend.Tensor {
	g := tensor(t)
	if !backend.ValidShape(shape) {
		panic(fmt.Sprintf("gpu: Reshape of %v to %v", g.shape, shape))
	}
	if backend.Numel(shape) != g.numel() {
		panic(fmt.Sprintf("gpu: Reshape of %v to %v: %d elements for %d", g.shape, shape, backend.Numel(shape), g.numel()))
	}
	return &Tensor{buf: g.buf, off: g.off, shape: append([]int(nil), shape...), st: g.st, view: true}
}

// scratch is a device buffer reused between calls, grown on demand.
type scratch struct {
	ptr   cuda.DevicePtr
	bytes int
}

// ensure makes s hold at least bytes and returns its address. Work queued
// on the old buffer finishes before it is freed; reuse without growth is
// safe because all work runs in stream order.
func (s *scratch) ensure(dev *cuda.Device, bytes int) cuda.DevicePtr {
	if bytes <= s.bytes {
		return s.ptr
	}
	must(s.release(dev))
	n := max(bytes, 2*s.bytes, 4096)
	p, err := dev.Alloc(n)
	must(err)
	s.ptr, s.bytes = p, n
	return p
}

func (s *scratch) release(dev *cuda.Device) error {
	if s.ptr == 0 {
		return nil
	}
	err := errors.Join(dev.Synchronize(), dev.Free(s.ptr))
	s.ptr, s.bytes = 0, 0
	return err
}

// upload copies words to the device for the kernels queued next and
// returns their address, valid in stream order until the next upload's
// kernels run. Through the staging ring (see stage) the copy is queued
// without waiting for the device; a pageable copy (cuMemcpyHtoD), which
// first waits for all queued work, is left for uploads too large for the
// ring or a device without page-locked memory. Words that repeat the
// ring's last upload (the query positions and weights every layer of a
// decoding step uploads alike) are not copied again: its address serves.
func (b *Backend) upload(words []uint32) cuda.DevicePtr {
	n := 4 * len(words)
	if r := &b.stage; r.host != nil && n > 0 && n <= len(r.host)/4 {
		src := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)
		off, fresh, wrap := r.place(src)
		if wrap {
			// every earlier copy and the kernels reading it are done
			must(b.dev.Synchronize())
		}
		p := r.dev.Add(off)
		if fresh {
			must(cuda.UploadAsync(b.dev, p, r.host[off:off+n]))
		}
		return p
	}
	p := b.args.ensure(b.dev, n)
	must(cuda.Upload(b.dev, p, words))
	return p
}

// stage is a ring of page-locked host memory mirrored by device memory of
// the same size: each upload takes the next part of both and queues an
// asynchronous copy, so that a decoding step's small uploads (token ids,
// query positions, scatter slots) never wait for the device. A part is
// reused only after the ring wraps, which synchronises the device first.
type stage struct {
	host []byte
	dev  cuda.DevicePtr
	off  int // bytes of the ring in use since it last wrapped
	// the last upload's part of the ring, [last, last+lastN); lastN 0 for
	// none
	last, lastN int
}

// place finds src (at most a quarter of the ring) its part of the ring
// and returns its offset: the last upload's when src repeats it (fresh
// false: nothing to copy, the part holds src and its copy is queued
// already); else the next aligned part, with src copied into the host
// side (fresh true), wrap telling that the ring starts over at 0 and the
// device must first be done with every part.
func (r *stage) place(src []byte) (off int, fresh, wrap bool) {
	n := len(src)
	if r.lastN == n && bytes.Equal(r.host[r.last:r.last+n], src) {
		return r.last, false, false
	}
	off = (r.off + stageAlign - 1) &^ (stageAlign - 1)
	if off+n > len(r.host) {
		off, wrap = 0, true
	}
	copy(r.host[off:off+n], src)
	r.off, r.last, r.lastN = off+n, off, n
	return off, true, wrap
}

// Sizes of the staging ring: its bytes, and the alignment of each upload.
const (
	stageBytes = 64 << 20
	stageAlign = 256
)

// newStage allocates the staging ring, or returns a zero one (uploads then
// copy from pageable memory) where page-locked memory is not to be had.
func newStage(dev *cuda.Device) stage {
	host, err := dev.AllocHost(stageBytes)
	if err != nil {
		return stage{}
	}
	p, err := dev.Alloc(stageBytes)
	if err != nil {
		dev.FreeHost(host)
		return stage{}
	}
	return stage{host: host, dev: p}
}

func (s *stage) release(dev *cuda.Device) error {
	if s.host == nil {
		return nil
	}
	err := errors.Join(dev.Synchronize(), dev.FreeHost(s.host), dev.Free(s.dev))
	*s = stage{}
	return err
}

// elementGrid is the grid of a grid-stride kernel over n elements.
func (b *Backend) elementGrid(n int) cuda.Dim3 {
	blocks := min((n+elemThreads-1)/elemThreads, b.dev.Multiprocessors*blocksPerSM)
	return cuda.Dim3{X: blocks}
}

func launch(f *cuda.Function, grid, block cuda.Dim3, shared int, args ...cuda.Arg) {
	must(f.Launch(grid, block, shared, args...))
}

// threadsFor rounds n up to whole warps, between 32 and limit.
func threadsFor(n, limit int) cuda.Dim3 {
	t := min(max((n+31)/32*32, 32), limit)
	return cuda.Dim3{X: t}
}

func f32bits(v float32) uint32 { return math.Float32bits(v) }

// errUnsupported is what a device.Cascader returns for a policy it leaves
// on the host.
var errUnsupported = errors.ErrUnsupported

var _ backend.Backend = (*Backend)(nil)
