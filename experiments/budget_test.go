package experiments_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"kvcascade/experiments"
	"kvcascade/internal/modeltest"
	"kvcascade/policies"
)

// TestPasskeyRatio: a policy given as a ratio of the prompt runs as the
// same policy given the budget it resolves to, sample by sample.
func TestPasskeyRatio(t *testing.T) {
	words := passkeyWords(t)
	raw := map[string]any{"length": passkeyLength, "depth_bin": 1, "samples": 1, "seed": 3, "words": words, "max_new": 6}
	byRatio := samples[passkeyRecord](t, run(t, newEnv(t, "h2o", map[string]any{"ratio": 0.25}), "passkey", raw))
	n := byRatio[0].PromptTokens
	b := int(math.Round(0.25 * float64(n)))
	byBudget := samples[passkeyRecord](t, run(t, newEnv(t, "heavy_hitter", map[string]any{"budget": b}), "passkey", raw))
	if byRatio[0].Output != byBudget[0].Output || byRatio[0].PromptTokens != byBudget[0].PromptTokens {
		t.Errorf("ratio 0.25 of %d tokens: %+v; budget %d: %+v", n, byRatio[0], b, byBudget[0])
	}
}

// TestPerplexityRatioFails: streaming perplexity has no prompt to take a
// ratio of, and says so.
func TestPerplexityRatioFails(t *testing.T) {
	env := newEnv(t, "sink", map[string]any{"ratio": 0.5})
	e, err := experiments.Lookup("perplexity")
	if err != nil {
		t.Fatal(err)
	}
	p, err := experiments.Resolve(e, map[string]any{"text": writeFile(t, "book.txt", strings.Repeat(pplText, 4)), "tokens": 60, "checkpoints": 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(context.Background(), env, p); err == nil || !strings.Contains(err.Error(), "give budget instead") {
		t.Errorf("perplexity with a ratio: error %v, want one asking for a budget", err)
	}
}

// TestEveryBoundedPolicyBudgetAndRatio runs a passkey prompt through every
// bounded policy of the registry on the embedded tiny model, once given a
// budget and once a ratio of the prompt, and checks that each ran the
// whole prompt: the vocabulary of issue 18 holds for every policy, not only
// for the ones its unit tests name.
func TestEveryBoundedPolicyBudgetAndRatio(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every bounded policy on the embedded model")
	}
	m, tok := modeltest.Tiny(t)
	raw := map[string]any{"length": 640, "depth_bin": 2, "samples": 1, "seed": 5, "max_new": 4}
	n := 0
	for _, s := range policies.Specs() {
		if !s.Bounded {
			continue
		}
		n++
		for _, params := range []map[string]any{{"budget": 160}, {"ratio": 0.25}} {
			t.Run(fmt.Sprintf("%s/%v", s.Name, params), func(t *testing.T) {
				f, err := policies.New(s.Name, params)
				if err != nil {
					t.Fatal(err)
				}
				env := &experiments.Env{Model: m, Tokenizer: tok, Policy: f, Chunk: 128}
				recs := samples[passkeyRecord](t, run(t, env, "passkey", raw))
				lo, hi := 600, 640 // tokens the model reads
				if s.Name == "truncated" {
					lo, hi = 150, 160 // it cuts the prompt to its budget
				}
				if len(recs) != 1 || recs[0].PromptTokens < lo || recs[0].PromptTokens > hi {
					t.Errorf("ran %+v, want one prompt of %d to %d tokens", recs, lo, hi)
				}
			})
		}
	}
	if n < 13 {
		t.Errorf("%d bounded policies, want at least 13", n)
	}
}
