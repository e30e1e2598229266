package tokenizer

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// mergeRule is what merging a pair of tokens gives: the rank of the merge
// (its index in model.merges; lower merges first) and the merged token.
type mergeRule struct {
	rank int32
	id   int32
}

// pairKey packs two token ids into a map key.
func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// bpeModel is the BPE model of tokenizer.json.
type bpeModel struct {
	vocab        map[string]int32
	merges       map[uint64]mergeRule
	byteIDs      [256]int32 // ids of "<0x00>".."<0xFF>", -1 where absent
	byteFallback bool
	unkID        int32 // -1 without unk_token
	fuseUnk      bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	cut          string // where long words may be cut; see setCut
	vocabR       map[int32]string

	cache *wordCache
	work  sync.Pool // *bpeWork
}

// symbol is one token of a word being merged, in a linked list over a slice.
type symbol struct {
	id         int32
	prev, next int32 // -1 at the ends
	size       int32 // bytes of the word it covers; 0 once merged away
}

// mergeItem is a candidate merge of the symbol at pos with its next.
type mergeItem struct {
	rank, pos, id int32
}

// bpeWork is scratch space reused across words.
type bpeWork struct {
	syms []symbol
	heap []mergeItem
}

// tokenize appends the ids of word to dst.
func (m *bpeModel) tokenize(dst []int32, word string) []int32 {
	if word == "" {
		return dst
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(dst, id)
		}
	}
	if m.cut == "" || len(word) < maxCachedWordBytes {
		return m.tokenizeCached(dst, word)
	}
	// Cut a long word before each cut rune that follows another rune: no
	// merge joins across such a point, so the parts encode alone, each
	// through the cache, to the same ids.
	start := 0
	for i := len(m.cut); i < len(word); {
		k := strings.Index(word[i:], m.cut)
		if k < 0 {
			break
		}
		i += k
		if !strings.HasSuffix(word[:i], m.cut) {
			dst = m.tokenizeCached(dst, word[start:i])
			start = i
		}
		i += len(m.cut)
	}
	return m.tokenizeCached(dst, word[start:])
}

// tokenizeCached appends the ids of word to dst, through the word cache.
func (m *bpeModel) tokenizeCached(dst []int32, word string) []int32 {
	cacheable := m.cache != nil && len(word) < maxCachedWordBytes
	if cacheable {
		if ids, ok := m.cache.get(word); ok {
			return append(dst, ids...)
		}
	}
	start := len(dst)
	dst = m.mergeWord(dst, word)
	if cacheable {
		m.cache.put(word, dst[start:])
	}
	return dst
}

// setCut enables cutting long words before cut (SentencePiece's "▁") when
// that is sure to give the same ids: cut is a token of its own, no merge
// makes a token with cut after another rune, and no option depends on
// where a word starts or ends.
func (m *bpeModel) setCut(cut string) {
	if _, ok := m.vocab[cut]; !ok || m.ignoreMerges || m.prefix != "" || m.suffix != "" {
		return
	}
	for _, rule := range m.merges {
		tok := m.vocabR[rule.id]
		for i := 1; i < len(tok); i++ {
			if strings.HasPrefix(tok[i:], cut) && !strings.HasSuffix(tok[:i], cut) {
				return
			}
		}
	}
	m.cut = cut
}

