package experiments

import (
	"context"
	"fmt"
	"math"

	"kvcascade/datasets/longtext"
	"kvcascade/policies/params"
)

// bookSample is the record of one document under books = "each".
type bookSample struct {
	Book   string `json:"book"`   // the document's name (file, or file:line)
	Doc    int    `json:"doc"`    // its number in the corpus, from 0
	Tokens int64  `json:"tokens"` // tokens scored: all but the first
	// NLL is the mean negative log-likelihood (nats) and PPL exp(NLL).
	NLL float64 `json:"nll"`
	PPL float64 `json:"ppl"`
	// Curve is the document's perplexity curve, log-spaced in its tokens.
	Curve []pplSample `json:"curve"`
}

// perBook runs perplexity with books = "each", as the cascade paper's PG19
// job does (cascading_cache_2 at 4232407, cascade/main/jobs/pg19.py:30-134):
// every document of more than min_tokens tokens (the official filter keeps
// the books longer than the window, cascade/dataset/pg19.py:138-142) is
// tokenised whole with BOS and read through a fresh cache, every token
// after the first is scored, and the perplexity is exp of the NLL summed
// over all documents' tokens over their number (pg19.py:127-144), so a long
// book weighs more than a short one. Documents are read in corpus order
// until tokens (when positive) would be exceeded.
func perBook(ctx context.Context, env *Env, p params.Values) (*Result, error) {
	limit, minTokens := p.Int("tokens"), p.Int("min_tokens")
	if limit < 0 || minTokens < 0 {
		return nil, fmt.Errorf("experiment perplexity: tokens (%d) and min_tokens (%d) must not be negative", limit, minTokens)
	}
	if p.String("text") == "" {
		return nil, fmt.Errorf("experiment perplexity: parameter text (a file, folder or jsonl) is required")
	}
	corpus, err := longtext.Open(p.String("text"), longtext.Options{Field: p.String("field")})
	if err != nil {
		return nil, err
	}
	r := &Result{}
	var nll float64
	var scored, read int64
	books, skipped := 0, 0
	for doc, err := range corpus.Documents(0) {
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ids := env.Tokenizer.Encode(doc.Text, true)
		if len(ids) <= minTokens || len(ids) < 2 {
			skipped++
			continue
		}
		if limit > 0 && read+int64(len(ids)) > int64(limit) {
			break
		}
		rec, sum, err := bookNLL(ctx, env, ids, p.Int("checkpoints"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", doc.Name, err)
		}
		rec.Book, rec.Doc = doc.Name, doc.Doc
		if err := r.sample(rec); err != nil {
			return nil, err
		}
		nll += sum
		scored += rec.Tokens
		read += int64(len(ids))
		books++
		env.progress(int(read), max(limit, int(read)))
	}
	if books == 0 {
		return nil, fmt.Errorf("experiment perplexity: no document of %s has more than %d tokens (%d skipped)",
			p.String("text"), minTokens, skipped)
	}
	r.metric("ppl", math.Exp(nll/float64(scored)), "")
	r.metric("nll", nll/float64(scored), "nats/token")
	r.metric("tokens", float64(scored), "tokens")
	r.metric("books", float64(books), "documents")
	r.metric("skipped", float64(skipped), "documents")
	return r, nil
}

// bookNLL reads ids through a fresh cache of the point's policy and returns
// the document's record and its summed NLL.
func bookNLL(ctx context.Context, env *Env, ids []int32, k int) (bookSample, float64, error) {
	cache, err := env.NewCache()
	if err != nil {
		return bookSample{}, 0, err
	}
	defer cache.Free()
	s := env.Model.NewSession(cache, env.Chunk)
	defer s.Close()
	marks, err := checkpoints(int64(len(ids)-1), 1, k, "log")
	if err != nil {
		return bookSample{}, 0, err
	}
	var rec bookSample
	nll, scored, err := scoreStream(ctx, env, s, cache, ids, marks,
		func(smp pplSample) error { rec.Curve = append(rec.Curve, smp); return nil }, nil)
	if err != nil {
		return bookSample{}, 0, err
	}
	rec.Tokens = scored
	rec.NLL = nll / float64(rec.Tokens)
	rec.PPL = math.Exp(rec.NLL)
	return rec, nll, nil
}
