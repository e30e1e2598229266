// Package tokenizer loads a Hugging Face tokenizer.json and encodes and
// decodes text exactly as the tokenizers library does, for the BPE models
// of Llama-style language models:
//
//   - byte-level BPE (GPT-2, Llama 3, Qwen2): a ByteLevel pre-tokenizer,
//     alone or after a Split on the model's regex, and a ByteLevel decoder;
//   - SentencePiece-style BPE with byte fallback (Llama 2, Mistral): a
//     Prepend and Replace normalizer or a Metaspace pre-tokenizer, "<0xXX>"
//     byte tokens for what the vocabulary lacks, and a decoder built from
//     Replace, ByteFallback, Fuse and Strip (or Metaspace).
//
// Encoding runs the stages of the tokenizers library in order: added tokens
// are cut out of the text, the rest is normalized, pre-tokenized into words
// and each word is merged by the BPE model; the post-processor then adds
// the special tokens. The regexes of GPT-2, Llama 3 and Qwen2 use a
// lookahead, which Go's regexp lacks, so they are matched by hand-written
// scanners; any other Split regex must compile with Go's regexp.
//
// Settings that do not change ids (offsets, type ids) are ignored, and so
// are truncation and padding.
package tokenizer

import (
	"fmt"
	"os"
	"strings"
)

// Tokenizer encodes text to token ids and decodes ids to text. It is safe
// for concurrent use.
type Tokenizer struct {
	model *bpeModel
	norm  normalizer    // nil: none
	pre   preTokenizer  // nil: the whole text is one word
	dec   decoder       // nil: tokens joined by spaces
	post  postProcessor // nil: nothing added

	vocabR map[int32]string // model ids to tokens

	added     []addedToken
	addedByID map[int32]*addedToken
	addedIDs  map[string]int32 // content to id
	special   map[string]bool  // contents of special tokens
	rawTrie   *trie            // added tokens matched before normalization
	normTrie  *trie            // added tokens matched after it

	vocabSize int
}

// Load reads and parses the tokenizer.json at path.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	return Parse(data, path)
}

// Encode returns the token ids of text. With addSpecial, the
// post-processor's special tokens (such as a leading <|begin_of_text|>)
// are added. Bytes that are not valid UTF-8 are kept: byte-level models
// encode them as bytes, others fall back to byte tokens or the unknown
// token.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int32 {
	ids := make([]int32, 0, len(text)/4+4)
	var segs, subs []segment
	var words []piece
	segs = splitAdded(segs, piece{text, true}, t.rawTrie, t.added)
	for _, seg := range segs {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		p := piece{seg.text, seg.first}
		if t.norm != nil {
			p = t.norm.normalize(p)
		}
		subs = splitAdded(subs[:0], p, t.normTrie, t.added)
		for _, sub := range subs {
			if sub.id >= 0 {
				ids = append(ids, sub.id)
				continue
			}
			if t.pre == nil {
				ids = t.model.tokenize(ids, sub.text)
				continue
			}
			words = t.pre.split(words[:0], piece{sub.text, sub.first})
			for _, w := range words {
				ids = t.model.tokenize(ids, w.text)
			}
		}
	}
	if addSpecial && t.post != nil {
		ids = t.post.process(ids)
	}
	return ids
}

// Decode returns the text of ids. With skipSpecial, special added tokens
// are left out. Ids that name no token are skipped, and byte sequences that
// are not valid UTF-8 become U+FFFD, as in the tokenizers library.
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) string {
	tokens := make([]string, 0, len(ids))
	for _, id := range ids {
		var tok string
		if a, ok := t.addedByID[id]; ok {
			tok = a.pattern
		} else if s, ok := t.vocabR[id]; ok {
			tok = s
		} else {
			continue
		}
		if skipSpecial && t.special[tok] {
			continue
		}
		tokens = append(tokens, tok)
	}
	if t.dec == nil {
		return strings.Join(tokens, " ")
	}
	return strings.Join(t.dec.decodeChain(tokens), "")
}

// VocabSize returns the largest token id plus one, added tokens included:
// the number of rows an embedding table needs.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// TokenID returns the id of token, an added token or one of the model's.
func (t *Tokenizer) TokenID(token string) (int32, bool) {
	if id, ok := t.addedIDs[token]; ok {
		return id, true
	}
	id, ok := t.model.vocab[token]
	return id, ok
}

// Token returns the token with the given id. For an added token it is the
// content as written in added_tokens.
func (t *Tokenizer) Token(id int32) (string, bool) {
	if a, ok := t.addedByID[id]; ok {
		return a.content, true
	}
	s, ok := t.vocabR[id]
	return s, ok
}
