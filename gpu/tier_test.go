package gpu_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"kvcascade/gpu"
	"kvcascade/policies"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
)

// TestHostTierCopyRows checks backend.HostTier on the GPU directly: rows
// scattered into a host tensor (page-locked, mapped) read back as written,
// CopyRows from it into device storage and back into another host tensor
// moves exactly the rows its lists name (negative entries skip, the other
// rows keep their values), as the CPU backend's CopyRows does with the
// same lists; in float32 and bf16 storage. The CPU backend runs the same
// checks against itself first, so that the test's own logic runs without
// a GPU.
func TestHostTierCopyRows(t *testing.T) {
	t.Run("cpu", func(t *testing.T) { checkCopyRows(t, cpu.New(1)) })
	for _, opt := range []gpu.Options{f32, bf16} {
		t.Run(opt.DType.String(), func(t *testing.T) { checkCopyRows(t, openGPU(t, opt)) })
	}
}

// tierBackend is a backend with a host tier.
type tierBackend interface {
	backend.Backend
	backend.HostTier
}

// checkCopyRows runs TestHostTierCopyRows's checks on g.
func checkCopyRows(t *testing.T, g tierBackend) {
	c := cpu.New(1)
	const hkv, hostRows, devRows, hd, n = 3, 70, 24, 40, 9
	rng := rand.New(rand.NewPCG(11, 12))
	// the chunk written into the host tier: rows of [S, Hkv·hd]
	const S = 50
	chunk := randSlice(rng, S*hkv*hd)
	place := make([]int32, hkv*S)
	for h := range hkv {
		for i, r := range rng.Perm(hostRows)[:S] {
			place[h*S+i] = int32(r) // distinct rows per head; the others stay zero
		}
	}
	place[4] = -1
	dt := g.DType()
	host := g.NewHostTensor(dt, hkv, hostRows, hd)
	defer g.Free(host)
	dk := g.FromFloat32(chunk, S, hkv*hd)
	defer g.Free(dk)
	g.Scatter(host, dk, place)
	// the same on the CPU, from the chunk as the GPU stores it
	stored := read(g, dk)
	chost := c.NewHostTensor(backend.F32, hkv, hostRows, hd)
	c.Scatter(chost, c.FromFloat32(stored, S, hkv*hd), place)
	compare(t, "host tier after Scatter", read(g, host), read(c, chost), 0, 0)

	// rows of the host tier into device rows, per head lists
	src, dst := make([]int32, hkv*n), make([]int32, hkv*n)
	for h := range hkv {
		// distinct rows on both sides, so that the copy back below names
		// no host row twice either
		from, to := rng.Perm(hostRows), rng.Perm(devRows)
		for i := range n {
			src[h*n+i] = int32(from[i])
			dst[h*n+i] = int32(to[i])
		}
	}
	src[2], dst[n+5] = -1, -1
	init := randSlice(rng, hkv*devRows*hd)
	dev := g.FromFloat32(init, hkv, devRows, hd)
	defer g.Free(dev)
	before := read(g, dev)
	cdev := c.FromFloat32(before, hkv, devRows, hd)
	g.CopyRows(dev, host, dst, src)
	c.CopyRows(cdev, chost, dst, src)
	gotDev, wantDev := read(g, dev), read(c, cdev)
	compare(t, "device rows after CopyRows", gotDev, wantDev, 0, 0)
	// and by hand: each named row is its source row, the others
	// unchanged
	hostVals, want := read(g, host), before
	for h := range hkv {
		for i := range n {
			s, d := src[h*n+i], dst[h*n+i]
			if s < 0 || d < 0 {
				continue
			}
			copy(want[(h*devRows+int(d))*hd:(h*devRows+int(d)+1)*hd], hostVals[(h*hostRows+int(s))*hd:(h*hostRows+int(s)+1)*hd])
		}
	}
	compare(t, "device rows against the rows named", gotDev, want, 0, 0)

	// device rows back into a second host tensor
	back := g.NewHostTensor(dt, hkv, hostRows, hd)
	defer g.Free(back)
	cback := c.NewHostTensor(backend.F32, hkv, hostRows, hd)
	g.CopyRows(back, dev, src, dst)
	c.CopyRows(cback, cdev, src, dst)
	compare(t, "host rows after CopyRows from the device", read(g, back), read(c, cback), 0, 0)
}

