package experiments

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"kvcascade/datasets/passkey"
	"kvcascade/policies"
	"kvcascade/runtime/model"
)

// Passkey diagnostics (passkey's `diagnostics = true`): at the question,
// once the prompt is read and before the first answer token, what each
// layer and KV head of the cache still holds of the key block, and how the
// policy scores the key tokens it holds against the filler tokens it holds.

// keyLayout locates the parts of one passkey prompt, in token indices.
type keyLayout struct {
	// Block is the key block, [Block[0], Block[1]).
	Block [2]int
	// Filler is the span from the filler's first token to its last,
	// [Filler[0], Filler[1]); the key block lies inside it.
	Filler [2]int
	// Spellings are the spans of the tokens that spell the key's digits,
	// one per time the key block states the key.
	Spellings [][2]int
}

// headDiag is what one KV head of one layer holds of the key at the
// question.
type headDiag struct {
	// Held is the fraction of the key block's tokens the head holds.
	Held float64 `json:"held"`
	// Whole reports whether the head holds every token of at least one
	// spelling of the key.
	Whole bool `json:"whole"`
	// Ratio is the mean score of the key-block tokens the head holds over
	// the mean score of the filler tokens it holds, by the policy's own
	// scores; absent where the policy keeps none or either set is empty
	// (or the filler's mean is not positive).
	Ratio *float64 `json:"ratio,omitempty"`
}

// passkeyDiag is the diagnostics record of one sample.
type passkeyDiag struct {
	// Block and Filler are the key block's and the filler's token spans.
	Block  [2]int `json:"block"`
	Filler [2]int `json:"filler"`
	// Heads is [layer][KV head].
	Heads [][]headDiag `json:"heads"`
	// Held, recorded for the point's first sample only, is the original
	// positions each layer's KV head 0 holds: the data of a retention map.
	Held [][]int64 `json:"held,omitempty"`
}

// layoutOf finds the key block, the filler and the key's spellings of a
// prompt of ids whose key is key, by decoding ids token by token and
// finding the texts the prompt was laid out from. block is the key block's
// text, fillerFrom the text that ends just before the filler and
// fillerTo the text that starts just after it.
func layoutOf(tok Tokenizer, ids []int32, key, block, fillerFrom, fillerTo string) (keyLayout, error) {
	ends := make([]int, len(ids)) // ends[i]: byte offset one past token i
	var b strings.Builder
	for i := range ids {
		b.WriteString(tok.Decode(ids[i:i+1], false))
		ends[i] = b.Len()
	}
	text := b.String()
	if whole := tok.Decode(ids, false); whole != text {
		return keyLayout{}, fmt.Errorf("diagnostics: the tokens decoded one by one do not spell the prompt; cannot place the key block")
	}
	// span returns the tokens overlapping the bytes [lo, hi).
	span := func(lo, hi int) [2]int {
		var s [2]int
		s[0] = len(ends)
		for i, e := range ends {
			start := 0
			if i > 0 {
				start = ends[i-1]
			}
			if e > lo && start < hi {
				s[0] = min(s[0], i)
				s[1] = i + 1
			}
		}
		return s
	}
	at := strings.Index(text, block)
	if at < 0 {
		return keyLayout{}, fmt.Errorf("diagnostics: key block of key %s not found in the prompt", key)
	}
	lay := keyLayout{Block: span(at, at+len(block))}
	from := strings.Index(text, fillerFrom)
	to := strings.LastIndex(text, fillerTo)
	if from < 0 || to < 0 || from+len(fillerFrom) > at || to < at+len(block) {
		return keyLayout{}, fmt.Errorf("diagnostics: the filler around the key block not found in the prompt")
	}
	lay.Filler = span(from+len(fillerFrom), to)
	for off := at; ; {
		i := strings.Index(text[off:at+len(block)], key)
		if i < 0 {
			break
		}
		lay.Spellings = append(lay.Spellings, span(off+i, off+i+len(key)))
		off += i + len(key)
	}
	return lay, nil
}

// passkeyLayout is layoutOf for a prompt of the given format.
func passkeyLayout(tok Tokenizer, ids []int32, key, format string) (keyLayout, error) {
	if format == formatOfficial {
		return layoutOf(tok, ids, key, passkey.OfficialKeyBlock(key), passkey.OfficialPrefix, passkey.OfficialQuery)
	}
	return layoutOf(tok, ids, key, passkey.KeyBlock(key), passkey.Prefix+"\n\n", "\n\n"+passkey.Question)
}

