package gpu_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"

	"kvcascade/gpu"
	"kvcascade/gpu/cuda"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
)

// Tests open the GPU once per configuration and share it. Without a GPU
// they skip, unless KVCASCADE_REQUIRE_GPU is set (on a GPU machine, so
// that a broken driver set-up fails instead of skipping).
var backends struct {
	sync.Mutex
	open map[gpu.Options]*gpuResult
}

type gpuResult struct {
	b   *gpu.Backend
	err error
}

func openGPU(t testing.TB, opt gpu.Options) *gpu.Backend {
	t.Helper()
	backends.Lock()
	defer backends.Unlock()
	if backends.open == nil {
		backends.open = map[gpu.Options]*gpuResult{}
	}
	r := backends.open[opt]
	if r == nil {
		b, err := gpu.NewWithOptions(0, opt)
		r = &gpuResult{b, err}
		backends.open[opt] = r
		if err == nil {
			t.Logf("%s", b.Info())
		}
	}
	if r.err != nil {
		noGPU := errors.Is(r.err, cuda.ErrNoDriver) || errors.Is(r.err, cuda.ErrNoDevice)
		if noGPU && os.Getenv("KVCASCADE_REQUIRE_GPU") == "" {
			t.Skipf("no CUDA driver: %v", r.err)
		}
		t.Fatal(r.err)
	}
	return r.b
}

// randomIDs returns n token ids below vocab drawn from rng.
func randomIDs(rng *rand.Rand, n, vocab int) []int32 {
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	return ids
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// poison returns n NaNs: outputs start as NaN so that an element a kernel
// fails to write cannot pass for a right one.
func poison(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(math.NaN())
	}
	return s
}

func read(b backend.Backend, t backend.Tensor) []float32 {
	out := make([]float32, backend.Numel(t.Shape()))
	b.Read(t, out)
	return out
}

// compare fails when |got−want| > atol + rtol·|want| anywhere (NaN never
// passes) and logs the largest difference.
func compare(t *testing.T, what string, got, want []float32, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var worst float64
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if !(d <= atol+rtol*math.Abs(float64(want[i]))) {
			t.Fatalf("%s[%d] = %v, want %v (|Δ| %.3g)", what, i, got[i], want[i], d)
		}
		worst = max(worst, d)
	}
	t.Logf("%s: max |Δ| = %.3g over %d values", what, worst, len(want))
}

// f32 is the strict float32 backend's options: the tests comparing with the
// CPU backend at float32 tolerances use it.
var f32 = gpu.Options{DType: backend.F32}

// bf16 is the default backend's: storage in bf16.
var bf16 = gpu.Options{DType: backend.BF16}

