package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// refPattern is a known pattern rewritten as its alternatives for Go's
// regexp, which lacks the lookahead of \s+(?!\S); that alternative is
// emulated by hand. \s is spelled as Oniguruma reads it in Unicode.
type refPattern struct {
	alts      []*regexp.Regexp // anchored, tried in order
	lookahead int              // index in alts of \s+(?!\S)
}

const refSpace = `[\t-\r \x{85}\p{Z}]`

func newRefPattern(alts []string, lookahead int) *refPattern {
	r := &refPattern{lookahead: lookahead}
	for _, a := range alts {
		r.alts = append(r.alts, regexp.MustCompile(`^(?:`+a+`)`))
	}
	return r
}

var refPatterns = map[string]*refPattern{
	"llama3": newRefPattern([]string{
		`(?i:'s|'t|'re|'ve|'m|'ll|'d)`,
		`[^\r\n\p{L}\p{N}]?\p{L}+`,
		`\p{N}{1,3}`,
		` ?[^\t-\r \x{85}\p{Z}\p{L}\p{N}]+[\r\n]*`,
		refSpace + `*[\r\n]+`,
		refSpace + `+`, // followed by (?!\S)
		refSpace + `+`,
	}, 5),
	"qwen2": newRefPattern([]string{
		`(?i:'s|'t|'re|'ve|'m|'ll|'d)`,
		`[^\r\n\p{L}\p{N}]?\p{L}+`,
		`\p{N}`,
		` ?[^\t-\r \x{85}\p{Z}\p{L}\p{N}]+[\r\n]*`,
		refSpace + `*[\r\n]+`,
		refSpace + `+`,
		refSpace + `+`,
	}, 5),
	"gpt2": newRefPattern([]string{
		`'s|'t|'re|'ve|'m|'ll|'d`,
		` ?\p{L}+`,
		` ?\p{N}+`,
		` ?[^\t-\r \x{85}\p{Z}\p{L}\p{N}]+`,
		refSpace + `+`,
		refSpace + `+`,
	}, 4),
}

var refSpaceRE = regexp.MustCompile(`^` + refSpace)

// split cuts s into the pattern's consecutive matches, as a backtracking
// engine would: the first alternative that matches wins.
func (r *refPattern) split(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		end := -1
		for k, re := range r.alts {
			loc := re.FindStringIndex(s[i:])
			if loc == nil {
				continue
			}
			if k != r.lookahead {
				end = i + loc[1]
				break
			}
			// Backtrack the greedy run until (?!\S) holds.
			for n := i + loc[1]; n > i; {
				if n == len(s) || refSpaceRE.MatchString(s[n:]) {
					end = n
					break
				}
				_, w := utf8.DecodeLastRuneInString(s[i:n])
				n -= w
			}
			if end >= 0 {
				break
			}
		}
		if end <= i {
			panic("reference pattern matched nothing at " + s[i:])
		}
		out = append(out, s[i:end])
		i = end
	}
	return out
}

var scanners = map[string]scanFunc{
	"llama3": knownScanner(patternLlama3),
	"qwen2":  knownScanner(patternQwen2),
	"gpt2":   knownScanner(patternGPT2),
}

func scanSplit(scan scanFunc, s string) []string {
	var out []string
	for i := 0; i < len(s); {
		end := scan(s, i)
		out = append(out, s[i:end])
		i = end
	}
	return out
}

