package gpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"kvcascade/gpu"
	"kvcascade/policies"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/model"
)

// TestDeviceTokenListMatchesHost feeds the same attention mass, chunk after
// chunk, to a host h2o or snapkv (package policies) and to the same policy
// with its token lists on the device (a one-layer policies.Cache on the
// GPU), and checks after every chunk that each KV head holds the same
// tokens in the same order with bit-identical scores, and before every
// chunk that the device view lists them at the host's positions with every
// view slot holding its token's row. Prompts are read in chunks of random
// length and followed by decoding, so that snapkv compresses once per
// prompt. Many masses are rounded to a few levels, or are all zero, so that
// scores tie often and the ranking falls back on recency.
func TestDeviceTokenListMatchesHost(t *testing.T) {
	g := openGPU(t, gpu.Options{})
	cases := []struct {
		name    string
		params  map[string]any
		hq      int
		prompts []int // prompt lengths, each followed by decode tokens
		decode  int
		chunk   int // longest prefill chunk
		long    bool
	}{
		{"h2o", map[string]any{"heavy": 40, "recent": 24}, 8, []int{300, 100}, 40, 50, false},
		{"h2o", map[string]any{"heavy": 0, "recent": 32}, 4, []int{200}, 20, 40, false},
		{"h2o", map[string]any{"heavy": 64, "recent": 0, "positions": "original"}, 2, []int{250}, 30, 70, false},
		{"h2o", map[string]any{"heavy": 2000, "recent": 1000}, 8, []int{7000}, 50, 1500, false},
		{"snapkv", map[string]any{"window": 16, "kernel": 7, "budget": 100}, 8, []int{400, 150, 60}, 20, 90, false},
		{"snapkv", map[string]any{"window": 4, "kernel": 1, "budget": 50, "pooling": "avg"}, 4, []int{30, 200}, 10, 64, false},
		{"snapkv", map[string]any{"window": 32, "kernel": 5, "pooling": "avg", "budget": 1500, "positions": "original"}, 4, []int{6000, 2500}, 30, 1024, false},
		{"snapkv", map[string]any{"window": 32, "kernel": 7, "budget": 4096}, 4, []int{70000}, 8, 8192, true},
	}
	const hkv, hd = 2, 4
	for ci, c := range cases {
		t.Run(fmt.Sprintf("%s%d", c.name, ci), func(t *testing.T) {
			if c.long && testing.Short() {
				t.Skip("long list")
			}
			shape := policies.Shape{Layers: 1, QHeads: c.hq, KVHeads: hkv, HeadDim: hd}
			host, cache := hostAndDevice(t, g, c.name, c.params, shape)
			type scorer interface {
				Scores(int, []float32) []float32
			}
			dev := cache.Policy(0).(scorer)
			rng := rand.New(rand.NewPCG(uint64(ci), 17))
			var hctx backend.View
			var seen int64
			step := 0
			chunk := func(n int, promptEnd int64) {
				step++
				st := policies.Step{Start: seen, N: n, PromptEnd: promptEnd}
				host.Reserve(n)
				host.Plan(st, &hctx)
				dctx, err := cache.View(0, n, promptEnd)
				if err != nil {
					t.Fatal(err)
				}
				if dctx.Device == nil {
					t.Fatal("the device policy planned no device view")
				}
				if !slices.Equal(dctx.QueryPos, hctx.QueryPos) || !slices.Equal(dctx.QueryWeights, hctx.QueryWeights) {
					t.Fatalf("at %d: query positions %v, weights %v on the device; %v, %v on the host",
						seen, dctx.QueryPos, dctx.QueryWeights, hctx.QueryPos, hctx.QueryWeights)
				}
				checkView(t, g, dctx.Device, dctx.K, host, &hctx, seen, hd)
				l := hctx.ViewLen
				var mass []float32
				if hctx.QueryWeights != nil {
					mass = make([]float32, c.hq*(l+n))
					levels := []float32{0, 0.25, 0.5, 1}
					for i := range mass {
						switch step % 4 {
						case 0:
							mass[i] = rng.Float32()
						case 1:
							mass[i] = float32(math.Round(float64(rng.Float32()*4))) / 4
						case 2:
							mass[i] = levels[rng.IntN(len(levels))]
						case 3:
							mass[i] = 0
						}
					}
					gpu.SetViewMass(dctx.Device, mass)
				}
				place := make([]int32, hkv*n)
				host.Commit(mass, place)
				updateTagged(t, g, cache, seen, n, hkv, hd)
				seen += int64(n)
				for h := range hkv {
					want := host.Held(h, nil)
					if got := cache.Held(0, h); !slices.Equal(got, want) {
						t.Fatalf("after %d tokens (step %d): head %d holds %d tokens on the device, %d on the host\n device %v\n host   %v",
							seen, step, h, len(got), len(want), clip(got), clip(want))
					}
					want2 := host.(scorer).Scores(h, nil)
					if got := dev.Scores(h, nil); !slices.Equal(got, want2) {
						at := 0
						for at < len(got) && at < len(want2) && got[at] == want2[at] {
							at++
						}
						t.Fatalf("after %d tokens (step %d): head %d scores differ first at %d of %d/%d", seen, step, h, at, len(got), len(want2))
					}
				}
			}
			for _, p := range c.prompts {
				end := seen + int64(p)
				for seen < end {
					chunk(min(1+rng.IntN(c.chunk), int(end-seen)), end)
				}
				for range c.decode {
					chunk(1, -1)
				}
			}
			if err := g.Synchronize(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// clip shortens long slices in failure messages.
func clip(s []int64) any {
	if len(s) <= 40 {
		return s
	}
	return fmt.Sprintf("%v … %v (%d)", s[:20], s[len(s)-20:], len(s))
}

// TestDeviceTokenListModel runs the fixtures with the bookkeeping of h2o,
// snapkv, full and truncated on the device and on the host
// (Options.HostPolicies), both on the GPU: the same kernels compute the
// same mass, so logits and held tokens must be identical.
func TestDeviceTokenListModel(t *testing.T) {
	deviceModel(t, []policyRun{
		{"h2o", map[string]any{"heavy": 16, "recent": 12}},
		{"h2o", map[string]any{"heavy": 24, "recent": 8, "positions": "original"}},
		{"snapkv", map[string]any{"window": 8, "kernel": 5, "budget": 40}},
		{"snapkv", map[string]any{"window": 6, "kernel": 3, "pooling": "avg", "budget": 30, "positions": "original"}},
		{"full", nil},
		{"truncated", map[string]any{"keep": 100}},
	})
}

// policyRun is a policy and its parameters.
type policyRun struct {
	policy string
	params map[string]any
}

// deviceModel runs the first fixtures through each of runs with the
// policy's bookkeeping on the device and on the host
// (Options.HostPolicies), both on the GPU, prefilling 120 tokens in chunks
// of 16 and of 5 and decoding 10, and requires identical logits and held
// tokens.
func deviceModel(t *testing.T, runs []policyRun) {
	dev := openGPU(t, gpu.Options{})
	hostPol := openGPU(t, gpu.Options{HostPolicies: true})
	for _, dir := range fixtures[:3] {
		t.Run(dir[len(dir)-5:], func(t *testing.T) {
			md, err := model.Load(dir, dev)
			if err != nil {
				t.Fatal(err)
			}
			mh, err := model.Load(dir, hostPol)
			if err != nil {
				t.Fatal(err)
			}
			shape := policies.Shape{Layers: md.Layers, QHeads: md.Heads, KVHeads: md.KVHeads, HeadDim: md.HeadDim}
			ids := randomIDs(rand.New(rand.NewPCG(5, uint64(md.Vocab))), 130, md.Vocab)
			for _, r := range runs {
				f, err := policies.New(r.policy, r.params)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range []*model.Model{md, mh} {
					c, err := policies.NewCache(m.Backend(), f, shape, backend.F32)
					if err != nil {
						t.Fatal(err)
					}
					if on := c.OnDevice(0); on != (m == md) {
						t.Errorf("%s: OnDevice %v with HostPolicies %v", r.policy, on, m == mh)
					}
					c.Free()
				}
				for _, chunk := range []int{16, 5} {
					got, gotHeld := run(t, md, r.policy, r.params, chunk, ids[:120], ids[120:])
					want, wantHeld := run(t, mh, r.policy, r.params, chunk, ids[:120], ids[120:])
					for p := range want {
						if !slices.Equal(got[p], want[p]) {
							t.Fatalf("%s %v chunk %d: logits of position %d differ between device and host bookkeeping", r.policy, r.params, chunk, p)
						}
					}
					for i := range wantHeld {
						if !slices.Equal(gotHeld[i], wantHeld[i]) {
							t.Fatalf("%s %v chunk %d: layer %d head %d holds %v with device bookkeeping, %v with host",
								r.policy, r.params, chunk, i/md.KVHeads, i%md.KVHeads, gotHeld[i], wantHeld[i])
						}
					}
				}
			}
		})
	}
}

// BenchmarkTokenList times the device bookkeeping of one layer at the
// Llama-3.1-8B shape (32 query heads, 8 KV heads): an h2o decoding step
// (heavy = recent = 2048: reduce, absorb, select over 2,049 candidates per
// head, compaction, scatter) and snapkv's compression of a 65,536-token
// prompt read in one chunk (pooling, select and compaction over 65,504
// candidates per head). The mass is already on the device, as the attention
// kernel leaves it.
func BenchmarkTokenList(bm *testing.B) {
	g := openGPU(bm, gpu.Options{})
	const hq, hkv, hd = 32, 8, 128
	shape := policies.Shape{Layers: 1, QHeads: hq, KVHeads: hkv, HeadDim: hd}
	rng := rand.New(rand.NewPCG(4, 4))
	newCache := func(bm *testing.B, name string, params map[string]any) *policies.Cache {
		f, err := policies.New(name, params)
		if err != nil {
			bm.Fatal(err)
		}
		c, err := policies.NewCache(g, f, shape, backend.F32)
		if err != nil {
			bm.Fatal(err)
		}
		return c
	}
	// chunk runs n tokens through layer 0 of c with random mass (uploaded
	// unless reuse) and rows.
	chunk := func(bm *testing.B, c *policies.Cache, n int, promptEnd int64, reuse bool, rows backend.Tensor) {
		ctx, err := c.View(0, n, promptEnd)
		if err != nil {
			bm.Fatal(err)
		}
		if reuse {
			gpu.ReuseViewMass(ctx.Device)
		} else {
			gpu.SetViewMass(ctx.Device, randSlice(rng, hq*(ctx.ViewLen+n)))
		}
		if err := c.Update(0, rows, rows, nil); err != nil {
			bm.Fatal(err)
		}
	}
	bm.Run("h2o/decode", func(bm *testing.B) {
		c := newCache(bm, "h2o", map[string]any{"heavy": 2048, "recent": 2048})
		defer c.Free()
		prompt, one := g.New(backend.F32, 4096, hkv*hd), g.New(backend.F32, 1, hkv*hd)
		defer g.Free(prompt)
		defer g.Free(one)
		chunk(bm, c, 4096, 4096, false, prompt)
		chunk(bm, c, 1, -1, false, one)
		if err := g.Synchronize(); err != nil {
			bm.Fatal(err)
		}
		bm.ResetTimer()
		for range bm.N {
			chunk(bm, c, 1, -1, true, one)
		}
		if err := g.Synchronize(); err != nil {
			bm.Fatal(err)
		}
	})
	bm.Run("snapkv/compress-65536", func(bm *testing.B) {
		const n = 65536
		prompt := g.New(backend.F32, n, hkv*hd)
		defer g.Free(prompt)
		params := map[string]any{"window": 32, "kernel": 7, "budget": 4096}
		for range bm.N {
			bm.StopTimer()
			c := newCache(bm, "snapkv", params)
			ctx, err := c.View(0, n, n)
			if err != nil {
				bm.Fatal(err)
			}
			gpu.SetViewMass(ctx.Device, randSlice(rng, hq*n))
			if err := g.Synchronize(); err != nil {
				bm.Fatal(err)
			}
			bm.StartTimer()
			if err := c.Update(0, prompt, prompt, nil); err != nil {
				bm.Fatal(err)
			}
			if err := g.Synchronize(); err != nil {
				bm.Fatal(err)
			}
			bm.StopTimer()
			c.Free()
			bm.StartTimer()
		}
	})
}

// BenchmarkPolicyChunk times one layer's per-chunk bookkeeping of the
// device policies at the Llama-3.1-8B shape (32 query heads, 8 KV heads,
// head dim 128, bf16 rows) once the cache is full, chunks of 4,096 tokens:
// the cascade (65,536 slots, 8 cascades, 64 sinks: plan, mass reduced and
// aged, the walk, the scatter) and h2o (heavy = recent = 32,768: plan,
// absorb, select, compaction, scatter). The mass is already on the device,
// as the attention kernel leaves it; ns/op is per layer and chunk.
func BenchmarkPolicyChunk(bm *testing.B) {
	g := openGPU(bm, gpu.Options{DType: backend.BF16})
	const hq, hkv, hd, n = 32, 8, 128, 4096
	shape := policies.Shape{Layers: 1, QHeads: hq, KVHeads: hkv, HeadDim: hd}
	rng := rand.New(rand.NewPCG(5, 5))
	for _, pc := range []struct {
		name   string
		policy string
		params map[string]any
	}{
		{"cascade-65536-8-64", "cascade", map[string]any{"sinks": 64, "size": 65536, "cascades": 8}},
		{"h2o-32768-32768", "h2o", map[string]any{"heavy": 32768, "recent": 32768}},
	} {
		bm.Run(pc.name, func(bm *testing.B) {
			f, err := policies.New(pc.policy, pc.params)
			if err != nil {
				bm.Fatal(err)
			}
			c, err := policies.NewCache(g, f, shape, backend.BF16)
			if err != nil {
				bm.Fatal(err)
			}
			defer c.Free()
			rows := g.New(backend.BF16, n, hkv*hd)
			defer g.Free(rows)
			seen := int64(0)
			step := func(reuse bool) {
				seen += n
				ctx, err := c.View(0, n, 1<<40)
				if err != nil {
					bm.Fatal(err)
				}
				if ctx.Device == nil {
					bm.Fatalf("%s keeps its bookkeeping on the host", pc.policy)
				}
				if reuse {
					gpu.ReuseViewMass(ctx.Device)
				} else {
					gpu.SetViewMass(ctx.Device, randSlice(rng, hq*(ctx.ViewLen+n)))
				}
				if err := c.Update(0, rows, rows, nil); err != nil {
					bm.Fatal(err)
				}
			}
			for seen < 65536+2*n { // fill the cache, then some
				step(false)
			}
			step(false) // the largest view: the mass buffer is big enough from here on
			if err := g.Synchronize(); err != nil {
				bm.Fatal(err)
			}
			bm.ResetTimer()
			for range bm.N {
				step(true)
			}
			if err := g.Synchronize(); err != nil {
				bm.Fatal(err)
			}
		})
	}
}
