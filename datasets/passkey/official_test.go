package passkey

import (
	"slices"
	"strings"
	"testing"
)

// chatByteTok is one token per byte, like byteTok, but knows the Llama 3
// special tokens as single tokens, as the real tokenizer does: BOS
// (<|begin_of_text|>) is 256 and the others follow.
type chatByteTok struct{}

var chatSpecials = []string{"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}

func (chatByteTok) Encode(text string, addSpecial bool) []int32 {
	var ids []int32
	if addSpecial {
		ids = append(ids, 256)
	}
next:
	for i := 0; i < len(text); {
		for k, s := range chatSpecials {
			if strings.HasPrefix(text[i:], s) {
				ids = append(ids, 256+int32(k))
				i += len(s)
				continue next
			}
		}
		ids = append(ids, int32(text[i]))
		i++
	}
	return ids
}

func (chatByteTok) Decode(ids []int32, skipSpecial bool) string {
	var b strings.Builder
	for _, id := range ids {
		switch {
		case id < 256:
			b.WriteByte(byte(id))
		case !skipSpecial:
			b.WriteString(chatSpecials[id-256])
		}
	}
	return b.String()
}

// The official segments' token counts under chatByteTok, worked out by hand:
// the prefix is BOS + <|begin_of_text|> + 4 other special tokens + 213
// bytes; the query BOS + 3 special tokens + 137 bytes; the key block BOS +
// 333 bytes (two key lines of 116 bytes, the banners and line breaks).
const (
	officialPrefixTokens = 219
	officialQueryTokens  = 141
	officialBlockTokens  = 334
)

func officialFiller(t *testing.T, seed int64) *OfficialFiller {
	t.Helper()
	words, err := LoadAllWords(testWords)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewOfficialFiller(words, chatByteTok{}, FillerRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestOfficialSegments(t *testing.T) {
	tok := chatByteTok{}
	for _, c := range []struct {
		name string
		text string
		want int
	}{
		{"prefix", OfficialPrefix, officialPrefixTokens},
		{"query", OfficialQuery, officialQueryTokens},
		{"key block", OfficialKeyBlock("12345"), officialBlockTokens},
	} {
		if got := len(tok.Encode(c.text, true)); got != c.want {
			t.Errorf("%s: %d tokens, want %d", c.name, got, c.want)
		}
	}
	wantBlock := "=== NOW IMPORTANT INFORMATION STARTS ===\n" +
		"HERE IS THE PASSKEY! The pass key is 12345. 12345 is the pass key. **the pass key is 12345** LOOK BEHIND FOR PASSKEY\n" +
		"REPEAT THE INFORMATION\n" +
		"HERE IS THE PASSKEY! The pass key is 12345. 12345 is the pass key. **the pass key is 12345** LOOK BEHIND FOR PASSKEY\n" +
		"=== IMPORTANT INFORMATION STOPS ==="
	if got := OfficialKeyBlock("12345"); got != wantBlock {
		t.Errorf("key block\n%q\nwant\n%q", got, wantBlock)
	}
	if !strings.HasPrefix(OfficialPrefix, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n") ||
		!strings.Contains(OfficialQuery, "What is the five digit pass key?") {
		t.Error("prefix or query lost its chat headers or question")
	}
}

// TestOfficialPrompt pins the layout of a 1,200-token official prompt: the
// filler gets 1200 − 219 − 141 = 840 tokens, less the key block's 334, so
// 506; bin 0 draws the key's index into the filler from
// [max(219, ⌊0·1200⌋), ⌊0.2·1200⌋) = [219, 240); bin 4 from [960, 1200),
// past the 506 filler tokens, so the block ends the filler.
func TestOfficialPrompt(t *testing.T) {
	tok := chatByteTok{}
	const length = 1200
	const local = length - officialPrefixTokens - officialQueryTokens - officialBlockTokens // 506
	for _, c := range []struct {
		bin      int
		lo, hi   int // range of KeyStart
		fillerAt int // −1: anywhere in [lo, hi)
	}{
		{0, officialPrefixTokens + 219, officialPrefixTokens + 240, -1},
		{4, officialPrefixTokens + local, officialPrefixTokens + local + 1, local},
	} {
		f := officialFiller(t, 7)
		s, err := GenerateOfficial(length, c.bin, tok, f, Rand(7, length, c.bin, 0))
		if err != nil {
			t.Fatal(err)
		}
		ids := s.IDs
		if len(ids) != length {
			t.Fatalf("bin %d: %d tokens, want %d", c.bin, len(ids), length)
		}
		if s.Prefix != officialPrefixTokens || s.Query != officialQueryTokens || s.KeyTokens != officialBlockTokens || s.Filler != local {
			t.Errorf("bin %d: parts %d + %d + %d + %d", c.bin, s.Prefix, s.Filler, s.KeyTokens, s.Query)
		}
		if s.KeyStart < c.lo || s.KeyStart >= c.hi {
			t.Errorf("bin %d: key block at token %d, want in [%d, %d)", c.bin, s.KeyStart, c.lo, c.hi)
		}
		// BOS tokens: two opening the prefix, one opening the filler, one
		// just before the key block, one opening the query
		var bos []int
		for i, id := range ids {
			if id == 256 {
				bos = append(bos, i)
			}
		}
		want := []int{0, 1, officialPrefixTokens, s.KeyStart, length - officialQueryTokens}
		if c.bin == 4 {
			want = []int{0, 1, officialPrefixTokens, s.KeyStart, length - officialQueryTokens}
		}
		if !slices.Equal(bos, want) {
			t.Errorf("bin %d: BOS at %v, want %v", c.bin, bos, want)
		}
		// the text around the key: filler, the block whole, filler or query
		text := tok.Decode(ids, false)
		block := "<|begin_of_text|>" + OfficialKeyBlock(s.Key)
		if strings.Count(text, block) != 1 {
			t.Errorf("bin %d: the key block with its BOS is not in the prompt once", c.bin)
		}
		if !strings.HasPrefix(text, "<|begin_of_text|>"+OfficialPrefix+"<|begin_of_text|>") ||
			!strings.HasSuffix(text, "<|begin_of_text|>"+OfficialQuery) {
			t.Errorf("bin %d: prompt does not open with BOS + prefix + filler BOS and end with BOS + query", c.bin)
		}
		if c.bin == 4 && !strings.HasSuffix(text, block+"<|begin_of_text|>"+OfficialQuery) {
			t.Errorf("bin 4: the key block does not end the filler")
		}
		if len(s.Key) != 5 || s.Key < "10000" || s.Key > "99999" {
			t.Errorf("key %q", s.Key)
		}
	}
}

// TestOfficialPromptGolden pins one whole official prompt, as text with its
// special tokens, for chatByteTok and the test word list.
func TestOfficialPromptGolden(t *testing.T) {
	tok := chatByteTok{}
	s, err := GenerateOfficial(1200, 0, tok, officialFiller(t, 7), Rand(7, 1200, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/official.golden", []byte(tok.Decode(s.IDs, false)+"\n"))
}

// TestOfficialFillerShared: every sample of a seed cuts the same filler,
// whatever its length; the filler keeps proper nouns and possessives.
func TestOfficialFillerShared(t *testing.T) {
	tok := chatByteTok{}
	f := officialFiller(t, 3)
	a, err := GenerateOfficial(1500, 2, tok, f, Rand(3, 1500, 2, 0))
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateOfficial(3000, 2, tok, f, Rand(3, 3000, 2, 1))
	if err != nil {
		t.Fatal(err)
	}
	n := min(a.KeyStart, b.KeyStart)
	if !slices.Equal(a.IDs[:n], b.IDs[:n]) {
		t.Error("two samples of one seed start with different fillers")
	}
	fresh := officialFiller(t, 3).Tokens(5000)
	if got := f.Tokens(5000); !slices.Equal(got, fresh) {
		t.Error("the filler's tokens depend on the lengths asked before")
	}
	text := tok.Decode(fresh, true)
	if !strings.Contains(text, "'") && !strings.ContainsAny(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		t.Error("the filler has no capitalised word or possessive: is the list filtered?")
	}
}

func TestOfficialErrors(t *testing.T) {
	tok := chatByteTok{}
	f := officialFiller(t, 1)
	for _, c := range []struct{ length, bin int }{
		{600, 0},  // shorter than prefix + key block + query
		{1000, 0}, // bin 0's range [219, 200) is empty
		{1200, 5}, // no such bin
	} {
		if _, err := GenerateOfficial(c.length, c.bin, tok, f, Rand(1, c.length, 0, 0)); err == nil {
			t.Errorf("length %d bin %d: no error", c.length, c.bin)
		}
	}
	words, err := LoadAllWords(testWords)
	if err != nil {
		t.Fatal(err)
	}
	if len(words) != 56 || !slices.Contains(words, "Canada") || !slices.Contains(words, "dog's") {
		t.Errorf("LoadAllWords: %d words, want all 56 lines, Canada and dog's among them", len(words))
	}
	if _, err := LoadAllWords("testdata/missing.txt"); err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("missing list: error %v", err)
	}
}

// TestDigitScore pins the official per-digit reading: all digits of the
// answer in order, the first five, padded with A, compared place by place.
func TestDigitScore(t *testing.T) {
	for _, c := range []struct {
		key, answer, digits string
		score               int
	}{
		{"71432", "71432", "71432", 5},
		{"71432", " The pass key is 71432.", "71432", 5},
		{"71432", "71,432", "71432", 5},   // digits of any grouping count
		{"71432", "714321", "71432", 5},   // only the first five
		{"71432", "12 71432", "12714", 0}, // places shift
		{"71432", "7143", "7143A", 4},
		{"71432", "71532", "71532", 4},
		{"71432", "", "AAAAA", 0},
		{"71432", "no key here", "AAAAA", 0},
		{"71432", "٧1432", "X1432", 4}, // an Arabic-Indic seven takes a place
		{"00000", "0", "0AAAA", 1},
	} {
		if got := Digits(c.answer); got != c.digits {
			t.Errorf("Digits(%q) = %q, want %q", c.answer, got, c.digits)
		}
		if got := DigitScore(c.key, c.answer); got != c.score {
			t.Errorf("DigitScore(%q, %q) = %d, want %d", c.key, c.answer, got, c.score)
		}
	}
}
