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
// existed, and before the parameters added with it (passkey's format,
// score and stop_eos, h2o's reduction, snapkv's select, ...) at their defaults: resuming an
// old sweep must find its points. The pins are the hashes of the release
// before those parameters (hip_bigbird's: of its first version).
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
		"full":          "f46e52e5a5879f11bd03feea3a81612c",
		"truncated":     "ae69ff0c3bedec5000caa396e7a50eea",
		"cascade":       "58687b6dcbd3d11a3103b29db40136db",
		"cascade small": "bf9e880080a61fb732cc21d20e52273b",
		"sink":          "546af669bd7eacc9450b6aec2531b07e",
		"sink small":    "0e237151b46a9369bfc68357af3a603b",
		"h2o":           "7919f3e9bc09af5bfa07bf84760a3603",
		"h2o small":     "d10d11059ffebe52b7ef8b6a07f95811",
		"snapkv":        "8f7403cb9979209ecbab32f0da39ea6d",
		"snapkv small":  "abab0b76295b505cf35c856442550528",
		"bigbird":       "b6a3d9b397e8a75e6b8e07087db7175f",
		"hip_bigbird":   "adbdc860e32d8338b94eb1ca2e55682b",
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
