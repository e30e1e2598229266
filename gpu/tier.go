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
	if len(d.shape) != 3 || len(s.shape) != 3 || d.shape[0] != s.shape[0] || d.shape[2] != s.shape[2] ||
		len(dstRows) != len(srcRows) || len(dstRows)%d.shape[0] != 0 {
		panic(fmt.Sprintf("gpu: CopyRows of %d rows from %v to %v", len(srcRows), s.shape, d.shape))
	}
	hkv, dcap, scap, hd := d.shape[0], d.shape[1], s.shape[1], d.shape[2]
	n := len(dstRows) / hkv
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	words := b.words(2 * len(dstRows))
	b.stamps.Start(dcap)
	for h := 0; h < hkv; h++ {
		b.stamps.Next()
		for i := 0; i < n; i++ {
			e := h*n + i
			dr, sr := dstRows[e], srcRows[e]
			if dr < 0 || sr < 0 {
				words[e], words[len(dstRows)+e] = 0xffffffff, 0xffffffff
				continue
			}
			if int(dr) >= dcap || int(sr) >= scap {
				panic(fmt.Sprintf("gpu: CopyRows of row %d of %v to row %d of %v", sr, s.shape, dr, d.shape))
			}
			if b.stamps.Take(dr) {
				panic(fmt.Sprintf("gpu: CopyRows names row %d of head %d twice", dr, h))
			}
			words[e], words[len(dstRows)+e] = uint32(dr), uint32(sr)
		}
	}
	p := b.upload(words)
	launch(b.k.copyRows[d.st][s.st], cuda.Dim3{X: n, Y: hkv, Z: 1}, threadsFor(hd, rowThreads), 0,
		cuda.Ptr(d.ptr()), cuda.Ptr(s.ptr()), cuda.Ptr(p), cuda.Ptr(p.Add(4*len(dstRows))),
		cuda.Int(n), cuda.Int(dcap), cuda.Int(scap), cuda.Int(hd))
}

var _ backend.HostTier = (*Backend)(nil)