// diagnoseHead measures one head: held are the original positions it holds
// and scores, when not nil, the policy's scores of the last len(scores) of
// them.
func diagnoseHead(lay keyLayout, held []int64, scores []float32) headDiag {
	in := func(p int64, s [2]int) bool { return p >= int64(s[0]) && p < int64(s[1]) }
	isHeld := make(map[int64]bool, len(held))
	for _, p := range held {
		isHeld[p] = true
	}
	var d headDiag
	if n := lay.Block[1] - lay.Block[0]; n > 0 {
		k := 0
		for p := lay.Block[0]; p < lay.Block[1]; p++ {
			if isHeld[int64(p)] {
				k++
			}
		}
		d.Held = float64(k) / float64(n)
	}
	for _, s := range lay.Spellings {
		whole := s[1] > s[0]
		for p := s[0]; p < s[1] && whole; p++ {
			whole = isHeld[int64(p)]
		}
		if whole {
			d.Whole = true
			break
		}
	}
	if scores == nil || len(scores) > len(held) {
		return d
	}
	var keySum, fillSum float64
	var keyN, fillN int
	for i, sc := range scores {
		p := held[len(held)-len(scores)+i]
		switch {
		case in(p, lay.Block):
			keySum += float64(sc)
			keyN++
		case in(p, lay.Filler):
			fillSum += float64(sc)
			fillN++
		}
	}
	if keyN > 0 && fillN > 0 && fillSum > 0 {
		r := (keySum / float64(keyN)) / (fillSum / float64(fillN))
		if !math.IsNaN(r) && !math.IsInf(r, 0) {
			d.Ratio = &r
		}
	}
	return d
}

// diagnose measures every layer and KV head of cache at the question;
// withHeld also records the retention data.
func diagnose(cache *policies.Cache, layers, kvHeads int, lay keyLayout, withHeld bool) *passkeyDiag {
	d := &passkeyDiag{Block: lay.Block, Filler: lay.Filler, Heads: make([][]headDiag, layers)}
	for l := range layers {
		d.Heads[l] = make([]headDiag, kvHeads)
		for h := range kvHeads {
			held := cache.Held(l, h)
			d.Heads[l][h] = diagnoseHead(lay, held, cache.Scores(l, h))
			if withHeld && h == 0 {
				d.Held = append(d.Held, held)
			}
		}
	}
	return d
}

// diagTotals sums the diagnostics of a point's samples into its metrics.
type diagTotals struct {
	heads, whole int
	held, ratio  float64
	ratios       int
}

func (t *diagTotals) add(d *passkeyDiag) {
	for _, layer := range d.Heads {
		for _, h := range layer {
			t.heads++
			t.held += h.Held
			if h.Whole {
				t.whole++
			}
			if h.Ratio != nil {
				t.ratio += *h.Ratio
				t.ratios++
			}
		}
	}
}

// metrics adds key_held, key_whole and, where the policy keeps scores,
// key_score_ratio to r.
func (t *diagTotals) metrics(r *Result) {
	if t.heads == 0 {
		return
	}
	r.metric("key_held", 100*t.held/float64(t.heads), "%")
	r.metric("key_whole", 100*float64(t.whole)/float64(t.heads), "%")
	if t.ratios > 0 {
		r.metric("key_score_ratio", t.ratio/float64(t.ratios), "ratio")
	}
}

// generateAt is model.Session.Generate with a call of at between reading
// the prompt and the first decoding step: the moment the question has been
// read and the cache holds what the answer will attend to.
func generateAt(ctx context.Context, s *model.Session, prompt []int32, maxNew int, stop []int32, at func()) ([]int32, error) {
	logits, err := s.Prefill(ctx, prompt, nil)
	if err != nil {
		return nil, fmt.Errorf("generation step 0 (the prompt): %w", err)
	}
	at()
	var out []int32
	next := model.Argmax(logits)
	for len(out) < maxNew {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		out = append(out, next)
		if slices.Contains(stop, next) || len(out) == maxNew {
			break
		}
		if next, err = s.DecodeGreedy(next); err != nil {
			return out, fmt.Errorf("generation step %d: %w", len(out), err)
		}
	}
	return out, nil
}
