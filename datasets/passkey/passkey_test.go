package passkey

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const testWords = "testdata/words.txt"

// byteTok is one token per byte, with BOS = 256.
type byteTok struct{}

func (byteTok) Encode(text string, addSpecial bool) []int32 {
	ids := make([]int32, 0, len(text)+1)
	if addSpecial {
		ids = append(ids, 256)
	}
	for i := 0; i < len(text); i++ {
		ids = append(ids, int32(text[i]))
	}
	return ids
}

func (byteTok) Decode(ids []int32, skipSpecial bool) string {
	var b strings.Builder
	for _, id := range ids {
		if id < 256 {
			b.WriteByte(byte(id))
		} else if !skipSpecial {
			b.WriteString("<s>")
		}
	}
	return b.String()
}

// pieceTok splits text at spaces and cuts each field into pieces of at most
// three bytes, so tokens per word vary with the word, like subword
// tokenizers. Decode is not needed by this package and returns "".
type pieceTok struct{ calls *int }

func (t pieceTok) Encode(text string, addSpecial bool) []int32 {
	if t.calls != nil {
		*t.calls++
	}
	var ids []int32
	if addSpecial {
		ids = append(ids, 0)
	}
	for _, f := range strings.Fields(text) {
		for len(f) > 0 {
			n := min(3, len(f))
			ids = append(ids, int32(f[0]))
			f = f[n:]
		}
	}
	return ids
}

func (pieceTok) Decode([]int32, bool) string { return "" }

// wordTok is one token per whitespace-separated field, plus BOS.
type wordTok struct{}

func (wordTok) Encode(text string, addSpecial bool) []int32 {
	ids := make([]int32, 0, 16)
	if addSpecial {
		ids = append(ids, 0)
	}
	for range strings.Fields(text) {
		ids = append(ids, 1)
	}
	return ids
}

func (wordTok) Decode([]int32, bool) string { return "" }

func TestPromptLayout(t *testing.T) {
	head := Prefix + "\n\n"
	tail := "\n\n" + Question
	block := KeyBlock("12345")
	tests := []struct {
		name string
		p    Parts
		want string
	}{
		{"no filler", Parts{Key: "12345"}, head + block + tail},
		{"key first", Parts{Key: "12345", Filler: []string{"a", "b"}, At: 0}, head + block + " a b" + tail},
		{"key inside", Parts{Key: "12345", Filler: []string{"a", "b", "c"}, At: 2}, head + "a b " + block + " c" + tail},
		{"key last", Parts{Key: "12345", Filler: []string{"a", "b"}, At: 2}, head + "a b " + block + tail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Prompt(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Prompt = %q\nwant     %q", got, tc.want)
			}
			doc, err := Document(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if doc != tc.want+" 12345" {
				t.Errorf("Document = %q, want the prompt + %q", doc, " 12345")
			}
		})
	}
	if _, err := Prompt(Parts{Key: "1", Filler: []string{"a"}, At: 2}); err == nil {
		t.Error("Prompt with At past the filler: no error")
	}
	if want := "The pass key is 71432. Remember it. 71432 is the pass key."; KeySentence("71432") != want {
		t.Errorf("KeySentence = %q, want %q", KeySentence("71432"), want)
	}
	if n := strings.Count(KeyBlock("71432"), "71432"); n != 2*KeyRepeats {
		t.Errorf("key block states the key %d times, want %d", n, 2*KeyRepeats)
	}
}

func TestLoadWords(t *testing.T) {
	tests := []struct {
		path    string
		want    []string // first words
		count   int
		errHas  []string
		wantErr bool
	}{
		{path: testWords, want: []string{"apple", "banana", "cherry", "elephant", "fig", "grape"}, count: 50},
		{path: "testdata/crlf.txt", want: []string{"apple", "banana"}, count: 2},
		{path: "testdata/nowords.txt", wantErr: true, errHas: []string{"testdata/nowords.txt", "no plain lowercase"}},
		{path: "testdata/missing.txt", wantErr: true, errHas: []string{"testdata/missing.txt", "not found", "words unset"}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			words, err := LoadWords(tc.path)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(words) != tc.count {
				t.Errorf("%d words, want %d: %q", len(words), tc.count, words)
			}
			for i, w := range tc.want {
				if words[i] != w {
					t.Errorf("word %d = %q, want %q", i, words[i], w)
				}
			}
			for _, w := range words {
				if !plain([]byte(w)) {
					t.Errorf("word %q is not plain lowercase ASCII", w)
				}
			}
		})
	}
}

func TestLoadWordsLongLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "long.txt")
	if err := os.WriteFile(path, []byte("apple\n"+strings.Repeat("a", maxWordLine+10)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadWords(path)
	if err == nil || !strings.Contains(err.Error(), path+":2") {
		t.Errorf("error %v, want one naming %s:2", err, path)
	}
}

func TestWordsCache(t *testing.T) {
	var c Words
	a, err := c.Load(testWords)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Load("./" + testWords)
	if err != nil {
		t.Fatal(err)
	}
	if &a[0] != &b[0] {
		t.Error("second Load of the same path read the file again")
	}
	if _, err := c.Load("testdata/missing.txt"); err == nil {
		t.Error("missing file: no error")
	}
}

// TestEmbeddedWords holds the embedded list to what words/README.md says
// it is, and Generate to using it when no file is named.
func TestEmbeddedWords(t *testing.T) {
	list := Embedded()
	if len(list) != 63875 || list[0] != "a" || list[1] != "aardvark" || list[len(list)-1] != "zygotes" {
		t.Errorf("embedded list: %d words, first %q %q, last %q", len(list), list[0], list[1], list[len(list)-1])
	}
	for _, w := range list {
		if !plain([]byte(w)) {
			t.Fatalf("embedded word %q is not plain lowercase ASCII", w)
		}
	}
	var c Words
	if l, err := c.Load(""); err != nil || &l[0] != &list[0] {
		t.Errorf(`Words.Load(""): %v, want the embedded list`, err)
	}
	s, err := Generate(Config{Length: 2000, DepthBin: 2, Seed: 1}, byteTok{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if abs(s.Length-2000) > 20 {
		t.Errorf("length %d, want 2000 ± 1 %%", s.Length)
	}
}

func TestGenerateLength(t *testing.T) {
	// The prompt without filler has 380 bytes, about 110 pieces or 74 words.
	toks := []struct {
		name    string
		tok     Tokenizer
		lengths []int
	}{
		{"byte", byteTok{}, []int{400, 1000, 5000, 40000}},
		{"piece", pieceTok{}, []int{130, 200, 1000, 5000, 40000}},
		{"word", wordTok{}, []int{80, 200, 1000, 5000, 40000}},
	}
	var cache Words
	for _, tk := range toks {
		for _, length := range tk.lengths {
			for bin := range Bins {
				for seed := range int64(3) {
					name := fmt.Sprintf("%s/%d/bin%d/seed%d", tk.name, length, bin, seed)
					cfg := Config{Length: length, DepthBin: bin, Seed: seed, Words: testWords, Cache: &cache}
					s, err := Generate(cfg, tk.tok, Rand(seed, length, bin, 0))
					if err != nil {
						t.Errorf("%s: %v", name, err)
						continue
					}
					if n := len(tk.tok.Encode(s.Prompt, true)); n != s.Length {
						t.Errorf("%s: Sample.Length %d, prompt has %d tokens", name, s.Length, n)
					}
					if abs(s.Length-length)*100 > length {
						t.Errorf("%s: length %d tokens, want %d ± 1 %%", name, s.Length, length)
					}
				}
			}
		}
	}
}

func TestGenerateTooShort(t *testing.T) {
	_, err := Generate(Config{Length: 50, Words: testWords}, byteTok{}, nil)
	if err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("error %v, want a too-short error", err)
	}
}

func TestGenerateBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		tok  Tokenizer
		has  string
	}{
		{"zero length", Config{Length: 0, Words: testWords}, byteTok{}, "length"},
		{"negative bin", Config{Length: 1000, DepthBin: -1, Words: testWords}, byteTok{}, "depth bin"},
		{"bin too large", Config{Length: 1000, DepthBin: Bins, Words: testWords}, byteTok{}, "depth bin"},
		{"nil tokenizer", Config{Length: 1000, Words: testWords}, nil, "tokenizer"},
		{"template without placeholder", Config{Length: 1000, Words: testWords, Template: "[INST]"}, byteTok{}, "{prompt}"},
		{"template with two placeholders", Config{Length: 1000, Words: testWords, Template: "{prompt}{prompt}"}, byteTok{}, "{prompt}"},
		{"missing words", Config{Length: 1000, Words: "testdata/missing.txt"}, byteTok{}, "testdata/missing.txt not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Generate(tc.cfg, tc.tok, nil)
			if err == nil || !strings.Contains(err.Error(), tc.has) {
				t.Errorf("error %v, want one mentioning %q", err, tc.has)
			}
		})
	}
}

