package experiments_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/datasets/longbench"
	"kvcascade/datasets/passkey"
	"kvcascade/experiments"
	"kvcascade/policies"
)

// paperEnv is newEnv with the policy's name and parameters set, as the
// runner sets them, so that experiments can resize the policy per sample.
func paperEnv(t *testing.T, policy string, params map[string]any) *experiments.Env {
	t.Helper()
	env := newEnv(t, policy, params)
	env.PolicyName, env.PolicyParams = policy, params
	return env
}

// quarterRecord is a per-sample record of longbench under budget "quarter".
type quarterRecord struct {
	longbenchRecord
	Budget int            `json:"budget"`
	Policy map[string]any `json:"policy"`
}

// officialChat is the Llama-3 chat template of the official LongBench run
// (LongBench-timber, branch cascade, pred.py:113), system turn included.
const officialChat = "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>" +
	"<|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"

// writeNarrativeQA writes n narrativeqa records whose contexts grow, so
// that their prompts fall into different quarter budgets.
func writeNarrativeQA(t *testing.T, n int) string {
	t.Helper()
	var lines []string
	for i := range n {
		ctx := strings.Repeat("The miller walked along the river to the old stone bridge. ", 4+6*i)
		b, err := json.Marshal(map[string]any{
			"input": "Where did the miller walk?", "context": ctx, "answers": []string{"to the bridge"},
			"all_classes": nil, "length": len(strings.Fields(ctx)), "dataset": "narrativeqa", "_id": fmt.Sprintf("nq-%d", i),
		})
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	return writeFile(t, "narrativeqa.jsonl", strings.Join(lines, "\n")+"\n")
}

// TestLongBenchQuarter pins budget = "quarter": every policy is rebuilt per
// sample from its prompt's length n with B = 2^⌊log2(n/4)⌋, and the
// truncated baseline cuts the filled template to B + 64 tokens before the
// chat template.
func TestLongBenchQuarter(t *testing.T) {
	data := writeNarrativeQA(t, 3)
	_, tok := loadFixture(t)
	raw, err := longbench.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	task, _ := longbench.Lookup("narrativeqa")
	for _, c := range []struct {
		policy string
		params map[string]any
		want   func(b int) map[string]any
	}{
		{"cascade", map[string]any{"sinks": 4, "cascades": 4}, func(b int) map[string]any { return map[string]any{"size": b} }},
		{"sink", map[string]any{"sinks": 4}, func(b int) map[string]any { return map[string]any{"window": b} }},
		{"h2o", nil, func(b int) map[string]any { return map[string]any{"heavy": b / 2, "recent": b / 2} }},
		{"full", nil, func(int) map[string]any { return nil }},
		{"truncated", map[string]any{"mode": "middle"}, func(int) map[string]any { return map[string]any{"keep": 1 << 30} }},
	} {
		t.Run(c.policy, func(t *testing.T) {
			r := run(t, paperEnv(t, c.policy, c.params), "longbench",
				map[string]any{"data": data, "budget": "quarter", "chat": officialChat, "max_new": 2})
			recs := samples[quarterRecord](t, r)
			if len(recs) != len(raw) {
				t.Fatalf("%d records, want %d", len(recs), len(raw))
			}
			budgets := map[int]bool{}
			for i, rec := range recs {
				n := rec.PromptTokens
				want := longbench.QuarterBudget(n)
				if c.policy == "truncated" {
					filled, err := longbench.Fill(task.Template, raw[i])
					if err != nil {
						t.Fatal(err)
					}
					full := len(tok.Encode(filled, true))
					want = longbench.QuarterBudget(full)
					chat := len(tok.Encode(strings.Replace(officialChat, "{prompt}", "", 1), true))
					if keep := want + longbench.QuarterSinks; full > keep && n > keep+chat+2 {
						t.Errorf("record %d: %d prompt tokens after cutting %d to %d (+ %d of chat template)", i, n, full, keep, chat)
					}
				}
				if rec.Budget != want {
					t.Errorf("record %d: budget %d for %d prompt tokens, want %d", i, rec.Budget, n, want)
				}
				if got, w := jsonOf(t, rec.Policy), jsonOf(t, c.want(want)); len(c.want(want)) > 0 && got != w {
					t.Errorf("record %d: policy parameters %s, want %s", i, got, w)
				}
				budgets[rec.Budget] = true
			}
			if len(budgets) < 2 {
				t.Errorf("every sample got the same budget %v: the test's prompts do not exercise the per-sample rule", budgets)
			}
		})
	}
}

// TestLongBenchQuarterErrors: a policy the rule does not know, or an Env
// without the policy's name, is an error, not a silent fixed budget.
func TestLongBenchQuarterErrors(t *testing.T) {
	data := writeNarrativeQA(t, 1)
	e, _ := experiments.Lookup("longbench")
	p, err := experiments.Resolve(e, map[string]any{"data": data, "budget": "quarter"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(context.Background(), newEnv(t, "sink", nil), p); err == nil || !strings.Contains(err.Error(), "quarter") {
		t.Errorf("no policy name: error %v, want one about the quarter budget", err)
	}
	f, err := policies.New("full", nil)
	if err != nil {
		t.Fatal(err)
	}
	env := newEnv(t, "full", nil)
	env.Policy, env.PolicyName = f, "mystery"
	if _, err := e.Run(context.Background(), env, p); err == nil || !strings.Contains(err.Error(), "mystery") {
		t.Errorf("unknown policy: error %v, want one naming it", err)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// passkeyOfficialRecord is a per-sample record of passkey.
type passkeyOfficialRecord struct {
	Key          string `json:"key"`
	PromptTokens int    `json:"prompt_tokens"`
	Output       string `json:"output"`
	Correct      bool   `json:"correct"`
	Digits       int    `json:"digits"`
	KeyToken     int    `json:"key_token"`
}

// TestPasskeyOfficial runs format = "official" with score = "digits" on the
// fixture: prompts of exactly the asked length with the key block where the
// dataset put it, the per-digit score as the headline, exact match beside
// it, both the means of the records.
func TestPasskeyOfficial(t *testing.T) {
	const length = 2000
	words := "../datasets/passkey/testdata/words.txt"
	env := newEnv(t, "full", nil)
	r := run(t, env, "passkey", map[string]any{
		"format": "official", "score": "digits", "stop_eos": false, "max_new": 6,
		"length": length, "depth_bin": 2, "samples": 2, "seed": 5, "words": words,
	})
	recs := samples[passkeyOfficialRecord](t, r)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	var digits, correct int
	bos := env.Tokenizer.Encode("", true)
	prefix := len(env.Tokenizer.Encode(passkey.OfficialPrefix, true))
	for i, rec := range recs {
		if rec.PromptTokens != length {
			t.Errorf("record %d: %d prompt tokens, want exactly %d", i, rec.PromptTokens, length)
		}
		// the official index is into the filler, so the prefix shifts it
		if lo, hi := prefix+length*2/5, prefix+length*3/5; rec.KeyToken < lo || rec.KeyToken >= hi {
			t.Errorf("record %d: key block at token %d, outside bin 2's [%d, %d)", i, rec.KeyToken, lo, hi)
		}
		if want := passkey.DigitScore(rec.Key, rec.Output); rec.Digits != want {
			t.Errorf("record %d: digits %d, DigitScore gives %d", i, rec.Digits, want)
		}
		digits += rec.Digits
		if rec.Correct {
			correct++
		}
	}
	if len(bos) != 1 {
		t.Fatalf("fixture tokenizer adds %d special tokens, want one BOS", len(bos))
	}
	if got, want := metric(t, r, "score"), 100*float64(digits)/10; math.Abs(got-want) > 1e-9 {
		t.Errorf("score %v, want the per-digit mean %v", got, want)
	}
	if got, want := metric(t, r, "digit_accuracy"), metric(t, r, "score"); got != want {
		t.Errorf("digit_accuracy %v, score %v", got, want)
	}
	if got, want := metric(t, r, "accuracy"), 100*float64(correct)/2; math.Abs(got-want) > 1e-9 {
		t.Errorf("accuracy %v, want the exact-match mean %v", got, want)
	}
	// a template is refused: the official prompt brings its headers
	e, _ := experiments.Lookup("passkey")
	p, err := experiments.Resolve(e, map[string]any{"format": "official", "template": "{prompt}", "words": words, "length": length})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(context.Background(), env, p); err == nil {
		t.Error("format official with a template: no error")
	}
}

// bookRecord is a per-document record of perplexity with books = "each".
type bookRecord struct {
	Book   string      `json:"book"`
	Doc    int         `json:"doc"`
	Tokens int64       `json:"tokens"`
	NLL    float64     `json:"nll"`
	PPL    float64     `json:"ppl"`
	Curve  []pplRecord `json:"curve"`
}

// TestPerplexityBooks pins books = "each": a document at or below
// min_tokens is skipped; every other one goes through a fresh cache (two
// copies of one book score exactly alike, and like the book streamed
// alone); the perplexity weighs the documents by their tokens.
func TestPerplexityBooks(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat(pplText, 3)
	other := strings.Repeat("The ferryman counted the boats that crossed the water before the storm came in. ", 12)
	files := map[string]string{"a.txt": "A short note.", "b.txt": long, "c.txt": long, "d.txt": other}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	params := map[string]any{"sinks": 4, "window": 28}
	env := newEnv(t, "sink", params)
	short := len(env.Tokenizer.Encode(files["a.txt"], true))
	r := run(t, env, "perplexity", map[string]any{"text": dir, "books": "each", "tokens": 0, "min_tokens": short, "checkpoints": 4})
	if got := metric(t, r, "books"); got != 3 {
		t.Errorf("books %v, want 3 (a.txt has %d tokens, not more than min_tokens)", got, short)
	}
	if got := metric(t, r, "skipped"); got != 1 {
		t.Errorf("skipped %v, want 1", got)
	}
	recs := samples[bookRecord](t, r)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	b, c, d := recs[0], recs[1], recs[2]
	if filepath.Base(b.Book) != "b.txt" || filepath.Base(d.Book) != "d.txt" || b.Doc != 1 {
		t.Errorf("records name %s (doc %d), %s, %s", b.Book, b.Doc, c.Book, d.Book)
	}
	if b.NLL != c.NLL || b.Tokens != c.Tokens {
		t.Errorf("two copies of one book: NLL %v over %d and %v over %d; a cache carried over?", b.NLL, b.Tokens, c.NLL, c.Tokens)
	}
	n := len(env.Tokenizer.Encode(long, true))
	if b.Tokens != int64(n-1) {
		t.Errorf("book b: %d tokens scored, want all but the first of %d", b.Tokens, n)
	}
	alone := run(t, newEnv(t, "sink", params), "perplexity", map[string]any{"text": filepath.Join(dir, "b.txt"), "tokens": n})
	if got := metric(t, alone, "nll"); math.Abs(got-b.NLL) > 1e-12 {
		t.Errorf("book b: NLL %v, streamed alone %v", b.NLL, got)
	}
	var sum, tokens float64
	for _, rec := range recs {
		sum += rec.NLL * float64(rec.Tokens)
		tokens += float64(rec.Tokens)
		if last := rec.Curve[len(rec.Curve)-1]; last.Tokens != rec.Tokens || math.Abs(last.NLL-rec.NLL) > 1e-12 {
			t.Errorf("%s: curve ends at %d tokens, NLL %v; record %d, %v", rec.Book, last.Tokens, last.NLL, rec.Tokens, rec.NLL)
		}
	}
	if got := metric(t, r, "nll"); math.Abs(got-sum/tokens) > 1e-12 {
		t.Errorf("nll %v, token-weighted mean %v", got, sum/tokens)
	}
	if mean := (b.NLL + c.NLL + d.NLL) / 3; math.Abs(mean-sum/tokens) < 1e-9 {
		t.Error("the books weigh alike: the test cannot tell token weighting from a plain mean")
	}
	if got := metric(t, r, "tokens"); got != tokens {
		t.Errorf("tokens %v, want %v", got, tokens)
	}
	// nothing long enough is an error naming the filter
	e, _ := experiments.Lookup("perplexity")
	p, err := experiments.Resolve(e, map[string]any{"text": dir, "books": "each", "tokens": 0, "min_tokens": 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(context.Background(), env, p); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("no long book: error %v", err)
	}
}
