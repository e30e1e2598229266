package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// fixtures caches the tokenizers of testdata by directory name.
var fixtures sync.Map

func fixture(tb testing.TB, name string) *Tokenizer {
	tb.Helper()
	if t, ok := fixtures.Load(name); ok {
		return t.(*Tokenizer)
	}
	t, err := Load(filepath.Join("testdata", name, "tokenizer.json"))
	if err != nil {
		tb.Fatal(err)
	}
	fixtures.Store(name, t)
	return t
}

// tokens spells ids as their token strings, for readable expectations.
func tokens(t *Tokenizer, ids []int32) []string {
	out := make([]string, len(ids))
	for k, id := range ids {
		s, ok := t.Token(id)
		if !ok {
			s = fmt.Sprintf("#%d", id)
		}
		out[k] = s
	}
	return out
}

// The expectations below are worked out by hand from the vocabularies and
// merge lists of the tiny fixtures (see testdata/README.md); the same texts
// are checked against the tokenizers library by TestTokenizerGolden.
func TestEncode(t *testing.T) {
	tests := []struct {
		fixture string
		text    string
		want    []string // tokens of Encode(text, false)
	}{
		{"tiny-bytelevel", "", nil},
		{"tiny-bytelevel", "hello world", []string{"hello", "Ġworld"}},
		// ignore_merges: the pre-token "Ġhello" is in the vocab as is.
		{"tiny-bytelevel", " hello", []string{"Ġhello"}},
		// "h e" merges first, then "Ġ t", then "Ġt he".
		{"tiny-bytelevel", " the", []string{"Ġthe"}},
		{"tiny-bytelevel", "the", []string{"t", "he"}},
		{"tiny-bytelevel", "it's", []string{"i", "t", "'s"}},
		{"tiny-bytelevel", "1234567", []string{"123", "4", "5", "6", "7"}},
		{"tiny-bytelevel", "a\n\nb", []string{"a", "ĊĊ", "b"}},
		{"tiny-bytelevel", "x<|eot_id|>y", []string{"x", "<|eot_id|>", "y"}},
		{"tiny-bytelevel", "<|begin_of_text|><|eot_id|>", []string{"<|begin_of_text|>", "<|eot_id|>"}},
		// 你 is E4 BD A0: two merges rebuild it from its byte runes.
		{"tiny-bytelevel", "你", []string{"ä½ł"}},
		{"tiny-bytelevel", "😀", []string{"ð", "Ł", "ĺ", "Ģ"}},
		{"tiny-qwen2", "123", []string{"1", "2", "3"}},
		{"tiny-qwen2", "12", []string{"1", "2"}},
		{"tiny-gpt2", "1234567", []string{"123", "4", "5", "6", "7"}},
		{"tiny-gpt2", " hello", []string{"Ġ", "hello"}},
		// Normalized added token "<|fim|>": found after normalization.
		{"tiny-gpt2", "a<|fim|>b", []string{"a", "<|fim|>", "b"}},
		// "l l", "e ll", "H ell" merge in rank order; "ell o" is then stale.
		{"tiny-spbpe", "Hello world", []string{"▁", "Hell", "o", "▁world"}},
		{"tiny-spbpe", " ", []string{"▁▁"}},
		{"tiny-spbpe", "    ", []string{"▁▁▁▁", "▁"}},
		// 好 is not in the vocab: its bytes E5 A5 BD fall back.
		{"tiny-spbpe", "你好", []string{"▁", "你", "<0xE5>", "<0xA5>", "<0xBD>"}},
		{"tiny-spbpe", "\n", []string{"▁", "<0x0A>"}},
		// Added tokens cut the text first; each rest is normalized alone.
		{"tiny-spbpe", "<s>hello</s>", []string{"<s>", "▁", "he", "ll", "o", "</s>"}},
		// lstrip and rstrip: <|tool|> takes the spaces around it.
		{"tiny-spbpe", "a <|tool|>  a", []string{"▁a", "<|tool|>", "▁a"}},
		// Metaspace "first": only the piece at offset 0 gets a "▁".
		{"tiny-metaspace", "a[INST]a a", []string{"▁a", "[INST]", "a", "▁a"}},
		{"tiny-metaspace", "[INST]a", []string{"[INST]", "a"}},
	}
	for _, tt := range tests {
		tok := fixture(t, tt.fixture)
		got := tokens(tok, tok.Encode(tt.text, false))
		if len(got) == 0 {
			got = nil
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: Encode(%q) = %q, want %q", tt.fixture, tt.text, got, tt.want)
		}
	}
}

