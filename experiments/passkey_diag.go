package experiments

import (
	"fmt"
	"math"
	"strings"

	"kvcascade/datasets/passkey"
	"kvcascade/policies"
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
	// Attention is the share of the attention of the prompt's last token
	// that falls on the key block, and AttentionRatio its mean per key
	// token over its mean per filler token, both averaged over the KV
	// head's query heads; present only for policies that the cache
	// probes (policies.Cache.ProbePromptEnd: full, sink on the host).
	Attention      *float64 `json:"attention,omitempty"`
	AttentionRatio *float64 `json:"attention_ratio,omitempty"`
}

// questionAttention is the attention of the prompt's last token, reduced
// per KV head: share on the key block and key/filler ratio of the means.
type questionAttention struct {
	share, ratio float64
	hasRatio     bool
}

// attendHead reduces the attention of the prompt's last token over the
// keys at pos (mass [Hq·len(pos)], one row per query head) to KV head h of
// a group of g query heads.
func attendHead(lay keyLayout, pos []int64, mass []float32, h, g int) questionAttention {
	in := func(p int64, s [2]int) bool { return p >= int64(s[0]) && p < int64(s[1]) }
	w := len(pos)
	var qa questionAttention
	ratios := 0
	for q := h * g; q < (h+1)*g; q++ {
		row := mass[q*w : (q+1)*w]
		var key, fill float64
		var keyN, fillN int
		for j, p := range pos {
			switch {
			case in(p, lay.Block):
				key += float64(row[j])
				keyN++
			case in(p, lay.Filler):
				fill += float64(row[j])
				fillN++
			}
		}
		qa.share += key / float64(g)
		if keyN > 0 && fillN > 0 && fill > 0 {
			qa.ratio += (key / float64(keyN)) / (fill / float64(fillN))
			ratios++
		}
	}
	if ratios == g {
		qa.ratio /= float64(g)
		qa.hasRatio = true
	} else {
		qa.ratio = 0
	}
	return qa
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

// probeQuestion has cache record the attention of the prompt's last token
// (where the policy lets it be probed) into a [layer][KV head] table that
// diagnose reads; g is the query heads per KV head.
func probeQuestion(cache *policies.Cache, layers, kvHeads, g int, lay keyLayout) [][]*questionAttention {
	att := make([][]*questionAttention, layers)
	for l := range att {
		att[l] = make([]*questionAttention, kvHeads)
	}
	cache.ProbePromptEnd(func(l int, pos [][]int64, mass []float32) {
		for h := range kvHeads {
			qa := attendHead(lay, pos[h], mass, h, g)
			att[l][h] = &qa
		}
	})
	return att
}

// diagnose measures every layer and KV head of cache at the question, with
// the question's attention att where it was probed; withHeld also records
// the retention data.
func diagnose(cache *policies.Cache, layers, kvHeads int, lay keyLayout, att [][]*questionAttention, withHeld bool) *passkeyDiag {
	d := &passkeyDiag{Block: lay.Block, Filler: lay.Filler, Heads: make([][]headDiag, layers)}
	for l := range layers {
		d.Heads[l] = make([]headDiag, kvHeads)
		for h := range kvHeads {
			held := cache.Held(l, h)
			d.Heads[l][h] = diagnoseHead(lay, held, cache.Scores(l, h))
			if qa := att[l][h]; qa != nil {
				share := qa.share
				d.Heads[l][h].Attention = &share
				if qa.hasRatio {
					r := qa.ratio
					d.Heads[l][h].AttentionRatio = &r
				}
			}
			if withHeld && h == 0 {
				d.Held = append(d.Held, held)
			}
		}
	}
	return d
}

// diagTotals sums the diagnostics of a point's samples into its metrics.
type diagTotals struct {
	heads, whole           int
	held, ratio            float64
	ratios                 int
	attention, attnRatio   float64
	attentions, attnRatios int
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
			if h.Attention != nil {
				t.attention += *h.Attention
				t.attentions++
			}
			if h.AttentionRatio != nil {
				t.attnRatio += *h.AttentionRatio
				t.attnRatios++
			}
		}
	}
}

// metrics adds key_held, key_whole and, where the policy keeps scores,
// key_score_ratio to r, and where the cache was probed key_attention and
// key_attention_ratio.
func (t *diagTotals) metrics(r *Result) {
	if t.heads == 0 {
		return
	}
	r.metric("key_held", 100*t.held/float64(t.heads), "%")
	r.metric("key_whole", 100*float64(t.whole)/float64(t.heads), "%")
	if t.ratios > 0 {
		r.metric("key_score_ratio", t.ratio/float64(t.ratios), "ratio")
	}
	if t.attentions > 0 {
		r.metric("key_attention", 100*t.attention/float64(t.attentions), "%")
	}
	if t.attnRatios > 0 {
		r.metric("key_attention_ratio", t.attnRatio/float64(t.attnRatios), "ratio")
	}
}
