package policies

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestAdakvSafeguardOneIsSnapkv: with a safeguard of 1 every head keeps
// its own budget − window best, which is SnapKV, from a pool instead of
// its own storage.
func TestAdakvSafeguardOneIsSnapkv(t *testing.T) {
	for _, chunks := range [][]int{{1}, {5, 64, 1, 17, 200, 2}} {
		for _, mode := range []string{"cache", "original"} {
			p := map[string]any{"window": 8, "kernel": 3, "budget": 40, "positions": mode}
			a := newHarness(t, "adakv", map[string]any{"window": 8, "kernel": 3, "budget": 40, "positions": mode, "safeguard": 1.0}, gqa)
			s := newHarness(t, "snapkv", p, gqa)
			a.mass = randomMass(rand.New(rand.NewPCG(5, 6)))
			s.mass = randomMass(rand.New(rand.NewPCG(5, 6)))
			const prompt = 700
			for i := 0; a.seen < 900; i++ {
				n, pe := chunks[i%len(chunks)], int64(prompt)
				if a.seen >= prompt {
					pe = -1
				} else {
					n = min(n, prompt-int(a.seen))
				}
				a.chunk(n, pe)
				s.chunk(n, pe)
				for kh := range gqa.KVHeads {
					if ha, hs := a.held(kh), s.held(kh); !slices.Equal(ha, hs) {
						t.Fatalf("%v at %d head %d: adakv holds %v, snapkv %v", chunks, a.seen, kh, clip(ha), clip(hs))
					}
				}
			}
		}
	}
}

// TestAdakvAllocation: after the prompt the layer holds exactly KV heads ×
// budget tokens, each head its window and at least its safeguard share,
// and the head whose queries concentrate their attention gives slots to
// the heads that spread it.
func TestAdakvAllocation(t *testing.T) {
	const budget, window, prompt = 40, 8, 600
	h := newHarness(t, "adakv", map[string]any{"window": window, "kernel": 1, "budget": budget}, gqa)
	r := rand.New(rand.NewPCG(9, 10))
	g := gqa.Group()
	// KV head 0's queries look at every 20th token, the others everywhere.
	h.mass = func(m []float32, L, n int, orig [][]int64, step Step) {
		w := L + n
		for q := 0; q*w < len(m); q++ {
			for j := range w {
				x := float32(0.01 * r.Float64())
				pos := step.Start + int64(j-L)
				if j < L {
					pos = orig[q/g][j]
				}
				if q/g == 0 && pos%20 == 0 {
					x = 1
				} else if q/g != 0 {
					x = 0.1 + 0.01*r.Float32()
				}
				m[q*w+j] = x
			}
		}
	}
	h.run(prompt, []int{64}, prompt)
	floor := (budget - window) / 5 // ⌊0.2·(budget − window)⌋
	total := 0
	counts := make([]int, gqa.KVHeads)
	for kh := range gqa.KVHeads {
		held := h.held(kh)
		counts[kh] = len(held)
		total += len(held)
		if len(held) < window+floor {
			t.Errorf("head %d holds %d, below window %d + floor %d", kh, len(held), window, floor)
		}
		if !slices.Equal(held[len(held)-window:], []int64{592, 593, 594, 595, 596, 597, 598, 599}) {
			t.Errorf("head %d does not hold its window: %v", kh, clip(held))
		}
	}
	if total != gqa.KVHeads*budget {
		t.Errorf("heads hold %v = %d, want %d × %d", counts, total, gqa.KVHeads, budget)
	}
	// Head 0 needs its 30 every-20th tokens (the window holds none of
	// them); the rest of its share goes to the others.
	if counts[0] != window+prompt/20 {
		t.Errorf("head 0 holds %d, want window + %d focused tokens (counts %v)", counts[0], prompt/20, counts)
	}
}