func TestEncodeAddSpecial(t *testing.T) {
	tests := []struct {
		fixture string
		text    string
		want    []string
	}{
		{"tiny-bytelevel", "", []string{"<|begin_of_text|>"}},
		{"tiny-bytelevel", "hello", []string{"<|begin_of_text|>", "hello"}},
		{"tiny-spbpe", "", []string{"<s>"}},
		{"tiny-spbpe", "a", []string{"<s>", "▁a"}},
		{"tiny-gpt2", "a", []string{"a"}}, // ByteLevel post-processor adds nothing
		{"tiny-qwen2", "a", []string{"a"}},
	}
	for _, tt := range tests {
		tok := fixture(t, tt.fixture)
		if got := tokens(tok, tok.Encode(tt.text, true)); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Encode(%q, true) = %q, want %q", tt.fixture, tt.text, got, tt.want)
		}
	}
}

// TestByteFallbackUnknown covers the unknown token when byte fallback is
// off or incomplete, on vocabularies built inline.
func TestByteFallbackUnknown(t *testing.T) {
	const base = `{"model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": %s, "byte_fallback": %s,
		"vocab": {"<unk>": 0, "a": 1, "<0xC3>": 2, "<0xA9>": 3}, "merges": []}}`
	tests := []struct {
		fuse, fallback string
		text           string
		want           []int32
	}{
		{"false", "false", "axxa", []int32{1, 0, 0, 1}},
		{"true", "false", "axxa", []int32{1, 0, 1}},
		{"true", "false", "xx", []int32{0}},
		{"false", "true", "é", []int32{2, 3}},
		// ü (C3 BC) lacks <0xBC>, so it is unknown as a whole.
		{"false", "true", "aüa", []int32{1, 0, 1}},
		// tokenizers adds a pending unknown only before the next known
		// rune, so byte tokens overtake it.
		{"true", "true", "xéa", []int32{2, 3, 0, 1}},
	}
	for _, tt := range tests {
		tok, err := Parse([]byte(fmt.Sprintf(base, tt.fuse, tt.fallback)), "inline.json")
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Encode(tt.text, false); !slices.Equal(got, tt.want) {
			t.Errorf("fuse_unk %s, byte_fallback %s: Encode(%q) = %v, want %v", tt.fuse, tt.fallback, tt.text, got, tt.want)
		}
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		fixture     string
		tokens      []string
		skipSpecial bool
		want        string
	}{
		{"tiny-bytelevel", []string{"hello", "Ġworld"}, false, "hello world"},
		{"tiny-bytelevel", []string{"<|begin_of_text|>", "hello"}, false, "<|begin_of_text|>hello"},
		{"tiny-bytelevel", []string{"<|begin_of_text|>", "hello"}, true, "hello"},
		{"tiny-bytelevel", []string{"ð", "Ł", "ĺ", "Ģ"}, false, "😀"},
		// A cut multi-byte sequence is one U+FFFD, as from_utf8_lossy.
		{"tiny-bytelevel", []string{"ð", "Ł", "a"}, false, "\uFFFDa"},
		{"tiny-bytelevel", []string{"Ł", "Ł"}, false, "\uFFFD\uFFFD"},
		{"tiny-bytelevel", nil, false, ""},
		{"tiny-spbpe", []string{"<s>", "▁", "Hell", "o", "▁world"}, true, "Hello world"},
		{"tiny-spbpe", []string{"<s>", "▁", "Hell", "o", "▁world"}, false, "<s> Hello world"},
		{"tiny-spbpe", []string{"▁", "你", "<0xE5>", "<0xA5>", "<0xBD>"}, false, "你好"},
		// Byte tokens that do not spell UTF-8 give one U+FFFD each.
		{"tiny-spbpe", []string{"<0xE5>", "<0xA5>", "▁a"}, false, "\uFFFD\uFFFD a"},
		{"tiny-spbpe", []string{"▁▁", "a"}, false, " a"},
		{"tiny-metaspace", []string{"▁a", "▁a"}, false, "a a"},
		{"tiny-metaspace", []string{"<s>", "▁a"}, false, "<s> a"},
	}
	for _, tt := range tests {
		tok := fixture(t, tt.fixture)
		ids := make([]int32, len(tt.tokens))
		for k, s := range tt.tokens {
			id, ok := tok.TokenID(s)
			if !ok {
				t.Fatalf("%s: no token %q", tt.fixture, s)
			}
			ids[k] = id
		}
		if got := tok.Decode(ids, tt.skipSpecial); got != tt.want {
			t.Errorf("%s: Decode(%q, %v) = %q, want %q", tt.fixture, tt.tokens, tt.skipSpecial, got, tt.want)
		}
	}
	// Ids that name no token are skipped.
	tok := fixture(t, "tiny-bytelevel")
	if got := tok.Decode([]int32{-1, 104, 1 << 30, 105}, false); got != "hi" {
		t.Errorf("Decode with unknown ids = %q, want %q", got, "hi")
	}
}

