package experiments_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
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
