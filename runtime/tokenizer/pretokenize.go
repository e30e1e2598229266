package tokenizer

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// piece is a stretch of text on its way through normalization and
// pre-tokenization. first is set while the piece starts at offset 0 of the
// text given to Encode; the Metaspace prepend scheme "first" reads it.
type piece struct {
	text  string
	first bool
}

// preTokenizer cuts a piece into the words the model encodes one by one.
type preTokenizer interface {
	// split appends the non-empty sub-pieces of p to dst.
	split(dst []piece, p piece) []piece
}

// span is a stretch [start, end) of a string and whether a pattern matched
// it. A list of spans covers its string exactly.
type span struct {
	start, end int
	match      bool
}

// matcher finds the matches of a pattern.
type matcher interface {
	// spans appends to dst the spans of s, matches and gaps in order.
	spans(dst []span, s string) []span
}

// scanMatcher matches one of the patterns known by their string.
type scanMatcher struct{ scan scanFunc }

func (m scanMatcher) spans(dst []span, s string) []span {
	for i := 0; i < len(s); {
		end := m.scan(s, i)
		dst = append(dst, span{i, end, true})
		i = end
	}
	return dst
}

// regexMatcher matches any other regular expression.
type regexMatcher struct{ re *regexp.Regexp }

func (m regexMatcher) spans(dst []span, s string) []span {
	prev := 0
	for _, loc := range m.re.FindAllStringIndex(s, -1) {
		if loc[0] > prev {
			dst = append(dst, span{prev, loc[0], false})
		}
		dst = append(dst, span{loc[0], loc[1], true})
		prev = loc[1]
	}
	if prev < len(s) {
		dst = append(dst, span{prev, len(s), false})
	}
	return dst
}

// literalMatcher matches a fixed string; an empty one matches nothing.
type literalMatcher struct{ lit string }

func (m literalMatcher) spans(dst []span, s string) []span {
	prev := 0
	if m.lit != "" {
		for i := 0; i < len(s); {
			k := strings.Index(s[i:], m.lit)
			if k < 0 {
				break
			}
			if i+k > prev {
				dst = append(dst, span{prev, i + k, false})
			}
			dst = append(dst, span{i + k, i + k + len(m.lit), true})
			i += k + len(m.lit)
			prev = i
		}
	}
	if prev < len(s) {
		dst = append(dst, span{prev, len(s), false})
	}
	return dst
}

// behavior says what a split does with the matched delimiters.
type behavior uint8

const (
	behaviorRemoved behavior = iota
	behaviorIsolated
	behaviorMergedWithPrevious
	behaviorMergedWithNext
	behaviorContiguous
)

var behaviors = map[string]behavior{
	"Removed":            behaviorRemoved,
	"Isolated":           behaviorIsolated,
	"MergedWithPrevious": behaviorMergedWithPrevious,
	"MergedWithNext":     behaviorMergedWithNext,
	"Contiguous":         behaviorContiguous,
}

// splitSpans cuts p along spans as behavior says and appends the non-empty
// pieces to dst.
func splitSpans(dst []piece, p piece, spans []span, b behavior) []piece {
	emit := func(start, end int) {
		if end > start {
			dst = append(dst, piece{p.text[start:end], p.first && start == 0})
		}
	}
	switch b {
	case behaviorIsolated:
		for _, s := range spans {
			emit(s.start, s.end)
		}
	case behaviorRemoved:
		for _, s := range spans {
			if !s.match {
				emit(s.start, s.end)
			}
		}
	case behaviorContiguous, behaviorMergedWithPrevious:
		// A span joins the one before it when both match (Contiguous), or
		// when it is the first match after a gap (MergedWithPrevious).
		start, end, prevMatch := -1, -1, false
		for _, s := range spans {
			join := start >= 0 && ((b == behaviorContiguous && s.match == prevMatch) ||
				(b == behaviorMergedWithPrevious && s.match && !prevMatch))
			if join {
				end = s.end
			} else {
				if start >= 0 {
					emit(start, end)
				}
				start, end = s.start, s.end
			}
			prevMatch = s.match
		}
		if start >= 0 {
			emit(start, end)
		}
	case behaviorMergedWithNext:
		// Walk backwards: a match joins the span after it unless the span
		// after it was itself a match.
		out := make([]span, 0, len(spans))
		nextMatch := false
		for k := len(spans) - 1; k >= 0; k-- {
			s := spans[k]
			if s.match && !nextMatch && len(out) > 0 {
				out[len(out)-1].start = s.start
			} else {
				out = append(out, span{s.start, s.end, false})
			}
			nextMatch = s.match
		}
		for k := len(out) - 1; k >= 0; k-- {
			emit(out[k].start, out[k].end)
		}
	}
	return dst
}

