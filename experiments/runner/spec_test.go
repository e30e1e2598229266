package runner

import (
	"encoding/json"
	"testing"

	"kvcascade/experiments/sweep"
	"kvcascade/results"
)

// TestPointSpecFlattensAsBefore: what the runner stores (settings,
// experiment and policy parameters apart) joins back, through
// results.Flatten, into the one object it stored before they were split:
// the sweep's flat form less model, experiment, label and policy, plus
// policy_name where a label differs. So exports, and the split of old
// databases, agree with the parameters as the sweep names them.
func TestPointSpecFlattensAsBefore(t *testing.T) {
	src := `name = "t"
[backend]
name = "cuda"
dtype = "f32"
[[model]]
name = "tiny"
[[experiment]]
name = "passkey"
params = { length = [64, 128], seed = 3 }
[[experiment]]
name = "perplexity"
params = { text = "embedded:kjv-heldout" }
[[policy]]
name = "bigbird"
label = "BB"
params = { seed = 7 }
[[policy]]
name = "cascade"
params = { size = [64, 128] }
`
	s, err := sweep.Parse([]byte(src), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	pts, err := s.Points()
	if err != nil {
		t.Fatal(err)
	}
	prefixed, options := 0, 0
	for _, p := range pts {
		spec, err := pointSpec(p)
		if err != nil {
			t.Fatal(err)
		}
		settings, err := json.Marshal(spec.Params)
		if err != nil {
			t.Fatal(err)
		}
		got, err := results.Flatten(settings, spec.ExperimentParams, spec.PolicyParams)
		if err != nil {
			t.Fatal(err)
		}
		want := p.Params()
		for _, k := range []string{"model", "experiment", "label", "policy"} {
			delete(want, k)
		}
		if p.Label != p.Policy {
			want["policy_name"] = p.Policy
		}
		wantJSON, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if json.Unmarshal(got, &g) != nil || json.Unmarshal(wantJSON, &w) != nil || string(mustJSON(t, g)) != string(mustJSON(t, w)) {
			t.Errorf("%s %s: flattened\n%s\nwant\n%s", p.Experiment, p.Label, got, wantJSON)
		}
		if _, ok := want["policy.seed"]; ok {
			prefixed++
		}
		if _, ok := want["backend_options"]; ok {
			options++
		}
		if len(spec.Figures) == 0 {
			t.Errorf("%s: no figures stored", p.Experiment)
		}
	}
	if prefixed == 0 || options == 0 {
		t.Errorf("the sweep tried no prefixed parameter (%d) or no backend options (%d)", prefixed, options)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
