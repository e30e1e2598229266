package longbench

import (
	"math"
	"strings"
	"testing"
)

func TestNormalizeAnswer(t *testing.T) {
	tests := []struct{ in, want string }{
		{"The Quick, Brown Fox!", "quick brown fox"},
		{"An apple a day", "apple day"},
		{"theatre and anthem", "theatre and anthem"}, // articles only as whole words
		{"a.b", "ab"},         // punctuation goes before articles
		{"A-N", ""},           // "an" once the hyphen is gone
		{"the_cat", "thecat"}, // "_" is in string.punctuation
		{"don't", "dont"},
		{"Café  au\tlait\n", "café au lait"},
		{"“the” end", "“ ” end"}, // curly quotes are not ASCII punctuation
		{"x\x1cy", "x y"},        // Python's str.split() splits at U+001C
		{"   ", ""},
	}
	for _, tc := range tests {
		if got := NormalizeAnswer(tc.in); got != tc.want {
			t.Errorf("NormalizeAnswer(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestQAF1(t *testing.T) {
	tests := []struct {
		pred, truth string
		want        float64
	}{
		{"The cat sat.", "cat sat", 1},
		{"Paris", "paris.", 1},
		{"cat cat", "cat", 2.0 / 3}, // P 1/2, R 1
		{"the red cat", "a black cat", 0.5},
		{"", "x", 0},
		{"x", "", 0},
		{"the", "a", 0}, // both normalise to nothing
	}
	for _, tc := range tests {
		if got := QAF1(tc.pred, tc.truth, nil); !near(got, tc.want) {
			t.Errorf("QAF1(%q, %q) = %v, want %v", tc.pred, tc.truth, got, tc.want)
		}
	}
}

func TestRougeL(t *testing.T) {
	f := func(p, r float64) float64 { return 2 * p * r / (p + r + 1e-8) }
	tests := []struct {
		name, pred, truth string
		want              float64
	}{
		// One sentence each: the LCS "the cat on the mat" has the distinct
		// words {the, cat, on, mat}; each text has 5 distinct words.
		{"distinct words", "the cat sat on the mat", "the cat is on the mat", f(0.8, 0.8)},
		// Summary level: every reference sentence against every prediction
		// sentence; the union of the LCS words is all four words.
		{"summary level", "a b. c d", "a c. b d", f(1, 1)},
		// The piece after the last "." is a space, which becomes an empty
		// sentence with the empty word: 3 distinct prediction words.
		{"trailing space", "hello world. ", "hello world", f(2.0/3, 1)},
		{"repeated words", "a a a b", "a b", f(1, 1)},
		{"identical", "a b c", "a b c", f(1, 1)},
		{"no overlap", "x y", "z", 0},
		{"empty prediction", "", "x", 0},
		{"only periods", "...", "x", 0},
		{"empty answer", "x", "", 0},
	}
	for _, tc := range tests {
		if got := RougeL(tc.pred, tc.truth, nil); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("%s: RougeL(%q, %q) = %.17g, want %.17g", tc.name, tc.pred, tc.truth, got, tc.want)
		}
	}
}

func TestClassification(t *testing.T) {
	trec := []string{"Description", "Entity", "Abbreviation", "Human being", "Location", "Numeric value"}
	tests := []struct {
		pred, truth string
		classes     []string
		want        float64
	}{
		{"Entity", "Entity", trec, 1},
		{"Description and Entity", "Entity", trec, 0.5},
		{"Location", "Entity", trec, 0},
		{"nothing", "Entity", trec, 0},
		// Classes inside the answer are dropped, except the answer.
		{"国际体育", "国际体育", []string{"体育", "国际体育"}, 1},
		{"国际体育", "体育", []string{"体育", "国际体育"}, 0.5},
		// metrics.py removes from the list it walks, so "AB" (after the
		// removed "A") is never examined and stays: 1/|{AB, ABC}|.
		{"ABC", "ABC", []string{"A", "AB", "ABC", "B"}, 0.5},
		{"x", "x", nil, 0},
	}
	for _, tc := range tests {
		if got := Classification(tc.pred, tc.truth, tc.classes); !near(got, tc.want) {
			t.Errorf("Classification(%q, %q, %q) = %v, want %v", tc.pred, tc.truth, tc.classes, got, tc.want)
		}
	}
}

func TestRetrievalAndCount(t *testing.T) {
	tests := []struct {
		metric      Metric
		name        string
		pred, truth string
		want        float64
	}{
		{Retrieval, "retrieval", "Paragraph 12", "Paragraph 12", 1},
		{Retrieval, "retrieval", "Paragraph 12 or Paragraph 3", "Paragraph 12", 0.5},
		{Retrieval, "retrieval", "Paragraph 120", "Paragraph 12", 0},
		{Retrieval, "retrieval", "12", "The answer is Paragraph 12.", 1},
		{Retrieval, "retrieval", "none", "Paragraph 12", 0},
		{Retrieval, "retrieval", "12", "no paragraph", 0},
		{Retrieval, "retrieval", "3", "Paragraph x Paragraph 3", 1}, // first "Paragraph N"
		{RetrievalZh, "retrieval_zh", "答案是段落3和段落5", "段落3", 0.5},
		{RetrievalZh, "retrieval_zh", "段落3", "段落3", 1},
		{Count, "count", "There are 5 unique paragraphs out of 10", "5", 0.5},
		{Count, "count", "5", "5", 1},
		{Count, "count", "five", "5", 0},
		{Count, "count", "٥", "5", 0}, // a digit to Python's \d, but not "5"
		{Count, "count", "٥ 5", "5", 0.5},
		{Count, "count", "05", "5", 0},
	}
	for _, tc := range tests {
		if got := tc.metric(tc.pred, tc.truth, nil); !near(got, tc.want) {
			t.Errorf("%s(%q, %q) = %v, want %v", tc.name, tc.pred, tc.truth, got, tc.want)
		}
	}
}

func TestEditSimilarity(t *testing.T) {
	ratios := []struct {
		a, b      string
		seq, fuzz float64
		indel     float64
	}{
		{"this is a test", "this is a test!", 28.0 / 29, 97, 28.0 / 29},
		{"fuzzy wuzzy was a bear", "wuzzy fuzzy was a bear", 0.9090909090909091, 91, 0.9090909090909091},
		{"abcd", "bcde", 0.75, 75, 0.75},
		{"kitten", "sitting", 8.0 / 13, 62, 8.0 / 13},
		{"abbbbbbb", "accccccc", 2.0 / 16, 12, 2.0 / 16}, // 12.5 rounds half to even
		{"xabcyabc", "abcxabc", 8.0 / 15, 53, 0.8},       // difflib and Levenshtein differ
		{"", "", 1, 100, 1},
		{"abc", "", 0, 0, 0},
		{"日本語", "日本", 0.8, 80, 0.8}, // code points, not bytes
	}
	for _, tc := range ratios {
		if got := SequenceRatio(tc.a, tc.b); !near(got, tc.seq) {
			t.Errorf("SequenceRatio(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.seq)
		}
		if got := FuzzRatio(tc.a, tc.b); float64(got) != tc.fuzz {
			t.Errorf("FuzzRatio(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.fuzz)
		}
		if got := IndelRatio(tc.a, tc.b); !near(got, tc.indel) {
			t.Errorf("IndelRatio(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.indel)
		}
	}
	// difflib's autojunk: in a b of 200+ characters, a character seen more
	// than 1 + len(b)/100 times starts no match; only the extension of the
	// empty match at the start of both strings matches the ten x's.
	x10, x200 := strings.Repeat("x", 10), strings.Repeat("x", 200)
	if got, want := SequenceRatio(x10, x200), 20.0/210; !near(got, want) {
		t.Errorf("SequenceRatio(10 x, 200 x) = %v, want %v", got, want)
	}
	if got, want := SequenceRatio("y"+x10, "z"+x200), 0.0; got != want {
		t.Errorf("SequenceRatio(y + 10 x, z + 200 x) = %v, want %v (x is junk)", got, want)
	}

	code := []struct {
		pred, truth string
		want        float64
	}{
		{"    return x + 1", "    return x + 1", 1},
		{"\n\n# note\nreturn y\nmore", "return y", 1},
		{"```go\nfoo()\n```", "foo()", 1},
		{"x = 1 # set", "x = 1", 0}, // every line has a comment: "" is compared
		{"// a\n// b", "", 1},
		{"abbbbbbb\nabcd", "accccccc", 0.12},
	}
	for _, tc := range code {
		if got := CodeSim(tc.pred, tc.truth, nil); !near(got, tc.want) {
			t.Errorf("CodeSim(%q, %q) = %v, want %v", tc.pred, tc.truth, got, tc.want)
		}
	}
}

// FuzzMetrics checks that no metric panics and that scores lie in [0, 1].
func FuzzMetrics(f *testing.F) {
	f.Add("the cat. sat", "a cat", "cat")
	f.Add("Paragraph 3", "Paragraph 3", "")
	f.Add("\n# x\ny", "y", "y")
	f.Fuzz(func(t *testing.T, pred, truth, class string) {
		classes := []string{class, truth}
		for _, task := range Tasks() {
			if got := task.Score(pred, []string{truth}, classes); got < 0 || got > 1 || math.IsNaN(got) {
				t.Errorf("%s: Score(%q, %q) = %v outside [0, 1]", task.Name, pred, truth, got)
			}
		}
		if r := SequenceRatio(pred, truth); r < 0 || r > 1 {
			t.Errorf("SequenceRatio(%q, %q) = %v", pred, truth, r)
		}
		if r := IndelRatio(pred, truth); r < SequenceRatio(pred, truth)-1e-12 {
			t.Errorf("IndelRatio(%q, %q) = %v below SequenceRatio", pred, truth, r)
		}
	})
}

func BenchmarkRougeL(b *testing.B) {
	pred := strings.Repeat("the committee reviewed the budget and found several issues. ", 40)
	truth := strings.Repeat("the report finds that the budget has issues the committee must address. ", 30)
	for b.Loop() {
		RougeL(pred, truth, nil)
	}
}

func BenchmarkCodeSim(b *testing.B) {
	pred := "        self.assertEqual(result.status_code, 200)\n        # more"
	truth := "        self.assertEqual(response.status_code, 201)"
	for b.Loop() {
		CodeSim(pred, truth, nil)
	}
}
