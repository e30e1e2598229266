package experiments

import (
	"context"
	"fmt"
	"kvcascade/plots/figure"
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

// Figures are the figures drawn from its points.
func (latency) Figures() []figure.Kind {
	return []figure.Kind{figure.PrefillTime, figure.DecodeTime}
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

func (l latency) Run(ctx context.Context, env *Env, p params.Values) (*Result, error) {
	n, decode := p.Int("length"), p.Int("decode_tokens")
	if err := l.check(p); err != nil {
		return nil, err
	}
	ids := env.Prompt(randomPrompt(n, env.Model.Vocab, p.Int("seed")))
	if p.Bool("warmup") {
		if _, err := Time(ctx, env, ids[:min(len(ids), 2*env.Chunk)], 1); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	runtime.GC()
	t, err := Time(ctx, env, ids, decode)
	if err != nil {
		return nil, err
	}
	prefill, perToken := t.Prefill, t.PerToken
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

// Timing is what Time measured.
type Timing struct {
	// Prefill is the wall time of the prompt's prefill, and PerToken the
	// mean time per decoded token (0 when none was decoded).
	Prefill, PerToken time.Duration
	// CacheBytes is the memory of the keys and values the cache holds once
	// the last token was decoded (HeldBytes: the tokens held, not the
	// capacity allocated).
	CacheBytes int64
	// AllocsPerToken is the mean number of Go heap allocations a decoded
	// token made in this process (the host's share of a decoding step;
	// 0 when none was decoded).
	AllocsPerToken float64
	// ViewRowsPerToken is the mean number of key rows the views of a
	// decoding step held, over all layers (policies.Cache.ViewRows; 0
	// when none was decoded).
	ViewRowsPerToken float64
}

// Time prefills ids on a fresh cache of env's policy and decodes decode
// tokens greedily: the latency experiment's measurement, which the bench
// command makes too. ids are used as they are (see Env.Prompt).
func Time(ctx context.Context, env *Env, ids []int32, decode int) (Timing, error) {
	return TimeByChunk(ctx, env, ids, decode, nil)
}

// TimeByChunk is Time that, when each is not nil, calls it with the wall
// time of every prefill chunk as the chunk ends (tokens: the prompt's
// tokens read so far), so a run cut short keeps what it measured. Every
// chunk then returns its last logits to the host and ends with the device
// done: a synchronisation per chunk that Time's prefill does not make (on
// the GPU, one small copy).
func TimeByChunk(ctx context.Context, env *Env, ids []int32, decode int, each func(tokens int, d time.Duration) error) (Timing, error) {
	var t Timing
	cache, err := env.NewCache()
	if err != nil {
		return t, err
	}
	defer cache.Free()
	s := env.Model.NewSession(cache, env.Chunk)
	defer s.Close()
	start := time.Now()
	var logits []float32
	if each != nil {
		// every chunk ends on the host (its last logits), so its time is
		// the device's too; each's own time is left out
		prev := time.Now()
		logits, err = s.PrefillEach(ctx, ids, model.LastLogits, func(int64, []float32) error {
			d := time.Since(prev)
			if err := each(int(s.Seen()), d); err != nil {
				return err
			}
			prev = time.Now()
			return nil
		})
	} else {
		logits, err = s.Prefill(ctx, ids, nil) // returns host logits: the device is done
	}
	if err != nil {
		return t, err
	}
	t.Prefill = time.Since(start)
	if decode > 0 {
		// room for the decoded tokens first: a cache that grows with the
		// stream doubles its storage at some step, amortised O(1) per token
		// over a whole stream but not over a few timed ones
		cache.Reserve(decode)
		next := model.Argmax(logits)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rows := cache.ViewRows()
		start = time.Now()
		for i := 0; i < decode; i++ {
			if err := ctx.Err(); err != nil {
				return t, err
			}
			// only the token comes back where the backend picks it
			if next, err = s.DecodeGreedy(next); err != nil {
				return t, err
			}
		}
		t.PerToken = time.Since(start) / time.Duration(decode)
		runtime.ReadMemStats(&after)
		t.AllocsPerToken = float64(after.Mallocs-before.Mallocs) / float64(decode)
		t.ViewRowsPerToken = float64(cache.ViewRows()-rows) / float64(decode)
	}
	t.CacheBytes = HeldBytes(cache, env.Model)
	return t, nil
}