func TestVocabLookups(t *testing.T) {
	tok := fixture(t, "tiny-bytelevel")
	if got, want := tok.VocabSize(), 281; got != want {
		t.Errorf("VocabSize() = %d, want %d", got, want)
	}
	for _, tt := range []struct {
		token string
		id    int32
	}{{"Ā", 0}, {"!", 33}, {"Ġ", 32}, {"hello", 261}, {"<|begin_of_text|>", 278}, {"<|eot_id|>", 280}} {
		if id, ok := tok.TokenID(tt.token); !ok || id != tt.id {
			t.Errorf("TokenID(%q) = %d, %v, want %d", tt.token, id, ok, tt.id)
		}
		if s, ok := tok.Token(tt.id); !ok || s != tt.token {
			t.Errorf("Token(%d) = %q, %v, want %q", tt.id, s, ok, tt.token)
		}
	}
	if _, ok := tok.TokenID("nope"); ok {
		t.Error(`TokenID("nope") found a token`)
	}
	if _, ok := tok.Token(281); ok {
		t.Error("Token(281) found a token")
	}
}

func TestParseErrors(t *testing.T) {
	const model = `"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}`
	tests := []struct {
		name, json, want string
	}{
		{"malformed", `{"model": {`, "x.json: tokenizer: malformed JSON at line 1"},
		{"not an object", `[1]`, "x.json: tokenizer: value is array, want object"},
		{"no model", `{}`, "x.json: model: missing"},
		{"version", `{"version": "2.0", ` + model + `}`, `x.json: version: unknown version "2.0"`},
		{"wordpiece", `{"model": {"type": "WordPiece", "vocab": {}}}`, `x.json: model.type: model "WordPiece" is unsupported`},
		{"unigram", `{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}`, `x.json: model.type: model "Unigram" is unsupported`},
		{"unknown model", `{"model": {"type": "Magic"}}`, `x.json: model.type: unknown model type "Magic"`},
		{"no vocab", `{"model": {"type": "BPE", "merges": []}}`, "x.json: model.vocab: missing"},
		{"no merges", `{"model": {"type": "BPE", "vocab": {}}}`, "x.json: model.merges: missing"},
		{"empty vocab", `{"model": {"type": "BPE", "vocab": {}, "merges": []}, "added_tokens": [{"id": 0, "content": "<s>", "special": true}]}`, "x.json: model.vocab: empty"},
		{"negative id", `{"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}`, `x.json: model.vocab["a"]: id -1 out of range`},
		{"huge id", `{"model": {"type": "BPE", "vocab": {"a": 4294967296}, "merges": []}}`, `x.json: model.vocab["a"]: id 4294967296 out of range`},
		{"fractional id", `{"model": {"type": "BPE", "vocab": {"a": 1.5}, "merges": []}}`, `x.json: model.vocab["a"]: id 1.5 out of range`},
		{"string id", `{"model": {"type": "BPE", "vocab": {"a": "b"}, "merges": []}}`, `x.json: model.vocab["a"]: id "b" is not a number`},
		{"duplicate id", `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}}`, `x.json: model.vocab["b"]: duplicate id 0, already the id of "a"`},
		{"merge side", `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", "a c"]}}`, `x.json: model.merges[1]: token "c" not in vocab`},
		{"merge result", `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}}`, `x.json: model.merges[0]: merged token "ab" not in vocab`},
		{"merge spaces", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a a"]}}`, `x.json: model.merges[0]: "a a a" is not two tokens`},
		{"merge pair size", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a"]]}}`, `x.json: model.merges[0]: pair has 1 tokens, want 2`},
		{"merge mixed", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a", ["a", "a"]]}}`, `x.json: model.merges[1]: want an "a b" string`},
		{"unk", `{"model": {"type": "BPE", "unk_token": "<unk>", "vocab": {}, "merges": []}}`, `x.json: model.unk_token: token "<unk>" not in vocab`},
		{"dropout", `{"model": {"type": "BPE", "dropout": 0.1, "vocab": {}, "merges": []}}`, `x.json: model.dropout: dropout 0.1 is unsupported`},
		{"normalizer", `{"normalizer": {"type": "Lowercase"}, ` + model + `}`, `x.json: normalizer.type: unsupported normalizer "Lowercase"`},
		{"nested normalizer", `{"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Bert"}]}, ` + model + `}`, `x.json: normalizer.normalizers[1].type: unsupported normalizer "Bert"`},
		{"pre_tokenizer", `{"pre_tokenizer": {"type": "Whitespace"}, ` + model + `}`, `x.json: pre_tokenizer.type: unsupported pre-tokenizer "Whitespace"`},
		{"lookahead", `{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a(?=b)"}, "behavior": "Isolated", "invert": false}, ` + model + `}`, `x.json: pre_tokenizer.pattern.Regex: regex "a(?=b)" is not supported`},
		{"behavior", `{"pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways", "invert": false}, ` + model + `}`, `x.json: pre_tokenizer.behavior: unknown behavior "Sideways"`},
		{"metaspace", `{"pre_tokenizer": {"type": "Metaspace", "replacement": "ab"}, ` + model + `}`, `x.json: pre_tokenizer.replacement: "ab" is not a single character`},
		{"prepend scheme", `{"pre_tokenizer": {"type": "Metaspace", "replacement": "_", "prepend_scheme": "sometimes"}, ` + model + `}`, `x.json: pre_tokenizer.prepend_scheme: unknown scheme "sometimes"`},
		{"decoder", `{"decoder": {"type": "WordPiece"}, ` + model + `}`, `x.json: decoder.type: unsupported decoder "WordPiece"`},
		{"decoder type", `{"decoder": {"decoders": []}, ` + model + `}`, `x.json: decoder.type: missing`},
		{"post_processor", `{"post_processor": {"type": "Magic"}, ` + model + `}`, `x.json: post_processor.type: unsupported post-processor "Magic"`},
		{"template", `{"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}], "special_tokens": {}}, ` + model + `}`, `x.json: post_processor.single[0].SpecialToken.id: "<s>" not in post_processor.special_tokens`},
		{"field type", `{"decoder": {"type": "Strip", "content": " ", "start": "one"}, ` + model + `}`, `x.json: decoder.start: value is string, want integer`},
		{"added id", `{"added_tokens": [{"id": 7, "content": "<x>", "special": true}], ` + model + `}`, `x.json: added_tokens[0].id: "<x>" has id 7, but tokenizers gives it id 3`},
		{"added duplicate", `{"added_tokens": [{"id": 3, "content": "<x>"}, {"id": 3, "content": "<y>"}], ` + model + `}`, `x.json: added_tokens[1].id: duplicate id 3: "<x>" has it already`},
		{"added vocab clash", `{"added_tokens": [{"id": 1, "content": "<x>"}], ` + model + `}`, `x.json: added_tokens[0].id: duplicate id 1: "b" has it already`},
		{"added no content", `{"added_tokens": [{"id": 3}], ` + model + `}`, `x.json: added_tokens[0].content: missing`},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.json), "x.json")
		if err == nil {
			t.Errorf("%s: Parse succeeded, want error %q", tt.name, tt.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: error\n\t%v\nwant prefix\n\t%s", tt.name, err, tt.want)
		}
	}
}

// TestParseForms checks that equivalent spellings of a tokenizer give the
// same encoding.
func TestParseForms(t *testing.T) {
	tests := []struct {
		name, json string
	}{
		{"merge strings", `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}`},
		{"merge pairs", `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}}`},
		{"version line", `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["#version: 0.2", "a b"]}}`},
		{"no type", `{"model": {"vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}`},
		{"metaspace legacy", `{"pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "add_prefix_space": false},
			"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}`},
	}
	for _, tt := range tests {
		tok, err := Parse([]byte(tt.json), tt.name)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got := tok.Encode("ab", false); !slices.Equal(got, []int32{2}) {
			t.Errorf("%s: Encode(\"ab\") = %v, want [2]", tt.name, got)
		}
	}
}

func TestLoad(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.json"))
	if err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("Load of a missing file: error %v, want one naming the file", err)
	}
}

// TestConcurrentEncode encodes from several goroutines at once, for the
// race detector and the shared word cache.
func TestConcurrentEncode(t *testing.T) {
	tok := fixture(t, "small-llama3")
	text := englishText(20_000, 1)
	want := tok.Encode(text, true)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			if got := tok.Encode(text, true); !slices.Equal(got, want) {
				t.Error("concurrent Encode differs")
			}
		})
	}
	wg.Wait()
}