// TestLogsearchTierParity runs logsearch with a host tier (device_tokens
// 60: 4 sinks, 2·8 staging rows, a ring of 40 for a window of 24) over a
// 300-token prompt, five times the device rows, and 20 decoded tokens, on
// the GPU (float32) and on the CPU, for every fixture and two chunkings
// (the longer chunk than the ring included), and asks for the logits
// within parityTol and the same held tokens; on the GPU it also compares
// the tiered policy with the untiered one (every token in device storage),
// which must attend to the same rows.
func TestLogsearchTierParity(t *testing.T) {
	g := openGPU(t, f32)
	ref := cpu.New(0)
	tiered := map[string]any{"sinks": 4, "window": 24, "block": 8, "topk": 2, "device_tokens": 60}
	untiered := map[string]any{"sinks": 4, "window": 24, "block": 8, "topk": 2}
	eachFixture(t, ref, g, 9, 320, func(t *testing.T, mr, md *model.Model, ids []int32) {
		prompt, more := ids[:300], ids[300:]
		for _, chunk := range []int{64, 5} {
			want, wantHeld := run(t, mr, "logsearch", tiered, chunk, prompt, more)
			got, gotHeld := run(t, md, "logsearch", tiered, chunk, prompt, more)
			flat, _ := run(t, md, "logsearch", untiered, chunk, prompt, more)
			for _, c := range []struct {
				what string
				a, b [][]float32
			}{{"GPU tiered vs CPU tiered", got, want}, {"GPU tiered vs GPU untiered", got, flat}} {
				worst, at := logitDiff(c.a, c.b)
				if !(worst <= parityTol) {
					t.Errorf("chunk %d, %s: max |Δlogit| = %.3g at position %d, want ≤ %g", chunk, c.what, worst, at, parityTol)
				} else {
					t.Logf("chunk %d, %s: max |Δlogit| = %.2g over %d positions", chunk, c.what, worst, len(c.b))
				}
			}
			for i := range wantHeld {
				if !slices.Equal(gotHeld[i], wantHeld[i]) {
					t.Errorf("chunk %d: cache %d holds %d tokens on the GPU, %d on the CPU", chunk, i, len(gotHeld[i]), len(wantHeld[i]))
					break
				}
			}
		}
	})
}

// TestLogsearchTierMemoryGPU: on the GPU the tiered cache's device
// storage stays at device_tokens rows per KV head while its host tier,
// page-locked, grows by whole segments, as Cache.Memory reports.
func TestLogsearchTierMemoryGPU(t *testing.T) {
	g := openGPU(t, f32)
	dir := fixtures[0]
	m, err := model.Load(dir, g)
	if err != nil {
		t.Fatal(err)
	}
	f, err := policies.New("logsearch", map[string]any{"sinks": 4, "window": 24, "block": 8, "topk": 2, "device_tokens": 60})
	if err != nil {
		t.Fatal(err)
	}
	shape := policies.Shape{Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim}
	c, err := policies.NewCache(g, f, shape, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Free()
	s := m.NewSession(c, 32)
	defer s.Close()
	row := int64(2 * m.KVHeads * m.HeadDim * 4 * m.Layers)
	for i := 0; i < 200; i += 32 {
		ids := make([]int32, 32)
		for j := range ids {
			ids[j] = int32((i + j*13) % m.Vocab)
		}
		if _, err := s.Forward(ids, 10000, model.NoLogits); err != nil {
			t.Fatal(err)
		}
		mem := c.Memory()
		if mem.Storage != 60*row || mem.HostStorage != 65536*row {
			t.Fatalf("after %d tokens: device %d, host tier %d bytes; want %d and %d", i+32, mem.Storage, mem.HostStorage, 60*row, 65536*row)
		}
	}
}

// logitDiff returns the largest |a−b| over all positions and where.
func logitDiff(a, b [][]float32) (worst float64, at int) {
	if len(a) != len(b) {
		return math.Inf(1), -1
	}
	for p := range b {
		for i := range b[p] {
			if d := math.Abs(float64(a[p][i] - b[p][i])); d > worst || math.IsNaN(d) {
				worst, at = d, p
			}
		}
	}
	return worst, at
}