// scanTexts are the tricky strings of the pre-tokenizer tests.
var scanTexts = []string{
	"I'm here, it's fine; we'll see. They're, you've, I'd",
	"DON'T SHOUT'S 'S 'RE 'Re 'rE", "'ſ x'ſ 'Ll", "'x 'rx '' ''s",
	"1 12 123 1234 12345 123456 1234567", "x1234567y", "٣٤٥٦ ⅻ ½¾ 2²",
	"a  b   c    d", "a \nb", "end   ", "end \n", "line1\n\nline2\r\n\r\nline3\n",
	"  \n  \n  x", "\t\tindent\n\t", "tabs\t\there", "trailing spaces   \n",
	"nbsp\u00a0here\u3000wide\u2028ls", "中文字符你好世界", "你好 世界", "emoji 😀👍🏽 family 👨‍👩‍👧",
	"Café naïve résumé e\u0301", "Ελληνικά κείμενο", "日本語のテキスト。", "مرحبا بالعالم",
	"!!!???...", " !!", "a!!\n\n", "$ 100.00 + 20%", " $100", "foo_bar baz-qux",
	"\u0085nel\x00\x01ctrl\x7f", "  foo", "\tfoo", "\nfoo", " \r\n \r\n", "x \t\n y",
	"it's 2024-01-01T12:34:56Z", "\ufeffbom", "ﬁ ㈱ ①", "",
}

// invalidTexts are not UTF-8; a golden JSON file cannot hold them.
var invalidTexts = []string{"\xff\xfeinvalid\xc3", " \xe4\xbd", "a\x80 \x80b", "'\xc5"}

func TestScanners(t *testing.T) {
	tests := []struct {
		pattern, text string
		want          []string
	}{
		{"llama3", "I'm here", []string{"I", "'m", " here"}},
		{"llama3", "DON'T", []string{"DON", "'T"}},
		{"llama3", "1234567", []string{"123", "456", "7"}},
		{"llama3", "a  b", []string{"a", " ", " b"}},
		{"llama3", "end   ", []string{"end", "   "}},
		{"llama3", "x \n\ny", []string{"x", " \n\n", "y"}},
		{"llama3", "hi!!\n\nyo", []string{"hi", "!!\n\n", "yo"}},
		{"llama3", "你好 世界", []string{"你好", " 世界"}},
		{"llama3", "😀👍 ok", []string{"😀👍", " ok"}},
		{"llama3", " $100", []string{" $", "100"}},
		{"llama3", "\tfoo  ", []string{"\tfoo", "  "}},
		{"llama3", "'x", []string{"'x"}},
		{"qwen2", "1234567", []string{"1", "2", "3", "4", "5", "6", "7"}},
		{"gpt2", "1234567 x", []string{"1234567", " x"}},
		{"gpt2", "I'M", []string{"I", "'", "M"}},
		{"gpt2", " \n hello", []string{" \n", " hello"}},
		{"gpt2", "\tfoo", []string{"\t", "foo"}},
	}
	for _, tt := range tests {
		if got := scanSplit(scanners[tt.pattern], tt.text); !slices.Equal(got, tt.want) {
			t.Errorf("%s: split(%q) = %q, want %q", tt.pattern, tt.text, got, tt.want)
		}
	}
	for name, scan := range scanners {
		for _, s := range append(scanTexts, invalidTexts...) {
			if got, want := scanSplit(scan, s), refPatterns[name].split(s); !slices.Equal(got, want) {
				t.Errorf("%s: split(%q) = %q, regexp reference %q", name, s, got, want)
			}
		}
	}
}

