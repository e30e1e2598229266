package gpu_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"kvcascade/gpu"
	"kvcascade/policies"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/model"
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
					sec := gpu.TimeCalls(bm, g, func() { g.Attention(a) })
					pairs := float64(c.s)*float64(c.l) + float64(c.s)*float64(c.s+1)/2
					flops := 4 * hq * hd * pairs
					if mass {
						flops *= 1.5
					}
					bm.ReportMetric(flops/sec/1e12, "TFLOP/s")
					for _, t := range []backend.Tensor{a.Out, a.Q, a.K, a.V, a.View.K, a.View.V} {
						g.Free(t)
					}
				})
			}
		}
	}
}

// timeMatMul runs dst = x·wᵀ once untimed (compiling, planning), then
// bm.N times, timed to the end of the device's work.
func timeMatMul(bm *testing.B, g *gpu.Backend, dst, x, w backend.Tensor) {
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
				timeMatMul(bm, g, dst, x, w)
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

// decodeTuning is one setting of decode.cu's blocks per multiprocessor
// its registers must allow, the steps its shared memory holds and the KV
// heads a block takes where they see the same positions (0 0 0: the
// defaults, 2 2 4), as the benchmarks compare them. With 4 heads a block
// of 4 warps takes 41 KiB of shared memory a stage at head dimension 128
// (68 KiB with one head); a multiprocessor has 228.
type decodeTuning struct{ minBlocks, stages, heads int }

// decodeTunings are the settings the decoding benchmarks time.
var decodeTunings = []decodeTuning{{0, 0, 0}, {0, 0, 1}, {0, 0, 2}, {0, 3, 4}, {0, 3, 1}, {1, 3, 4}, {1, 3, 1}, {0, 0, 8}}

func (t decodeTuning) String() string {
	return fmt.Sprintf("decode_b%d_s%d_h%d", t.minBlocks, t.stages, t.heads)
}

// set makes g compile decode.cu under t from its next attention call on.
func (t decodeTuning) set(g *gpu.Backend) {
	gpu.SetDecodeTuning(g, t.minBlocks, t.stages, t.heads)
}

// BenchmarkDecodeAttention times one layer's decoding attention at the
// Llama-3.1-8B shape (1 query × 32 query heads, 8 KV heads, head dim 128,
// bf16) over a view of L cached keys, kernels only (the view uploaded
// once): decode.cu's flash-decoding kernels under several tunings (keys
// per unit and step, blocks per multiprocessor its registers must allow,
// steps in shared memory) against attention.cu's split kernels, with and without the mass. GB/s
// counts the bytes the step must read: every view key and value row once,
// plus its slot and position.
func BenchmarkDecodeAttention(bm *testing.B) {
	const hq, hkv, hd = 32, 8, 128
	g := openGPU(bm, bf16)
	for _, l := range []int{4096, 32768, 65600} {
		rng := rand.New(rand.NewPCG(9, uint64(l)))
		a := &backend.Attention{
			Out: g.New(g.DType(), 1, hq*hd), Q: g.FromFloat32(randSlice(rng, hq*hd), 1, hq*hd),
			K: g.FromFloat32(randSlice(rng, hkv*hd), 1, hkv*hd), V: g.FromFloat32(randSlice(rng, hkv*hd), 1, hkv*hd),
			HeadDim: hd, QHeads: hq, KVHeads: hkv, Scale: float32(1 / math.Sqrt(hd)), AttnFactor: 1,
		}
		a.InvFreq = make([]float32, hd/2)
		for i := range a.InvFreq {
			a.InvFreq[i] = float32(1 / math.Pow(500000, float64(2*i)/hd))
		}
		a.View.K = g.FromFloat32(randSlice(rng, hkv*l*hd), hkv, l, hd)
		a.View.V = g.FromFloat32(randSlice(rng, hkv*l*hd), hkv, l, hd)
		a.View.ViewLen = l
		for h := 0; h < hkv; h++ {
			for j := 0; j < l; j++ {
				a.View.Slots = append(a.View.Slots, int32(j))
				a.View.Pos = append(a.View.Pos, int32(j))
			}
			a.View.QueryPos = append(a.View.QueryPos, int32(l))
		}
		bytes := float64(hkv) * float64(l) * (2*hd*2 + 2*4)
		for _, mass := range []bool{false, true} {
			a.View.QueryWeights = nil
			if mass {
				a.View.QueryWeights = []float32{1}
			}
			// decode.cu under each tuning, then attention.cu
			for _, tune := range append(decodeTunings, decodeTuning{-1, -1, -1}) {
				old := tune.minBlocks < 0
				kernel := tune.String()
				if old {
					kernel = "attention"
				}
				bm.Run(fmt.Sprintf("%s/L=%d/mass=%v", kernel, l, mass), func(bm *testing.B) {
					if !old {
						tune.set(g)
						defer decodeTuning{}.set(g)
					}
					run, free := gpu.AttentionKernels(g, a, old)
					defer free()
					sec := gpu.TimeCalls(bm, g, run)
					bm.ReportMetric(sec*1e6, "µs/call")
					bm.ReportMetric(bytes/sec/1e9, "GB/s")
				})
			}
		}
		for _, t := range []backend.Tensor{a.Out, a.Q, a.K, a.V, a.View.K, a.View.V} {
			g.Free(t)
		}
	}
}

// BenchmarkGEMV times the decoding step's matrix products, x [1, K] · wᵀ
// in bf16, at the Llama-3.1-8B shapes (the fused q, k and v; o; the fused
// gate and up; down; the LM head into float32 logits), each weight larger
// than the L2 cache: through ops.cu's gemv_nt (Options.GEMV) and through
// cuBLASLt. GB/s counts the weight's bytes once.
func BenchmarkGEMV(bm *testing.B) {
	withGEMV := bf16
	withGEMV.GEMV = true
	for _, opt := range []gpu.Options{withGEMV, bf16} {
		g := openGPU(bm, opt)
		path := "cuBLASLt"
		if opt.GEMV {
			path = "gemv"
		}
		for _, c := range []struct {
			name   string
			n, k   int
			logits bool
		}{{"qkv", 6144, 4096, false}, {"o", 4096, 4096, false}, {"gate_up", 28672, 4096, false}, {"down", 4096, 14336, false}, {"lm_head", 128256, 4096, true}} {
			bm.Run(path+"/"+c.name, func(bm *testing.B) {
				rng := rand.New(rand.NewPCG(7, 8))
				x, w := g.FromFloat32(randSlice(rng, c.k), 1, c.k), g.FromFloat32(randSlice(rng, c.n*c.k), c.n, c.k)
				dt := g.DType()
				if c.logits {
					dt = backend.F32
				}
				dst := g.New(dt, 1, c.n)
				timeMatMul(bm, g, dst, x, w)
				sec := bm.Elapsed().Seconds() / float64(bm.N)
				bm.ReportMetric(sec*1e6, "µs/call")
				bm.ReportMetric(float64(2*c.n*c.k)/sec/1e9, "GB/s")
				g.Free(x)
				g.Free(w)
				g.Free(dst)
			})
		}
	}
}

// BenchmarkDecodeStep times whole decoding steps of the Llama-3.1-8B shape
// (random bf16 weights, 32 layers): full attention after a prompt of
// 32,768 tokens under each tuning of decode.cu (
// blocks per multiprocessor × stages × heads per block; b0_s0_h0 is the
// file's default) and with the products through gemv_nt, and the cascade
// (65,536 slots, 8 cascades, 64 sinks) after 131,072 tokens, so that a
// tuning is chosen on what a step costs, not one kernel alone. GB/s counts
// the bytes a step must read: the weights (embedding excluded) and the
// keys and values of its views. The timed loop is bracketed for a
// profiler started with its collection off (ncu --profile-from-start off;
// -test.benchtime 1x for one step). Needs about 30 GB of device memory.
func BenchmarkDecodeStep(bm *testing.B) {
	g := openGPU(bm, bf16)
	m := random8B(bm, g)
	weights := float64(m.Params()-int64(m.Vocab*m.Hidden)) * 2
	rowBytes := float64(2 * m.HeadDim * 2) // a key and a value row in bf16
	type variant struct {
		tune decodeTuning
		gemv bool
	}
	full := []variant{{gemv: true}}
	for _, t := range decodeTunings {
		full = append(full, variant{tune: t})
	}
	for _, c := range []struct {
		policy   string
		params   map[string]any
		prompt   int
		variants []variant
	}{
		{"full", nil, 32768, full},
		{"cascade", map[string]any{"size": 65536, "cascades": 8, "sinks": 64}, 131072, []variant{{}, {gemv: true}}},
	} {
		bm.Run(c.policy, func(bm *testing.B) {
			s, cache := prefilled(bm, m, c.policy, c.params, 4096, c.prompt, rand.New(rand.NewPCG(3, 4)))
			// room for every token the runs decode, so that no timed step
			// grows the storage
			cache.Reserve(4096)
			next := int32(1)
			for _, v := range c.variants {
				name := v.tune.String()
				if v.gemv {
					name += "_gemv"
				}
				bm.Run(name, func(bm *testing.B) {
					v.tune.set(g)
					gpu.SetGEMV(g, v.gemv)
					defer func() {
						decodeTuning{}.set(g)
						gpu.SetGEMV(g, false)
					}()
					step := func() {
						var err error
						if next, err = s.DecodeGreedy(next); err != nil {
							bm.Fatal(err)
						}
					}
					step() // compiles the kernels
					if err := g.Synchronize(); err != nil {
						bm.Fatal(err)
					}
					rows := cache.ViewRows()
					gpu.Profile(g, true)
					bm.ResetTimer()
					for i := 0; i < bm.N; i++ {
						step()
					}
					bm.StopTimer()
					gpu.Profile(g, false)
					sec := bm.Elapsed().Seconds() / float64(bm.N)
					kv := float64(cache.ViewRows()-rows) / float64(bm.N) * rowBytes
					bm.ReportMetric(sec*1e3, "ms/token")
					bm.ReportMetric((weights+kv)/sec/1e9, "GB/s")
				})
			}
		})
	}
}

// random8B builds the Llama-3.1-8B shape with random weights (seed 1) on g.
func random8B(bm *testing.B, g *gpu.Backend) *model.Model {
	bm.Helper()
	cfg, ok, err := model.BuiltinShape("llama-3.1-8b")
	if err != nil || !ok {
		bm.Fatalf("shape llama-3.1-8b: %v", err)
	}
	m, err := model.NewRandom(cfg, g, 1)
	if err != nil {
		bm.Fatal(err)
	}
	return m
}

// prefilled opens a session of m in chunks of chunk tokens over a cache of
// the named policy, both closed when bm ends, and prefills it with n
// random tokens from rng.
func prefilled(bm *testing.B, m *model.Model, policy string, params map[string]any, chunk, n int, rng *rand.Rand) (*model.Session, *policies.Cache) {
	bm.Helper()
	s, cache, done := openSession(bm, m, policy, params, chunk)
	bm.Cleanup(done)
	if _, err := s.Prefill(context.Background(), randomIDs(rng, n, m.Vocab), nil); err != nil {
		bm.Fatal(err)
	}
	return s, cache
}

// prefillTuning is a compilation of the Hopper attention kernels that
// BenchmarkPrefillChunk times (gpu.SetWGMMATuning's options).
type prefillTuning struct {
	name               string
	pingPong, massPoly bool
}

// BenchmarkPrefillChunk times one 4,096-token prefill chunk of a random
// Llama-3.1-8B with the cascade (65,536 slots, 8 cascades, 64 sinks) once
// its cache is full, the chunk every later one costs alike, under each
// compilation of the Hopper attention kernels (the first alone elsewhere).
// It reports s/chunk and the prefill of 1M tokens that rate gives
// (256 chunks; the chunks before the cache fills cost less).
func BenchmarkPrefillChunk(bm *testing.B) {
	const chunk, size = 4096, 65536
	g := openGPU(bm, bf16)
	m := random8B(bm, g)
	rng := rand.New(rand.NewPCG(5, 6))
	s, _ := prefilled(bm, m, "cascade", map[string]any{"size": size, "cascades": 8, "sinks": 64}, chunk, size+2*chunk, rng)
	tunings := []prefillTuning{{name: "default"}}
	if gpu.HasWGMMA(g, m.HeadDim) {
		tunings = append(tunings, prefillTuning{"pingpong", true, false}, prefillTuning{"mpoly", false, true}, prefillTuning{"pingpong_mpoly", true, true})
	}
	for _, t := range tunings {
		bm.Run(t.name, func(bm *testing.B) {
			gpu.SetWGMMATuning(g, 0, true, t.pingPong, t.massPoly)
			defer gpu.SetWGMMATuning(g, 0, true, false, false)
			next := randomIDs(rng, chunk, m.Vocab)
			sec := gpu.TimeCalls(bm, g, func() {
				if _, err := s.Prefill(context.Background(), next, nil); err != nil {
					bm.Fatal(err)
				}
			})
			bm.ReportMetric(sec, "s/chunk")
			bm.ReportMetric(sec*(1<<20)/chunk, "s/1M")
		})
	}
}
