// Package cpu is the CPU implementation of backend.Backend: float32 tensors
// in Go memory, matrix products and attention through register-blocked
// kernels (AVX2/FMA assembly on amd64 CPUs that have it, plain Go elsewhere
// or with the purego build tag), and every operation spread over all cores.
package cpu

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"kvcascade/runtime/backend"
)

// Tensor is a dense float32 tensor in host memory.
type Tensor struct {
	shape []int
	data  []float32
}

// Shape returns the dimensions.
func (t *Tensor) Shape() []int { return t.shape }

// DType is always F32 on the CPU.
func (t *Tensor) DType() backend.DType { return backend.F32 }

// Data exposes the elements; callers outside tests should use Backend.Read.
func (t *Tensor) Data() []float32 { return t.data }

// Backend runs on the host. The zero value is not usable; call New.
type Backend struct {
	workers int
	kern    kernels // the products' implementation

	mu      sync.Mutex
	rope    map[ropeKey]*ropeTable // cos/sin tables by frequency set
	stamps  backend.RowStamps      // CopyRows' rows named twice; under mu
	scratch sync.Pool              // *attnScratch

	startPool sync.Once
	tasks     chan poolTask // ranges for the worker goroutines
	waits     sync.Pool     // *sync.WaitGroup
	matmuls   sync.Pool     // *matmulJob
	swiglus   sync.Pool     // *swigluJob
}

type ropeKey struct {
	first  *float32
	n      int
	factor float32
}

// ropeTable holds cos and sin of position·invFreq for positions [0, n).
type ropeTable struct {
	half     int
	cos, sin []float32 // [n, half]
}

// New returns a CPU backend using up to workers goroutines (all cores when
// workers ≤ 0).
func New(workers int) *Backend {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	b := &Backend{workers: workers, kern: kernels{simd: hasAVX2FMA()}, rope: map[ropeKey]*ropeTable{}}
	b.scratch.New = func() any { return new(attnScratch) }
	b.waits.New = func() any { return new(sync.WaitGroup) }
	b.matmuls.New = func() any { return new(matmulJob) }
	b.swiglus.New = func() any { return new(swigluJob) }
	return b
}

// Name returns "cpu".
func (b *Backend) Name() string { return "cpu" }

// DType returns F32: the CPU backend stores every tensor as float32.
func (b *Backend) DType() backend.DType { return backend.F32 }

func tensor(t backend.Tensor) *Tensor {
	c, ok := t.(*Tensor)
	if !ok {
		panic(fmt.Sprintf("cpu: tensor of another backend (%T)", t))
	}
	return c
}

// New returns a zeroed float32 tensor whatever dtype is asked for.
func (b *Backend) New(_ backend.DType, shape ...int) backend.Tensor {
	return &Tensor{shape: append([]int(nil), shape...), data: make([]float32, backend.Numel(shape))}
}

// FromFloat32 copies data into a new tensor.
func (b *Backend) FromFloat32(data []float32, shape ...int) backend.Tensor {
	if len(data) != backend.Numel(shape) {
		panic(fmt.Sprintf("cpu: %d elements for shape %v", len(data), shape))
	}
	return &Tensor{shape: append([]int(nil), shape...), data: append([]float32(nil), data...)}
}

// Wrap makes a tensor that uses data without copying.
func Wrap(data []float32, shape ...int) *Tensor {
	if len(data) != backend.Numel(shape) {
		panic(fmt.Sprintf("cpu: %d elements for shape %v", len(data), shape))
	}
	return &Tensor{shape: shape, data: data}
}

// Read copies t into dst.
func (b *Backend) Read(t backend.Tensor, dst []float32) { copy(dst, tensor(t).data) }

// Free drops the reference; the garbage collector does the rest.
func (b *Backend) Free(t backend.Tensor) { tensor(t).data = nil }

// Slice returns rows [lo, hi) of the outermost dimension, sharing storage.
func (b *Backend) Slice(t backend.Tensor, lo, hi int) backend.Tensor {
	c := tensor(t)
	row := backend.Numel(c.shape[1:])
	shape := append([]int{hi - lo}, c.shape[1:]...)
	return &Tensor{shape: shape, data: c.data[lo*row : hi*row]}
}

// Reshape returns t's elements under shape, sharing storage.
func (b *Backend) Reshape(t backend.Tensor, shape ...int) backend.Tensor {
	c := tensor(t)
	if !backend.ValidShape(shape) || backend.Numel(shape) != len(c.data) {
		panic(fmt.Sprintf("cpu: Reshape of %v to %v", c.shape, shape))
	}
	return &Tensor{shape: append([]int(nil), shape...), data: c.data}
}

// rangeJob is work split into index ranges; worker numbers the part
// (0 ≤ worker < the pool's size) for per-worker scratch space.
type rangeJob interface {
	run(worker, lo, hi int)
}

