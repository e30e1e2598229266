package sweep_test

import (
	"slices"
	"testing"

	"kvcascade/experiments/sweep"
)

// TestQuickstartGrid holds configs/quickstart.toml to what its figures
// promise: passkey at 1×, 2× and 4× the tiny model's 1,024-token training
// length in five depth bins with at least 10 prompts per cell, for every
// policy; perplexity over the embedded held-out text with checkpoints from
// the first chunk (about the cache size) to the end; every bounded policy
// at the same 260 slots.
func TestQuickstartGrid(t *testing.T) {
	pts := configPoints(t, "../../configs/quickstart.toml")
	type cell struct {
		policy        string
		length, depth int
	}
	cells := map[cell]bool{}
	policies := map[string]bool{}
	budgets := map[string]int{}
	for _, p := range pts {
		policies[p.Policy] = true
		if n, ok := slotsOf(p); ok {
			budgets[p.Policy] = n
		}
		ep := p.ExperimentParams
		switch p.Experiment {
		case "passkey":
			if n := ep.Int("samples"); n < 10 {
				t.Errorf("passkey point with %d samples, want at least 10", n)
			}
			cells[cell{p.Policy, ep.Int("length"), ep.Int("depth_bin")}] = true
		case "perplexity":
			if ep.String("text") != "embedded:kjv-heldout" || ep.String("spacing") != "linear" ||
				ep.Int("from") < p.Chunk || ep.Int("tokens") < 4*1024 {
				t.Errorf("perplexity point %v: want the embedded held-out text, linear checkpoints from a chunk on, 4,096 tokens or more", ep)
			}
		}
	}
	want := []string{"bigbird", "cascade", "full", "h2o", "sink", "snapkv"}
	var got []string
	for p := range policies {
		got = append(got, p)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("policies %v, want %v", got, want)
	}
	for _, pol := range want {
		for _, l := range []int{1024, 2048, 4096} {
			for d := range 5 {
				if !cells[cell{pol, l, d}] {
					t.Errorf("no passkey cell for %s at %d tokens, depth bin %d", pol, l, d)
				}
			}
		}
		if b, ok := budgets[pol]; ok && b != 260 {
			t.Errorf("%s keeps %d slots, want 260 like the others", pol, b)
		}
	}
}

// slotsOf returns the key/value slots per KV head a bounded policy's point
// keeps, from the parameters the quickstart and the miniature set, and
// false for the other policies.
func slotsOf(p sweep.Point) (int, bool) {
	pp := p.PolicyParams
	switch p.Policy {
	case "cascade":
		return pp.Int("sinks") + pp.Int("size"), true
	case "sink":
		return pp.Int("sinks") + pp.Int("window"), true
	case "h2o":
		return pp.Int("heavy") + pp.Int("recent"), true
	case "snapkv":
		return pp.Int("budget"), true
	case "bigbird":
		return pp.Int("global") + pp.Int("window") + pp.Int("random_blocks")*pp.Int("block"), true
	}
	return 0, false
}

// configPoints loads the sweep file at path and returns its points.
func configPoints(t *testing.T, path string) []sweep.Point {
	t.Helper()
	s, err := sweep.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := s.Points()
	if err != nil {
		t.Fatal(err)
	}
	return pts
}
