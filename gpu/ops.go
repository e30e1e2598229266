package gpu

import (
	"fmt"

	"kvcascade/gpu/cuda"
	"kvcascade/runtime/backend"
)

// Embed gathers rows of table [V, D] into dst [S, D].
func (b *Backend) Embed(dst, table backend.Tensor, ids []int32) {
	d, t := tensor(dst), tensor(table)
	vocab, dim := t.shape[0], t.shape[1]
	if d.numel() != len(ids)*dim {
		panic(fmt.Sprintf("gpu: Embed of %d ids into %v", len(ids), d.shape))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	words := b.words(len(ids))
	for i, id := range ids {
		if id < 0 || int(id) >= vocab {
			panic(fmt.Sprintf("gpu: Embed: id %d outside table of %d rows", id, vocab))
		}
		words[i] = uint32(id)
	}
	p := b.upload(words)
	launch(b.k.embed[d.st][t.st], cuda.Dim3{X: len(ids)}, threadsFor(dim, rowThreads), 0,
		cuda.Ptr(d.ptr()), cuda.Ptr(t.ptr()), cuda.Ptr(p), cuda.Int(dim))
}

// normThreads is the block size of rmsnorm for rows of dim elements:
// about four elements per thread, so that a decoding step's single row
// (one block) is not a chain of dependent loads; rowThreads at least, a
// whole block at most.
func normThreads(dim int) int {
	return min(1024, max(rowThreads, (dim/4+31)/32*32))
}

// RMSNorm sets dst [S, D] to x·w/rms(x) row by row, in float32 whatever
// the tensors' types.
func (b *Backend) RMSNorm(dst, x, w backend.Tensor, eps float32) {
	d, xs, ws := tensor(dst), tensor(x), tensor(w)
	dim := ws.numel()
	if dim == 0 || xs.numel()%dim != 0 || d.numel() != xs.numel() {
		panic(fmt.Sprintf("gpu: RMSNorm of %v by %v into %v", xs.shape, ws.shape, d.shape))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	launch(b.k.rmsnorm[d.st][xs.st][ws.st], cuda.Dim3{X: xs.numel() / dim}, cuda.Dim3{X: normThreads(dim)}, 0,
		cuda.Ptr(d.ptr()), cuda.Ptr(xs.ptr()), cuda.Ptr(ws.ptr()), cuda.Int(dim), cuda.Float(eps))
}

// AddRMSNorm adds h to x and sets dst to the RMS norm of the sum times w
// (backend.AddNormer): Add(x, h) then RMSNorm(dst, x, w, eps) in one
// kernel, with the same results. dst may be h.
func (b *Backend) AddRMSNorm(dst, x, h, w backend.Tensor, eps float32) {
	d, xs, hs, ws := tensor(dst), tensor(x), tensor(h), tensor(w)
	dim := ws.numel()
	if dim == 0 || xs.numel()%dim != 0 || d.numel() != xs.numel() || hs.numel() != xs.numel() || hs.st != xs.st {
		panic(fmt.Sprintf("gpu: AddRMSNorm of %v + %v (%v, %v) by %v into %v", xs.shape, hs.shape, xs.DType(), hs.DType(), ws.shape, d.shape))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	launch(b.k.addRMSNorm[d.st][xs.st][ws.st], cuda.Dim3{X: xs.numel() / dim}, cuda.Dim3{X: normThreads(dim)}, 0,
		cuda.Ptr(d.ptr()), cuda.Ptr(xs.ptr()), cuda.Ptr(hs.ptr()), cuda.Ptr(ws.ptr()), cuda.Int(dim), cuda.Float(eps))
}

// MatMul sets dst [S, N] = x [S, K] · wᵀ (+ bias [N]) for w [N, K], with
// float32 accumulation: float32 tensors through cuBLAS, bf16 x and w
// through cuBLASLt into a bf16 or float32 dst (the bias fused when it has
// dst's type), anything else (or no library, or no algorithm) through the
// gemm_nt kernel; an unfused bias is added by a kernel after.
func (b *Backend) MatMul(dst, x, w, bias backend.Tensor) {
	d, xs, ws := tensor(dst), tensor(x), tensor(w)
	if len(ws.shape) != 2 {
		panic(fmt.Sprintf("gpu: MatMul weight of shape %v", ws.shape))
	}
	n, k := ws.shape[0], ws.shape[1]
	if k == 0 || xs.numel()%k != 0 || d.numel() != xs.numel()/k*n {
		panic(fmt.Sprintf("gpu: MatMul %v · (%v)ᵀ into %v", xs.shape, ws.shape, d.shape))
	}
	var bs *Tensor
	if bias != nil {
		if bs = tensor(bias); bs.numel() != n {
			panic(fmt.Sprintf("gpu: MatMul bias of shape %v for %d outputs", bs.shape, n))
		}
	}
	s := xs.numel() / k
	b.mu.Lock()
	defer b.mu.Unlock()
	if s == 0 || n == 0 {
		return
	}
	fused := false
	switch {
	case s == 1 && b.gemv && xs.st == stBF16 && ws.st == stBF16 && k%8 == 0 && xs.ptr()%16 == 0 && ws.ptr()%16 == 0:
		// One row (a decoding step's products), with Options.GEMV:
		// gemv_nt streams w with 16 loads in flight per lane, meant for
		// where cuBLASLt falls short (its o projection read at 46 % of the
		// H100's bandwidth).
		var bp cuda.DevicePtr
		if bs != nil && bs.st == d.st {
			bp, fused = bs.ptr(), true
		}
		launch(b.k.gemv[d.st], cuda.Dim3{X: (n + gemvRows - 1) / gemvRows}, cuda.Dim3{X: gemvThreads}, 0,
			cuda.Ptr(d.ptr()), cuda.Ptr(xs.ptr()), cuda.Ptr(ws.ptr()), cuda.Ptr(bp), cuda.Int(n), cuda.Int(k))
	case b.blas != nil && d.st == stF32 && xs.st == stF32 && ws.st == stF32:
		must(b.blas.MatMulNT(d.ptr(), xs.ptr(), ws.ptr(), s, n, k))
	case b.lt != nil && xs.st == stBF16 && ws.st == stBF16:
		op := cuda.MatMulOp{
			D: d.ptr(), X: xs.ptr(), W: ws.ptr(),
			DType: ltType(d.st), XType: cuda.R16BF, WType: cuda.R16BF, M: s, N: n, K: k,
		}
		if bs != nil && bs.st == d.st {
			op.Bias = bs.ptr()
		}
		ok, err := b.lt.MatMulNT(op)
		if err != nil {
			panic(fmt.Sprintf("gpu: MatMul %v · (%v)ᵀ: %v", xs.shape, ws.shape, err))
		}
		if !ok {
			b.gemmKernel(d, xs, ws, s, n, k)
		}
		fused = ok && op.Bias != 0
	default:
		b.gemmKernel(d, xs, ws, s, n, k)
	}
	if bs != nil && !fused {
		total := s * n
		launch(b.k.addBias[d.st][bs.st], b.elementGrid(total), cuda.Dim3{X: elemThreads}, 0,
			cuda.Ptr(d.ptr()), cuda.Ptr(bs.ptr()), cuda.Int64(int64(total)), cuda.Int(n))
	}
}

// gemmKernel runs the gemm_nt kernel for d [s, n] = x [s, k] · wᵀ.
func (b *Backend) gemmKernel(d, x, w *Tensor, s, n, k int) {
	launch(b.k.gemm[d.st][x.st][w.st], cuda.Dim3{X: (n + gemmTile - 1) / gemmTile, Y: (s + gemmTile - 1) / gemmTile}, cuda.Dim3{X: gemmThreads}, 0,
		cuda.Ptr(d.ptr()), cuda.Ptr(x.ptr()), cuda.Ptr(w.ptr()), cuda.Int(s), cuda.Int(n), cuda.Int(k))
}

// ltType is the cuBLASLt type of a storage type.
func ltType(st storage) cuda.DataType {
	if st == stF32 {
		return cuda.R32F
	}
	return cuda.R16BF
}

// SwiGLU sets dst = silu(gate) ⊙ up.
func (b *Backend) SwiGLU(dst, gate, up backend.Tensor) {
	d, g, u := tensor(dst), tensor(gate), tensor(up)
	n := d.numel()
	if g.numel() != n || u.numel() != n {
		panic(fmt.Sprintf("gpu: SwiGLU of %v and %v into %v", g.shape, u.shape, d.shape))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	launch(b.k.swiglu[d.st][g.st][u.st], b.elementGrid(n), cuda.Dim3{X: elemThreads}, 0,
		cuda.Ptr(d.ptr()), cuda.Ptr(g.ptr()), cuda.Ptr(u.ptr()), cuda.Int64(int64(n)))
}

// Add sets dst += x, rounding the float32 sum once to dst's type.
func (b *Backend) Add(dst, x backend.Tensor) {
	d, xs := tensor(dst), tensor(x)
	n := d.numel()
	if xs.numel() != n {
		panic(fmt.Sprintf("gpu: Add of %v to %v", xs.shape, d.shape))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	launch(b.k.add[d.st][xs.st], b.elementGrid(n), cuda.Dim3{X: elemThreads}, 0,
		cuda.Ptr(d.ptr()), cuda.Ptr(xs.ptr()), cuda.Int64(int64(n)))
}

// Scatter writes row i of head h of src [S, Hkv·hd] into slot slots[h·S+i]
// of dst [Hkv, Cap, hd]; negative slots skip. Where rows of one head name
// the same slot, the host keeps only the last, so the kernel's writes never
// race and the last row wins as the interface asks.
func (b *Backend) Scatter(dst, src backend.Tensor, slots []int32) {
	d, s := tensor(dst), tensor(src)
	if len(d.shape) != 3 {
		panic(fmt.Sprintf("gpu: Scatter into shape %v", d.shape))
	}
	hkv, capacity, hd := d.shape[0], d.shape[1], d.shape[2]
	rows := s.numel() / (hkv * hd)
	if s.numel() != rows*hkv*hd || len(slots) != hkv*rows {
		panic(fmt.Sprintf("gpu: Scatter of %v with %d slots into %v", s.shape, len(slots), d.shape))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	words := b.words(len(slots))
	b.stamps.Start(capacity)
	for h := 0; h < hkv; h++ {
		b.stamps.Next()
		for i := rows - 1; i >= 0; i-- {
			slot := slots[h*rows+i]
			switch {
			case slot < 0:
				words[h*rows+i] = uint32(0xffffffff)
			case int(slot) >= capacity:
				panic(fmt.Sprintf("gpu: Scatter to slot %d of %d", slot, capacity))
			case b.stamps.Take(slot): // a later row of this head wins
				words[h*rows+i] = uint32(0xffffffff)
			default:
				words[h*rows+i] = uint32(slot)
			}
		}
	}
	b.scatterPlaced(d, s, nil, nil, b.upload(words), rows, hkv, capacity, hd)
}

// scatterPlaced writes row i of head h of src [rows, Hkv·hd] into slot
// place[h·rows+i] of dst [Hkv, capacity, hd], place being on the device,
// and the rows of src2 into dst2 alike in the same launch unless dst2 is
// nil (a chunk's keys and values: the two pairs must have the same storage
// types); negative slots skip, and no two rows may name one slot. Call
// with b.mu held.
func (b *Backend) scatterPlaced(dst, src, dst2, src2 *Tensor, place cuda.DevicePtr, rows, hkv, capacity, hd int) {
	grid := cuda.Dim3{X: rows, Y: hkv, Z: 1}
	var d2, s2 cuda.DevicePtr
	if dst2 != nil {
		if dst2.st != dst.st || src2.st != src.st {
			panic("gpu: scatter of two pairs of different storage types")
		}
		grid.Z, d2, s2 = 2, dst2.ptr(), src2.ptr()
	}
	launch(b.k.scatter[dst.st][src.st], grid, threadsFor(hd, rowThreads), 0,
		cuda.Ptr(dst.ptr()), cuda.Ptr(src.ptr()), cuda.Ptr(d2), cuda.Ptr(s2), cuda.Ptr(place),
		cuda.Int(rows), cuda.Int(hkv), cuda.Int(capacity), cuda.Int(hd))
}

// CopySlots copies slots [0, n) of every head of src [Hkv, Cap₁, hd] into
// dst [Hkv, Cap₂, hd].
func (b *Backend) CopySlots(dst, src backend.Tensor, n int) {
	d, s := tensor(dst), tensor(src)
	if len(d.shape) != 3 || len(s.shape) != 3 || d.shape[0] != s.shape[0] || d.shape[2] != s.shape[2] ||
		n < 0 || n > d.shape[1] || n > s.shape[1] {
		panic(fmt.Sprintf("gpu: CopySlots of %d slots from %v to %v", n, s.shape, d.shape))
	}
	hkv, hd := d.shape[0], d.shape[2]
	count := n * hd
	b.mu.Lock()
	defer b.mu.Unlock()
	grid := b.elementGrid(count)
	grid.Y = hkv
	launch(b.k.copySlots[d.st][s.st], grid, cuda.Dim3{X: elemThreads}, 0,
		cuda.Ptr(d.ptr()), cuda.Ptr(s.ptr()), cuda.Int64(int64(count)), cuda.Int(s.shape[1]), cuda.Int(d.shape[1]), cuda.Int(hd))
}

// words returns the host packing buffer with length n.
func (b *Backend) words(n int) []uint32 {
	if cap(b.host) < n {
		b.host = make([]uint32, n, n+n/2)
	}
	return b.host[:n]
}
