package experiments

import (
	"context"
	"fmt"
	"kvcascade/plots/figure"
	"strings"

	"kvcascade/datasets/longbench"
	"kvcascade/policies"
	"kvcascade/policies/params"
)

// longbenchExp runs one LongBench subset from its official jsonl file.
type longbenchExp struct{}

func (longbenchExp) Name() string { return "longbench" }
func (longbenchExp) Doc() string {
	return "LongBench: one subset's official jsonl, its prompt template, generation length and metric"
}

// The budgets of longbench's budget parameter.
const (
	// budgetFixed runs every sample with the policy as configured.
	budgetFixed = "fixed"
	// budgetQuarter sizes the policy per sample from the prompt's length,
	// as the cascade paper's LongBench runs do (quarterParams).
	budgetQuarter = "quarter"
)

// The rules of longbench's newline_stop parameter, for the subsets whose
// official generation ends at a newline (samsum).
const (
	// stopCut generates to an end token or the length limit and keeps the
	// text before the first newline.
	stopCut = "cut"
	// stopOfficial ends generation at a "\n" token and forbids "\n" and the
	// end tokens as the first token (THUDM/LongBench pred.py: eos_token_id
	// with the "\n" token, min_length = prompt + 1).
	stopOfficial = "official"
)

// Figures are the figures drawn from its points.
func (longbenchExp) Figures() []figure.Kind {
	return []figure.Kind{figure.LongBenchScores}
}

func (longbenchExp) Params() []params.Param {
	return []params.Param{
		{Name: "data", Kind: "string", Default: "", Doc: "the subset's jsonl file (LongBench's official format)"},
		{Name: "subset", Kind: "string", Default: "", Doc: "subset name (default: the file's dataset field)"},
		{Name: "max_prompt", Kind: "int", Default: 0, Doc: "middle-truncate prompts to this many tokens (0: no truncation)"},
		{Name: "limit", Kind: "int", Default: 0, Doc: "samples to run at most (0: all)"},
		{Name: "chat", Kind: "string", Default: "", Doc: "chat template with {prompt} for instruct models (skipped for the subsets LongBench runs without it)"},
		{Name: "max_new", Kind: "int", Default: 0, Doc: "tokens generated (0: the subset's official length)"},
		{Name: "budget", Kind: "string", Default: budgetFixed, Choices: []string{budgetFixed, budgetQuarter},
			Doc: "fixed: the policy as configured; quarter: the cascade paper's per-sample sizing, B = 2^⌊log2(n/4)⌋ for an " +
				"n-token prompt: cascade size B, sink window B, h2o heavy = recent = B/2, snapkv budget B, bigbird and " +
				"hip_bigbird window B, truncated keeps B + 64 (cut in the text before the chat template); full unchanged", OmitDefault: true},
		{Name: "newline_stop", Kind: "string", Default: stopCut, Choices: []string{stopCut, stopOfficial},
			Doc: "for samsum: cut = generate, then keep the text before the first newline; official = stop at a newline " +
				"token, never as the first token (LongBench's pred.py)", OmitDefault: true},
	}
}

type longbenchSample struct {
	Subset       string   `json:"subset"` // the subset run, named even when the parameter was left empty
	ID           string   `json:"id"`
	Prediction   string   `json:"prediction"`
	Answers      []string `json:"answers"`
	Score        float64  `json:"score"`
	PromptTokens int      `json:"prompt_tokens"`
	Length       int      `json:"length"`
	// Budget is B of budget = "quarter" or the budget a policy `ratio` resolved to (0 otherwise) and Policy the
	// parameters it gave the policy.
	Budget int            `json:"budget,omitempty"`
	Policy map[string]any `json:"policy,omitempty"`
}

