package experiments

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"kvcascade/policies/params"
	"kvcascade/runtime/model"
)

// latency times prefill and decoding at one context length.
type latency struct{}

func (latency) Name() string { return "latency" }
func (latency) Doc() string {
	return "prefill wall time and decode ms/token at one context length (random tokens, warm-up excluded)"
}

func (latency) Params() []params.Param {
	return []params.Param{
		{Name: "length", Kind: "int", Default: 4096, Doc: "prompt length in tokens"},
		{Name: "decode_tokens", Kind: "int", Default: 16, Doc: "tokens decoded after the prompt"},
		{Name: "warmup", Kind: "bool", Default: true, Doc: "run a short untimed prefill first"},
		{Name: "seed", Kind: "int", Default: 0, Doc: "seed of the random prompt"},
	}
}

// randomPrompt draws n token ids uniformly from the vocabulary.
func randomPrompt(n, vocab, seed int) []int32 {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6b76636173636164))
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	return ids
}

func checkLength(name string, n int) error {
	if n <= 0 {
		return fmt.Errorf("experiment %s: length must be positive, got %d", name, n)
	}
	return nil
}

func (l latency) Run(ctx context.Context, env *Env, p params.Values) (*Result, error) {
	n, decode := p.Int("length"), p.Int("decode_tokens")
	if err := checkLength(l.Name(), n); err != nil {
		return nil, err
	}
	if decode < 0 {
		return nil, fmt.Errorf("experiment latency: decode_tokens must be ≥ 0, got %d", decode)
	}
	ids := env.Prompt(randomPrompt(n, env.Model.Vocab, p.Int("seed")))
	if p.Bool("warmup") {
		if _, _, err := timedRun(ctx, env, ids[:min(len(ids), 2*env.Chunk)], 1); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	runtime.GC()
	prefill, perToken, err := timedRun(ctx, env, ids, decode)
	if err != nil {
		return nil, err
	}
	env.progress(1, 1)
	r := &Result{}
	r.metric("prefill_s", prefill.Seconds(), "s")
	r.metric("prefill_tokens_per_s", float64(len(ids))/prefill.Seconds(), "tokens/s")
	if decode > 0 {
		r.metric("decode_ms_per_token", float64(perToken.Microseconds())/1000, "ms")
	}
	r.metric("prompt_tokens", float64(len(ids)), "tokens")
	return r, nil
}

// timedRun prefills ids on a fresh cache and decodes decode tokens greedily,
// returning the prefill time and the mean time per decoded token.
func timedRun(ctx context.Context, env *Env, ids []int32, decode int) (prefill, perToken time.Duration, err error) {
	cache, err := env.NewCache()
	if err != nil {
		return 0, 0, err
	}
	defer cache.Free()
	s := env.Model.NewSession(cache, env.Chunk)
	defer s.Close()
	start := time.Now()
	logits, err := s.Prefill(ctx, ids, nil)
	if err != nil {
		return 0, 0, err
	}
	prefill = time.Since(start)
	if decode == 0 {
		return prefill, 0, nil
	}
	next := model.Argmax(logits)
	start = time.Now()
	for i := 0; i < decode; i++ {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		if next, err = s.DecodeGreedy(next); err != nil {
			return 0, 0, err
		}
	}
	return prefill, time.Since(start) / time.Duration(decode), nil
}
