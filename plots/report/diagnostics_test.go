package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"kvcascade/plots/figure"
	"kvcascade/results"
)

// TestRenderDiagnostics stores two passkey points run with diagnostics
// (records as experiments/passkey_diag.go writes them) and one without,
// and checks the diagnostics figures are drawn for the first two only.
func TestRenderDiagnostics(t *testing.T) {
	dir := t.TempDir()
	db, err := results.Open(filepath.Join(dir, "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	id, err := db.EnsureSweep("d", "name = \"d\"\n")
	if err != nil {
		t.Fatal(err)
	}
	const first = `{"index":0,"prompt_tokens":100,"correct":true,"diagnostics":{"block":[40,60],"filler":[5,95],` +
		`"heads":[[{"held":1,"whole":true,"attention":0.25},{"held":0.5,"whole":false,"ratio":2,"attention":0.5}]],"held":[[0,1,40,41,42,90,99]]}}`
	const second = `{"index":1,"prompt_tokens":100,"correct":false,"diagnostics":{"block":[40,60],"filler":[5,95],` +
		`"heads":[[{"held":0,"whole":false},{"held":0.25,"whole":false}]]}}`
	declared := figure.Strings([]figure.Kind{figure.PasskeyGrid, figure.KeyMaps})
	specs := []results.PointSpec{
		{Hash: "a", Experiment: "passkey", Model: "m", Policy: "sink", Params: map[string]any{"depth_bin": 0, "length": 100, "diagnostics": true}, Figures: declared},
		{Hash: "b", Experiment: "passkey", Model: "m", Policy: "h2o", Params: map[string]any{"depth_bin": 3, "length": 100, "diagnostics": true}, Figures: declared},
		{Hash: "c", Experiment: "passkey", Model: "m", Policy: "full", Params: map[string]any{"depth_bin": 1, "length": 100}, Figures: declared},
	}
	if _, err := db.AddPoints(id, specs); err != nil {
		t.Fatal(err)
	}
	for range specs {
		c, err := db.Claim(id, "w")
		if err != nil || c == nil {
			t.Fatalf("claim: %v", err)
		}
		o := results.Outcome{Metrics: []results.Metric{{Name: "accuracy", Value: 50, Unit: "%"}, {Name: "samples", Value: 2}}}
		if c.Hash != "c" {
			o.Samples = []json.RawMessage{json.RawMessage(first), json.RawMessage(second)}
		}
		if err := db.Finish(c, o); err != nil {
			t.Fatal(err)
		}
	}
	figs, err := Render(db, "d", dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range figs {
		got[f.Name] = true
	}
	for _, name := range []string{"diagnostics_key_held", "diagnostics_key_whole", "diagnostics_key_attention", "diagnostics_retention_bin0", "diagnostics_retention_bin3"} {
		if !got[name] {
			t.Errorf("figure %s not drawn (drew %v)", name, got)
		} else if st, err := os.Stat(filepath.Join(dir, name+".png")); err != nil || st.Size() < 1000 {
			t.Errorf("figure %s.png: %v", name, err)
		}
	}
	if got["diagnostics_retention_bin1"] {
		t.Error("a retention map for the point without diagnostics")
	}
}