func (x longbenchExp) Run(ctx context.Context, env *Env, p params.Values) (*Result, error) {
	if err := x.check(p); err != nil {
		return nil, err
	}
	samples, err := longbench.ReadFile(p.String("data"))
	if err != nil {
		return nil, err
	}
	name, err := longbenchSubset(p.String("data"), samples, p.String("subset"))
	if err != nil {
		return nil, err
	}
	task, ok := longbench.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("experiment longbench: unknown subset %q", name)
	}
	if n := p.Int("limit"); n > 0 && n < len(samples) {
		samples = samples[:n]
	}
	maxNew := task.MaxNewTokens
	if p.Int("max_new") > 0 {
		maxNew = p.Int("max_new")
	}
	quarter := p.String("budget") == budgetQuarter
	if quarter {
		if _, err := quarterParams(env.PolicyName, 1<<20); err != nil {
			return nil, fmt.Errorf("experiment longbench: budget quarter: %w", err)
		}
	}
	rule := greedyRule{Stop: env.Model.EOS}
	official := task.StopAtNewline && p.String("newline_stop") == stopOfficial
	if official {
		nl := env.Tokenizer.Encode("\n", false)
		if len(nl) == 0 {
			return nil, fmt.Errorf("experiment longbench: the tokenizer gives no token for \"\\n\"")
		}
		rule.Stop = append(append([]int32(nil), env.Model.EOS...), nl[len(nl)-1])
		rule.BanFirst = rule.Stop
	}
	r := &Result{}
	var total float64
	for i, s := range samples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec := longbenchSample{Subset: name, ID: s.ID, Answers: s.Answers, Length: s.Length}
		var ids []int32
		policy := env.Policy
		if quarter {
			ids, policy, rec.Budget, rec.Policy, err = quarterPrompt(env, task, s, p)
		} else {
			var prompt string
			prompt, err = task.Prompt(s, env.Tokenizer, p.Int("max_prompt"), p.String("chat"))
			if err == nil {
				policy, ids, rec.Budget, err = env.ForPrompt(env.Tokenizer.Encode(prompt, true))
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", s.File, s.Line, err)
		}
		cache, err := env.newCacheOf(policy)
		if err != nil {
			return nil, err
		}
		sess := env.Model.NewSession(cache, env.Chunk)
		out, err := greedy(ctx, sess, ids, maxNew, rule)
		sess.Close()
		cache.Free()
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", s.File, s.Line, err)
		}
		pred := env.Tokenizer.Decode(out, true)
		if task.StopAtNewline && !official {
			pred, _, _ = strings.Cut(pred, "\n")
		}
		rec.Prediction, rec.PromptTokens = pred, len(ids)
		rec.Score = task.Score(pred, s.Answers, s.AllClasses)
		total += rec.Score
		if err := r.sample(rec); err != nil {
			return nil, err
		}
		env.progress(i+1, len(samples))
	}
	r.metric("score", 100*total/float64(len(samples)), "")
	r.metric("samples", float64(len(samples)), "samples")
	return r, nil
}

// quarterPrompt builds sample s's prompt and policy under budget
// "quarter". The truncated baseline is cut in the text, as the official
// pred.py:173-198 does: its budget comes from the tokens of the filled
// template alone (BOS included, no chat template), it keeps
// QuarterBudget + 64 of them, head and tail halves, and the chat template
// is applied after the cut. Every other policy takes its budget from the
// prompt as the model receives it (pred.py:255, :309), chat template
// included, truncated to max_prompt as configured.
func quarterPrompt(env *Env, task longbench.Task, s longbench.Sample, p params.Values) ([]int32, policies.Factory, int, map[string]any, error) {
	maxPrompt := p.Int("max_prompt")
	var b int
	if env.PolicyName == "truncated" {
		filled, err := longbench.Fill(task.Template, s)
		if err != nil {
			return nil, nil, 0, nil, err
		}
		b = longbench.QuarterBudget(len(env.Tokenizer.Encode(filled, true)))
		maxPrompt = b + longbench.QuarterSinks
	}
	prompt, err := task.Prompt(s, env.Tokenizer, maxPrompt, p.String("chat"))
	if err != nil {
		return nil, nil, 0, nil, err
	}
	ids := env.Tokenizer.Encode(prompt, true)
	if env.PolicyName != "truncated" {
		b = longbench.QuarterBudget(len(ids))
	}
	override, err := quarterParams(env.PolicyName, b)
	if err != nil {
		return nil, nil, 0, nil, err
	}
	f, err := env.PolicyWith(override)
	if err != nil {
		return nil, nil, 0, nil, fmt.Errorf("budget quarter (B = %d for %d prompt tokens): %w", b, len(ids), err)
	}
	return ids, f, b, override, nil
}

// quarterParams returns the parameters budget "quarter" gives the named
// policy for a budget of b tokens (longbench.QuarterBudget). The official
// sources: the cascade's max_seq_len = B with the configured sinks and
// cascades (LongBench-timber pred.py:255-282); StreamingLLM is that cascade
// with one cascade; H2O's recent and heavy-hitter sizes are B/2 each
// (LongBench-timber commit 91aa93d, pred.py:305-318); BigBird's window
// _bb_window = B (pred.py:309-313); SnapKV's max_capacity_prompt = B (as
// the official PG19 job sizes it, cascade/main/jobs/pg19.py:75); the
// truncated baseline keeps B + 64 (pred.py:178), which it applies in the
// text, so its own keep only has to let that prompt through.
func quarterParams(policy string, b int) (map[string]any, error) {
	switch policy {
	case "full":
		return map[string]any{}, nil
	case "cascade":
		return map[string]any{"size": b}, nil
	case "sink", "bigbird", "hip_bigbird":
		return map[string]any{"window": b}, nil
	case "h2o":
		return map[string]any{"heavy": b / 2, "recent": b / 2}, nil
	case "snapkv", "pyramidkv", "random", "knorm", "tova":
		// the policies of the budget vocabulary: B slots (no official rule)
		return map[string]any{"budget": b}, nil
	case "truncated":
		// the text is already cut to b + 64 tokens; the chat template adds
		// its own, which the policy must not cut again
		return map[string]any{"keep": 1 << 30}, nil
	case "":
		return nil, fmt.Errorf("the point's policy is unknown")
	}
	return nil, fmt.Errorf("no per-sample rule for policy %q (known: full, truncated, cascade, sink, h2o, snapkv, pyramidkv, random, knorm, tova, bigbird, hip_bigbird)", policy)
}
