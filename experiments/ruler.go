package experiments

import (
	"context"
	"fmt"
	"kvcascade/plots/figure"
	"strings"

	"kvcascade/datasets/ruler"
	"kvcascade/policies/params"
)

// rulerExp runs one RULER task at one length: prompts generated locally
// (datasets/ruler), greedy answers, RULER's string-match scores.
type rulerExp struct{}

func (rulerExp) Name() string { return "ruler" }
func (rulerExp) Doc() string {
	return "RULER's synthetic tasks generated to a token-exact length: greedy answer, string_match_all (string_match_part for qa) per sample"
}

// Figures are the figures drawn from its points.
func (rulerExp) Figures() []figure.Kind {
	return []figure.Kind{figure.RulerScores}
}

func (rulerExp) Params() []params.Param {
	return []params.Param{
		{Name: "task", Kind: "string", Default: "niah_single_1", Doc: "RULER task: " + strings.Join(ruler.Names(), ", ")},
		{Name: "length", Kind: "int", Default: 4096, Doc: "tokens of prompt (BOS included) plus answer; the haystack is the largest that fits"},
		{Name: "samples", Kind: "int", Default: 10, Doc: "prompts per point"},
		{Name: "seed", Kind: "int", Default: 0, Doc: "seed: the same seed, task, length and index give the same prompt"},
		{Name: "essay", Kind: "string", Default: "", Doc: "essay-like text for the essay haystack (default " + ruler.DefaultEssay + ")"},
		{Name: "words", Kind: "string", Default: "", Doc: "word list, one a line, for keys, word haystacks and common words (default: the embedded lists)"},
		{Name: "qa", Kind: "string", Default: "", Doc: "SQuAD (qa_1) or HotpotQA (qa_2) JSON file, required by the qa tasks"},
		{Name: "template", Kind: "string", Default: "", Doc: "chat template with a {prompt} placeholder, for instruct models (the answer prefix follows it)"},
		{Name: "answer_tokens", Kind: "int", Default: 0, Doc: "tokens generated and reserved for the answer (0: the task's, RULER's tokens_to_generate)"},
	}
}

type rulerSample struct {
	Index        int      `json:"index"`
	Task         string   `json:"task"`
	Length       int      `json:"length"`
	PromptTokens int      `json:"prompt_tokens"`
	Haystack     int      `json:"haystack"`
	Answers      []string `json:"answers"`
	Output       string   `json:"output"`
	Score        float64  `json:"score"`
}

// rulerConfig builds the generator's configuration of a point, loading only
// the files its task uses.
func rulerConfig(p params.Values) (ruler.Config, error) {
	task, err := ruler.Lookup(p.String("task"))
	if err != nil {
		return ruler.Config{}, err
	}
	cfg := ruler.Config{
		Task: task, Length: p.Int("length"), AnswerTokens: p.Int("answer_tokens"),
		Seed: int64(p.Int("seed")), Template: p.String("template"),
	}
	if path := p.String("words"); path != "" {
		if cfg.Sources.Words, err = ruler.LoadWords(path); err != nil {
			return cfg, err
		}
	}
	if task.Haystack == ruler.HaystackEssay {
		path := p.String("essay")
		if path == "" {
			path = ruler.DefaultEssay
		}
		if cfg.Sources.Essay, err = ruler.LoadEssay(path); err != nil {
			return cfg, err
		}
	}
	if task.Family == ruler.FamilyQA {
		path := p.String("qa")
		if path == "" {
			return cfg, fmt.Errorf("task %s needs the parameter qa: a %s-format JSON file", task.Name, task.Format)
		}
		if cfg.Sources.QA, err = ruler.LoadQA(path); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func (x rulerExp) Run(ctx context.Context, env *Env, p params.Values) (*Result, error) {
	if err := x.check(p); err != nil {
		return nil, err
	}
	n := p.Int("samples")
	cfg, err := rulerConfig(p)
	if err != nil {
		return nil, fmt.Errorf("experiment ruler: %w", err)
	}
	r := &Result{}
	var total float64
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s, err := ruler.Generate(cfg, env.Tokenizer, i)
		if err != nil {
			return nil, fmt.Errorf("experiment ruler: sample %d: %w", i, err)
		}
		ids := env.Prompt(env.Tokenizer.Encode(s.Prompt, true))
		cache, err := env.NewCache()
		if err != nil {
			return nil, err
		}
		sess := env.Model.NewSession(cache, env.Chunk)
		out, err := sess.Generate(ctx, ids, cfg.Answer(), env.Model.EOS)
		sess.Close()
		cache.Free()
		if err != nil {
			return nil, fmt.Errorf("experiment ruler: %s sample %d: %w", cfg.Task.Name, i, err)
		}
		text := env.Tokenizer.Decode(out, true)
		score := cfg.Task.Score(text, s.Answers)
		total += score
		rec := rulerSample{Index: i, Task: s.Task, Length: cfg.Length, PromptTokens: len(ids), Haystack: s.Haystack,
			Answers: s.Answers, Output: text, Score: score}
		if err := r.sample(rec); err != nil {
			return nil, err
		}
		env.progress(i+1, n)
	}
	r.metric("score", 100*total/float64(n), "")
	r.metric("samples", float64(n), "samples")
	return r, nil
}