func TestTensors(t *testing.T) {
	b := openGPU(t, f32)
	if b.DType() != backend.F32 {
		t.Fatalf("backend dtype %v, want F32", b.DType())
	}
	rng := rand.New(rand.NewPCG(1, 1))
	data := randSlice(rng, 5*3*4)
	x := b.FromFloat32(data, 5, 3, 4)
	if got := read(b, x); !slices.Equal(got, data) {
		t.Fatal("FromFloat32/Read round trip differs")
	}
	s := b.Slice(x, 1, 4)
	if sh := s.Shape(); len(sh) != 3 || sh[0] != 3 || sh[1] != 3 || sh[2] != 4 {
		t.Fatalf("slice shape %v", sh)
	}
	ss := b.Slice(s, 1, 2)
	if got := read(b, ss); !slices.Equal(got, data[2*12:3*12]) {
		t.Errorf("slice of a slice reads %v, want %v", got, data[24:36])
	}
	r := b.Reshape(s, 36) // a reshape of a slice
	if got := read(b, r); len(r.Shape()) != 1 || !slices.Equal(got, data[12:48]) {
		t.Errorf("reshape of a slice: shape %v, reads %v, want %v", r.Shape(), got, data[12:48])
	}
	rs := b.Reshape(b.Slice(r, 14, 26), 1, 3, 4) // and a reshape of a slice of it
	if got := read(b, rs); !slices.Equal(got, data[26:38]) {
		t.Errorf("reshape of a slice of a reshape reads %v, want %v", got, data[26:38])
	}
	mustPanic(t, "Reshape to a wrong count", func() { b.Reshape(x, 7, 9) })
	mustPanic(t, "Reshape to a negative dimension", func() { b.Reshape(x, -60, -1) })
	mustPanic(t, "Free of a reshape", func() { b.Free(r) })
	if x.DType() != backend.F32 {
		t.Errorf("FromFloat32 stored %v, want F32", x.DType())
	}
	z := b.New(backend.BF16, 7, 3) // New honours the dtype asked for
	if z.DType() != backend.BF16 {
		t.Errorf("dtype %v, want BF16 storage", z.DType())
	}
	for _, v := range read(b, z) {
		if v != 0 {
			t.Fatal("New is not zeroed")
		}
	}
	empty := b.New(backend.F32, 0, 4)
	b.Free(empty)
	b.Free(z)
	b.Free(x)
	mustPanic(t, "Free of a slice", func() { b.Free(s) })
	mustPanic(t, "double Free", func() { b.Free(x) })
	if err := b.Synchronize(); err != nil {
		t.Fatal(err)
	}
}

