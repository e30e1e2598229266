package ruler

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"kvcascade/runtime/tokenizer"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// tinyTok is the embedded tiny model's tokenizer (byte-level BPE, 4,096
// tokens, BOS added).
var tinyTok = sync.OnceValues(func() (*tokenizer.Tokenizer, error) {
	return tokenizer.Load("../../models/tiny/tokenizer.json")
})

func loadTok(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tinyTok()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// testSources are the testdata texts: an essay of three paragraphs, a
// SQuAD file of three answerable questions and a HotpotQA file of two.
func testSources(t *testing.T, task Task) Sources {
	t.Helper()
	essay, err := LoadEssay("testdata/essay.txt")
	if err != nil {
		t.Fatal(err)
	}
	src := Sources{Essay: essay}
	switch task.Format {
	case "squad":
		src.QA, err = LoadQA("testdata/squad.json")
	case "hotpotqa":
		src.QA, err = LoadQA("testdata/hotpotqa.json")
	}
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func generate(t *testing.T, task Task, length int, seed int64, index int) Sample {
	t.Helper()
	s, err := Generate(Config{Task: task, Length: length, Seed: seed, Sources: testSources(t, task)}, loadTok(t), index)
	if err != nil {
		t.Fatalf("%s at %d: %v", task.Name, length, err)
	}
	return s
}

func TestTasks(t *testing.T) {
	want := []string{"niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
		"niah_multikey_3", "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe", "qa_1", "qa_2", "niah_single_words"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	answer := map[string]int{FamilyNIAH: 128, FamilyVT: 30, FamilyCWE: 120, FamilyFWE: 50, FamilyQA: 32}
	for _, task := range Tasks() {
		got, err := Lookup(task.Name)
		if err != nil || got.Name != task.Name {
			t.Errorf("Lookup(%s) = %v, %v", task.Name, got.Name, err)
		}
		if wantMetric := MatchAll; task.Family == FamilyQA {
			if task.Metric != MatchPart {
				t.Errorf("%s: metric %s, want %s", task.Name, task.Metric, MatchPart)
			}
		} else if task.Metric != wantMetric {
			t.Errorf("%s: metric %s, want %s", task.Name, task.Metric, wantMetric)
		}
		if task.AnswerTokens != answer[task.Family] {
			t.Errorf("%s: %d answer tokens, want RULER's %d", task.Name, task.AnswerTokens, answer[task.Family])
		}
		if task.Doc() == "" {
			t.Errorf("%s: no doc", task.Name)
		}
	}
	if _, err := Lookup("niah"); err == nil || !strings.Contains(err.Error(), "niah_single_1") {
		t.Errorf("Lookup of an unknown task: %v, want an error listing the tasks", err)
	}
	// RULER's needle parameters (scripts/synthetic.yaml).
	mk3, _ := Lookup("niah_multikey_3")
	mq, _ := Lookup("niah_multiquery")
	mv, _ := Lookup("niah_multivalue")
	if mk3.Haystack != HaystackNeedle || mk3.KeyKind != KindUUIDs || mk3.ValueKind != KindUUIDs ||
		mq.Keys != 4 || mq.Queries != 4 || mv.Values != 4 || mv.Keys != 1 {
		t.Errorf("task parameters differ from RULER's: %+v %+v %+v", mk3, mq, mv)
	}
}

// TestDeterminism: the same (seed, task, length, index) gives the same
// sample; another index or seed gives another.
func TestDeterminism(t *testing.T) {
	for _, task := range Tasks() {
		t.Run(task.Name, func(t *testing.T) {
			length := 1024
			a := generate(t, task, length, 7, 0)
			b := generate(t, task, length, 7, 0)
			if a.Prompt != b.Prompt || !slices.Equal(a.Answers, b.Answers) || a.Length != b.Length {
				t.Fatal("two generations of the same sample differ")
			}
			for _, other := range []Sample{generate(t, task, length, 7, 1), generate(t, task, length, 8, 0)} {
				if other.Prompt == a.Prompt {
					t.Errorf("sample %d of seed 7 and sample %d of another seed or index are the same prompt", a.Index, other.Index)
				}
			}
		})
	}
}

// TestGolden holds one sample of every task at 1,024 tokens of the tiny
// model's tokenizer to testdata/golden.json (go test -update rewrites it).
func TestGolden(t *testing.T) {
	type golden struct {
		Task     string   `json:"task"`
		Prompt   string   `json:"prompt"`
		Answers  []string `json:"answers"`
		Length   int      `json:"length"`
		Haystack int      `json:"haystack"`
	}
	var got []golden
	for _, task := range Tasks() {
		s := generate(t, task, 1024, 1, 0)
		got = append(got, golden{s.Task, s.Prompt, s.Answers, s.Length, s.Haystack})
	}
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join("testdata", "golden.json")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(b, want) {
		var w []golden
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		for i := range min(len(w), len(got)) {
			if w[i].Prompt != got[i].Prompt || !slices.Equal(w[i].Answers, got[i].Answers) || w[i].Length != got[i].Length {
				t.Errorf("%s: sample differs from %s", got[i].Task, path)
			}
		}
		if len(w) != len(got) {
			t.Errorf("%d golden samples, want %d", len(got), len(w))
		}
	}
}

// TestLengthTokenExact: the prompt plus the answer tokens fits the length
// with the tiny model's tokenizer, and one more haystack unit would not.
func TestLengthTokenExact(t *testing.T) {
	tok := loadTok(t)
	for _, task := range Tasks() {
		for _, length := range []int{1024, 2000, 4500} {
			cfg := Config{Task: task, Length: length, Seed: 3, Sources: testSources(t, task)}
			s, err := Generate(cfg, tok, 2)
			if err != nil {
				t.Fatalf("%s at %d: %v", task.Name, length, err)
			}
			if n := len(tok.Encode(s.Prompt, true)); n != s.Length {
				t.Errorf("%s at %d: Length %d, but the prompt has %d tokens", task.Name, length, s.Length, n)
			}
			if s.Length+task.AnswerTokens > length {
				t.Errorf("%s at %d: %d prompt tokens + %d answer tokens exceed the length", task.Name, length, s.Length, task.AnswerTokens)
			}
			build, _, _, err := prepare(cfg, tok, 2)
			if err != nil {
				t.Fatal(err)
			}
			if build(s.Haystack) != s.Prompt {
				t.Errorf("%s at %d: the builder does not give the sample's prompt at its size", task.Name, length)
			}
			if next := len(tok.Encode(build(s.Haystack+1), true)); next+task.AnswerTokens <= length {
				t.Errorf("%s at %d: haystack %d is not the largest: %d gives %d prompt tokens, which fit", task.Name, length, s.Haystack, s.Haystack+1, next)
			}
		}
	}
}

// TestStructure checks every family's prompt against the layout of
// RULER's generator, written out here from its templates (recorded
// cases): the fixed texts around the context, the needle sentences, the
// answer prefix and where the answers come from.
func TestStructure(t *testing.T) {
	get := func(name string) (Task, Sample) {
		task, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		return task, generate(t, task, 2000, 5, 0)
	}
	t.Run("niah_single_1", func(t *testing.T) {
		_, s := get("niah_single_1")
		key := `([a-z]+-[a-z]+)`
		re := regexp.MustCompile(`^A special magic number is hidden within the following text\. Make sure to memorize it\. ` +
			`I will quiz you about the number afterwards\.\n((?:.+\n)+)What is the special magic number for ` + key +
			` mentioned in the provided text\? The special magic number for ([a-z]+-[a-z]+) mentioned in the provided text is$`)
		m := re.FindStringSubmatch(s.Prompt)
		if m == nil {
			t.Fatalf("prompt does not match RULER's single-needle layout:\n%s", s.Prompt)
		}
		if m[2] != m[3] {
			t.Errorf("question asks for %s, answer prefix for %s", m[2], m[3])
		}
		lines := strings.Split(strings.TrimSuffix(m[1], "\n"), "\n")
		needle := "One of the special magic numbers for " + m[2] + " is: " + s.Answers[0] + "."
		var noise, needles int
		for _, l := range lines {
			switch l {
			case NoiseSentences:
				noise++
			case needle:
				needles++
			default:
				t.Errorf("unexpected haystack line %q", l)
			}
		}
		if needles != 1 || noise != s.Haystack {
			t.Errorf("%d needles and %d noise lines, want 1 and %d", needles, noise, s.Haystack)
		}
		if !regexp.MustCompile(`^[1-9][0-9]{6}$`).MatchString(s.Answers[0]) {
			t.Errorf("value %q is not a seven-digit number", s.Answers[0])
		}
	})
	t.Run("niah_multiquery", func(t *testing.T) {
		_, s := get("niah_multiquery")
		re := regexp.MustCompile(`^Some special magic numbers are hidden within the following text\. Make sure to memorize it\. ` +
			`I will quiz you about the numbers afterwards\.\n(?s:(.+))\nWhat are all the special magic numbers for ` +
			`([a-z-]+), ([a-z-]+), ([a-z-]+), and ([a-z-]+) mentioned in the provided text\? ` +
			`The special magic numbers for ([a-z-]+), ([a-z-]+), ([a-z-]+), and ([a-z-]+) mentioned in the provided text are$`)
		m := re.FindStringSubmatch(s.Prompt)
		if m == nil {
			t.Fatalf("prompt does not match RULER's multi-query layout:\n%s", s.Prompt)
		}
		for i := range 4 {
			needle := "One of the special magic numbers for " + m[2+i] + " is: " + s.Answers[i] + "."
			if strings.Count(m[1], needle) != 1 {
				t.Errorf("needle %q appears %d times in the context", needle, strings.Count(m[1], needle))
			}
		}
	})
	t.Run("niah_multivalue", func(t *testing.T) {
		_, s := get("niah_multivalue")
		m := regexp.MustCompile(`What are all the special magic numbers for ([a-z-]+) mentioned in the provided text\? ` +
			`The special magic numbers for ([a-z-]+) mentioned in the provided text are$`).FindStringSubmatch(s.Prompt)
		if m == nil || len(s.Answers) != 4 {
			t.Fatalf("answers %v, prompt tail %q", s.Answers, s.Prompt[len(s.Prompt)-200:])
		}
		for _, v := range s.Answers {
			if needle := "One of the special magic numbers for " + m[1] + " is: " + v + "."; !strings.Contains(s.Prompt, needle) {
				t.Errorf("needle %q missing", needle)
			}
		}
	})
	t.Run("niah_multikey_3", func(t *testing.T) {
		_, s := get("niah_multikey_3")
		uuid := `[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`
		lines := strings.Split(s.Prompt, "\n")
		line := regexp.MustCompile(`^One of the special magic uuids for (` + uuid + `) is: (` + uuid + `)\.$`)
		q := regexp.MustCompile(`What is the special magic uuid for (` + uuid + `) mentioned`).FindStringSubmatch(s.Prompt)
		if q == nil {
			t.Fatalf("no uuid question in %q", s.Prompt[len(s.Prompt)-300:])
		}
		hits := 0
		for _, l := range lines[1 : len(lines)-1] {
			m := line.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("haystack line %q is not a uuid needle", l)
			}
			if m[1] == q[1] {
				hits++
				if m[2] != s.Answers[0] {
					t.Errorf("the queried key's value is %s, answer %s", m[2], s.Answers[0])
				}
			}
		}
		if hits != 1 || len(lines)-2 != s.Haystack+1 {
			t.Errorf("queried key on %d lines of %d, want 1 of %d", hits, len(lines)-2, s.Haystack+1)
		}
	})
	t.Run("niah_single_2", func(t *testing.T) {
		_, s := get("niah_single_2")
		needle := regexp.MustCompile(`One of the special magic numbers for ([a-z-]+) is: ([0-9]{7})\.`)
		all := needle.FindAllStringSubmatch(s.Prompt, -1)
		if len(all) != 1 || all[0][2] != s.Answers[0] {
			t.Fatalf("needles %v, answers %v", all, s.Answers)
		}
		// The essay text around the needle is the essay's words in order.
		ctx := strings.SplitN(s.Prompt, "\n", 3)[1]
		words := strings.Fields(strings.Replace(ctx, all[0][0], "", 1))
		essay, _ := LoadEssay("testdata/essay.txt")
		for i, w := range words {
			if w != essay[i%len(essay)] {
				t.Fatalf("context word %d is %q, essay word %q", i, w, essay[i%len(essay)])
			}
		}
		if len(words) != s.Haystack {
			t.Errorf("%d essay words, haystack %d", len(words), s.Haystack)
		}
	})
	t.Run("vt", func(t *testing.T) {
		task, s := get("vt")
		parts := strings.Split(s.Prompt, "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n")
		if len(parts) != 3 || parts[0] != "" {
			t.Fatalf("want the worked example and the task, got %d parts", len(parts))
		}
		ex := regexp.MustCompile(`(?s)^(.*)\nQuestion: Find all variables that are assigned the value ([0-9]{5}) in the text above\. ` +
			`Answer: According to the chain\(s\) of variable assignment in the text above, 5 variables are assigned the value ([0-9]{5}), ` +
			`they are:  ([A-Z]{3}) ([A-Z]{3}) ([A-Z]{3}) ([A-Z]{3}) ([A-Z]{3})\n\n$`).FindStringSubmatch(parts[1])
		if ex == nil {
			t.Fatalf("worked example does not match RULER's layout: %q", parts[1])
		}
		checkChain(t, ex[1], ex[2], ex[4:9])
		m := regexp.MustCompile(`(?s)^(.*)\nQuestion: Find all variables that are assigned the value ([0-9]{5}) in the text above\. ` +
			`Answer: According to the chain\(s\) of variable assignment in the text above, 5 variables are assigned the value ([0-9]{5}), they are: $`).FindStringSubmatch(parts[2])
		if m == nil || m[2] != m[3] {
			t.Fatalf("task does not match RULER's layout: %q", parts[2])
		}
		checkChain(t, m[1], m[2], s.Answers)
		if len(s.Answers) != task.Hops+1 {
			t.Errorf("answers %v, want %d variables", s.Answers, task.Hops+1)
		}
	})
	t.Run("cwe", func(t *testing.T) {
		task, s := get("cwe")
		const q = "\nQuestion: What are the 10 most common words in the above list? Answer: The top 10 words that appear most often in the list are:"
		head := "Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones that appear most often.\n"
		parts := strings.Split(s.Prompt, head)
		if len(parts) != 3 || parts[0] != "" || !strings.HasSuffix(parts[2], q) {
			t.Fatalf("want the worked example and the task, got %q", s.Prompt)
		}
		exList, exAns, ok := strings.Cut(parts[1], q+" ")
		if !ok {
			t.Fatalf("worked example has no answer: %q", parts[1])
		}
		exCommon := listWords(t, strings.TrimSuffix(exAns, "\n"))
		counts := countList(t, exList)
		for _, w := range exCommon {
			if counts[w] != 3 { // below 4,096 tokens: 3 and 1
				t.Errorf("example common word %q appears %d times, want 3", w, counts[w])
			}
		}
		counts = countList(t, strings.TrimSuffix(parts[2], q))
		for w, c := range counts {
			want := 1
			if slices.Contains(s.Answers, w) {
				want = 6
			}
			if c != want {
				t.Errorf("word %q appears %d times, want %d", w, c, want)
			}
		}
		if len(counts) != s.Haystack || len(s.Answers) != task.Common {
			t.Errorf("%d distinct words (haystack %d), %d answers", len(counts), s.Haystack, len(s.Answers))
		}
	})
	t.Run("fwe", func(t *testing.T) {
		_, s := get("fwe")
		re := regexp.MustCompile(`^Read the following coded text and track the frequency of each coded word\. Find the three most frequently appeared coded words\. ` +
			`(.*)\nQuestion: Do not provide any explanation\. Please ignore the dots '\.\.\.\.'\. What are the three most frequently appeared words in the above coded text\? ` +
			`Answer: According to the coded text above, the three most frequently appeared words are:$`)
		m := re.FindStringSubmatch(s.Prompt)
		if m == nil {
			t.Fatalf("prompt does not match RULER's layout: %q", s.Prompt)
		}
		counts := map[string]int{}
		for _, w := range strings.Fields(m[1]) {
			counts[w]++
		}
		// Zipf(2): word of rank k appears ⌊n·k⁻²/ζ(2)⌋ times.
		n := float64(s.Haystack)
		for k, w := range append([]string{"..."}, s.Answers...) {
			if want := int(n / float64((k+1)*(k+1)) / (math.Pi * math.Pi / 6)); counts[w] != want {
				t.Errorf("rank %d word %q appears %d times, want %d", k+1, w, counts[w], want)
			}
		}
	})
	t.Run("qa", func(t *testing.T) {
		_, s := get("qa_1")
		re := regexp.MustCompile(`^Answer the question based on the given documents\. Only give me the answer and do not output any other words\.\n\n` +
			`The following are given documents\.\n\n(?s:(.*))\n\nAnswer the question based on the given documents\. Only give me the answer and do not output any other words\.\n\n` +
			`Question: When was the Gull Point lighthouse built\? Answer:$`)
		m := re.FindStringSubmatch(s.Prompt)
		if m == nil {
			t.Fatalf("prompt does not match RULER's layout: %q", s.Prompt)
		}
		if !slices.Equal(s.Answers, []string{"1871", "in 1871"}) {
			t.Errorf("answers %v", s.Answers)
		}
		docs := strings.Split(m[1], "\n\n")
		gold := 0
		for i, d := range docs {
			head := "Document " + strconv.Itoa(i+1) + ":\n"
			if !strings.HasPrefix(d, head) {
				t.Errorf("document %d starts %q", i+1, d[:min(len(d), 20)])
			}
			if strings.Contains(d, "built in 1871") {
				gold++
			}
		}
		if gold == 0 || len(docs) != s.Haystack {
			t.Errorf("%d gold documents among %d (haystack %d)", gold, len(docs), s.Haystack)
		}
	})
}

// checkChain checks that context holds the assignments of vars in order,
// the first to value.
func checkChain(t *testing.T, context, value string, vars []string) {
	t.Helper()
	want := []string{"VAR " + vars[0] + " = " + value}
	for j := 1; j < len(vars); j++ {
		want = append(want, "VAR "+vars[j]+" = VAR "+vars[j-1]+" ")
	}
	var got []string
	for _, l := range strings.Split(context, "\n") {
		if l != NoiseSentences {
			got = append(got, l)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("chain lines %q, want %q", got, want)
	}
}

// listWords parses "1. a 2. b …", checking the numbering.
func listWords(t *testing.T, s string) []string {
	t.Helper()
	f := strings.Fields(s)
	var words []string
	for i := 0; i+1 < len(f); i += 2 {
		if f[i] != strconv.Itoa(i/2+1)+"." {
			t.Fatalf("item %d numbered %q", i/2+1, f[i])
		}
		words = append(words, f[i+1])
	}
	return words
}

func countList(t *testing.T, s string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, w := range listWords(t, s) {
		counts[w]++
	}
	return counts
}

func TestChatTemplate(t *testing.T) {
	task, _ := Lookup("niah_single_1")
	const chat = "<|user|>\n{prompt}<|end|>\n<|assistant|>\n"
	s, err := Generate(Config{Task: task, Length: 1000, Template: chat}, loadTok(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Prompt, "<|user|>\nA special magic number") ||
		!strings.Contains(s.Prompt, "provided text?<|end|>\n<|assistant|>\n The special magic number for") {
		t.Errorf("the chat template does not wrap the task text with the answer prefix after it: %q", s.Prompt)
	}
	if _, err := Generate(Config{Task: task, Length: 1000, Template: "no placeholder"}, loadTok(t), 0); err == nil {
		t.Error("a template without {prompt}: no error")
	}
}

func TestGenerateErrors(t *testing.T) {
	tok := loadTok(t)
	get := func(name string) Task { task, _ := Lookup(name); return task }
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"too short", Config{Task: get("niah_single_1"), Length: 150}, "length too short"},
		{"no essay", Config{Task: get("niah_single_2"), Length: 1000}, "needs an essay text"},
		{"no qa file", Config{Task: get("qa_2"), Length: 1000}, "needs a QA file in hotpotqa format"},
		{"zero length", Config{Task: get("fwe"), Length: 0}, "must be positive"},
	}
	for _, tt := range tests {
		if _, err := Generate(tt.cfg, tok, 0); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

// TestScore works RULER's two metrics by hand.
func TestScore(t *testing.T) {
	all, _ := Lookup("niah_multivalue")
	part, _ := Lookup("qa_1")
	tests := []struct {
		task Task
		pred string
		refs []string
		want float64
	}{
		{all, " 1234567, 7654321 and 1111111.", []string{"1234567", "7654321", "1111111", "2222222"}, 0.75},
		{all, "none of them", []string{"1234567", "7654321"}, 0},
		{all, "BOLD-TIGER", []string{"bold-tiger"}, 1},                           // case-insensitive
		{all, "\n\n bold-\ttiger", []string{"bold-tiger"}, 0},                    // a tab becomes a newline
		{all, "12345678", []string{"1234567"}, 1},                                // a substring counts, as in RULER
		{all, "anything", nil, 0},                                                // no references
		{part, "It was built in 1871.", []string{"1871", "in 1871", "1870s"}, 1}, // any reference
		{part, "in eighteen seventy-one", []string{"1871", "in 1871"}, 0},        //
		{part, "The Wend", []string{"the Wend"}, 1},                              // case-insensitive
		{part, "", []string{"x"}, 0},                                             //
	}
	for _, tt := range tests {
		if got := tt.task.Score(tt.pred, tt.refs); got != tt.want {
			t.Errorf("%s.Score(%q, %q) = %v, want %v", tt.task.Metric, tt.pred, tt.refs, got, tt.want)
		}
	}
	if got := Postprocess("  a\x01b\tc \n"); got != "a\nb\nc" {
		t.Errorf("Postprocess = %q", got)
	}
}

func TestSentences(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"One. Two! Three? Four", []string{"One.", "Two!", "Three?", "Four"}},
		{`He said "stop." Then left.`, []string{`He said "stop."`, "Then left."}},
		{"3.14 is pi. e.g.not split", []string{"3.14 is pi.", "e.g.not split"}},
		{"  ", nil},
	}
	for _, tt := range tests {
		if got := Sentences(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("Sentences(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLoadQA(t *testing.T) {
	sq, err := LoadQA("testdata/squad.json")
	if err != nil {
		t.Fatal(err)
	}
	// Three answerable questions (one impossible left out), five distinct
	// paragraphs sorted; the lighthouse question has the other lighthouse
	// paragraph as its first distractor.
	if sq.Format != "squad" || len(sq.Items) != 3 || len(sq.Docs) != 5 || !slices.IsSorted(sq.Docs) {
		t.Fatalf("squad: %+v", sq)
	}
	if it := sq.Items[0]; len(it.Gold) != 1 || len(it.More) != 1 || !strings.Contains(sq.Docs[it.More[0]], "whale oil") {
		t.Errorf("squad item 0: %+v", it)
	}
	hp, err := LoadQA("testdata/hotpotqa.json")
	if err != nil {
		t.Fatal(err)
	}
	// Four distinct paragraphs ("Blue Mill" twice), "title\nsentences".
	if hp.Format != "hotpotqa" || len(hp.Items) != 2 || len(hp.Docs) != 4 || hp.Items[0].Answers[0] != "the Wend" ||
		!slices.Contains(hp.Docs, "Blue Mill\nThe Blue Mill stands in Harwick. It was painted in 1910.") || len(hp.Items[1].Gold) != 2 {
		t.Fatalf("hotpotqa: %+v", hp)
	}
	dir := t.TempDir()
	for name, content := range map[string]string{
		"bad.json":     "not json",
		"empty.json":   `{"data": []}`,
		"context.json": `[{"question": "q", "answer": "a", "context": [["t"]]}]`,
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadQA(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("LoadQA(%s): error %v, want one naming the file", name, err)
		}
	}
	if _, err := LoadEssay(filepath.Join(dir, "missing.txt")); err == nil {
		t.Error("LoadEssay of a missing file: no error")
	}
}

func TestWords(t *testing.T) {
	w := EmbeddedWords()
	if len(w.Adjectives) < 200 || len(w.Nouns) < 300 || !slices.IsSorted(w.All) {
		t.Errorf("embedded words: %d adjectives, %d nouns", len(w.Adjectives), len(w.Nouns))
	}
	for i := 1; i < len(w.All); i++ {
		if w.All[i] == w.All[i-1] {
			t.Errorf("duplicate word %q", w.All[i])
		}
	}
	ext := pseudoWords(w.All, len(w.All)+500)
	seen := map[string]bool{}
	for _, x := range ext {
		if seen[x] {
			t.Fatalf("pseudo-word %q repeats a word", x)
		}
		seen[x] = true
	}
	if len(ext) != len(w.All)+500 {
		t.Errorf("%d words, want %d", len(ext), len(w.All)+500)
	}
}
