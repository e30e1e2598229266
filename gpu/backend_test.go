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

func TestTensors(t *testing.T) {
	b := openGPU(t, gpu.Options{})
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
	z := b.New(backend.BF16, 7, 3)
	if z.DType() != backend.F32 {
		t.Errorf("dtype %v, want F32 storage", z.DType())
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
	g := openGPU(t, gpu.Options{})
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
	for _, opt := range []gpu.Options{{}, {NoCUBLAS: true}} {
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
