package report

import (
	"path/filepath"
	"reflect"
	"testing"

	"kvcascade/plots"
	"kvcascade/plots/figure"
)

// TestBudgetLeaderboard: points at several budgets become one row per
// policy, averaged over the other axes weighted by samples, best mean
// first; a policy without a budget is a level; an experiment swept at one
// budget has no leaderboard.
func TestBudgetLeaderboard(t *testing.T) {
	pk := func(policy string, params map[string]any, bin int, acc, n float64) *point {
		pp := map[string]any{"length": 2048, "depth_bin": bin}
		for k, v := range params {
			pp[k] = v
		}
		return &point{experiment: "passkey", policy: policy, params: pp, metrics: map[string]float64{"accuracy": acc, "samples": n},
			figures: []figure.Kind{figure.PasskeyGrid}}
	}
	pts := []*point{
		pk("sink", map[string]any{"budget": 128.0}, 0, 0, 2),
		pk("sink", map[string]any{"budget": 128.0}, 4, 100, 2),
		pk("sink", map[string]any{"budget": 256.0}, 0, 100, 2),
		pk("sink", map[string]any{"budget": 256.0}, 4, 100, 6),
		pk("adakv", map[string]any{"budget": 128.0, "label": "Ada"}, 0, 100, 1),
		pk("adakv", map[string]any{"budget": 256.0, "label": "Ada"}, 0, 100, 1),
		pk("full", nil, 0, 50, 4),
		{experiment: "perplexity", policy: "sink", params: map[string]any{"budget": 128.0}, metrics: map[string]float64{"ppl": 9},
			figures: []figure.Kind{figure.Perplexity}},
	}
	got := budgetTables(pts)
	want := []table{{
		Title:  "Leaderboard: Passkey accuracy (%) by budget",
		Header: []string{"policy", "budget 128", "budget 256", "mean"},
		Rows: [][]string{
			{"Ada", "100.0", "100.0", "100.0"},
			{"StreamingLLM", "50.0", "100.0", "75.0"},
			{"Full attention (no budget)", "–", "–", "50.0"},
		},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("budgetTables =\n%v\nwant\n%v", got, want)
	}
	var figs []string
	err := renderBudget(pts, func(name, title, caption string, f *plots.Figure, err error) error {
		if err != nil {
			return err
		}
		figs = append(figs, name)
		return plots.Save(f, filepath.Join(t.TempDir(), name+".png"), 0, 0)
	})
	if err != nil || !reflect.DeepEqual(figs, []string{"budget_passkey"}) {
		t.Errorf("renderBudget drew %v, %v; want budget_passkey", figs, err)
	}
}
