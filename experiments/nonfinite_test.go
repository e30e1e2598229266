package experiments_test

import (
	"context"
	"strings"
	"testing"

	"kvcascade/experiments"
	"kvcascade/internal/modeltest"
	"kvcascade/policies"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
)

// overflowEnv returns an environment on a copy of the fixture whose final
// norm weights are 3.4e38: finite, so the model loads, but every logit
// overflows to ±Inf or NaN.
func overflowEnv(t *testing.T) *experiments.Env {
	t.Helper()
	dir := modeltest.EditedCopy(t, fixtureDir, modeltest.Fill("model.norm.weight", 3.4e38))
	m, err := model.Load(dir, cpu.New(1))
	if err != nil {
		t.Fatal(err)
	}
	_, tok := loadFixture(t)
	pol, err := policies.New("full", nil)
	if err != nil {
		t.Fatal(err)
	}
	return &experiments.Env{Model: m, Tokenizer: tok, Policy: pol, Chunk: 16}
}

// TestNonFiniteLogitsFailThePoint runs every generating experiment on a
// model whose logits overflow: each must fail naming the non-finite logits,
// the generation step and where they first appeared, instead of scoring
// the argmax of NaN (token 0) as an answer.
func TestNonFiniteLogitsFailThePoint(t *testing.T) {
	trec := writeFile(t, "trec.jsonl", `{"input": "Who built the mill?", "context": "Question: Who founded the city?\nType: Human being", "answers": ["Human being"], "all_classes": ["Human being", "Location"], "length": 9, "dataset": "trec", "language": "en", "_id": "a"}`+"\n")
	cases := []struct {
		exp  string
		raw  map[string]any
		want []string
	}{
		{"passkey", map[string]any{"length": passkeyLength, "samples": 2, "words": passkeyWords(t), "max_new": 4},
			[]string{"sample 0", "generation step 0", "non-finite logits", "model.norm output"}},
		{"longbench", map[string]any{"data": trec},
			[]string{"trec.jsonl line 1", "generation step 0", "non-finite logits", "model.norm output"}},
		{"perplexity", map[string]any{"text": writeFile(t, "text.txt", strings.Repeat("the mill by the river turns ", 20)), "tokens": 40},
			[]string{"non-finite logits", "model.norm output"}},
		{"latency", map[string]any{"length": 32, "decode_tokens": 4, "warmup": false},
			[]string{"non-finite logits"}},
	}
	for _, c := range cases {
		t.Run(c.exp, func(t *testing.T) {
			e, err := experiments.Lookup(c.exp)
			if err != nil {
				t.Fatal(err)
			}
			p, err := experiments.Resolve(e, c.raw)
			if err != nil {
				t.Fatalf("resolve %v: %v", c.raw, err)
			}
			r, err := e.Run(context.Background(), overflowEnv(t), p)
			if err == nil {
				t.Fatalf("%s on overflowing weights succeeded: %+v", c.exp, r)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}
