package gpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"kvcascade/gpu"
	"kvcascade/policies"
	"kvcascade/policies/device"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
)

// TestDeviceCascadeMatchesHost feeds the same attention mass, chunk after
// chunk, to the host cascade (package policies) and to the device one, and
// checks after every chunk that each KV head holds the same tokens with
// bit-identical scores, that the device view lists them in the same order
// with the right positions, and that the storage slot of every view entry
// holds that token's row. Some masses are rounded to a few levels so that
// ties (a newcomer equal to a cascade's newest entry) happen often.
func TestDeviceCascadeMatchesHost(t *testing.T) {
	g := openGPU(t, gpu.Options{})
	configs := []struct {
		params map[string]any
		spec   device.CascadeSpec
		hq     int
	}{
		{map[string]any{"sinks": 4, "size": 48, "cascades": 4},
			device.CascadeSpec{Sinks: 4, Size: 48, Cascades: 4, Every: []int64{1, 2, 4, 8}, Beta: 0.9999, EagerFill: true}, 8},
		{map[string]any{"sinks": 2, "size": 30, "cascades": 3, "eager_fill": false, "reduction": "max", "beta": 0.99},
			device.CascadeSpec{Sinks: 2, Size: 30, Cascades: 3, Every: []int64{1, 2, 4}, Beta: 0.99, ReduceMax: true}, 4},
		{map[string]any{"sinks": 0, "size": 40, "cascades": 5, "rule": "pow3", "homogeneous": true, "positions": "original"},
			device.CascadeSpec{Sinks: 0, Size: 40, Cascades: 5, Every: []int64{1, 3, 9, 27, 81}, Beta: 0.9999, Homogeneous: true, EagerFill: true, Original: true}, 4},
		{map[string]any{"sinks": 64, "size": 1024, "cascades": 8},
			device.CascadeSpec{Sinks: 64, Size: 1024, Cascades: 8, Every: []int64{1, 2, 4, 8, 16, 32, 64, 128}, Beta: 0.9999, EagerFill: true}, 16},
	}
	const hkv, hd = 2, 4
	for ci, c := range configs {
		t.Run(fmt.Sprint(ci), func(t *testing.T) {
			shape := policies.Shape{Layers: 1, QHeads: c.hq, KVHeads: hkv, HeadDim: hd}
			f, err := policies.New("cascade", c.params)
			if err != nil {
				t.Fatal(err)
			}
			host, err := f.NewLayer(0, shape)
			if err != nil {
				t.Fatal(err)
			}
			c.spec.QHeads, c.spec.KVHeads = c.hq, hkv
			dev, err := g.NewCascade(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			defer dev.Free()
			slots := c.spec.Sinks + c.spec.Size
			k, v := g.New(backend.F32, hkv, slots, hd), g.New(backend.F32, hkv, slots, hd)
			defer g.Free(k)
			defer g.Free(v)
			rng := rand.New(rand.NewPCG(uint64(ci), 11))
			var ctx backend.View
			var seen int64
			total := 6*slots + 100
			for step := 0; seen < int64(total); step++ {
				n := 1 + rng.IntN(3*c.spec.Size/4)
				if step%5 == 4 {
					n = 1 // decoding
				}
				st := policies.Step{Start: seen, N: n, PromptEnd: -1}
				host.Plan(st, &ctx)
				l := ctx.ViewLen
				sunk := int(min(seen, int64(c.spec.Sinks)))
				view := dev.Plan(seen, n, sunk, l)
				checkView(t, g, view, k, host, &ctx, seen, hd)
				mass := make([]float32, c.hq*(l+n))
				for i := range mass {
					mass[i] = rng.Float32()
					if step%3 == 0 {
						mass[i] = float32(math.Round(float64(mass[i]*4))) / 4
					}
				}
				gpu.SetViewMass(view, mass)
				place := make([]int32, hkv*n)
				host.Commit(mass, place)
				ck, cv := taggedRows(g, seen, n, hkv, hd)
				dev.Commit(k, v, ck, cv)
				g.Free(ck)
				g.Free(cv)
				seen += int64(n)
				sunkAfter := int(min(seen, int64(c.spec.Sinks)))
				for h := range hkv {
					want := host.Held(h, nil)[sunkAfter:]
					if got := dev.Held(h, nil); !slices.Equal(got, want) {
						t.Fatalf("after %d tokens: head %d holds %v on the device, %v on the host", seen, h, got, want)
					}
					type scorer interface {
						Scores(int, []float32) []float32
					}
					want2 := host.(scorer).Scores(h, nil)
					if got := dev.Scores(h, nil); !slices.Equal(got, want2) {
						t.Fatalf("after %d tokens: head %d scores differ:\n device %v\n host   %v", seen, h, got, want2)
					}
				}
			}
			if err := g.Synchronize(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// taggedRows returns keys and values [n, hkv·hd] of the n tokens from
// start: row i of KV head h carries its token's position (mod 251, exact
// in bf16 too) and the head, so that a cache slot's row tells which token
// it holds (holdsTag). The caller frees both.
func taggedRows(g *gpu.Backend, start int64, n, hkv, hd int) (k, v backend.Tensor) {
	rows := make([]float32, n*hkv*hd)
	for i := range n {
		for h := range hkv {
			rows[(i*hkv+h)*hd] = float32((start + int64(i)) % 251)
			rows[(i*hkv+h)*hd+1] = float32(h)
		}
	}
	return g.FromFloat32(rows, n, hkv*hd), g.FromFloat32(rows, n, hkv*hd)
}

// holdsTag reports whether row is taggedRows' row of token tok of KV head
// h.
func holdsTag(row []float32, tok int64, h int) bool {
	return row[0] == float32(tok%251) && row[1] == float32(h)
}

// checkView compares a device view with the host's plan of the same chunk
// and checks that every view entry's slot holds its token's row.
func checkView(t *testing.T, g *gpu.Backend, view backend.DeviceView, k backend.Tensor, host policies.Policy, ctx *backend.View, seen int64, hd int) {
	t.Helper()
	l := ctx.ViewLen
	if view.Len() != l {
		t.Fatalf("at %d: device view of %d, host %d", seen, view.Len(), l)
	}
	slots, pos := gpu.ViewSlots(view)
	if !slices.Equal(pos, ctx.Pos) {
		t.Fatalf("at %d: device view positions %v, host %v", seen, pos, ctx.Pos)
	}
	shape := k.Shape()
	store := make([]float32, backend.Numel(shape))
	g.Read(k, store)
	for h := range shape[0] {
		held := host.Held(h, nil)
		for j := range l {
			s := int(slots[h*l+j])
			if s < 0 || s >= shape[1] {
				t.Fatalf("at %d: head %d view entry %d in slot %d of %d", seen, h, j, s, shape[1])
			}
			row := store[(h*shape[1]+s)*hd:]
			if !holdsTag(row, held[j], h) {
				t.Fatalf("at %d: head %d view entry %d (token %d) in slot %d holds row %v", seen, h, j, held[j], s, row[:2])
			}
		}
	}
}

// hostAndDevice returns a one-layer host policy name(params) of shape and
// a one-layer Cache of the same policy on g, which must have put it on the
// device; the Cache is freed when the test ends.
func hostAndDevice(t *testing.T, g *gpu.Backend, name string, params map[string]any, shape policies.Shape) (policies.Policy, *policies.Cache) {
	t.Helper()
	f, err := policies.New(name, params)
	if err != nil {
		t.Fatal(err)
	}
	host, err := f.NewLayer(0, shape)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := policies.NewCache(g, f, shape, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Free)
	if !cache.OnDevice(0) {
		t.Fatalf("%s is not on the device", name)
	}
	return host, cache
}

// updateTagged commits the rows of taggedRows(g, seen, n, hkv, hd) to the
// first layer of cache.
func updateTagged(t *testing.T, g *gpu.Backend, cache *policies.Cache, seen int64, n, hkv, hd int) {
	t.Helper()
	ck, cv := taggedRows(g, seen, n, hkv, hd)
	defer g.Free(ck)
	defer g.Free(cv)
	if err := cache.Update(0, ck, cv, nil); err != nil {
		t.Fatal(err)
	}
}

// TestDeviceCascadeModel runs the fixtures with the cascade's bookkeeping on
// the device and on the host (Options.HostPolicies), both on the GPU: the
// same kernels compute the same mass, so logits and held tokens must be
// identical; the device run is also held to the CPU's held tokens.
func TestDeviceCascadeModel(t *testing.T) {
	for _, dt := range []backend.DType{backend.F32, backend.BF16} {
		t.Run(dt.String(), func(t *testing.T) { deviceCascadeModel(t, dt) })
	}
}

func deviceCascadeModel(t *testing.T, dt backend.DType) {
	dev := openGPU(t, gpu.Options{DType: dt})
	hostPol := openGPU(t, gpu.Options{DType: dt, HostPolicies: true})
	params := map[string]any{"sinks": 4, "size": 32, "cascades": 4}
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
			mc, err := model.Load(dir, cpu.New(0))
			if err != nil {
				t.Fatal(err)
			}
			ids := randomIDs(rand.New(rand.NewPCG(3, uint64(md.Vocab))), 130, md.Vocab)
			for _, chunk := range []int{16, 5} {
				got, gotHeld := run(t, md, "cascade", params, chunk, ids[:120], ids[120:])
				want, wantHeld := run(t, mh, "cascade", params, chunk, ids[:120], ids[120:])
				_, cpuHeld := run(t, mc, "cascade", params, chunk, ids[:120], ids[120:])
				for p := range want {
					if !slices.Equal(got[p], want[p]) {
						t.Fatalf("chunk %d: logits of position %d differ between device and host bookkeeping", chunk, p)
					}
				}
				for i := range wantHeld {
					if !slices.Equal(gotHeld[i], wantHeld[i]) {
						t.Fatalf("chunk %d: layer %d head %d holds %v with device bookkeeping, %v with host", chunk, i/md.KVHeads, i%md.KVHeads, gotHeld[i], wantHeld[i])
					}
					// float32 on both sides: the same decisions as the CPU (bf16
					// mass may tip a close call, which TestModelParity bounds)
					if dt == backend.F32 && !slices.Equal(gotHeld[i], cpuHeld[i]) {
						t.Errorf("chunk %d: layer %d head %d holds %v on the GPU, %v on the CPU", chunk, i/md.KVHeads, i%md.KVHeads, gotHeld[i], cpuHeld[i])
					}
				}
			}
		})
	}
}
