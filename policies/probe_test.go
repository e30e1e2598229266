package policies_test

import (
	"context"
	"math"
	"slices"
	"testing"
)

// TestProbePromptEnd probes the attention of a prompt's last token: full
// and sink hand it over once per layer, over the keys they hold plus the
// chunk, each query head's row summing to 1, without changing the logits;
// h2o, which asks for mass of its own, and bigbird, whose view is sparse,
// are not probed.
func TestProbePromptEnd(t *testing.T) {
	m := loadFixture(t, "llama")
	vocab := m.Vocab
	prompt := randomIDs(150, vocab, 7)
	const chunk = 32
	for _, tt := range []struct {
		name   string
		params map[string]any
		probed bool
	}{
		{"full", nil, true},
		{"sink", map[string]any{"sinks": 4, "window": 60}, true},
		{"h2o", map[string]any{"heavy": 32, "recent": 32}, false},
		{"bigbird", map[string]any{"budget": 64, "block": 16}, false},
	} {
		plain, _, _ := newSession(t, m, tt.name, tt.params, chunk)
		want, err := plain.Prefill(context.Background(), prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		want = slices.Clone(want)
		s, c, _ := newSession(t, m, tt.name, tt.params, chunk)
		calls := map[int]int{}
		c.ProbePromptEnd(func(l int, pos [][]int64, mass []float32) {
			calls[l]++
			w := len(pos[0])
			if len(pos) != m.KVHeads || len(mass) != m.Heads*w {
				t.Fatalf("%s layer %d: %d position lists of %d, mass of %d", tt.name, l, len(pos), w, len(mass))
			}
			if last := pos[0][w-1]; last != int64(len(prompt)-1) {
				t.Errorf("%s layer %d: last key at %d, want the prompt's last token %d", tt.name, l, last, len(prompt)-1)
			}
			if tt.name == "full" {
				for j, p := range pos[0] {
					if p != int64(j) {
						t.Fatalf("full layer %d: key %d at position %d", l, j, p)
					}
				}
			}
			for q := range m.Heads {
				var sum float64
				for _, v := range mass[q*w : (q+1)*w] {
					sum += float64(v)
				}
				if math.Abs(sum-1) > 1e-4 {
					t.Errorf("%s layer %d head %d: attention sums to %v", tt.name, l, q, sum)
				}
			}
		})
		got, err := s.Prefill(context.Background(), prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.ProbePromptEnd(nil)
		if worst, _ := maxDiff([][]float32{got}, [][]float32{want}); worst > 0 {
			t.Errorf("%s: probing changed the last logits by %g", tt.name, worst)
		}
		if tt.probed && len(calls) != m.Layers {
			t.Errorf("%s: probed layers %v, want each of %d once", tt.name, calls, m.Layers)
		}
		for l, n := range calls {
			if !tt.probed || n != 1 {
				t.Errorf("%s: layer %d probed %d times, want %v", tt.name, l, n, tt.probed)
			}
		}
	}
}
