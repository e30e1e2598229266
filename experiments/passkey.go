package experiments

import (
	"context"
	"fmt"
	"kvcascade/plots/figure"

	"kvcascade/datasets/passkey"
	"kvcascade/policies/params"
)

// passkey measures retrieval of a five-digit key hidden in filler text.
type passkeyExp struct{}

func (passkeyExp) Name() string { return "passkey" }
func (passkeyExp) Doc() string {
	return "passkey retrieval: exact 5-digit match (or the official per-digit accuracy) in the greedy continuation, per length and depth bin"
}

// The prompt formats and scores of passkey.
const (
	formatPlain    = "plain"
	formatOfficial = "official"
	scoreExact     = "exact"
	scoreDigits    = "digits"
)

// Figures are the figures drawn from its points.
func (passkeyExp) Figures() []figure.Kind {
	return []figure.Kind{figure.PasskeyGrid, figure.KeyMaps}
}

func (passkeyExp) Params() []params.Param {
	return []params.Param{
		{Name: "length", Kind: "int", Default: 4096, Doc: "prompt length in tokens (±1 %; exact with format official)"},
		{Name: "depth_bin", Kind: "int", Default: 0, Doc: "key depth bin 0..4 (0–20 % … 80–100 % of the filler)"},
		{Name: "samples", Kind: "int", Default: 10, Doc: "prompts per point"},
		{Name: "seed", Kind: "int", Default: 0, Doc: "seed: the same seed, length, bin and index give the same prompt"},
		{Name: "words", Kind: "string", Default: "", Doc: "word list file for the filler, one word a line (default: the embedded SCOWL list)"},
		{Name: "template", Kind: "string", Default: "", Doc: "chat template with a {prompt} placeholder, for instruct models (format plain)"},
		{Name: "max_new", Kind: "int", Default: 8, Doc: "tokens generated for the answer"},
		{Name: "format", Kind: "string", Default: formatPlain, Choices: []string{formatPlain, formatOfficial},
			Doc: "plain: one text of plain lowercase words around the key sentence, tokenised whole; official: the cascade " +
				"paper's prompt (Llama 3 chat headers, banners, segments tokenised apart, every word of the list, one " +
				"filler per seed, the key placed by token index)", OmitDefault: true},
		{Name: "score", Kind: "string", Default: scoreExact, Choices: []string{scoreExact, scoreDigits},
			Doc: "the headline metric `score`: exact (the first digit run equals the key) or digits (the official " +
				"per-place accuracy of the answer's first five digits); both are reported as accuracy and digit_accuracy", OmitDefault: true},
		{Name: "stop_eos", Kind: "bool", Default: true, Doc: "end the answer at an end token (the official runs generate max_new tokens regardless)", OmitDefault: true},
		{Name: "diagnostics", Kind: "bool", Default: false, Doc: "record at the question, per layer and KV head, the fraction of the key block " +
			"held, whether a whole spelling of the key is held, and the policy's mean score of held key tokens over " +
			"held filler tokens, and for policies that ask for no attention mass (full, sink) the share of the prompt's last " +
			"token's attention on the key block and its key/filler ratio (metrics key_held, key_whole, key_score_ratio, " +
			"key_attention, key_attention_ratio; detail in each sample)", OmitDefault: true},
	}
}

type passkeySample struct {
	Index        int     `json:"index"`
	Key          string  `json:"key"`
	Depth        float64 `json:"depth"`
	PromptTokens int     `json:"prompt_tokens"`
	Output       string  `json:"output"`
	Correct      bool    `json:"correct"`
	// Digits is the number of the key's five places the answer's first
	// five digits match (passkey.DigitScore).
	Digits int `json:"digits"`
	// KeyToken is the index of the key block's first token (format
	// official only).
	KeyToken int `json:"key_token,omitempty"`
	// Diagnostics is what the cache held of the key at the question
	// (diagnostics = true only).
	Diagnostics *passkeyDiag `json:"diagnostics,omitempty"`
}

// passkeyPrompt makes the prompt of sample i.
type passkeyPrompt func(i int) (ids []int32, key string, depth float64, keyToken int, err error)

