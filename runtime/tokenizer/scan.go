package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The pre-tokenizer patterns of GPT-2, Llama 3 and Qwen2 use a negative
// lookahead, which Go's regexp lacks, so they are matched by hand-written
// scanners that follow the backtracking order of Oniguruma, the engine the
// tokenizers library uses. Each scanner returns where the match starting at
// i ends. All three patterns match at every position, so a string is cut
// into consecutive matches with no gaps.
const (
	patternGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

	patternLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

	patternQwen2 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// runeClass sorts runes into the classes the known patterns distinguish.
type runeClass uint8

const (
	classOther   runeClass = iota // [^\s\p{L}\p{N}], and bytes of invalid UTF-8
	classLetter                   // \p{L}
	classNumber                   // \p{N}
	classSpace                    // \s other than \r and \n
	classNewline                  // \r or \n
)

var asciiClass = func() (t [utf8.RuneSelf]runeClass) {
	for c := 0; c < utf8.RuneSelf; c++ {
		switch {
		case c == '\r' || c == '\n':
			t[c] = classNewline
		case c == ' ' || (c >= '\t' && c <= '\f'):
			t[c] = classSpace
		case (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
			t[c] = classLetter
		case c >= '0' && c <= '9':
			t[c] = classNumber
		}
	}
	return t
}()

// classAt returns the class of the rune at s[i] and its width in bytes. An
// invalid byte is a one-byte rune of class other.
func classAt(s string, i int) (runeClass, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	switch {
	case r == utf8.RuneError && w == 1:
		return classOther, 1
	case unicode.IsLetter(r):
		return classLetter, w
	case unicode.IsNumber(r):
		return classNumber, w
	case unicode.IsSpace(r): // the White_Space property, as Oniguruma's \s
		return classSpace, w
	}
	return classOther, w
}

// runEnd returns the end of the run of class c that starts at i.
func runEnd(s string, i int, c runeClass) int {
	for i < len(s) {
		k, w := classAt(s, i)
		if k != c {
			break
		}
		i += w
	}
	return i
}

// isSpaceClass reports whether c is one of the \s classes.
func isSpaceClass(c runeClass) bool { return c == classSpace || c == classNewline }

// contraction returns the length of the contraction ('s, 't, 're, 've,
// 'm, 'll, 'd) that starts with the apostrophe at s[i], or 0. With fold,
// letters match in any case under Unicode simple case folding (so 'ſ'
// matches 's').
func contraction(s string, i int, fold bool) int {
	rest := s[i+1:]
	letter := func(j int, want byte) (int, bool) {
		if j >= len(rest) {
			return 0, false
		}
		if rest[j] == want {
			return 1, true
		}
		if !fold {
			return 0, false
		}
		if rest[j] == want-'a'+'A' {
			return 1, true
		}
		if want == 's' && strings.HasPrefix(rest[j:], "ſ") {
			return len("ſ"), true
		}
		return 0, false
	}
	if len(rest) == 0 {
		return 0
	}
	for _, c := range []string{"s", "t", "re", "ve", "m", "ll", "d"} {
		n := 0
		ok := true
		for k := 0; k < len(c); k++ {
			w, hit := letter(n, c[k])
			if !hit {
				ok = false
				break
			}
			n += w
		}
		if ok {
			return 1 + n
		}
	}
	return 0
}

// scanFunc returns the end of the pattern's match at s[i:], i < len(s).
type scanFunc func(s string, i int) int

// spaceRun ends a match that starts on whitespace with the pattern tail
// \s+(?!\S)|\s+ : the whole run when it reaches the end of s or is one rune
// long, the run less its last rune otherwise.
func spaceRun(s string, i int) int {
	j := i
	last := i
	for j < len(s) {
		c, w := classAt(s, j)
		if !isSpaceClass(c) {
			break
		}
		last = j
		j += w
	}
	if j == len(s) || last == i {
		return j
	}
	return last
}

// scanGPT2 matches patternGPT2.
func scanGPT2(s string, i int) int {
	if s[i] == '\'' {
		if n := contraction(s, i, false); n > 0 {
			return i + n
		}
	}
	c, w := classAt(s, i)
	if s[i] == ' ' && i+1 < len(s) {
		if next, nw := classAt(s, i+1); next != classSpace && next != classNewline {
			return runEnd(s, i+1+nw, next)
		}
	}
	if isSpaceClass(c) {
		return spaceRun(s, i)
	}
	return runEnd(s, i+w, c)
}

// scanLlama returns the scanner for the Llama 3 pattern, whose numbers run
// to at most maxDigits runes (3 for Llama 3, 1 for Qwen2).
func scanLlama(maxDigits int) scanFunc {
	return func(s string, i int) int {
		if s[i] == '\'' {
			if n := contraction(s, i, true); n > 0 {
				return i + n
			}
		}
		c, w := classAt(s, i)
		// [^\r\n\p{L}\p{N}]?\p{L}+
		switch c {
		case classLetter:
			return runEnd(s, i+w, classLetter)
		case classOther, classSpace:
			if i+w < len(s) {
				if next, nw := classAt(s, i+w); next == classLetter {
					return runEnd(s, i+w+nw, classLetter)
				}
			}
		case classNumber: // \p{N}{1,maxDigits}
			j := i + w
			for k := 1; k < maxDigits && j < len(s); k++ {
				next, nw := classAt(s, j)
				if next != classNumber {
					break
				}
				j += nw
			}
			return j
		}
		// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
		start := -1
		if c == classOther {
			start = i + w
		} else if s[i] == ' ' && i+1 < len(s) {
			if next, nw := classAt(s, i+1); next == classOther {
				start = i + 1 + nw
			}
		}
		if start >= 0 {
			return runEnd(s, runEnd(s, start, classOther), classNewline)
		}
		// \s*[\r\n]+ : through the last newline of the whitespace run.
		j, lastNL := i, -1
		for j < len(s) {
			k, kw := classAt(s, j)
			if !isSpaceClass(k) {
				break
			}
			if k == classNewline {
				lastNL = j
			}
			j += kw
		}
		if lastNL >= 0 {
			return lastNL + 1
		}
		return spaceRun(s, i)
	}
}

// knownScanner returns the scanner for a pattern this package matches by
// hand, or nil.
func knownScanner(pattern string) scanFunc {
	switch pattern {
	case patternGPT2:
		return scanGPT2
	case patternLlama3:
		return scanLlama(3)
	case patternQwen2:
		return scanLlama(1)
	}
	return nil
}

// compileRegex compiles an Oniguruma pattern with Go's regexp. The classes
// \s, \d and \w are rewritten to their Unicode meaning in Oniguruma (Go
// reads them as ASCII only); a pattern Go cannot compile, such as one with a
// lookaround, is an error.
func compileRegex(pattern string) (*regexp.Regexp, error) {
	translated, err := translateClasses(pattern)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(translated)
	if err != nil {
		return nil, fmt.Errorf("regex %q is not supported (Go's regexp has no lookaround or backreferences): %w", pattern, err)
	}
	return re, nil
}

// Unicode bodies of Oniguruma's \s, \d and \w, for use inside a class.
const (
	spaceBody = `\t-\r \x{85}\p{Z}`
	digitBody = `\p{Nd}`
	wordBody  = `\p{L}\p{M}\p{Nd}\p{Pc}`
)

// translateClasses rewrites \s \S \d \D \w \W as Unicode classes.
func translateClasses(p string) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			e := p[i+1]
			i++
			body := ""
			switch e {
			case 's', 'S':
				body = spaceBody
			case 'd', 'D':
				body = digitBody
			case 'w', 'W':
				body = wordBody
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
				continue
			}
			negated := e == 'S' || e == 'D' || e == 'W'
			switch {
			case !inClass && negated:
				b.WriteString("[^" + body + "]")
			case !inClass:
				b.WriteString("[" + body + "]")
			case negated:
				return "", fmt.Errorf("regex %q: \\%c inside a character class is not supported", p, e)
			default:
				b.WriteString(body)
			}
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			// A ']' or '^]' right after '[' is literal.
			if i+1 < len(p) && p[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(p) && p[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
		case c == '[' && inClass && strings.HasPrefix(p[i:], "[:"):
			end := strings.Index(p[i+2:], ":]")
			if end < 0 {
				b.WriteByte(c)
				continue
			}
			b.WriteString(p[i : i+2+end+2])
			i += 2 + end + 1
		case c == ']' && inClass:
			inClass = false
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
