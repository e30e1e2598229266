package experiments

import (
	"context"
	"fmt"
	"kvcascade/plots/figure"
	"math"

	"kvcascade/datasets/longtext"
	"kvcascade/policies"
	"kvcascade/policies/params"
	"kvcascade/runtime/model"
)

// perplexity streams a long text through the cache and scores every next
// token, as in the StreamingLLM and cascade papers' PG19 runs.
type perplexity struct{}

func (perplexity) Name() string { return "perplexity" }
func (perplexity) Doc() string {
	return "streaming perplexity: log-prob of every next token as a long text flows through the cache in chunks"
}

// Figures are the figures drawn from its points.
func (perplexity) Figures() []figure.Kind {
	return []figure.Kind{figure.Perplexity, figure.StreamMemory, figure.Retention}
}

func (perplexity) Params() []params.Param {
	return []params.Param{
		{Name: "text", Kind: "string", Default: "", Doc: "UTF-8 text file, folder of .txt books (PG19), .jsonl file, or embedded:NAME, a text inside the binary (embedded:kjv-heldout: the books the embedded models are not trained on)"},
		{Name: "field", Kind: "string", Default: "text", Doc: "jsonl field holding the text"},
		{Name: "tokens", Kind: "int", Default: 16384, Doc: "tokens to stream (the text is read until it has this many); " +
			"with books = each, the most tokens read over all books (0: every book whole)"},
		{Name: "checkpoints", Kind: "int", Default: 16, Doc: "points of the perplexity curve, log-spaced in tokens seen (see spacing)"},
		{Name: "from", Kind: "int", Default: 1, Doc: "tokens scored at the first checkpoint (e.g. the cache size: before it every bounded policy is full attention)", OmitDefault: true},
		{Name: "spacing", Kind: "string", Default: "log", Doc: "checkpoint spacing from 'from' to the end: log or linear", OmitDefault: true},
		{Name: "books", Kind: "string", Default: booksStream, Choices: []string{booksStream, booksEach},
			Doc: "stream: the documents one after the other through one cache; each: every document whole through a " +
				"fresh cache, perplexity weighted by tokens over the documents, a curve per document (the cascade paper's PG19)", OmitDefault: true},
		{Name: "min_tokens", Kind: "int", Default: 0,
			Doc: "with books = each, read only documents of more than this many tokens, BOS included (the paper: the cache size)", OmitDefault: true},
	}
}

// The modes of perplexity's books parameter.
const (
	booksStream = "stream"
	booksEach   = "each"
)

// pplSample is one point of the perplexity curve.
type pplSample struct {
	Tokens     int64   `json:"tokens"`      // tokens scored so far
	NLL        float64 `json:"nll"`         // mean negative log-likelihood so far (nats)
	PPL        float64 `json:"ppl"`         // exp(NLL)
	WindowPPL  float64 `json:"window_ppl"`  // perplexity since the previous point
	CacheBytes int64   `json:"cache_bytes"` // bytes of the keys and values the cache holds (HeldBytes)
	Window     int64   `json:"window"`      // tokens behind WindowPPL
}

func (x perplexity) Run(ctx context.Context, env *Env, p params.Values) (*Result, error) {
	if err := x.check(p); err != nil {
		return nil, err
	}
	if p.String("books") == booksEach {
		return perBook(ctx, env, p)
	}
	want := p.Int("tokens")
	ids, err := readTokens(ctx, env.Tokenizer, p.String("text"), p.String("field"), want)
	if err != nil {
		return nil, err
	}
	cache, err := env.NewCache()
	if err != nil {
		return nil, err
	}
	defer cache.Free()
	s := env.Model.NewSession(cache, env.Chunk)
	defer s.Close()

	marks, err := checkpoints(int64(len(ids)-1), int64(p.Int("from")), p.Int("checkpoints"), p.String("spacing"))
	if err != nil {
		return nil, fmt.Errorf("experiment perplexity: %w", err)
	}
	r := &Result{}
	nll, scored, err := scoreStream(ctx, env, s, cache, ids, marks, func(smp pplSample) error { return r.sample(smp) },
		func(done int) { env.progress(done, len(ids)) })
	if err != nil {
		return nil, err
	}
	// Which original positions each layer still holds (KV head 0): the
	// data of a retention map.
	held := make([][]int64, env.Model.Layers)
	for l := range held {
		held[l] = cache.Held(l, 0)
	}
	if err := r.sample(map[string]any{"tokens": len(ids), "held": held}); err != nil {
		return nil, err
	}
	r.metric("ppl", math.Exp(nll/float64(scored)), "")
	r.metric("nll", nll/float64(scored), "nats/token")
	r.metric("tokens", float64(scored), "tokens")
	if env.Model.MaxPositions > 0 {
		r.metric("train_length", float64(env.Model.MaxPositions), "tokens")
	}
	return r, nil
}

