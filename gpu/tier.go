package gpu

import (
	"fmt"

	"kvcascade/gpu/cuda"
	"kvcascade/runtime/backend"
)

// NewHostTensor returns a zeroed tensor of dtype (F32 as float32, BF16 and
// F16 as bf16) in page-locked host memory mapped into the device's address
// space (cuMemHostAlloc with CU_MEMHOSTALLOC_PORTABLE |
// CU_MEMHOSTALLOC_DEVICEMAP), for backend.HostTier: the kernels (Scatter,
// CopyRows, CopySlots) read and write it through its device address across
// the bus, so it can hold more rows than the GPU's memory. Free releases
// it.
func (b *Backend) NewHostTensor(dtype backend.DType, shape ...int) backend.Tensor {
	if !backend.ValidShape(shape) {
		panic(fmt.Sprintf("gpu: negative dimension in shape %v", shape))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t := &Tensor{buf: &buffer{}, shape: append([]int(nil), shape...), st: storageOf(dtype)}
	if n := t.bytes(); n > 0 {
		host, p, err := b.dev.AllocMapped((n + 3) / 4 * 4)
		must(err)
		clear(host)
		t.buf.host, t.buf.ptr = host, p
	}
	return t
}

// CopyRows copies row srcRows[h·n+i] of head h of src [Hkv, Cap₂, hd] into
// row dstRows[h·n+i] of head h of dst [Hkv, Cap₁, hd] for every head h and
// i < n, in one kernel queued on the backend's stream without waiting
// (backend.HostTier); negative entries skip. Either tensor may be a host
// tensor of NewHostTensor.
func (b *Backend) CopyRows(dst, src backend.Tensor, dstRows, srcRows []int32) {
	d, s := tensor(dst), tensor(src)
	b.mu.Lock()
	defer b.mu.Unlock()
	words := b.words(2 * len(dstRows))
	n := b.stamps.CopyPairs("gpu", d.shape, s.shape, dstRows, srcRows, func(_, e int, skip bool) {
		if skip {
			words[e], words[len(dstRows)+e] = 0xffffffff, 0xffffffff
			return
		}
		words[e], words[len(dstRows)+e] = uint32(dstRows[e]), uint32(srcRows[e])
	})
	if n == 0 {
		return
	}
	hkv, dcap, scap, hd := d.shape[0], d.shape[1], s.shape[1], d.shape[2]
	p := b.upload(words)
	launch(b.k.copyRows[d.st][s.st], cuda.Dim3{X: n, Y: hkv, Z: 1}, threadsFor(hd, rowThreads), 0,
		cuda.Ptr(d.ptr()), cuda.Ptr(s.ptr()), cuda.Ptr(p), cuda.Ptr(p.Add(4*len(dstRows))),
		cuda.Int(n), cuda.Int(dcap), cuda.Int(scap), cuda.Int(hd))
}

var _ backend.HostTier = (*Backend)(nil)