// TestTensorsBF16 checks storage in bf16: FromFloat32 rounds to nearest
// even exactly as runtime/safetensors does, Read widens exactly, Slice
// offsets count 2-byte elements (rows of odd length included), New zeroes
// odd sizes, F16 is stored as BF16 and F32 stays float32, and tensors
// larger than one host conversion chunk round-trip.
func TestTensorsBF16(t *testing.T) {
	b := openGPU(t, bf16)
	if b.DType() != backend.BF16 {
		t.Fatalf("backend dtype %v, want BF16", b.DType())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	data := randSlice(rng, 5*3*3)
	data[0], data[1], data[2] = float32(math.Inf(-1)), 1+1.0/256, 3.4e38 // -∞; a tie to even; rounds up to +∞
	x := b.FromFloat32(data, 5, 3, 3)
	if x.DType() != backend.BF16 {
		t.Fatalf("FromFloat32 stored %v, want BF16", x.DType())
	}
	want := roundBF16(data)
	if got := read(b, x); !slices.Equal(got, want) {
		t.Fatalf("FromFloat32/Read: %v, want %v", got[:4], want[:4])
	}
	s := b.Slice(x, 1, 4)
	if s.DType() != backend.BF16 {
		t.Errorf("slice dtype %v", s.DType())
	}
	if got := read(b, b.Slice(s, 1, 2)); !slices.Equal(got, want[2*9:3*9]) {
		t.Errorf("slice of a slice (rows of 9 elements) reads %v, want %v", got, want[18:27])
	}
	for _, c := range []struct {
		dtype, want backend.DType
	}{{backend.BF16, backend.BF16}, {backend.F16, backend.BF16}, {backend.F32, backend.F32}} {
		z := b.New(c.dtype, 7, 3)
		if z.DType() != c.want {
			t.Errorf("New(%v) stores %v, want %v", c.dtype, z.DType(), c.want)
		}
		for _, v := range read(b, z) {
			if v != 0 {
				t.Fatalf("New(%v) is not zeroed", c.dtype)
			}
		}
		b.Free(z)
	}
	// Mixed storage: a float32 tensor adds a bf16 one exactly.
	acc := b.New(backend.F32, 5, 9)
	b.Add(acc, b.Slice(x, 0, 5))
	if got := read(b, acc); !slices.Equal(got, want) {
		t.Errorf("float32 += bf16: %v, want %v", got[:4], want[:4])
	}
	big := randSlice(rng, 1<<22+1001) // over one conversion chunk
	y := b.FromFloat32(big, len(big))
	if got := read(b, y); !slices.Equal(got, roundBF16(big)) {
		t.Error("round trip of a tensor over one conversion chunk differs")
	}
	b.Free(y)
	b.Free(acc)
	b.Free(x)
	if err := b.Synchronize(); err != nil {
		t.Fatal(err)
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

// TestOps checks each operation against the CPU backend on random inputs.
// Copies (Embed, Scatter, CopySlots) and single IEEE additions (Add) must
// agree exactly. SwiGLU differs by expf's ≤ 2 ulp against the CPU's
// float64 exp, RMSNorm by the order of its float32 sum of squares: a few
// ulp, so 1e-6 relative. Matrix products are bounded by the float32
// rounding of a K-term dot product summed in another order, ~√K·2⁻²⁴ of
// Σ|x·w| for each side; the bound checked is four times that.
func TestOps(t *testing.T) {
	g := openGPU(t, f32)
	c := cpu.New(1)
	rng := rand.New(rand.NewPCG(2, 3))

	t.Run("Embed", func(t *testing.T) {
		const vocab, dim = 50, 72
		table := randSlice(rng, vocab*dim)
		ids := []int32{3, 0, 49, 3, 17}
		dc, dg := c.New(backend.F32, len(ids), dim), g.FromFloat32(poison(len(ids)*dim), len(ids), dim)
		c.Embed(dc, c.FromFloat32(table, vocab, dim), ids)
		g.Embed(dg, g.FromFloat32(table, vocab, dim), ids)
		compare(t, "embed", read(g, dg), read(c, dc), 0, 0)
		mustPanic(t, "Embed of an id past the table", func() { g.Embed(dg, g.FromFloat32(table, vocab, dim), []int32{0, 1, 2, 3, vocab}) })
	})
	t.Run("RMSNorm", func(t *testing.T) {
		for _, dim := range []int{64, 100, 4096} {
			rows := 7
			x, w := randSlice(rng, rows*dim), randSlice(rng, dim)
			dc, dg := c.New(backend.F32, rows, dim), g.FromFloat32(poison(rows*dim), rows, dim)
			c.RMSNorm(dc, c.FromFloat32(x, rows, dim), c.FromFloat32(w, dim), 1e-5)
			g.RMSNorm(dg, g.FromFloat32(x, rows, dim), g.FromFloat32(w, dim), 1e-5)
			compare(t, fmt.Sprintf("rmsnorm dim %d", dim), read(g, dg), read(c, dc), 1e-6, 1e-6)
		}
	})
	t.Run("SwiGLU", func(t *testing.T) {
		n := 3 * 1000
		gate, up := randSlice(rng, n), randSlice(rng, n)
		for i := range gate {
			gate[i] *= 4 // reach the tails of silu
		}
		dc, dg := c.New(backend.F32, 3, 1000), g.FromFloat32(poison(n), 3, 1000)
		c.SwiGLU(dc, c.FromFloat32(gate, 3, 1000), c.FromFloat32(up, 3, 1000))
		g.SwiGLU(dg, g.FromFloat32(gate, 3, 1000), g.FromFloat32(up, 3, 1000))
		compare(t, "swiglu", read(g, dg), read(c, dc), 1e-7, 1e-6)
		// In place, as the model calls it.
		gg := g.FromFloat32(gate, 3, 1000)
		g.SwiGLU(gg, gg, g.FromFloat32(up, 3, 1000))
		compare(t, "swiglu in place", read(g, gg), read(c, dc), 1e-7, 1e-6)
	})
	t.Run("Add", func(t *testing.T) {
		x, y := randSlice(rng, 999), randSlice(rng, 999)
		dc, dg := c.FromFloat32(x, 999), g.FromFloat32(x, 999)
		c.Add(dc, c.FromFloat32(y, 999))
		g.Add(dg, g.FromFloat32(y, 999))
		compare(t, "add", read(g, dg), read(c, dc), 0, 0)
	})
	for _, opt := range []gpu.Options{f32, {DType: backend.F32, NoCUBLAS: true}} {
		gb := openGPU(t, opt)
		name := "MatMul/cuBLAS"
		if !gb.CUBLAS() {
			name = "MatMul/kernel"
		}
		t.Run(name, func(t *testing.T) {
			for _, sh := range []struct{ s, n, k int }{{1, 13, 29}, {3, 64, 64}, {17, 130, 75}, {100, 512, 256}, {64, 1000, 1024}} {
				x, w, bias := randSlice(rng, sh.s*sh.k), randSlice(rng, sh.n*sh.k), randSlice(rng, sh.n)
				for _, withBias := range []bool{false, true} {
					dc, dg := c.New(backend.F32, sh.s, sh.n), gb.FromFloat32(poison(sh.s*sh.n), sh.s, sh.n)
					var bc, bg backend.Tensor
					if withBias {
						bc, bg = c.FromFloat32(bias, sh.n), gb.FromFloat32(bias, sh.n)
					}
					c.MatMul(dc, c.FromFloat32(x, sh.s, sh.k), c.FromFloat32(w, sh.n, sh.k), bc)
					gb.MatMul(dg, gb.FromFloat32(x, sh.s, sh.k), gb.FromFloat32(w, sh.n, sh.k), bg)
					checkGEMM(t, fmt.Sprintf("%dx%dx%d bias %v", sh.s, sh.n, sh.k, withBias), read(gb, dg), read(c, dc), x, w, sh.s, sh.n, sh.k)
				}
			}
		})
	}
	t.Run("Scatter", func(t *testing.T) {
		const hkv, capacity, hd, rows = 3, 10, 8, 6
		src := randSlice(rng, rows*hkv*hd)
		base := randSlice(rng, hkv*capacity*hd)
		slots := []int32{
			0, 1, 2, 3, 4, 5, // head 0: every row to its own slot
			9, -1, 9, 2, -1, 9, // head 1: three rows to slot 9, the last wins
			7, 7, 7, 7, 7, 7, // head 2: all to slot 7
		}
		dc, dg := c.FromFloat32(base, hkv, capacity, hd), g.FromFloat32(base, hkv, capacity, hd)
		c.Scatter(dc, c.FromFloat32(src, rows, hkv*hd), slots)
		g.Scatter(dg, g.FromFloat32(src, rows, hkv*hd), slots)
		compare(t, "scatter", read(g, dg), read(c, dc), 0, 0)
	})
	t.Run("CopySlots", func(t *testing.T) {
		const hkv, cap1, cap2, hd, n = 4, 10, 25, 16, 7
		src := randSlice(rng, hkv*cap1*hd)
		dst := randSlice(rng, hkv*cap2*hd)
		dc, dg := c.FromFloat32(dst, hkv, cap2, hd), g.FromFloat32(dst, hkv, cap2, hd)
		c.CopySlots(dc, c.FromFloat32(src, hkv, cap1, hd), n)
		g.CopySlots(dg, g.FromFloat32(src, hkv, cap1, hd), n)
		compare(t, "copy slots", read(g, dg), read(c, dc), 0, 0)
	})
	if err := g.Synchronize(); err != nil {
		t.Fatal(err)
	}
}

// checkGEMM compares products with the bound of TestOps.
func checkGEMM(t *testing.T, what string, got, want, x, w []float32, s, n, k int) {
	t.Helper()
	var worst, worstRatio float64
	for r := 0; r < s; r++ {
		for j := 0; j < n; j++ {
			var abs float64
			for i := 0; i < k; i++ {
				abs += math.Abs(float64(x[r*k+i]) * float64(w[j*k+i]))
			}
			bound := 4*math.Sqrt(float64(k))*0x1p-24*abs + 1e-6
			d := math.Abs(float64(got[r*n+j]) - float64(want[r*n+j]))
			if !(d <= bound) {
				t.Fatalf("%s: [%d,%d] = %v, want %v (|Δ| %.3g > %.3g)", what, r, j, got[r*n+j], want[r*n+j], d, bound)
			}
			worst, worstRatio = max(worst, d), max(worstRatio, d/bound)
		}
	}
	t.Logf("%s: max |Δ| = %.3g (%.2f of the bound)", what, worst, worstRatio)
}

// TestOpsBF16 checks each operation of a bf16 backend against the CPU
// backend run on the same inputs rounded to bf16 (the GPU rounds its own
// from float32), so that the only differences are the GPU's float32
// arithmetic (as in TestOps) and the rounding of each output to bf16, at
// most 2⁻⁸ of its value (bf16ULP). Copies (Embed, Scatter, CopySlots) of
// bf16 values must be exact. Add, SwiGLU and RMSNorm round a float32
// result within TestOps's bounds of the CPU's: 2⁻⁸ relative plus those.
// Matrix products: see checkGEMMBF16.
func TestOpsBF16(t *testing.T) {
	g := openGPU(t, bf16)
	c := cpu.New(1)
	rng := rand.New(rand.NewPCG(4, 5))
	// in returns the input on the CPU (rounded) and on the GPU (rounded
	// there).
	in := func(data []float32, shape ...int) (backend.Tensor, backend.Tensor) {
		return c.FromFloat32(roundBF16(data), shape...), g.FromFloat32(data, shape...)
	}
	out := func(shape ...int) (backend.Tensor, backend.Tensor) {
		return c.New(backend.F32, shape...), g.FromFloat32(poison(backend.Numel(shape)), shape...)
	}

	t.Run("Embed", func(t *testing.T) {
		const vocab, dim = 50, 72
		tc, tg := in(randSlice(rng, vocab*dim), vocab, dim)
		ids := []int32{3, 0, 49, 3, 17}
		dc, dg := out(len(ids), dim)
		c.Embed(dc, tc, ids)
		g.Embed(dg, tg, ids)
		compare(t, "embed", read(g, dg), read(c, dc), 0, 0)
	})
	t.Run("RMSNorm", func(t *testing.T) {
		for _, dim := range []int{64, 100, 4096} {
			rows := 7
			xc, xg := in(randSlice(rng, rows*dim), rows, dim)
			wc, wg := in(randSlice(rng, dim), dim)
			dc, dg := out(rows, dim)
			c.RMSNorm(dc, xc, wc, 1e-5)
			g.RMSNorm(dg, xg, wg, 1e-5)
			compare(t, fmt.Sprintf("rmsnorm dim %d", dim), read(g, dg), read(c, dc), 1e-6, bf16ULP+2e-6)
			// In place, as the model calls it on the residual stream.
			g.RMSNorm(xg, xg, wg, 1e-5)
			compare(t, fmt.Sprintf("rmsnorm dim %d in place", dim), read(g, xg), read(c, dc), 1e-6, bf16ULP+2e-6)
		}
	})
	t.Run("AddRMSNorm", func(t *testing.T) {
		// The fused residual sum and norm give the bits of Add then
		// RMSNorm, also into h itself, as the model calls it.
		for _, dim := range []int{64, 100, 4096} {
			rows := 3
			x, h, w := randSlice(rng, rows*dim), randSlice(rng, rows*dim), randSlice(rng, dim)
			wg := g.FromFloat32(w, dim)
			x1, h1, d1 := g.FromFloat32(x, rows, dim), g.FromFloat32(h, rows, dim), g.FromFloat32(poison(rows*dim), rows, dim)
			g.Add(x1, h1)
			g.RMSNorm(d1, x1, wg, 1e-5)
			x2, h2 := g.FromFloat32(x, rows, dim), g.FromFloat32(h, rows, dim)
			g.AddRMSNorm(h2, x2, h2, wg, 1e-5)
			for _, p := range []struct {
				name      string
				got, want backend.Tensor
			}{{"sum", x2, x1}, {"norm", h2, d1}} {
				got, want := read(g, p.got), read(g, p.want)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("dim %d, %s[%d]: %g fused, %g apart", dim, p.name, i, got[i], want[i])
					}
				}
			}
		}
	})
	t.Run("SwiGLU", func(t *testing.T) {
		n := 3 * 1000
		gate, up := randSlice(rng, n), randSlice(rng, n)
		for i := range gate {
			gate[i] *= 4
		}
		gc, gg := in(gate, 3, 1000)
		uc, ug := in(up, 3, 1000)
		dc, dg := out(3, 1000)
		c.SwiGLU(dc, gc, uc)
		g.SwiGLU(dg, gg, ug)
		compare(t, "swiglu", read(g, dg), read(c, dc), 1e-7, bf16ULP+2e-6)
		g.SwiGLU(gg, gg, ug)
		compare(t, "swiglu in place", read(g, gg), read(c, dc), 1e-7, bf16ULP+2e-6)
	})
	t.Run("Add", func(t *testing.T) {
		x, y := randSlice(rng, 999), randSlice(rng, 999)
		dc, dg := in(x, 999)
		yc, yg := in(y, 999)
		c.Add(dc, yc)
		g.Add(dg, yg)
		// The CPU's float32 sum of the same values, rounded once.
		compare(t, "add", read(g, dg), read(c, dc), 0, bf16ULP)
	})
	for _, opt := range []gpu.Options{bf16, {DType: backend.BF16, NoCUBLAS: true}, {DType: backend.BF16, GEMV: true}} {
		gb := openGPU(t, opt)
		name := "MatMul/cuBLASLt"
		switch {
		case opt.GEMV:
			name = "MatMul/gemv" // products of one row; the others as bf16's
		case !gb.CUBLASLt():
			name = "MatMul/kernel"
		}
		t.Run(name, func(t *testing.T) {
			for _, sh := range []struct{ s, n, k int }{
				{1, 13, 29}, {1, 256, 512}, {1, 1000, 4096}, {3, 64, 64}, {17, 130, 75}, {100, 512, 256}, {64, 1000, 1024},
			} {
				x, w, bias := randSlice(rng, sh.s*sh.k), randSlice(rng, sh.n*sh.k), randSlice(rng, sh.n)
				xr, wr, br := roundBF16(x), roundBF16(w), roundBF16(bias)
				xg, wg := gb.FromFloat32(x, sh.s, sh.k), gb.FromFloat32(w, sh.n, sh.k)
				for _, dt := range []backend.DType{backend.BF16, backend.F32} {
					for _, withBias := range []bool{false, true} {
						dc := c.New(backend.F32, sh.s, sh.n)
						dg := poisoned(gb, dt, sh.s, sh.n)
						var bc, bg backend.Tensor
						if withBias {
							bc, bg = c.FromFloat32(br, sh.n), gb.FromFloat32(bias, sh.n)
						}
						c.MatMul(dc, c.FromFloat32(xr, sh.s, sh.k), c.FromFloat32(wr, sh.n, sh.k), bc)
						gb.MatMul(dg, xg, wg, bg)
						if dg.DType() != dt {
							t.Fatalf("dst stored as %v, want %v", dg.DType(), dt)
						}
						var b []float32
						if withBias {
							b = br
						}
						checkGEMMBF16(t, fmt.Sprintf("%dx%dx%d into %v, bias %v", sh.s, sh.n, sh.k, dt, withBias),
							read(gb, dg), read(c, dc), xr, wr, b, sh.s, sh.n, sh.k, dt == backend.BF16)
						gb.Free(dg)
					}
				}
			}
			if opt.NoCUBLAS || opt.GEMV {
				return
			}
			// cuBLASLt must have run the products it has algorithms for:
			// on an H100 all but those whose rows of K = 29 or 75 bf16
			// values are not 16-byte aligned, at least.
			ok, none := gpu.LtPlans(gb)
			t.Logf("cuBLASLt plans: %d with an algorithm, %d without (the gemm_nt kernel ran those)", ok, none)
			if os.Getenv("KVCASCADE_REQUIRE_GPU") != "" && (!gb.CUBLASLt() || ok == 0) {
				t.Errorf("cuBLASLt ran no product (%s)", gb.Info())
			}
		})
	}
	t.Run("Scatter", func(t *testing.T) {
		const hkv, capacity, hd, rows = 3, 10, 8, 6
		slots := []int32{
			0, 1, 2, 3, 4, 5,
			9, -1, 9, 2, -1, 9,
			7, 7, 7, 7, 7, 7,
		}
		dc, dg := in(randSlice(rng, hkv*capacity*hd), hkv, capacity, hd)
		sc, sg := in(randSlice(rng, rows*hkv*hd), rows, hkv*hd)
		c.Scatter(dc, sc, slots)
		g.Scatter(dg, sg, slots)
		compare(t, "scatter", read(g, dg), read(c, dc), 0, 0)
	})
	t.Run("CopySlots", func(t *testing.T) {
		const hkv, cap1, cap2, hd, n = 4, 10, 25, 16, 7
		sc, sg := in(randSlice(rng, hkv*cap1*hd), hkv, cap1, hd)
		dc, dg := in(randSlice(rng, hkv*cap2*hd), hkv, cap2, hd)
		c.CopySlots(dc, sc, n)
		g.CopySlots(dg, sg, n)
		compare(t, "copy slots", read(g, dg), read(c, dc), 0, 0)
	})
	if err := g.Synchronize(); err != nil {
		t.Fatal(err)
	}
}

// poisoned returns a [rows, cols] tensor of dtype on g full of NaNs.
func poisoned(g *gpu.Backend, dtype backend.DType, rows, cols int) backend.Tensor {
	t := g.New(dtype, rows, cols)
	nan := g.FromFloat32(poison(rows*cols), rows, cols)
	g.Add(t, nan)
	g.Free(nan)
	return t
}

// checkGEMMBF16 compares a product of bf16 x and w (with bias b when not
// nil) into a float32 or (roundOut) bf16 dst with the CPU's float32 product
// of the same values. Products of bf16 values are exact in float32, so the
// two differ by their float32 sums: in any order, with rounding or (tensor
// cores may) truncating additions, each within K·2⁻²³·Σ|terms| of the
// exact sum, Σ|terms| = Σ|x·w| + |b|; the bound takes twice that. A bf16
// dst adds one rounding, 2⁻⁸·|result|; and where the bias is not fused the
// product is rounded before the bias is added, 2⁻⁸·|result − b| more.
func checkGEMMBF16(t *testing.T, what string, got, want, x, w, b []float32, s, n, k int, roundOut bool) {
	t.Helper()
	var worst, worstRatio float64
	for r := 0; r < s; r++ {
		for j := 0; j < n; j++ {
			var abs, bj float64
			for i := 0; i < k; i++ {
				abs += math.Abs(float64(x[r*k+i]) * float64(w[j*k+i]))
			}
			if b != nil {
				bj = float64(b[j])
				abs += math.Abs(bj)
			}
			wv := float64(want[r*n+j])
			bound := 2*float64(k+1)*0x1p-23*abs + 1e-6
			if roundOut {
				bound += bf16ULP * (math.Abs(wv) + bound)
				if b != nil {
					bound += bf16ULP * math.Abs(wv-bj)
				}
			}
			d := math.Abs(float64(got[r*n+j]) - wv)
			if !(d <= bound) {
				t.Fatalf("%s: [%d,%d] = %v, want %v (|Δ| %.3g > %.3g)", what, r, j, got[r*n+j], want[r*n+j], d, bound)
			}
			worst, worstRatio = max(worst, d), max(worstRatio, d/bound)
		}
	}
	t.Logf("%s: max |Δ| = %.3g (%.2f of the bound)", what, worst, worstRatio)
}
