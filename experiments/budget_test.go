package experiments_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"kvcascade/experiments"
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
