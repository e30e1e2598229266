package experiments_test

import (
	"context"
	"slices"
	"testing"

	"kvcascade/experiments"
)

// duoHeld prefills n tokens through a cache of env's policy and returns
// how many tokens each KV head of each layer holds, layer by layer.
func duoHeld(t *testing.T, env *experiments.Env, n int) []int {
	t.Helper()
	c, err := env.NewCache()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Free()
	s := env.Model.NewSession(c, env.Chunk)
	defer s.Close()
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(3 + i*7%200)
	}
	if _, err := s.Prefill(context.Background(), ids, nil); err != nil {
		t.Fatal(err)
	}
	var held []int
	for l := range env.Model.Layers {
		for h := range env.Model.KVHeads {
			held = append(held, len(c.Held(l, h)))
		}
	}
	return held
}

// TestDuoCalibration: duo's calibration on the model chooses
// round(ratio · layers · KV heads) retrieval heads, which keep every token
// while the others keep the budget; two calibrations in separate memos
// choose the same heads, and one memo serves several caches.
func TestDuoCalibration(t *testing.T) {
	params := map[string]any{"budget": 24, "retrieval_ratio": 0.5, "calib_length": 400}
	const n = 100
	a := newEnv(t, "duo", params)
	got := duoHeld(t, a, n)
	retrieval := 0
	for i, x := range got {
		switch x {
		case n:
			retrieval++
		case 24:
		default:
			t.Fatalf("layer %d KV head %d holds %d tokens, want %d or the budget 24", i/a.Model.KVHeads, i%a.Model.KVHeads, x, n)
		}
	}
	if want := (a.Model.Layers*a.Model.KVHeads + 1) / 2; retrieval != want {
		t.Errorf("%d retrieval heads (%v), want %d", retrieval, got, want)
	}
	b := newEnv(t, "duo", params)
	if again := duoHeld(t, b, n); !slices.Equal(again, got) {
		t.Errorf("a second calibration chose %v, the first %v", again, got)
	}
	b.Policy = a.Policy
	b.Calibrations = a.Calibrations
	if again := duoHeld(t, b, n); !slices.Equal(again, got) {
		t.Errorf("the shared memo gave %v, the first run %v", again, got)
	}
}

// TestDuoAllRetrievalIsFull: with every head a retrieval head, duo answers
// the passkey prompts as full attention does.
func TestDuoAllRetrievalIsFull(t *testing.T) {
	raw := map[string]any{"length": 400, "samples": 2}
	full := run(t, newEnv(t, "full", nil), "passkey", raw)
	duo := run(t, newEnv(t, "duo", map[string]any{"budget": 16, "retrieval_ratio": 1.0, "calib_length": 400}), "passkey", raw)
	if len(full.Samples) != len(duo.Samples) {
		t.Fatalf("%d and %d samples", len(full.Samples), len(duo.Samples))
	}
	for i := range full.Samples {
		if string(full.Samples[i]) != string(duo.Samples[i]) {
			t.Errorf("sample %d: full %s\nduo %s", i, full.Samples[i], duo.Samples[i])
		}
	}
}