func (x passkeyExp) prompts(env *Env, p params.Values) (passkeyPrompt, error) {
	length, bin, seed := p.Int("length"), p.Int("depth_bin"), int64(p.Int("seed"))
	if p.String("format") == formatOfficial {
		if p.String("template") != "" {
			return nil, fmt.Errorf("experiment passkey: format official brings its own chat headers; leave template empty")
		}
		// The official job reads every line of the system dictionary;
		// without a words file the embedded list stands in (SCOWL's
		// lowercase a–z words, the same source without its capitalised
		// and accented entries).
		words := passkey.Embedded()
		if path := p.String("words"); path != "" {
			var err error
			if words, err = passkey.LoadAllWords(path); err != nil {
				return nil, err
			}
		}
		filler, err := passkey.NewOfficialFiller(words, env.Tokenizer, passkey.FillerRand(seed))
		if err != nil {
			return nil, err
		}
		return func(i int) ([]int32, string, float64, int, error) {
			s, err := passkey.GenerateOfficial(length, bin, env.Tokenizer, filler, passkey.Rand(seed, length, bin, i))
			return s.IDs, s.Key, s.Depth, s.KeyStart, err
		}, nil
	}
	cfg := passkey.Config{
		Length: length, DepthBin: bin, Seed: seed,
		Words: p.String("words"), Template: p.String("template"), Cache: &passkey.Words{},
	}
	return func(i int) ([]int32, string, float64, int, error) {
		s, err := passkey.Generate(cfg, env.Tokenizer, passkey.Rand(cfg.Seed, cfg.Length, cfg.DepthBin, i))
		if err != nil {
			return nil, "", 0, 0, err
		}
		return env.Tokenizer.Encode(s.Prompt, true), s.Key, s.Depth, 0, nil
	}, nil
}

func (x passkeyExp) Run(ctx context.Context, env *Env, p params.Values) (*Result, error) {
	if err := x.check(p); err != nil {
		return nil, err
	}
	n := p.Int("samples")
	prompt, err := x.prompts(env, p)
	if err != nil {
		return nil, err
	}
	var stop []int32
	if p.Bool("stop_eos") {
		stop = env.Model.EOS
	}
	r := &Result{}
	correct, digits := 0, 0
	diag := p.Bool("diagnostics")
	var totals diagTotals
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ids, key, depth, keyToken, err := prompt(i)
		if err != nil {
			return nil, err
		}
		policy, ids, _, err := env.ForPrompt(ids)
		if err != nil {
			return nil, fmt.Errorf("sample %d: %w", i, err)
		}
		cache, err := env.newCacheOf(policy)
		if err != nil {
			return nil, err
		}
		sess := env.Model.NewSession(cache, env.Chunk)
		var out []int32
		var dg *passkeyDiag
		if diag {
			var lay keyLayout
			if lay, err = passkeyLayout(env.Tokenizer, ids, key, p.String("format")); err != nil {
				sess.Close()
				cache.Free()
				return nil, fmt.Errorf("sample %d: %w", i, err)
			}
			m := env.Model
			att := probeQuestion(cache, m.Layers, m.KVHeads, m.Heads/m.KVHeads, lay)
			out, err = sess.GenerateThen(ctx, ids, p.Int("max_new"), stop, func() {
				cache.ProbePromptEnd(nil)
				dg = diagnose(cache, m.Layers, m.KVHeads, lay, att, i == 0)
			})
		} else {
			out, err = sess.Generate(ctx, ids, p.Int("max_new"), stop)
		}
		sess.Close()
		cache.Free()
		if err != nil {
			return nil, fmt.Errorf("sample %d: %w", i, err)
		}
		text := env.Tokenizer.Decode(out, true)
		ok := passkey.Score(key, text)
		if ok {
			correct++
		}
		dgt := passkey.DigitScore(key, text)
		digits += dgt
		rec := passkeySample{Index: i, Key: key, Depth: depth, PromptTokens: len(ids), Output: text, Correct: ok,
			Digits: dgt, KeyToken: keyToken, Diagnostics: dg}
		if dg != nil {
			totals.add(dg)
		}
		if err := r.sample(rec); err != nil {
			return nil, err
		}
		env.progress(i+1, n)
	}
	exact, perDigit := 100*float64(correct)/float64(n), 100*float64(digits)/float64(5*n)
	r.metric("accuracy", exact, "%")
	r.metric("digit_accuracy", perDigit, "%")
	if p.String("score") == scoreDigits {
		r.metric("score", perDigit, "%")
	} else {
		r.metric("score", exact, "%")
	}
	r.metric("correct", float64(correct), "samples")
	r.metric("samples", float64(n), "samples")
	totals.metrics(r)
	return r, nil
}
