package gpu_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"kvcascade/gpu"
	"kvcascade/policies"
	"kvcascade/runtime/backend"
)

// TestDevicePatternMatchesHost runs sink, bigbird and hip_bigbird with
// their views laid out on the device (a one-layer policies.Cache on the
// GPU) beside the same host policy, and checks before every chunk that the
// device view has the host view's slots and positions, and after every
// chunk that both hold the same tokens and that every slot the host has
// filled holds its token's row on the device. Prompts are read in chunks of
// random length, some longer than sink's window (so that a chunk's tokens
// displace each other in the ring), and long enough that bigbird draws its
// random blocks, then decoding follows.
func TestDevicePatternMatchesHost(t *testing.T) {
	g := openGPU(t, gpu.Options{})
	cases := []struct {
		name           string
		params         map[string]any
		hq             int
		prompt, decode int
		chunk          int // longest prefill chunk
	}{
		{"sink", map[string]any{"sinks": 4, "window": 64}, 8, 500, 40, 100},
		{"sink", map[string]any{"sinks": 0, "window": 7, "positions": "original"}, 4, 200, 20, 30},
		{"sink", map[string]any{"sinks": 300, "window": 16}, 2, 400, 10, 50},
		{"bigbird", map[string]any{"global": 4, "window": 32, "random_blocks": 3, "block": 8}, 8, 600, 30, 90},
		{"bigbird", map[string]any{"global": 0, "window": 10, "random_blocks": 50, "block": 3, "seed": 9, "positions": "original"}, 4, 400, 20, 64},
		{"hip_bigbird", map[string]any{"window": 64, "sinks": 16, "block": 2}, 8, 700, 30, 64},
		{"hip_bigbird", map[string]any{"window": 2048, "sinks": 16}, 4, 5000, 8, 1024},
	}
	const hkv, hd = 2, 4
	for ci, c := range cases {
		t.Run(fmt.Sprintf("%s%d", c.name, ci), func(t *testing.T) {
			shape := policies.Shape{Layers: 1, QHeads: c.hq, KVHeads: hkv, HeadDim: hd}
			host, cache := hostAndDevice(t, g, c.name, c.params, shape)
			rng := rand.New(rand.NewPCG(uint64(ci), 23))
			stored := make([][]int64, hkv) // per head, the token the host put in each slot (−1: none)
			var hctx backend.View
			var seen int64
			chunk := func(n int, promptEnd int64) {
				st := policies.Step{Start: seen, N: n, PromptEnd: promptEnd}
				host.Reserve(n)
				host.Plan(st, &hctx)
				dctx, err := cache.View(0, n, promptEnd)
				if err != nil {
					t.Fatal(err)
				}
				if dctx.Device == nil || dctx.QueryWeights != nil {
					t.Fatalf("at %d: device view %v, %d query weights", seen, dctx.Device != nil, len(dctx.QueryWeights))
				}
				if !slices.Equal(dctx.QueryPos, hctx.QueryPos) || dctx.Device.Len() != hctx.ViewLen {
					t.Fatalf("at %d: %d keys from query position %v on the device; %d from %v on the host",
						seen, dctx.Device.Len(), dctx.QueryPos, hctx.ViewLen, hctx.QueryPos)
				}
				slots, pos := gpu.ViewSlots(dctx.Device)
				for j := range hctx.Slots {
					if slots[j] != hctx.Slots[j] || pos[j] != hctx.Pos[j] {
						t.Fatalf("at %d: head %d view key %d of %d in slot %d at position %d on the device, slot %d at %d on the host",
							seen, j/hctx.ViewLen, j%hctx.ViewLen, hctx.ViewLen, slots[j], pos[j], hctx.Slots[j], hctx.Pos[j])
					}
				}
				place := make([]int32, hkv*n)
				host.Commit(nil, place)
				for h := range hkv {
					for i, s := range place[h*n : (h+1)*n] {
						if s < 0 {
							continue
						}
						for int(s) >= len(stored[h]) {
							stored[h] = append(stored[h], -1)
						}
						stored[h][s] = seen + int64(i)
					}
				}
				updateTagged(t, g, cache, seen, n, hkv, hd)
				seen += int64(n)
				for h := range hkv {
					if got, want := cache.Held(0, h), host.Held(h, nil); !slices.Equal(got, want) {
						t.Fatalf("after %d tokens: head %d holds %v on the device, %v on the host", seen, h, clip(got), clip(want))
					}
				}
				sh := dctx.K.Shape()
				store := make([]float32, backend.Numel(sh))
				g.Read(dctx.K, store)
				for h := range hkv {
					for s, tok := range stored[h] {
						row := store[(h*sh[1]+s)*hd:]
						if tok >= 0 && !holdsTag(row, tok, h) {
							t.Fatalf("after %d tokens: head %d slot %d holds row %v, want token %d's", seen, h, s, row[:2], tok)
						}
					}
				}
			}
			end := int64(c.prompt)
			for seen < end {
				chunk(min(1+rng.IntN(c.chunk), int(end-seen)), end)
			}
			for range c.decode {
				chunk(1, -1)
			}
			if err := g.Synchronize(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDevicePatternModel runs the fixtures with the views of sink,
// bigbird and hip_bigbird laid out on the device and on the host
// (Options.HostPolicies), both on the GPU: logits and held tokens must be
// identical.
func TestDevicePatternModel(t *testing.T) {
	deviceModel(t, []policyRun{
		{"sink", map[string]any{"sinks": 4, "window": 24}},
		{"sink", map[string]any{"sinks": 2, "window": 9, "positions": "original"}},
		{"bigbird", map[string]any{"global": 4, "window": 16, "random_blocks": 3, "block": 4}},
		{"bigbird", map[string]any{"global": 2, "window": 12, "random_blocks": 2, "block": 5, "seed": 3, "positions": "original"}},
		{"hip_bigbird", map[string]any{"window": 32, "sinks": 4, "block": 2}},
	})
}
