package sweep_test

import (
	"slices"
	"testing"

	"kvcascade/models"
)

// TestMiniatureGrid holds configs/miniature.toml to the paper's evaluation
// in miniature: passkey at 1× to 16× the 2,052-slot cache in five depth
// bins with 20 prompts per cell, and diagnostics at 2× it, for every policy;
// perplexity over the embedded held-out text from the cache size on; every
// bounded policy at the same 2,052 slots, the cascade's as 8 cascades of
// 256, on the embedded mini model.
func TestMiniatureGrid(t *testing.T) {
	if !slices.Contains(models.Names(), "mini") {
		t.Fatalf("no embedded model mini (embedded: %v)", models.Names())
	}
	pts := configPoints(t, "../../configs/miniature.toml")
	type cell struct {
		policy        string
		length, depth int
		diagnostics   bool
	}
	cells := map[cell]bool{}
	budgets := map[string]int{}
	perplexity := 0
	for _, p := range pts {
		if p.Model.Name != "mini" {
			t.Errorf("point on model %s, want the embedded mini", p.Model.String())
		}
		if p.Backend.Name != "cuda" {
			t.Errorf("point on backend %q, want cuda", p.Backend.Name)
		}
		if n, ok := slotsOf(p); ok {
			budgets[p.Policy] = n
		}
		if pp := p.PolicyParams; p.Policy == "cascade" && pp.Int("size")/pp.Int("cascades") != 256 {
			t.Errorf("cascades of %d slots, want 256", pp.Int("size")/pp.Int("cascades"))
		}
		ep := p.ExperimentParams
		switch p.Experiment {
		case "passkey":
			if n := ep.Int("samples"); n != 20 {
				t.Errorf("passkey point with %d samples, want 20", n)
			}
			cells[cell{p.Policy, ep.Int("length"), ep.Int("depth_bin"), ep.Bool("diagnostics")}] = true
		case "perplexity":
			perplexity++
			if ep.String("text") != "embedded:kjv-heldout" || ep.Int("from") != 2048 || ep.Int("tokens") < 4*4096 {
				t.Errorf("perplexity point %v: want the embedded held-out text from the cache size to 16,384 tokens or more", ep)
			}
		}
	}
	policies := []string{"cascade", "full", "h2o", "sink", "snapkv"}
	for _, pol := range policies {
		for d := range 5 {
			for _, l := range []int{2048, 4096, 8192, 16384, 32768} {
				if !cells[cell{pol, l, d, false}] {
					t.Errorf("no passkey cell for %s at %d tokens, depth bin %d", pol, l, d)
				}
			}
			if !cells[cell{pol, 4096, d, true}] {
				t.Errorf("no passkey diagnostics cell for %s at 4,096 tokens, depth bin %d", pol, d)
			}
		}
		if b, ok := budgets[pol]; ok && b != 2052 {
			t.Errorf("%s keeps %d slots, want 2,052 like the others", pol, b)
		}
	}
	if len(budgets) != 4 || perplexity != len(policies) || len(pts) != len(cells)+perplexity {
		t.Errorf("%d bounded policies, %d perplexity points, %d points for %d passkey cells: want 4, 5 and one point a cell",
			len(budgets), perplexity, len(pts), len(cells))
	}
}
