package experiments

import (
	"context"
	"fmt"
	"strings"

	"kvcascade/datasets/longbench"
	"kvcascade/policies/params"
)

// longbenchExp runs one LongBench subset from its official jsonl file.
type longbenchExp struct{}

func (longbenchExp) Name() string { return "longbench" }
func (longbenchExp) Doc() string {
	return "LongBench: one subset's official jsonl, its prompt template, generation length and metric"
}

func (longbenchExp) Params() []params.Param {
	return []params.Param{
		{Name: "data", Kind: "string", Default: "", Doc: "the subset's jsonl file (LongBench's official format)"},
		{Name: "subset", Kind: "string", Default: "", Doc: "subset name (default: the file's dataset field)"},
		{Name: "max_prompt", Kind: "int", Default: 0, Doc: "middle-truncate prompts to this many tokens (0: no truncation)"},
		{Name: "limit", Kind: "int", Default: 0, Doc: "samples to run at most (0: all)"},
		{Name: "chat", Kind: "string", Default: "", Doc: "chat template with {prompt} for instruct models (skipped for the subsets LongBench runs without it)"},
		{Name: "max_new", Kind: "int", Default: 0, Doc: "tokens generated (0: the subset's official length)"},
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
}

func (x longbenchExp) Run(ctx context.Context, env *Env, p params.Values) (*Result, error) {
	if p.String("data") == "" {
		return nil, fmt.Errorf("experiment longbench: parameter data (a LongBench jsonl file) is required")
	}
	samples, err := longbench.ReadFile(p.String("data"))
	if err != nil {
		return nil, err
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("experiment longbench: %s has no samples", p.String("data"))
	}
	name := p.String("subset")
	if name == "" {
		name = samples[0].Dataset
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
	r := &Result{}
	var total float64
	for i, s := range samples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		prompt, err := task.Prompt(s, env.Tokenizer, p.Int("max_prompt"), p.String("chat"))
		if err != nil {
			return nil, err
		}
		ids := env.Prompt(env.Tokenizer.Encode(prompt, true))
		cache, err := env.NewCache()
		if err != nil {
			return nil, err
		}
		sess := env.Model.NewSession(cache, env.Chunk)
		out, err := sess.Generate(ctx, ids, maxNew, env.Model.EOS)
		sess.Close()
		cache.Free()
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", s.File, s.Line, err)
		}
		pred := env.Tokenizer.Decode(out, true)
		if task.StopAtNewline {
			pred, _, _ = strings.Cut(pred, "\n")
		}
		score := task.Score(pred, s.Answers, s.AllClasses)
		total += score
		if err := r.sample(longbenchSample{Subset: name, ID: s.ID, Prediction: pred, Answers: s.Answers, Score: score, PromptTokens: len(ids), Length: s.Length}); err != nil {
			return nil, err
		}
		env.progress(i+1, len(samples))
	}
	r.metric("score", 100*total/float64(len(samples)), "")
	r.metric("samples", float64(len(samples)), "samples")
	return r, nil
}