// poolTask is one range of a job, handed to a pool worker.
type poolTask struct {
	job            rangeJob
	worker, lo, hi int
	done           *sync.WaitGroup
}

// split runs job over [0, n) in up to b.workers contiguous ranges: the
// caller takes the first, the pool's goroutines the others. Jobs and wait
// groups come from pools, so a call allocates nothing once warm. Jobs must
// not call split themselves.
func (b *Backend) split(n int, job rangeJob) {
	w := min(b.workers, n)
	if w <= 1 {
		job.run(0, 0, n)
		return
	}
	b.startPool.Do(func() {
		b.tasks = make(chan poolTask, b.workers)
		for i := 1; i < b.workers; i++ {
			go func() {
				for t := range b.tasks {
					t.job.run(t.worker, t.lo, t.hi)
					t.done.Done()
				}
			}()
		}
	})
	wg := b.waits.Get().(*sync.WaitGroup)
	wg.Add(w - 1)
	for i := 1; i < w; i++ {
		b.tasks <- poolTask{job: job, worker: i, lo: i * n / w, hi: (i + 1) * n / w, done: wg}
	}
	job.run(0, 0, n/w)
	wg.Wait()
	b.waits.Put(wg)
}

// matmulJob is dst = x·wᵀ split by blocks of four output columns (rows of
// w), so that each worker reads its own part of the weights.
type matmulJob struct {
	kern      kernels
	dst, x, w []float32
	s, n, k   int
}

func (j *matmulJob) run(_, lo, hi int) {
	j.kern.matmulNT(j.dst, j.x, j.w, j.s, j.n, j.k, lo*4, min(hi*4, j.n))
}

// swigluJob computes dst = silu(gate)·up over a range of elements.
type swigluJob struct {
	kern          kernels
	dst, gate, up []float32
}

func (j *swigluJob) run(_, lo, hi int) { j.kern.swiglu(j.dst[lo:hi], j.gate[lo:hi], j.up[lo:hi]) }

// Embed gathers rows of table into dst.
func (b *Backend) Embed(dst, table backend.Tensor, ids []int32) {
	d, t := tensor(dst), tensor(table)
	dim := t.shape[1]
	for i, id := range ids {
		copy(d.data[i*dim:(i+1)*dim], t.data[int(id)*dim:(int(id)+1)*dim])
	}
}

// RMSNorm normalises each row of x by its root mean square and scales by w.
func (b *Backend) RMSNorm(dst, x, w backend.Tensor, eps float32) {
	d, xs, ws := tensor(dst), tensor(x), tensor(w).data
	dim := len(ws)
	rows := len(xs.data) / dim
	for r := 0; r < rows; r++ {
		in := xs.data[r*dim : (r+1)*dim]
		out := d.data[r*dim : (r+1)*dim]
		var ss float32
		for _, v := range in {
			ss += v * v
		}
		inv := float32(1 / math.Sqrt(float64(ss/float32(dim)+eps)))
		for i, v := range in {
			out[i] = ws[i] * (v * inv)
		}
	}
}

// MatMul sets dst = x·wᵀ (+ bias).
func (b *Backend) MatMul(dst, x, w, bias backend.Tensor) {
	d, xs, ws := tensor(dst), tensor(x), tensor(w)
	n, k := ws.shape[0], ws.shape[1]
	s := len(xs.data) / k
	// Split the output columns (rows of w) over the cores in blocks of 4.
	j := b.matmuls.Get().(*matmulJob)
	*j = matmulJob{kern: b.kern, dst: d.data, x: xs.data, w: ws.data, s: s, n: n, k: k}
	b.split((n+3)/4, j)
	*j = matmulJob{}
	b.matmuls.Put(j)
	if bias != nil {
		bs := tensor(bias).data
		for r := 0; r < s; r++ {
			row := d.data[r*n : (r+1)*n]
			for j := range row {
				row[j] += bs[j]
			}
		}
	}
}

// SwiGLU sets dst = silu(gate)·up.
func (b *Backend) SwiGLU(dst, gate, up backend.Tensor) {
	j := b.swiglus.Get().(*swigluJob)
	*j = swigluJob{kern: b.kern, dst: tensor(dst).data, gate: tensor(gate).data, up: tensor(up).data}
	b.split(len(j.dst), j)
	*j = swigluJob{}
	b.swiglus.Put(j)
}

// Add sets dst += x.
func (b *Backend) Add(dst, x backend.Tensor) {
	d, xs := tensor(dst).data, tensor(x).data
	for i, v := range xs {
		d[i] += v
	}
}