// mergeWord splits word into its runes (with byte fallback and unknown
// tokens), applies the merges lowest rank first, leftmost first among equal
// ranks, and appends the resulting ids to dst.
func (m *bpeModel) mergeWord(dst []int32, word string) []int32 {
	w, _ := m.work.Get().(*bpeWork)
	if w == nil {
		w = new(bpeWork)
	}
	syms := w.syms[:0]
	if cap(syms) < len(word) {
		syms = make([]symbol, 0, len(word))
	}
	add := func(id int32, size int) {
		n := int32(len(syms))
		if n > 0 {
			syms[n-1].next = n
		}
		syms = append(syms, symbol{id: id, prev: n - 1, next: -1, size: int32(size)})
	}
	// The pending unknown token, added before the next known rune. Byte
	// fallback tokens do not flush it: tokenizers behaves the same way.
	unkSize := 0
	for i := 0; i < len(word); {
		_, size := utf8.DecodeRuneInString(word[i:])
		r := word[i : i+size]
		if m.prefix != "" && i > 0 {
			r = m.prefix + r
		}
		if m.suffix != "" && i+size == len(word) {
			r += m.suffix
		}
		i += size
		if id, ok := m.vocab[r]; ok {
			if unkSize > 0 {
				add(m.unkID, unkSize)
				unkSize = 0
			}
			add(id, size)
			continue
		}
		if m.byteFallback && m.allBytes(r) {
			for k := 0; k < len(r); k++ {
				add(m.byteIDs[r[k]], 1)
			}
			continue
		}
		if m.unkID >= 0 {
			if unkSize > 0 && !m.fuseUnk {
				add(m.unkID, unkSize)
				unkSize = 0
			}
			unkSize += size
		}
	}
	if unkSize > 0 {
		add(m.unkID, unkSize)
	}

	h := w.heap[:0]
	for k := 0; k+1 < len(syms); k++ {
		if rule, ok := m.merges[pairKey(syms[k].id, syms[k+1].id)]; ok {
			h = append(h, mergeItem{rule.rank, int32(k), rule.id})
		}
	}
	heapInit(h)
	for len(h) > 0 {
		var top mergeItem
		top, h = heapPop(h)
		cur := &syms[top.pos]
		if cur.size == 0 || cur.next < 0 {
			continue
		}
		right := syms[cur.next]
		// Skip an entry made stale by an earlier merge.
		if rule, ok := m.merges[pairKey(cur.id, right.id)]; !ok || rule.id != top.id {
			continue
		}
		cur.id = top.id
		cur.size += right.size
		syms[cur.next].size = 0
		cur.next = right.next
		if right.next >= 0 {
			syms[right.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if rule, ok := m.merges[pairKey(syms[cur.prev].id, cur.id)]; ok {
				h = heapPush(h, mergeItem{rule.rank, cur.prev, rule.id})
			}
		}
		if cur.next >= 0 {
			if rule, ok := m.merges[pairKey(cur.id, syms[cur.next].id)]; ok {
				h = heapPush(h, mergeItem{rule.rank, top.pos, rule.id})
			}
		}
	}
	for _, s := range syms {
		if s.size > 0 {
			dst = append(dst, s.id)
		}
	}
	// Keep scratch space of ordinary words only: a whole text encoded as
	// one word (SentencePiece style) would pin megabytes.
	if cap(syms) <= maxPooledSymbols {
		w.syms, w.heap = syms, h
		m.work.Put(w)
	}
	return dst
}

// allBytes reports whether every byte of s has a "<0xXX>" token.
func (m *bpeModel) allBytes(s string) bool {
	for k := 0; k < len(s); k++ {
		if m.byteIDs[s[k]] < 0 {
			return false
		}
	}
	return true
}

// less orders merge candidates by rank, then by position.
func (a mergeItem) less(b mergeItem) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// The merge queue is a 4-ary min-heap, kinder to the cache than a binary
// one when a long word queues millions of candidates.

func heapInit(h []mergeItem) {
	for i := (len(h) - 2) / 4; i >= 0; i-- {
		heapDown(h, i)
	}
}

func heapPush(h []mergeItem, x mergeItem) []mergeItem {
	h = append(h, x)
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 4
		if !h[i].less(h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
	return h
}

func heapPop(h []mergeItem) (mergeItem, []mergeItem) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	heapDown(h, 0)
	return top, h
}

func heapDown(h []mergeItem, i int) {
	if i >= len(h) {
		return
	}
	x := h[i]
	for {
		first := 4*i + 1
		if first >= len(h) {
			break
		}
		small := first
		for c := first + 1; c < first+4 && c < len(h); c++ {
			if h[c].less(h[small]) {
				small = c
			}
		}
		if !h[small].less(x) {
			break
		}
		h[i] = h[small]
		i = small
	}
	h[i] = x
}

const (
	// Words at least this long are not cached, as in tokenizers.
	maxCachedWordBytes = 256
	// Scratch space for words longer than this is not reused.
	maxPooledSymbols = 1 << 14
)

// wordCache maps words to their ids. It holds at most limit words; when
// full it is emptied, so the words of the current text refill it.
type wordCache struct {
	mu    sync.RWMutex
	limit int
	m     map[string][]int32
}

func newWordCache(limit int) *wordCache {
	return &wordCache{limit: limit, m: make(map[string][]int32)}
}

func (c *wordCache) get(word string) ([]int32, bool) {
	c.mu.RLock()
	ids, ok := c.m[word]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(word string, ids []int32) {
	own := make([]int32, len(ids))
	copy(own, ids)
	c.mu.Lock()
	if len(c.m) >= c.limit {
		clear(c.m)
	}
	c.m[word] = own
	c.mu.Unlock()
}
