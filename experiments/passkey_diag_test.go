package experiments_test

import (
	"testing"
)

// passkeyDiagRecord is the diagnostics part of a passkey sample.
type passkeyDiagRecord struct {
	Diagnostics *struct {
		Block [2]int `json:"block"`
		Heads [][]struct {
			Held  float64  `json:"held"`
			Whole bool     `json:"whole"`
			Ratio *float64 `json:"ratio"`
		} `json:"heads"`
		Held [][]int64 `json:"held"`
	} `json:"diagnostics"`
}

// TestPasskeyDiagnostics runs passkey with diagnostics on the fixture:
// full attention holds every key token in every layer and head and keeps
// no scores; h2o with a small budget holds less and scores what it holds;
// without diagnostics the metrics and records are absent.
func TestPasskeyDiagnostics(t *testing.T) {
	m, _ := loadFixture(t)
	answers := map[string][]string{}
	for _, tt := range []struct {
		policy    string
		params    map[string]any
		diag      bool
		fullyHeld bool
		ratio     bool // the policy keeps scores
		attention bool // the cache probes the question's attention
	}{
		{"full", nil, true, true, false, true},
		{"full", nil, false, false, false, false},
		{"sink", map[string]any{"budget": 100}, true, false, false, true},
		{"h2o", map[string]any{"budget": 200}, true, false, true, false},
		{"h2o", map[string]any{"budget": 200}, false, false, false, false},
	} {
		env := newEnv(t, tt.policy, tt.params)
		r := run(t, env, "passkey", map[string]any{
			"length": passkeyLength, "depth_bin": 2, "samples": 2, "words": passkeyWords(t), "max_new": 2,
			"diagnostics": tt.diag,
		})
		// Diagnostics observe: the answers are those of the run without.
		outputs := map[string][]string{}
		for i, rec := range samples[passkeyRecord](t, r) {
			outputs[tt.policy] = append(outputs[tt.policy], rec.Output)
			if prev := answers[tt.policy]; prev != nil && prev[i] != rec.Output {
				t.Errorf("%s: sample %d answers %q with diagnostics %v, %q otherwise", tt.policy, i, rec.Output, tt.diag, prev[i])
			}
		}
		answers[tt.policy] = outputs[tt.policy]
		has := map[string]bool{}
		for _, mt := range r.Metrics {
			has[mt.Name] = true
		}
		if !tt.diag {
			if has["key_held"] || has["key_whole"] || has["key_score_ratio"] || has["key_attention"] {
				t.Errorf("%s without diagnostics: metrics %v", tt.policy, r.Metrics)
			}
			for i, rec := range samples[passkeyDiagRecord](t, r) {
				if rec.Diagnostics != nil {
					t.Errorf("%s without diagnostics: sample %d has a record", tt.policy, i)
				}
			}
			continue
		}
		held, whole := metric(t, r, "key_held"), metric(t, r, "key_whole")
		if tt.fullyHeld && (held != 100 || whole != 100) {
			t.Errorf("%s: key_held %v, key_whole %v, want 100, 100", tt.policy, held, whole)
		}
		if !tt.fullyHeld && held >= 100 {
			t.Errorf("%s: key_held %v, want < 100 with %v", tt.policy, held, tt.params)
		}
		if has["key_score_ratio"] != tt.ratio {
			t.Errorf("%s: key_score_ratio present = %v, want %v", tt.policy, has["key_score_ratio"], tt.ratio)
		}
		if has["key_attention"] != tt.attention || has["key_attention_ratio"] != tt.attention {
			t.Errorf("%s: key_attention present = %v, key_attention_ratio %v, want %v", tt.policy,
				has["key_attention"], has["key_attention_ratio"], tt.attention)
		}
		if tt.attention {
			if a := metric(t, r, "key_attention"); a <= 0 || a > 100 {
				t.Errorf("%s: key_attention %v %%, want in (0, 100]", tt.policy, a)
			}
		}
		for i, rec := range samples[passkeyDiagRecord](t, r) {
			d := rec.Diagnostics
			if d == nil {
				t.Fatalf("%s: sample %d has no diagnostics", tt.policy, i)
			}
			if len(d.Heads) != m.Layers || len(d.Heads[0]) != m.KVHeads {
				t.Errorf("%s: sample %d: %d×%d heads, want %d×%d", tt.policy, i, len(d.Heads), len(d.Heads[0]), m.Layers, m.KVHeads)
			}
			if d.Block[0] <= 0 || d.Block[1] <= d.Block[0] {
				t.Errorf("%s: sample %d: key block %v", tt.policy, i, d.Block)
			}
			if (d.Held != nil) != (i == 0) || (i == 0 && len(d.Held) != m.Layers) {
				t.Errorf("%s: sample %d: retention rows %d, want %d on the first sample only", tt.policy, i, len(d.Held), m.Layers)
			}
		}
	}
}