// TestScannersGolden compares the splits of scanTexts with
// testdata/pretokenize.golden.json; -update rewrites it. The file was
// checked against the tokenizers library when written.
func TestScannersGolden(t *testing.T) {
	got := map[string][][]string{}
	for name, scan := range scanners {
		for _, s := range scanTexts {
			got[name] = append(got[name], scanSplit(scan, s))
		}
	}
	path := filepath.Join("testdata", "pretokenize.golden.json")
	if *update {
		var b strings.Builder
		b.WriteString("[\n")
		for k, s := range scanTexts {
			line, err := json.Marshal(goldenSplit{s, got["llama3"][k], got["qwen2"][k], got["gpt2"][k]})
			if err != nil {
				t.Fatal(err)
			}
			b.Write(line)
			if k < len(scanTexts)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString("]\n")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	var want []goldenSplit
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(want) != len(scanTexts) {
		t.Fatalf("%s has %d texts, scanTexts %d; run go test -update", path, len(want), len(scanTexts))
	}
	for k, w := range want {
		if w.Text != scanTexts[k] {
			t.Fatalf("%s: text %d is %q, scanTexts has %q; run go test -update", path, k, w.Text, scanTexts[k])
		}
		for name, ws := range map[string][]string{"llama3": w.Llama3, "qwen2": w.Qwen2, "gpt2": w.GPT2} {
			if !slices.Equal(got[name][k], ws) {
				t.Errorf("%s: split(%q) = %q, golden %q", name, w.Text, got[name][k], ws)
			}
		}
	}
}

// goldenSplit is one line of testdata/pretokenize.golden.json.
type goldenSplit struct {
	Text   string   `json:"text"`
	Llama3 []string `json:"llama3"`
	Qwen2  []string `json:"qwen2"`
	GPT2   []string `json:"gpt2"`
}

// FuzzScanners checks the hand-written scanners against the regexp
// reference on any input.
func FuzzScanners(f *testing.F) {
	for _, s := range scanTexts {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, scan := range scanners {
			if got, want := scanSplit(scan, s), refPatterns[name].split(s); !slices.Equal(got, want) {
				t.Fatalf("%s: split(%q) = %q, regexp reference %q", name, s, got, want)
			}
		}
	})
}

func TestSplitBehaviors(t *testing.T) {
	// "a12b34c" with the digits matched as "12", "3" and "4".
	const text = "a12b34c"
	spans := []span{{0, 1, false}, {1, 3, true}, {3, 4, false}, {4, 5, true}, {5, 6, true}, {6, 7, false}}
	tests := []struct {
		b      behavior
		invert bool
		want   []string
	}{
		{behaviorIsolated, false, []string{"a", "12", "b", "3", "4", "c"}},
		{behaviorRemoved, false, []string{"a", "b", "c"}},
		{behaviorMergedWithPrevious, false, []string{"a12", "b3", "4", "c"}},
		{behaviorMergedWithNext, false, []string{"a", "12b", "3", "4c"}},
		{behaviorContiguous, false, []string{"a", "12", "b", "34", "c"}},
		{behaviorRemoved, true, []string{"12", "3", "4"}},
	}
	for _, tt := range tests {
		s := &splitPre{m: fixedSpans(spans), behavior: tt.b, invert: tt.invert}
		var got []string
		for _, p := range s.split(nil, piece{text: text}) {
			got = append(got, p.text)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("behavior %d, invert %v: %q, want %q", tt.b, tt.invert, got, tt.want)
		}
	}
}

// fixedSpans is a matcher that returns the same spans for any text.
type fixedSpans []span

func (f fixedSpans) spans(dst []span, _ string) []span { return append(dst, f...) }

func TestTranslateClasses(t *testing.T) {
	tests := []struct{ in, want string }{
		{`\s+`, `[\t-\r \x{85}\p{Z}]+`},
		{`[^\s\d]`, `[^\t-\r \x{85}\p{Z}\p{Nd}]`},
		{`\S\D\W`, `[^\t-\r \x{85}\p{Z}][^\p{Nd}][^\p{L}\p{M}\p{Nd}\p{Pc}]`},
		{`\\s`, `\\s`},
		{`[]\s]`, `[]\t-\r \x{85}\p{Z}]`},
		{`[[:alpha:]\w]`, `[[:alpha:]\p{L}\p{M}\p{Nd}\p{Pc}]`},
		{`\p{L}\n`, `\p{L}\n`},
	}
	for _, tt := range tests {
		got, err := translateClasses(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("translateClasses(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := translateClasses(`[^\S]`); err == nil {
		t.Errorf(`translateClasses("[^\S]") succeeded, want an error`)
	}
}
