package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// decoder turns tokens back into text, in steps: each takes the token
// strings so far and returns new ones, and Decode joins the last.
type decoder interface {
	decodeChain(tokens []string) []string
}

// sequenceDec runs decoders one after the other.
type sequenceDec []decoder

func (s sequenceDec) decodeChain(tokens []string) []string {
	for _, d := range s {
		tokens = d.decodeChain(tokens)
	}
	return tokens
}

// byteLevelDec maps the runes of byte-level tokens back to bytes and reads
// the bytes as UTF-8, replacing what is ill-formed.
type byteLevelDec struct{ table *byteTable }

func (d byteLevelDec) decodeChain(tokens []string) []string {
	var raw []byte
	for _, t := range tokens {
		raw = d.table.unmapToken(raw, t)
	}
	return []string{string(appendLossy(make([]byte, 0, len(raw)), raw))}
}

// replaceDec replaces a literal or regex in every token.
type replaceDec struct{ r replaceNorm }

func (d replaceDec) decodeChain(tokens []string) []string {
	for k, t := range tokens {
		tokens[k] = d.r.apply(t)
	}
	return tokens
}

// byteFallbackDec turns runs of "<0xXX>" tokens into the text their bytes
// spell, or one U+FFFD per byte when the run is not valid UTF-8.
type byteFallbackDec struct{}

func (byteFallbackDec) decodeChain(tokens []string) []string {
	out := make([]string, 0, len(tokens))
	var run []byte
	flush := func() {
		if len(run) == 0 {
			return
		}
		if utf8.Valid(run) {
			out = append(out, string(run))
		} else {
			for range run {
				out = append(out, "\uFFFD")
			}
		}
		run = run[:0]
	}
	for _, t := range tokens {
		if b, ok := parseByteToken(t); ok {
			run = append(run, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

// parseByteToken reads a token of the form "<0xXX>". Like Rust's
// u8::from_str_radix, the two characters may also be "+" and one digit.
func parseByteToken(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	hex := t[3:5]
	if hex[0] == '+' {
		hex = hex[1:]
	}
	var v byte
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return v, true
}

// fuseDec joins all tokens into one.
type fuseDec struct{}

func (fuseDec) decodeChain(tokens []string) []string {
	return []string{strings.Join(tokens, "")}
}

// stripDec removes up to start copies of content from the front of every
// token and up to stop from the back.
type stripDec struct {
	content     rune
	start, stop int
}

func (d stripDec) decodeChain(tokens []string) []string {
	for k, t := range tokens {
		for n := 0; n < d.start; n++ {
			r, w := utf8.DecodeRuneInString(t)
			if w == 0 || r != d.content {
				break
			}
			t = t[w:]
		}
		for n := 0; n < d.stop; n++ {
			r, w := utf8.DecodeLastRuneInString(t)
			if w == 0 || r != d.content {
				break
			}
			t = t[:len(t)-w]
		}
		tokens[k] = t
	}
	return tokens
}

// metaspaceDec turns replacement runes back into spaces; in the first token
// it drops them, unless nothing was prepended when encoding.
type metaspaceDec struct {
	replacement rune
	scheme      prependScheme
}

func (d metaspaceDec) decodeChain(tokens []string) []string {
	for k, t := range tokens {
		var b strings.Builder
		for _, r := range t {
			switch {
			case r != d.replacement:
				b.WriteRune(r)
			case k == 0 && d.scheme != prependNever:
			default:
				b.WriteByte(' ')
			}
		}
		tokens[k] = b.String()
	}
	return tokens
}

// bpeDec replaces the end-of-word suffix by a space, or by nothing in the
// last token.
type bpeDec struct{ suffix string }

func (d bpeDec) decodeChain(tokens []string) []string {
	for k, t := range tokens {
		repl := " "
		if k == len(tokens)-1 {
			repl = ""
		}
		tokens[k] = strings.ReplaceAll(t, d.suffix, repl)
	}
	return tokens
}
