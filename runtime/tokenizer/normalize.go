package tokenizer

import (
	"regexp"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites a piece of text before pre-tokenization.
type normalizer interface {
	normalize(p piece) piece
}

// sequenceNorm runs normalizers one after the other.
type sequenceNorm []normalizer

func (s sequenceNorm) normalize(p piece) piece {
	for _, n := range s {
		p = n.normalize(p)
	}
	return p
}

// prependNorm puts a string in front of non-empty text.
type prependNorm struct{ prefix string }

func (n prependNorm) normalize(p piece) piece {
	if p.text != "" {
		p.text = n.prefix + p.text
	}
	return p
}

// replaceNorm replaces every match of a literal or a regex.
type replaceNorm struct {
	literal string
	re      *regexp.Regexp // nil for a literal
	content string
}

func (n replaceNorm) normalize(p piece) piece {
	p.text = n.apply(p.text)
	return p
}

func (n replaceNorm) apply(s string) string {
	if n.re != nil {
		return n.re.ReplaceAllLiteralString(s, n.content)
	}
	if n.literal == "" {
		return s
	}
	return strings.ReplaceAll(s, n.literal, n.content)
}

// unicodeNorm applies one of the Unicode normalization forms.
type unicodeNorm struct{ form norm.Form }

func (n unicodeNorm) normalize(p piece) piece {
	p.text = n.form.String(p.text)
	return p
}

// stripNorm removes white space at either end.
type stripNorm struct{ left, right bool }

func (n stripNorm) normalize(p piece) piece {
	if n.left {
		t := strings.TrimLeftFunc(p.text, unicode.IsSpace)
		if len(t) != len(p.text) {
			// The text now starts past offset 0 of the original.
			p.first = false
		}
		p.text = t
	}
	if n.right {
		p.text = strings.TrimRightFunc(p.text, unicode.IsSpace)
	}
	return p
}
