package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// addedToken is one entry of added_tokens.
type addedToken struct {
	id         int32
	content    string
	pattern    string // what is searched for: content, normalized if asked
	special    bool
	singleWord bool
	lstrip     bool
	rstrip     bool
	normalized bool
}

// trie finds added tokens in text, leftmost first and longest among those
// starting at the same byte, as the Aho-Corasick automaton of tokenizers
// does in its leftmost-longest mode.
type trie struct {
	nodes []trieNode
	first [256]bool // bytes some pattern starts with
}

type trieNode struct {
	next  map[byte]int32
	token int32 // index into the token list, -1 if no pattern ends here
}

func newTrie() *trie {
	return &trie{nodes: []trieNode{{token: -1}}}
}

// insert adds pattern, standing for token index tok. A pattern inserted
// twice keeps the later index.
func (t *trie) insert(pattern string, tok int32) {
	n := int32(0)
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		next, ok := t.nodes[n].next[c]
		if !ok {
			if t.nodes[n].next == nil {
				t.nodes[n].next = make(map[byte]int32)
			}
			next = int32(len(t.nodes))
			t.nodes = append(t.nodes, trieNode{token: -1})
			t.nodes[n].next[c] = next
		}
		n = next
	}
	t.nodes[n].token = tok
	t.first[pattern[0]] = true
}

// find returns the first match in s at or after from: its bounds and token
// index, or tok -1.
func (t *trie) find(s string, from int) (start, end int, tok int32) {
	for i := from; i < len(s); i++ {
		if !t.first[s[i]] {
			continue
		}
		n, best, bestEnd := int32(0), int32(-1), 0
		for j := i; j < len(s); j++ {
			next, ok := t.nodes[n].next[s[j]]
			if !ok {
				break
			}
			n = next
			if t.nodes[n].token >= 0 {
				best, bestEnd = t.nodes[n].token, j+1
			}
		}
		if best >= 0 {
			return i, bestEnd, best
		}
	}
	return 0, 0, -1
}

// segment is a stretch of text, or an added token when id >= 0.
type segment struct {
	text  string
	first bool
	id    int32
}

// splitAdded cuts p into text and the added tokens of tokens found by t,
// honouring single_word, lstrip and rstrip the way tokenizers does, and
// appends the non-empty segments to dst.
func splitAdded(dst []segment, p piece, t *trie, tokens []addedToken) []segment {
	if t == nil {
		if p.text != "" {
			dst = append(dst, segment{p.text, p.first, -1})
		}
		return dst
	}
	s := p.text
	emit := func(start, end int, id int32) {
		if end > start {
			dst = append(dst, segment{s[start:end], p.first && start == 0, id})
		}
	}
	done := 0 // end of the text consumed so far
	for search := 0; ; {
		start, end, k := t.find(s, search)
		if k < 0 {
			break
		}
		search = end
		tok := &tokens[k]
		if tok.singleWord && (endsWithWord(s[:start]) || startsWithWord(s[end:])) {
			continue
		}
		if tok.lstrip {
			start = max(trailingSpaceStart(s[:start]), done)
		}
		if tok.rstrip {
			end += leadingSpaceLen(s[end:])
		}
		if done < start {
			emit(done, start, -1)
		}
		emit(start, end, tok.id)
		done = end
	}
	if done < len(s) {
		emit(done, len(s), -1)
	}
	return dst
}

// isWordRune reports whether r is in \w of Rust's regex crate: Alphabetic,
// a mark, a decimal digit, connector punctuation or a joiner.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Other_Alphabetic, r) ||
		unicode.IsMark(r) || unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Pc, r) ||
		r == '\u200C' || r == '\u200D'
}

func endsWithWord(s string) bool {
	r, w := utf8.DecodeLastRuneInString(s)
	return w > 0 && isWordRune(r)
}

func startsWithWord(s string) bool {
	r, w := utf8.DecodeRuneInString(s)
	return w > 0 && isWordRune(r)
}

// trailingSpaceStart returns where the white space at the end of s starts.
func trailingSpaceStart(s string) int {
	for len(s) > 0 {
		r, w := utf8.DecodeLastRuneInString(s)
		if !unicode.IsSpace(r) {
			break
		}
		s = s[:len(s)-w]
	}
	return len(s)
}

// leadingSpaceLen returns the length of the white space at the start of s.
func leadingSpaceLen(s string) int {
	n := 0
	for n < len(s) {
		r, w := utf8.DecodeRuneInString(s[n:])
		if !unicode.IsSpace(r) {
			break
		}
		n += w
	}
	return n
}
