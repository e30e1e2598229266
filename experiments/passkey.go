package experiments

import (
	"context"
	"fmt"

	"kvcascade/datasets/passkey"
	"kvcascade/policies/params"
)

// passkey measures retrieval of a five-digit key hidden in filler text.
type passkeyExp struct{}

func (passkeyExp) Name() string { return "passkey" }
func (passkeyExp) Doc() string {
	return "passkey retrieval: exact 5-digit match in the greedy continuation, per length and depth bin"
}

func (passkeyExp) Params() []params.Param {
	return []params.Param{
		{Name: "length", Kind: "int", Default: 4096, Doc: "prompt length in tokens (±1 %)"},
		{Name: "depth_bin", Kind: "int", Default: 0, Doc: "key depth bin 0..4 (0–20 % … 80–100 % of the filler)"},
		{Name: "samples", Kind: "int", Default: 10, Doc: "prompts per point"},
		{Name: "seed", Kind: "int", Default: 0, Doc: "seed: the same seed, length, bin and index give the same prompt"},
		{Name: "words", Kind: "string", Default: "", Doc: "word list file for the filler, one word a line (default: the embedded SCOWL list)"},
		{Name: "template", Kind: "string", Default: "", Doc: "chat template with a {prompt} placeholder, for instruct models"},
		{Name: "max_new", Kind: "int", Default: 8, Doc: "tokens generated for the answer"},
	}
}

type passkeySample struct {
	Index        int     `json:"index"`
	Key          string  `json:"key"`
	Depth        float64 `json:"depth"`
	PromptTokens int     `json:"prompt_tokens"`
	Output       string  `json:"output"`
	Correct      bool    `json:"correct"`
}

func (x passkeyExp) Run(ctx context.Context, env *Env, p params.Values) (*Result, error) {
	if err := x.check(p); err != nil {
		return nil, err
	}
	n := p.Int("samples")
	words := &passkey.Words{}
	cfg := passkey.Config{
		Length: p.Int("length"), DepthBin: p.Int("depth_bin"), Seed: int64(p.Int("seed")),
		Words: p.String("words"), Template: p.String("template"), Cache: words,
	}
	r := &Result{}
	correct := 0
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s, err := passkey.Generate(cfg, env.Tokenizer, passkey.Rand(cfg.Seed, cfg.Length, cfg.DepthBin, i))
		if err != nil {
			return nil, err
		}
		ids := env.Prompt(env.Tokenizer.Encode(s.Prompt, true))
		cache, err := env.NewCache()
		if err != nil {
			return nil, err
		}
		sess := env.Model.NewSession(cache, env.Chunk)
		out, err := sess.Generate(ctx, ids, p.Int("max_new"), env.Model.EOS)
		sess.Close()
		cache.Free()
		if err != nil {
			return nil, fmt.Errorf("sample %d: %w", i, err)
		}
		text := env.Tokenizer.Decode(out, true)
		ok := passkey.Score(s.Key, text)
		if ok {
			correct++
		}
		if err := r.sample(passkeySample{Index: i, Key: s.Key, Depth: s.Depth, PromptTokens: len(ids), Output: text, Correct: ok}); err != nil {
			return nil, err
		}
		env.progress(i+1, n)
	}
	r.metric("accuracy", 100*float64(correct)/float64(n), "%")
	r.metric("correct", float64(correct), "samples")
	r.metric("samples", float64(n), "samples")
	return r, nil
}