func TestDepthBins(t *testing.T) {
	var cache Words
	for bin := range Bins {
		lo, hi := float64(bin)/Bins, float64(bin+1)/Bins
		seen := map[int]bool{}
		for i := range 40 {
			cfg := Config{Length: 3000, DepthBin: bin, Seed: 7, Words: testWords, Cache: &cache}
			s, err := Generate(cfg, pieceTok{}, Rand(cfg.Seed, cfg.Length, bin, i))
			if err != nil {
				t.Fatal(err)
			}
			if s.Depth < lo || s.Depth > hi || (s.Depth == hi && bin != Bins-1) {
				t.Errorf("bin %d sample %d: depth %.4f outside [%.1f, %.1f)", bin, i, s.Depth, lo, hi)
			}
			seen[int(s.Depth*100)] = true
			// The key block sits at the reported depth: count the filler
			// words before it.
			body := strings.TrimPrefix(s.Prompt, Prefix+"\n\n")
			before := strings.Fields(body[:strings.Index(body, "The pass key is")])
			if got := float64(len(before)) / float64(s.FillerWords); got != s.Depth {
				t.Errorf("bin %d sample %d: %d words before the key (depth %.4f), reported %.4f", bin, i, len(before), got, s.Depth)
			}
		}
		if len(seen) < 5 {
			t.Errorf("bin %d: only %d distinct depths in 40 samples", bin, len(seen))
		}
	}
}

func TestInsertAt(t *testing.T) {
	tests := []struct {
		n, bin int
		u      float64
		want   int
	}{
		{10, 0, 0, 0}, {10, 0, 0.999, 1}, {10, 1, 0, 2}, {10, 1, 0.999, 3},
		{10, 4, 0, 8}, {10, 4, 0.999, 10}, {7, 1, 0, 2}, {7, 1, 0.999, 2},
		{0, 3, 0.5, 0}, {2, 1, 0.5, 1}, {3, 4, 0.999, 3},
	}
	for _, tc := range tests {
		if got := insertAt(tc.n, tc.bin, tc.u); got != tc.want {
			t.Errorf("insertAt(%d, %d, %v) = %d, want %d", tc.n, tc.bin, tc.u, got, tc.want)
		}
	}
}

