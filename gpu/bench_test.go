package gpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"kvcascade/gpu"
	"kvcascade/runtime/backend"
)

// BenchmarkAttention times one layer's attention at the Llama-3.1-8B shape
// (32 query heads, 8 KV heads, head dim 128): a 4096-token prefill chunk
// over a cached view, with and without the mass pass, and decoding, with
// float32 and bf16 storage (float32 arithmetic in both). It reports
// TFLOP/s counting 4·hd multiply-adds' worth of flops per visible (query,
// key) pair and head (QKᵀ and PV), and twice that more with mass (the
// scores are recomputed).
func BenchmarkAttention(bm *testing.B) {
	const hq, hkv, hd = 32, 8, 128
	for _, opt := range []gpu.Options{f32, bf16} {
		g := openGPU(bm, opt)
		for _, c := range []struct{ s, l int }{{4096, 4096}, {4096, 16384}, {1, 32768}} {
			for _, mass := range []bool{false, true} {
				bm.Run(fmt.Sprintf("%v/S=%d/L=%d/mass=%v", opt.DType, c.s, c.l, mass), func(bm *testing.B) {
					rng := rand.New(rand.NewPCG(9, 9))
					a := &backend.Attention{
						Out: g.New(g.DType(), c.s, hq*hd), Q: g.FromFloat32(randSlice(rng, c.s*hq*hd), c.s, hq*hd),
						K: g.FromFloat32(randSlice(rng, c.s*hkv*hd), c.s, hkv*hd), V: g.FromFloat32(randSlice(rng, c.s*hkv*hd), c.s, hkv*hd),
						HeadDim: hd, QHeads: hq, KVHeads: hkv, Scale: float32(1 / math.Sqrt(hd)), AttnFactor: 1,
					}
					a.InvFreq = make([]float32, hd/2)
					for i := range a.InvFreq {
						a.InvFreq[i] = float32(1 / math.Pow(500000, float64(2*i)/hd))
					}
					a.View.K = g.FromFloat32(randSlice(rng, hkv*c.l*hd), hkv, c.l, hd)
					a.View.V = g.FromFloat32(randSlice(rng, hkv*c.l*hd), hkv, c.l, hd)
					a.View.ViewLen = c.l
					for h := 0; h < hkv; h++ {
						for j := 0; j < c.l; j++ {
							a.View.Slots = append(a.View.Slots, int32(j))
							a.View.Pos = append(a.View.Pos, int32(j))
						}
						a.View.QueryPos = append(a.View.QueryPos, int32(c.l))
					}
					if mass {
						a.View.QueryWeights = make([]float32, c.s)
						for i := range a.View.QueryWeights {
							a.View.QueryWeights[i] = 1 / float32(c.s)
						}
						a.Mass = make([]float32, hq*(c.l+c.s))
					}
					g.Attention(a) // warm up: compiles, builds the RoPE table
					if err := g.Synchronize(); err != nil {
						bm.Fatal(err)
					}
					bm.ResetTimer()
					for i := 0; i < bm.N; i++ {
						g.Attention(a)
					}
					if err := g.Synchronize(); err != nil {
						bm.Fatal(err)
					}
					pairs := float64(c.s)*float64(c.l) + float64(c.s)*float64(c.s+1)/2
					flops := 4 * hq * hd * pairs
					if mass {
						flops *= 1.5
					}
					bm.ReportMetric(flops*float64(bm.N)/bm.Elapsed().Seconds()/1e12, "TFLOP/s")
					for _, t := range []backend.Tensor{a.Out, a.Q, a.K, a.V, a.View.K, a.View.V} {
						g.Free(t)
					}
				})
			}
		}
	}
}

// BenchmarkMatMul times x [S, 4096] · wᵀ for w [4096, 4096]: float32
// through cuBLAS and through the fallback kernel, and bf16 x and w into a
// bf16 dst through cuBLASLt and through the fallback kernel. It reports
// TFLOP/s (2·S·N·K flops per product).
func BenchmarkMatMul(bm *testing.B) {
	for _, opt := range []gpu.Options{f32, {DType: backend.F32, NoCUBLAS: true}, bf16, {DType: backend.BF16, NoCUBLAS: true}} {
		g := openGPU(bm, opt)
		path := "kernel"
		switch {
		case opt.DType == backend.F32 && g.CUBLAS():
			path = "cuBLAS"
		case opt.DType == backend.BF16 && g.CUBLASLt():
			path = "cuBLASLt"
		}
		for _, s := range []int{1, 4096} {
			bm.Run(fmt.Sprintf("%v/%s/S=%d", opt.DType, path, s), func(bm *testing.B) {
				const n, k = 4096, 4096
				rng := rand.New(rand.NewPCG(5, 6))
				x, w := g.FromFloat32(randSlice(rng, s*k), s, k), g.FromFloat32(randSlice(rng, n*k), n, k)
				dst := g.New(g.DType(), s, n)
				g.MatMul(dst, x, w, nil)
				if err := g.Synchronize(); err != nil {
					bm.Fatal(err)
				}
				bm.ResetTimer()
				for i := 0; i < bm.N; i++ {
					g.MatMul(dst, x, w, nil)
				}
				if err := g.Synchronize(); err != nil {
					bm.Fatal(err)
				}
				bm.ReportMetric(2*float64(s*n*k)*float64(bm.N)/bm.Elapsed().Seconds()/1e12, "TFLOP/s")
				if path == "cuBLASLt" {
					if ok, _ := gpu.LtPlans(g); ok == 0 {
						bm.Log("cuBLASLt has no algorithm for this product: the gemm_nt kernel ran")
					}
				}
				g.Free(x)
				g.Free(w)
				g.Free(dst)
			})
		}
	}
}
