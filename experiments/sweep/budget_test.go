package sweep

import "testing"

// budgetHashSweep names every policy that existed before the budget
// vocabulary, with and without its own keys.
const budgetHashSweep = head + `[[experiment]]
name = "passkey"
[[policy]]
name = "full"
[[policy]]
name = "truncated"
[[policy]]
name = "cascade"
[[policy]]
name = "cascade"
label = "cascade small"
params = { sinks = 4, size = 120, cascades = 4 }
[[policy]]
name = "sink"
[[policy]]
name = "sink"
label = "sink small"
params = { sinks = 4, window = 252 }
[[policy]]
name = "h2o"
[[policy]]
name = "h2o"
label = "h2o small"
params = { heavy = 128, recent = 128 }
[[policy]]
name = "snapkv"
[[policy]]
name = "snapkv"
label = "snapkv small"
params = { budget = 256 }
[[policy]]
name = "bigbird"
[[policy]]
name = "hip_bigbird"
`

// TestHashUnchangedByBudget pins the hashes of points that use none of the
// budget vocabulary's keys (budget, ratio) to those they had before it
// existed: resuming an old sweep must find its points.
func TestHashUnchangedByBudget(t *testing.T) {
	s, err := Parse([]byte(budgetHashSweep), "budget.toml")
	if err != nil {
		t.Fatal(err)
	}
	pts, err := s.Points()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"full":          "b0f05b4a7a6f373370dc2ade08629e8c",
		"truncated":     "21d6d0b79f23bd1ebf6484ca985bbb62",
		"cascade":       "62e1050c2f4053d3b8b4d3860cb26887",
		"cascade small": "e86620daab237603b9f47e77afb8889c",
		"sink":          "1eef03589fc91fa0bd513948dee53205",
		"sink small":    "090344179604237348146fdd9791fa2e",
		"h2o":           "884654100c849f4fa9ac2dd76aa0caec",
		"h2o small":     "c9227ac62abcab9b19ce232da1c28c45",
		"snapkv":        "b023b4523e99e346b94d278aecfaa19c",
		"snapkv small":  "43c8a118190fa9d52a8933bd7cf3977d",
		"bigbird":       "3d0b9c07dd36e494cf8e93c686759a15",
		"hip_bigbird":   "d83b71d676de17b2f8c31ddf1e46afda",
	}
	if len(pts) != len(want) {
		t.Errorf("%d points, want %d", len(pts), len(want))
	}
	for _, p := range pts {
		t.Logf("%q: %q,", p.Label, p.Hash)
		if want[p.Label] != p.Hash {
			t.Errorf("%s: hash %s, want %s", p.Label, p.Hash, want[p.Label])
		}
	}
}

// TestBudgetAxisAndAlias: budget and ratio are axes like any parameter, and
// a kvpress name runs as the policy it names, labelled as written.
func TestBudgetAxisAndAlias(t *testing.T) {
	src := head + `[[experiment]]
name = "passkey"
[[policy]]
name = "streaming_llm"
params = { budget = [128, 256] }
[[policy]]
name = "h2o"
params = { ratio = [0.25, 0.5] }
`
	_, pts := mustParse(t, src, "axis.toml")
	if len(pts) != 4 {
		t.Fatalf("%d points, want 4", len(pts))
	}
	for i, want := range []struct {
		policy, label, key string
		val                any
	}{
		{"sink", "streaming_llm", "window", 124},
		{"sink", "streaming_llm", "window", 252},
		{"h2o", "h2o", "ratio", 0.25},
		{"h2o", "h2o", "ratio", 0.5},
	} {
		p := pts[i]
		if p.Policy != want.policy || p.Label != want.label || p.PolicyParams[want.key] != want.val {
			t.Errorf("point %d: %s (%s) %v, want %s (%s) %s = %v", i, p.Policy, p.Label, p.PolicyParams,
				want.policy, want.label, want.key, want.val)
		}
	}
}