func TestReproducible(t *testing.T) {
	var cache Words
	cfg := Config{Length: 4000, DepthBin: 3, Seed: 42, Words: testWords, Cache: &cache}
	a, err := Generate(cfg, pieceTok{}, Rand(42, 4000, 3, 5))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(cfg, pieceTok{}, Rand(42, 4000, 3, 5))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("same (seed, length, bin, index) gave different samples")
	}
	keys := map[string]bool{a.Key: true}
	for i := range 10 {
		c, err := Generate(cfg, pieceTok{}, Rand(42, 4000, 3, 6+i))
		if err != nil {
			t.Fatal(err)
		}
		if c.Prompt == a.Prompt {
			t.Errorf("index %d gave the prompt of index 5", 6+i)
		}
		keys[c.Key] = true
	}
	if len(keys) < 8 {
		t.Errorf("only %d distinct keys in 11 samples", len(keys))
	}
	d, err := Generate(cfg, pieceTok{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Generate(cfg, pieceTok{}, Rand(42, 4000, 3, 0))
	if err != nil {
		t.Fatal(err)
	}
	if d != e {
		t.Error("nil rng is not Rand(seed, length, bin, 0)")
	}
}

func TestKeyRange(t *testing.T) {
	rng := Rand(1, 2, 3, 4)
	for range 10000 {
		key, _ := begin(rng)
		if len(key) != 5 || key < "10000" || key > "99999" {
			t.Fatalf("key %q outside 10000–99999", key)
		}
	}
}

// TestDrawMatchesGenerate checks that a training script using Draw and
// Document sees exactly the layout of the evaluation prompts.
func TestDrawMatchesGenerate(t *testing.T) {
	words, err := LoadWords(testWords)
	if err != nil {
		t.Fatal(err)
	}
	for bin := range Bins {
		cfg := Config{Length: 1500, DepthBin: bin, Seed: 3, Words: testWords}
		s, err := Generate(cfg, byteTok{}, Rand(3, 1500, bin, 1))
		if err != nil {
			t.Fatal(err)
		}
		p, err := Draw(words, s.FillerWords, bin, Rand(3, 1500, bin, 1))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := Document(p)
		if err != nil {
			t.Fatal(err)
		}
		if doc != s.Prompt+" "+s.Key {
			t.Errorf("bin %d: Document(Draw(...)) differs from the generated prompt + key", bin)
		}
		if p.Depth() != s.Depth {
			t.Errorf("bin %d: depth %v, generated %v", bin, p.Depth(), s.Depth)
		}
	}
	if _, err := Draw(nil, 3, 0, Rand(0, 0, 0, 0)); err == nil {
		t.Error("Draw with no words: no error")
	}
	if _, err := Draw(words, 3, Bins, Rand(0, 0, 0, 0)); err == nil {
		t.Error("Draw with a bad bin: no error")
	}
}

func TestTemplate(t *testing.T) {
	cfg := Config{Length: 1200, DepthBin: 1, Seed: 9, Words: testWords, Template: "<|user|>\n{prompt}<|end|>\n<|assistant|>\n"}
	s, err := Generate(cfg, byteTok{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Prompt, "<|user|>\n"+Prefix) || !strings.HasSuffix(s.Prompt, Question+"<|end|>\n<|assistant|>\n") {
		t.Errorf("template not applied around the prompt: %.60q … %.60q", s.Prompt, s.Prompt[len(s.Prompt)-60:])
	}
	if abs(s.Length-1200) > 12 {
		t.Errorf("length %d with template, want 1200 ± 1 %%", s.Length)
	}
}

// TestGolden pins the prompt construction: layout, filler drawing and the
// filler length search.
func TestGolden(t *testing.T) {
	var cache Words
	var out bytes.Buffer
	cases := []struct {
		tok    string
		length int
		bin    int
		seed   int64
		index  int
	}{
		{"word", 120, 0, 1, 0},
		{"word", 120, 4, 1, 0},
		{"byte", 600, 2, 2, 0},
		{"piece", 200, 1, 3, 7},
	}
	toks := map[string]Tokenizer{"word": wordTok{}, "byte": byteTok{}, "piece": pieceTok{}}
	for _, c := range cases {
		cfg := Config{Length: c.length, DepthBin: c.bin, Seed: c.seed, Words: testWords, Cache: &cache}
		s, err := Generate(cfg, toks[c.tok], Rand(c.seed, c.length, c.bin, c.index))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "=== tokenizer=%s length=%d bin=%d seed=%d index=%d\n", c.tok, c.length, c.bin, c.seed, c.index)
		fmt.Fprintf(&out, "key=%s depth=%.4f tokens=%d filler_words=%d\n", s.Key, s.Depth, s.Length, s.FillerWords)
		out.WriteString(s.Prompt)
		out.WriteString("\n")
	}
	golden(t, "testdata/prompts.golden", out.Bytes())
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test -update after checking the change):\n%s", path, got)
	}
}