// englishText returns about n bytes of English-like prose.
func englishText(n int, seed uint64) string {
	words := strings.Fields(`the of and to a in is that for it as was with be by on not he I this are or his
		from at which but have an they you were her she there been one all we their has would when if so no
		what can more out up about into them some time could other than then only its two may first any new
		like these over such after most also made many before must through back years where much your way
		well down should because each just those people how too little state good very make world still own
		see men work long get here between both life being under never day same another know while last might
		us great old year off come since against go came right used take three request server handler header
		response client connection timeout passkey number remember`)
	r := rand.New(rand.NewPCG(seed, 42))
	var b strings.Builder
	for b.Len() < n {
		words := words
		sentence := 5 + r.IntN(15)
		for k := 0; k < sentence; k++ {
			w := words[r.IntN(len(words))]
			if k == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			} else {
				b.WriteByte(' ')
			}
			b.WriteString(w)
			switch {
			case r.IntN(12) == 0:
				b.WriteByte(',')
			case r.IntN(40) == 0:
				fmt.Fprintf(&b, " %d", r.IntN(100000))
			}
		}
		b.WriteString(". ")
		if r.IntN(8) == 0 {
			b.WriteString("\n\n")
		}
	}
	return b.String()
}

func BenchmarkEncode(b *testing.B) {
	text := englishText(1<<20, 7)
	for _, name := range []string{"small-llama3", "small-spbpe"} {
		b.Run(name, func(b *testing.B) {
			tok := fixture(b, name)
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				tok.Encode(text, true)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	tok := fixture(b, "small-llama3")
	ids := tok.Encode(englishText(1<<20, 7), false)
	b.SetBytes(1 << 20)
	for b.Loop() {
		tok.Decode(ids, false)
	}
}

// parseAndUse parses data and, when it is a tokenizer, encodes and decodes
// with it; it must not panic.
func parseAndUse(data []byte) error {
	tok, err := Parse(data, "fuzz.json")
	if err != nil {
		return err
	}
	for _, text := range []string{"", "Hello world, it's 1234567!\n\n", " <s>a</s> ▁x\t", "\xff\xfe中文 😀"} {
		ids := tok.Encode(text, true)
		tok.Decode(ids, false)
		tok.Decode(ids, true)
	}
	tok.Decode([]int32{0, 1, 2, -1, 1 << 30}, false)
	return nil
}

// TestParseTestdata runs FuzzParse's checks on the testdata tokenizers,
// which are too large to seed it: the fuzzer minimises every input that
// finds new coverage, and minimising one grown from the 100 KB file took a
// whole minute's run (18 execs in 60 s).
func TestParseTestdata(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*", "tokenizer.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata tokenizers: %v", err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := parseAndUse(data); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// FuzzParse feeds arbitrary bytes to Parse: it must return an error or a
// tokenizer that encodes and decodes without panicking. Its seeds are a few
// hundred bytes at most, so that minimising what it finds is quick.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{}`, `null`, `{"model": null}`, `{"model": {"type": "BPE", "vocab": {}, "merges": []}}`,
		`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}, "added_tokens": [{"id": 3, "content": "x", "lstrip": true, "rstrip": true, "single_word": true}]}`,
		`{"normalizer": {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": "_"}, "model": {"type": "BPE", "vocab": {"_": 0}, "merges": []}}`,
		`{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "[\\s\\d]+"}, "behavior": "MergedWithNext", "invert": true}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`,
		`{"decoder": {"type": "Strip", "content": "a", "start": 5, "stop": 5}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`,
		// Small cousins of the testdata families: byte-level and Metaspace.
		`{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}, "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"Ġ": 0, "a": 1, "Ġa": 2}, "merges": ["Ġ a"]}}`,
		`{"pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first"}, "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first"}, "model": {"type": "BPE", "vocab": {"<0x61>": 0, "▁": 1}, "merges": [], "byte_fallback": true}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parseAndUse(data)
	})
}

// FuzzEncodeDecode checks that byte-level BPE loses nothing: decoding the
// encoding of valid UTF-8 gives the text back.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{"", "hello world", "it's 1234567\n\n", "  \t\r\n ", "你好 😀", "<|begin_of_text|>x<|eot_id|>", "e\u0301\u00a0ſ'S"} {
		f.Add(s)
	}
	toks := []*Tokenizer{fixture(f, "tiny-bytelevel"), fixture(f, "small-llama3"), fixture(f, "tiny-gpt2")}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for _, tok := range toks {
			plain := tok.Encode(s, false)
			if got := tok.Decode(plain, false); got != s {
				t.Fatalf("Decode(Encode(%q)) = %q", s, got)
			}
			for _, id := range plain {
				if id < 0 || int(id) >= tok.VocabSize() {
					t.Fatalf("Encode(%q) gave id %d outside [0, %d)", s, id, tok.VocabSize())
				}
			}
		}
	})
}

// TestCutLongWords checks that cutting long SentencePiece words before "▁"
// changes no ids, and that the cut is refused when a merge spans it.
func TestCutLongWords(t *testing.T) {
	cut := fixture(t, "small-spbpe")
	if cut.model.cut != "▁" {
		t.Fatalf("small-spbpe: cut = %q, want ▁", cut.model.cut)
	}
	whole, err := Load(filepath.Join("testdata", "small-spbpe", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	whole.model.cut, whole.model.cache = "", nil
	text := englishText(50_000, 3) + "   trailing  spaces  "
	if got, want := cut.Encode(text, true), whole.Encode(text, true); !slices.Equal(got, want) {
		t.Errorf("cut and whole encodings differ (%d and %d ids)", len(got), len(want))
	}

	const spans = `{"model": {"type": "BPE", "vocab": {"▁": 0, "a": 1, "a▁": 2}, "merges": ["a ▁"]}}`
	tok, err := Parse([]byte(spans), "spans.json")
	if err != nil {
		t.Fatal(err)
	}
	if tok.model.cut != "" {
		t.Errorf("merge \"a ▁\": cut = %q, want none", tok.model.cut)
	}
	long := strings.Repeat("a▁", 300)
	want := slices.Repeat([]int32{2}, 300)
	if got := tok.Encode(long, false); !slices.Equal(got, want) {
		t.Errorf("Encode(\"a▁\"×300) = %v…, want 300 × [2]", got[:min(len(got), 4)])
	}
}