// scoreStream reads ids through s (a session over cache) and scores every
// token after the first by its log-probability under the logits before it.
// It returns the summed negative log-likelihood and the number of tokens
// scored; at each count in marks (ascending) it hands mark the curve's
// sample, and after each chunk it tells progress how many tokens were read
// (progress may be nil). A non-finite log-probability is an error.
func scoreStream(ctx context.Context, env *Env, s *model.Session, cache *policies.Cache, ids []int32, marks []int64,
	mark func(pplSample) error, progress func(done int)) (nll float64, scored int64, err error) {
	var windowNLL float64
	var windowN int64
	v := env.Model.Vocab
	_, err = s.Prefill(ctx, ids, func(start int64, logits []float32) error {
		n := len(logits) / v
		for i := 0; i < n; i++ {
			pos := start + int64(i)
			if pos+1 >= int64(len(ids)) {
				break
			}
			lp := model.LogProb(logits[i*v:(i+1)*v], ids[pos+1])
			if math.IsNaN(lp) || math.IsInf(lp, 0) {
				return fmt.Errorf("log-prob of token %d is %v", pos+1, lp)
			}
			nll -= lp
			windowNLL -= lp
			scored++
			windowN++
			if len(marks) > 0 && scored == marks[0] {
				marks = marks[1:]
				err := mark(pplSample{
					Tokens: scored, NLL: nll / float64(scored), PPL: math.Exp(nll / float64(scored)),
					WindowPPL: math.Exp(windowNLL / float64(windowN)), Window: windowN,
					CacheBytes: HeldBytes(cache, env.Model),
				})
				if err != nil {
					return err
				}
				windowNLL, windowN = 0, 0
			}
		}
		if progress != nil {
			progress(int(start) + n)
		}
		return nil
	})
	return nll, scored, err
}

// checkpoints returns up to k distinct token counts in [from, n], the first
// at from and the last at n, spaced evenly in log scale ("log") or
// linearly ("linear"). A from beyond n gives the single checkpoint n.
func checkpoints(n, from int64, k int, spacing string) ([]int64, error) {
	if spacing != "log" && spacing != "linear" {
		return nil, fmt.Errorf("spacing %q: want log or linear", spacing)
	}
	if from < 1 {
		return nil, fmt.Errorf("from must be at least 1, got %d", from)
	}
	if n < 1 || k < 1 {
		return nil, nil
	}
	from = min(from, n)
	var out []int64
	for i := 0; i < k; i++ {
		f := 1.0
		if k > 1 {
			f = float64(i) / float64(k-1)
		}
		var c int64
		if spacing == "log" {
			c = int64(math.Round(float64(from) * math.Pow(float64(n)/float64(from), f)))
		} else {
			c = int64(math.Round(float64(from) + f*float64(n-from)))
		}
		c = min(max(c, from), n)
		if len(out) == 0 || c > out[len(out)-1] {
			out = append(out, c)
		}
	}
	if out[len(out)-1] != n {
		out = append(out, n)
	}
	return out, nil
}

// readTokens reads the corpus at path until it has want tokens; a corpus
// with fewer is an error. The text
// arrives in chunks of about 64 KiB cut at line breaks or spaces and is
// encoded chunk by chunk; each document starts with the model's special
// tokens (BOS).
func readTokens(ctx context.Context, tok Tokenizer, path, field string, want int) ([]int32, error) {
	corpus, err := longtext.Open(path, longtext.Options{Field: field, ChunkBytes: 64 << 10})
	if err != nil {
		return nil, err
	}
	var ids []int32
	lastDoc := -1
	for ch, err := range corpus.Chunks() {
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ids = append(ids, tok.Encode(ch.Text, ch.Doc != lastDoc)...)
		lastDoc = ch.Doc
		if len(ids) >= want {
			return ids[:want], nil
		}
	}
	// A shorter stream would measure something else than the point says
	// (and than its neighbours in a sweep): the point fails.
	return nil, fmt.Errorf("experiment perplexity: parameter text: %s holds %d tokens, fewer than tokens = %d; lower tokens or give a longer text",
		path, len(ids), want)
}