// TestMillionTokens checks that a 1M-token prompt needs only a few full
// encodings and stays within 1 %.
func TestMillionTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("long prompt skipped in -short mode")
	}
	calls := 0
	tok := pieceTok{calls: &calls}
	start := time.Now()
	s, err := Generate(Config{Length: 1 << 20, DepthBin: 2, Seed: 1, Words: testWords}, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	if abs(s.Length-(1<<20))*100 > 1<<20 {
		t.Errorf("length %d, want %d ± 1 %%", s.Length, 1<<20)
	}
	// One encoding without filler, one of the estimate sample, then the
	// full-prompt measurements.
	if full := calls - 2; full > 4 {
		t.Errorf("%d full-prompt encodings, want at most 4", full)
	}
	t.Logf("1M tokens: %d filler words, %d tokens, %d encodings, %v", s.FillerWords, s.Length, calls, time.Since(start))
}

func BenchmarkGenerate(b *testing.B) {
	var cache Words
	for _, length := range []int{32 << 10, 1 << 20} {
		b.Run(fmt.Sprint(length), func(b *testing.B) {
			cfg := Config{Length: length, DepthBin: 2, Words: testWords, Cache: &cache}
			for i := 0; b.Loop(); i++ {
				if _, err := Generate(cfg, pieceTok{}, Rand(0, length, 2, i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestScore(t *testing.T) {
	tests := []struct {
		key, cont       string
		score, contains bool
	}{
		{"71432", "71432", true, true},
		{"71432", " 71432.", true, true},
		{"71432", "The pass key is 71432. Remember it.", true, true},
		{"71432", "\n71432\n71432", true, true},
		{"71432", "714321", false, true},
		{"71432", "071432", false, true},
		{"71432", "71,432", false, false},
		{"71432", "12 71432", false, true},
		{"71432", "7143", false, false},
		{"71432", "", false, false},
		{"71432", "no digits here", false, false},
		{"71432", "٧١٤٣٢", false, false}, // Arabic-Indic digits are not ASCII digits
		{"", "71432", false, false},
	}
	for _, tc := range tests {
		if got := Score(tc.key, tc.cont); got != tc.score {
			t.Errorf("Score(%q, %q) = %v, want %v", tc.key, tc.cont, got, tc.score)
		}
		if got := Contains(tc.key, tc.cont); got != tc.contains {
			t.Errorf("Contains(%q, %q) = %v, want %v", tc.key, tc.cont, got, tc.contains)
		}
	}
}

func FuzzScore(f *testing.F) {
	for _, s := range []string{"71432", " 71432.", "714321", "a1b2", "", "\xff71432"} {
		f.Add("71432", s)
	}
	f.Fuzz(func(t *testing.T, key, cont string) {
		got := Score(key, cont)
		if got && !Contains(key, cont) {
			t.Errorf("Score(%q, %q) without Contains", key, cont)
		}
		if got {
			for i := 0; i < len(key); i++ {
				if !isDigit(key[i]) {
					t.Errorf("Score(%q, %q) true for a key with a non-digit", key, cont)
				}
			}
		}
		// A continuation that starts with the key and a non-digit scores.
		if key != "" && strings.Trim(key, "0123456789") == "" && !Score(key, key+"."+cont) {
			t.Errorf("Score(%q, %q) = false", key, key+"."+cont)
		}
	})
}

// FuzzReadWords checks that word list parsing never panics and keeps only
// plain words.
func FuzzReadWords(f *testing.F) {
	f.Add([]byte("apple\nBanana\n  fig \r\ncafé\n"))
	f.Add([]byte(""))
	f.Add([]byte("\xff\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		words, err := readWords(bytes.NewReader(data), "fuzz.txt")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "passkey: word list fuzz.txt") {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		if len(words) == 0 {
			t.Error("no words and no error")
		}
		for _, w := range words {
			if !plain([]byte(w)) {
				t.Errorf("word %q kept", w)
			}
		}
	})
}
