package experiments

import (
	"context"
	"slices"
	"testing"

	"kvcascade/policies"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
)

// TestGreedyRule checks the official samsum rule on the fixture model: a
// banned first token is never produced first (its place goes to the
// runner-up), and decoding ends right after a stop token.
func TestGreedyRule(t *testing.T) {
	m, err := model.Load("../runtime/model/testdata/llama", cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	f, err := policies.New("full", nil)
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Model: m, Policy: f}
	gen := func(rule greedyRule, maxNew int) []int32 {
		t.Helper()
		c, err := env.NewCache()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Free()
		s := m.NewSession(c, 8)
		defer s.Close()
		out, err := greedy(context.Background(), s, []int32{1, 40, 41, 42, 43, 44, 45}, maxNew, rule)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	free := gen(greedyRule{}, 6)
	if len(free) != 6 {
		t.Fatalf("unconstrained: %d tokens, want 6", len(free))
	}
	banned := gen(greedyRule{BanFirst: free[:1]}, 6)
	if banned[0] == free[0] {
		t.Errorf("first token %d was banned but produced", banned[0])
	}
	// the stop token ends decoding, and is kept
	stopped := gen(greedyRule{Stop: []int32{free[2]}}, 6)
	if i := slices.Index(free, free[2]); !slices.Equal(stopped, free[:i+1]) {
		t.Errorf("stop at %d: got %v from %v, want %v", free[2], stopped, free, free[:i+1])
	}
	// a stop token that is also banned first is skipped as the first token
	both := gen(greedyRule{Stop: free[:1], BanFirst: free[:1]}, 6)
	if both[0] == free[0] || len(both) == 0 {
		t.Errorf("stop and ban %d: got %v", free[0], both)
	}
}