// splitPre is the Split pre-tokenizer.
type splitPre struct {
	m        matcher
	behavior behavior
	invert   bool
}

func (s *splitPre) split(dst []piece, p piece) []piece {
	spans := s.m.spans(nil, p.text)
	if s.invert {
		for k := range spans {
			spans[k].match = !spans[k].match
		}
	}
	return splitSpans(dst, p, spans, s.behavior)
}

// byteLevelPre is the ByteLevel pre-tokenizer: an optional leading space,
// an optional GPT-2 split, then every byte mapped to its rune.
type byteLevelPre struct {
	addPrefixSpace bool
	useRegex       bool
	table          *byteTable
}

func (b *byteLevelPre) split(dst []piece, p piece) []piece {
	if b.addPrefixSpace && !strings.HasPrefix(p.text, " ") {
		p.text = " " + p.text
	}
	start := len(dst)
	if b.useRegex {
		dst = scanMatcher{scanGPT2}.splitIsolated(dst, p)
	} else if p.text != "" {
		dst = append(dst, p)
	}
	for k := start; k < len(dst); k++ {
		dst[k].text = b.table.mapBytes(dst[k].text)
	}
	return dst
}

// splitIsolated appends the matches of m in p, each a piece of its own.
func (m scanMatcher) splitIsolated(dst []piece, p piece) []piece {
	for i := 0; i < len(p.text); {
		end := m.scan(p.text, i)
		dst = append(dst, piece{p.text[i:end], p.first && i == 0})
		i = end
	}
	return dst
}

// prependScheme says when Metaspace puts a replacement rune in front.
type prependScheme uint8

const (
	prependAlways prependScheme = iota
	prependFirst                // only on the piece at the start of the text
	prependNever
)

// metaspacePre is the Metaspace pre-tokenizer: spaces become the
// replacement rune (usually "▁"), which may be prepended, and the text may
// be split in front of each replacement.
type metaspacePre struct {
	replacement string // one rune
	scheme      prependScheme
	splitAtRepl bool
}

func (m *metaspacePre) split(dst []piece, p piece) []piece {
	p.text = strings.ReplaceAll(p.text, " ", m.replacement)
	if !strings.HasPrefix(p.text, m.replacement) &&
		(m.scheme == prependAlways || (m.scheme == prependFirst && p.first)) {
		p.text = m.replacement + p.text
	}
	if !m.splitAtRepl {
		if p.text != "" {
			dst = append(dst, p)
		}
		return dst
	}
	return splitSpans(dst, p, literalMatcher{m.replacement}.spans(nil, p.text), behaviorMergedWithNext)
}

// sequencePre runs pre-tokenizers one after the other on every piece.
type sequencePre []preTokenizer

func (s sequencePre) split(dst []piece, p piece) []piece {
	cur := []piece{p}
	var next []piece
	for _, pt := range s {
		next = next[:0]
		for _, q := range cur {
			next = pt.split(next, q)
		}
		cur, next = next, cur
	}
	return append(dst, cur...)
}

// validRune reports whether s is exactly one rune.
func validRune(s string) bool {
	r, w := utf8.DecodeRuneInString(s)
	return w == len(s) && !(r == utf8.RuneError && w <= 1)
}