// Scatter writes chunk rows into cache slots, of each head's storage or of
// a pool [1, Cap, hd] all heads share.
func (b *Backend) Scatter(dst, src backend.Tensor, slots []int32) {
	d, s := tensor(dst), tensor(src)
	hd := d.shape[2]
	n := s.shape[0]
	hkv := len(s.data) / (n * hd)
	stride := headStride(d.shape, hkv)
	for h := 0; h < hkv; h++ {
		for i := 0; i < n; i++ {
			slot := slots[h*n+i]
			if slot < 0 {
				continue
			}
			at := h*stride + int(slot)
			copy(d.data[at*hd:(at+1)*hd], s.data[(i*hkv+h)*hd:(i*hkv+h+1)*hd])
		}
	}
}

// headStride returns the rows between one KV head's slot 0 and the next's
// in storage of shape [Hkv or 1, Cap, hd]: Cap, or 0 for a pool that every
// one of hkv > 1 heads shares.
func headStride(shape []int, hkv int) int {
	if shape[0] == 1 && hkv > 1 {
		return 0
	}
	return shape[1]
}

// PoolsSlots reports that Attention and Scatter take pooled storage
// [1, Cap, hd] shared by every KV head.
func (b *Backend) PoolsSlots() bool { return true }

var _ backend.SlotPooler = (*Backend)(nil)

// CopySlots copies the first n slots of every head from src to dst.
func (b *Backend) CopySlots(dst, src backend.Tensor, n int) {
	d, s := tensor(dst), tensor(src)
	hkv, hd := d.shape[0], d.shape[2]
	for h := 0; h < hkv; h++ {
		copy(d.data[h*d.shape[1]*hd:(h*d.shape[1]+n)*hd], s.data[h*s.shape[1]*hd:(h*s.shape[1]+n)*hd])
	}
}

// NewHostTensor returns a zeroed float32 tensor (backend.HostTier): on
// the CPU every tensor is in host memory.
func (b *Backend) NewHostTensor(dtype backend.DType, shape ...int) backend.Tensor {
	return b.New(dtype, shape...)
}

// CopyRows copies row srcRows[h·n+i] of head h of src into row
// dstRows[h·n+i] of head h of dst (backend.HostTier); negative entries
// skip.
func (b *Backend) CopyRows(dst, src backend.Tensor, dstRows, srcRows []int32) {
	d, s := tensor(dst), tensor(src)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stamps.CopyPairs("cpu", d.shape, s.shape, dstRows, srcRows, func(h, e int, skip bool) {
		if skip {
			return
		}
		hd := d.shape[2]
		at, from := h*d.shape[1]+int(dstRows[e]), h*s.shape[1]+int(srcRows[e])
		copy(d.data[at*hd:(at+1)*hd], s.data[from*hd:(from+1)*hd])
	})
}

var _ backend.HostTier = (*Backend)(nil)

// table returns a RoPE table covering positions [0, n).
func (b *Backend) table(invFreq []float32, factor float32, n int) *ropeTable {
	key := ropeKey{&invFreq[0], len(invFreq), factor}
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.rope[key]
	if t != nil && len(t.cos) >= n*t.half {
		return t
	}
	size := max(n, 2*cap64(t), 1024)
	half := len(invFreq)
	nt := &ropeTable{half: half, cos: make([]float32, size*half), sin: make([]float32, size*half)}
	for p := 0; p < size; p++ {
		for i, f := range invFreq {
			// As the reference computes it: the angle rounded to float32.
			a := float64(float32(p) * f)
			nt.cos[p*half+i] = float32(math.Cos(a)) * factor
			nt.sin[p*half+i] = float32(math.Sin(a)) * factor
		}
	}
	b.rope[key] = nt
	return nt
}

func cap64(t *ropeTable) int {
	if t == nil {
		return 0
	}
	return len(t.cos) / t.half
}

// rotate writes x rotated to position pos into dst (rotate-half layout).
func (t *ropeTable) rotate(dst, x []float32, pos int) {
	h := t.half
	c, s := t.cos[pos*h:(pos+1)*h], t.sin[pos*h:(pos+1)*h]
	for i := 0; i < h; i++ {
		x1, x2 := x[i], x[i+h]
		dst[i] = x1*c[i] - x2*s[i]
		dst[i+h] = x2*c[i] + x1*s[i]
	}
}

// MasksWindow reports that Attention honours Attention.Window.
func (b *Backend) MasksWindow() bool { return true }

var _ backend.WindowMasker = (*Backend)(nil)

// rotateInto writes x rotated to position pos into dst[0], dst[stride],
// dst[2·stride], ...: a column of a transposed matrix.
func (t *ropeTable) rotateInto(dst []float32, stride int, x []float32, pos int) {
	h := t.half
	c, s := t.cos[pos*h:(pos+1)*h], t.sin[pos*h:(pos+1)*h]
	for i := 0; i < h; i++ {
		x1, x2 := x[i], x[i+h]
		dst[i*stride] = x1*c[i] - x2*s[i]
		dst[(i+h)*stride] = x2*c[i] + x1*s[i]
	}
}
