package longbench

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// byteTok is one token per byte with BOS = 256, like a tokenizer that adds
// a BOS token when asked for special tokens.
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
		switch {
		case id < 256:
			b.WriteByte(byte(id))
		case !skipSpecial:
			b.WriteString("<s>")
		}
	}
	return b.String()
}

func TestReadFile(t *testing.T) {
	got, err := ReadFile("testdata/sample.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d samples, want 4", len(got))
	}
	want0 := Sample{
		Input:   "Which river runs past the mill?",
		Context: "Passage 1:\nThe Tessel river runs past the old mill.\nPassage 2:\nThe mill was built in 1820.",
		Answers: []string{"the Tessel river", "Tessel"}, Length: 18, Dataset: "hotpotqa", ID: "fake-0001",
		File: "testdata/sample.jsonl", Line: 1,
	}
	if !reflect.DeepEqual(got[0], want0) {
		t.Errorf("sample 0 = %+v\nwant       %+v", got[0], want0)
	}
	if want := []string{"Human being", "Numeric value", "Description", "Entity", "Location", "Abbreviation"}; !reflect.DeepEqual(got[1].AllClasses, want) {
		t.Errorf("all_classes = %q, want %q", got[1].AllClasses, want)
	}
	if got[2].Line != 4 || got[2].Dataset != "lcc" {
		t.Errorf("sample after the blank line: line %d dataset %q, want line 4 lcc", got[2].Line, got[2].Dataset)
	}
}

func TestReaderErrors(t *testing.T) {
	good := `{"input": "q", "context": "c", "answers": ["a"]}`
	tests := []struct {
		name string
		data string
		has  []string
	}{
		{"bad json", good + "\n{\"input\": \n", []string{"x.jsonl:2", "not a JSON object"}},
		{"array", "[1]\n", []string{"x.jsonl:1", "not a JSON object"}},
		{"missing input", `{"context": "c", "answers": ["a"]}`, []string{"x.jsonl:1", `field "input": missing`}},
		{"missing answers", `{"input": "q", "context": "c"}`, []string{`field "answers": missing`}},
		{"null context", `{"input": "q", "context": null, "answers": ["a"]}`, []string{`field "context": missing`}},
		{"answers not a list", `{"input": "q", "context": "c", "answers": "a"}`, []string{`field "answers"`, "string"}},
		{"answers of numbers", `{"input": "q", "context": "c", "answers": [1]}`, []string{`field "answers"`, "number"}},
		{"empty answers", `{"input": "q", "context": "c", "answers": []}`, []string{`field "answers": empty list`}},
		{"classes not a list", `{"input": "q", "context": "c", "answers": ["a"], "all_classes": "x"}`, []string{`field "all_classes"`}},
		{"length not an int", `{"input": "q", "context": "c", "answers": ["a"], "length": 1.5}`, []string{`field "length"`}},
		{"length null", `{"input": "q", "context": "c", "answers": ["a"], "length": null}`, []string{`field "length": null`}},
		{"id not a string", `{"input": "q", "context": "c", "answers": ["a"], "_id": 7}`, []string{`field "_id"`}},
		{"invalid utf8", "{\"input\": \"q\xff\", \"context\": \"c\", \"answers\": [\"a\"]}", []string{"x.jsonl:1", "invalid UTF-8 at byte 12"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.data), "x.jsonl")
			var err error
			for err == nil {
				_, err = r.Next()
			}
			if err == io.EOF {
				t.Fatal("no error")
			}
			for _, s := range tc.has {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	if _, err := ReadFile("testdata/missing.jsonl"); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Errorf("missing file: error %v", err)
	}
}

func TestFill(t *testing.T) {
	s := Sample{Input: "IN {context}", Context: "CTX {input} }{", Dataset: "d", ID: "id", Length: 7}
	tests := []struct {
		tmpl, want, err string
	}{
		{tmpl: "{context}|{input}", want: "CTX {input} }{|IN {context}"},
		{tmpl: "{{x}} {dataset} {_id} {length}", want: "{x} d id 7"},
		{tmpl: "plain", want: "plain"},
		{tmpl: "{other}", err: "unknown placeholder {other}"},
		{tmpl: "{input", err: "unclosed"},
		{tmpl: "a}b", err: "single '}'"},
		{tmpl: "{input!r}", err: "unknown placeholder"},
	}
	for _, tc := range tests {
		got, err := Fill(tc.tmpl, s)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Fill(%q): error %v, want %q", tc.tmpl, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Fill(%q) = %q, %v; want %q", tc.tmpl, got, err, tc.want)
		}
	}
}

// TestPrompts pins every template, filled with a synthetic sample.
func TestPrompts(t *testing.T) {
	s := Sample{Input: "<INPUT>", Context: "<CONTEXT with {input} and {{braces}}>"}
	var out bytes.Buffer
	for _, task := range Tasks() {
		p, err := task.Prompt(s, nil, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "=== %s max_new_tokens=%d metric=%s chat=%v first_line=%v stop_at_newline=%v\n%s\n",
			task.Name, task.MaxNewTokens, task.MetricName, task.Chat, task.FirstLine, task.StopAtNewline, p)
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

func TestTasks(t *testing.T) {
	// config/dataset2maxlen.json and eval.py's dataset2metric.
	want := map[string]struct {
		maxNew int
		metric string
	}{
		"narrativeqa": {128, "qa_f1_score"}, "qasper": {128, "qa_f1_score"}, "multifieldqa_en": {64, "qa_f1_score"},
		"hotpotqa": {32, "qa_f1_score"}, "2wikimqa": {32, "qa_f1_score"}, "musique": {32, "qa_f1_score"},
		"gov_report": {512, "rouge_score"}, "qmsum": {512, "rouge_score"}, "multi_news": {512, "rouge_score"},
		"trec": {64, "classification_score"}, "triviaqa": {32, "qa_f1_score"}, "samsum": {128, "rouge_score"},
		"lsht": {64, "classification_score"}, "passage_count": {32, "count_score"},
		"passage_retrieval_en": {32, "retrieval_score"}, "passage_retrieval_zh": {32, "retrieval_zh_score"},
		"lcc": {64, "code_sim_score"}, "repobench-p": {64, "code_sim_score"},
	}
	noChat := map[string]bool{"trec": true, "triviaqa": true, "samsum": true, "lsht": true, "lcc": true, "repobench-p": true}
	firstLine := map[string]bool{"trec": true, "triviaqa": true, "samsum": true, "lsht": true}
	tasks := Tasks()
	if len(tasks) != len(want) {
		t.Errorf("%d tasks, want %d", len(tasks), len(want))
	}
	for _, task := range tasks {
		w, ok := want[task.Name]
		if !ok {
			t.Errorf("unexpected task %s", task.Name)
			continue
		}
		if task.MaxNewTokens != w.maxNew || task.MetricName != w.metric {
			t.Errorf("%s: max_new_tokens %d metric %s, want %d %s", task.Name, task.MaxNewTokens, task.MetricName, w.maxNew, w.metric)
		}
		if task.Chat == noChat[task.Name] || task.FirstLine != firstLine[task.Name] || task.StopAtNewline != (task.Name == "samsum") {
			t.Errorf("%s: chat %v first_line %v stop_at_newline %v", task.Name, task.Chat, task.FirstLine, task.StopAtNewline)
		}
		if task.Metric == nil || !strings.Contains(task.Template, "{context}") {
			t.Errorf("%s: no metric or no {context} in the template", task.Name)
		}
	}
	for name, want := range map[string]string{"hotpotqa": "hotpotqa", "hotpotqa_e": "hotpotqa", "repobench-p_e": "repobench-p"} {
		if task, ok := Lookup(name); !ok || task.Name != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", name, task.Name, ok, want)
		}
	}
	for _, name := range []string{"dureader", "vcsum", "multifieldqa_zh", "nope"} {
		if _, ok := Lookup(name); ok {
			t.Errorf("Lookup(%q) found a task", name)
		}
	}
}

func TestTruncateMiddle(t *testing.T) {
	tests := []struct {
		prompt string
		max    int
		want   string
	}{
		{"abcdefghij", 11, "abcdefghij"}, // 11 tokens with BOS: fits
		{"abcdefghij", 100, "abcdefghij"},
		// BOS + 10 bytes: the first half (3 tokens) includes BOS, which
		// decoding skips, as in pred.py.
		{"abcdefghij", 6, "ab" + "hij"},
		{"abcdefghij", 7, "ab" + "hij"}, // odd limits lose one token
		{"abcdefghij", 10, "abcd" + "fghij"},
	}
	for _, tc := range tests {
		got, err := TruncateMiddle(byteTok{}, tc.prompt, tc.max)
		if err != nil || got != tc.want {
			t.Errorf("TruncateMiddle(%q, %d) = %q, %v; want %q", tc.prompt, tc.max, got, err, tc.want)
		}
	}
	if _, err := TruncateMiddle(byteTok{}, "abc", 1); err == nil {
		t.Error("limit 1: no error")
	}
}

func TestTaskPrompt(t *testing.T) {
	samples, err := ReadFile("testdata/sample.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	chat := "[INST]{prompt}[/INST]"
	hotpot, _ := Lookup("hotpotqa")
	p, err := hotpot.Prompt(samples[0], byteTok{}, 0, chat)
	if err != nil {
		t.Fatal(err)
	}
	filled, _ := Fill(hotpot.Template, samples[0])
	if p != "[INST]"+filled+"[/INST]" {
		t.Errorf("hotpotqa prompt not wrapped in the chat template: %q", p)
	}
	// Truncation happens before the chat template is applied.
	p, err = hotpot.Prompt(samples[0], byteTok{}, 100, chat)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[INST]" + filled[:49] + filled[len(filled)-50:] + "[/INST]"; p != want {
		t.Errorf("truncated prompt\n%q\nwant\n%q", p, want)
	}
	trec, _ := Lookup("trec")
	p, err = trec.Prompt(samples[1], byteTok{}, 0, chat)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(p, "[INST]") {
		t.Error("trec prompt wrapped in the chat template")
	}
	lcc, _ := Lookup("lcc")
	p, err = lcc.Prompt(samples[2], byteTok{}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "Please complete the code given below. \n" + samples[2].Context + "Next line of code:\n"; p != want {
		t.Errorf("lcc prompt %q, want %q", p, want)
	}
	if _, err := hotpot.Prompt(samples[0], byteTok{}, 0, "no placeholder"); err == nil {
		t.Error("chat template without {prompt}: no error")
	}
}

func TestTaskScore(t *testing.T) {
	tests := []struct {
		task       string
		prediction string
		answers    []string
		classes    []string
		want       float64
	}{
		{"hotpotqa", "The Tessel river.", []string{"Tessel river", "Tessel"}, nil, 1},
		{"hotpotqa", "Tessel", []string{"the Tessel river", "Tessel"}, nil, 1}, // best answer
		{"hotpotqa", "river Tessel mill", []string{"Tessel river"}, nil, 0.8},  // P 2/3, R 1
		{"triviaqa", "\n\nParis\nLondon London", []string{"Paris"}, nil, 1},    // first line only
		{"hotpotqa", "\n\nParis\nLondon London", []string{"Paris"}, nil, 0.5},  // whole prediction
		{"trec", "Description\nEntity", []string{"Description"}, []string{"Description", "Entity"}, 1},
		{"trec", "Description Entity", []string{"Description"}, []string{"Description", "Entity"}, 0.5},
		{"passage_retrieval_en", "Paragraph 2", []string{"Paragraph 2"}, nil, 1},
		{"passage_count", "7", []string{"7"}, nil, 1},
		{"lcc", "\n// comment\n}\n", []string{"}"}, nil, 1},
	}
	for _, tc := range tests {
		task, _ := Lookup(tc.task)
		if got := task.Score(tc.prediction, tc.answers, tc.classes); !near(got, tc.want) {
			t.Errorf("%s: Score(%q, %q) = %v, want %v", tc.task, tc.prediction, tc.answers, got, tc.want)
		}
	}
	if got := Mean([]float64{1, 0, 0.5, 0.5}); got != 50 {
		t.Errorf("Mean = %v, want 50", got)
	}
	if got := Mean(nil); got != 0 {
		t.Errorf("Mean(nil) = %v, want 0", got)
	}
	for length, want := range map[int]string{0: "0-4k", 3999: "0-4k", 4000: "4-8k", 7999: "4-8k", 8000: "8k+"} {
		if got := LengthBucket(length); got != want {
			t.Errorf("LengthBucket(%d) = %q, want %q", length, got, want)
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func FuzzReader(f *testing.F) {
	data, err := os.ReadFile("testdata/sample.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"input": "q", "context": "c", "answers": ["a"], "all_classes": null}`))
	f.Add([]byte(`{"input": 1}` + "\n\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), "fuzz.jsonl")
		for {
			s, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), "longbench: fuzz.jsonl:") {
					t.Errorf("error %q does not name the file and line", err)
				}
				return
			}
			if len(s.Answers) == 0 || s.File != "fuzz.jsonl" || s.Line < 1 {
				t.Errorf("sample %+v: no answers or no position", s)
			}
		}
	})
}

func FuzzFill(f *testing.F) {
	f.Add("{context}{input}", "a{b}", "c}")
	f.Add("{{}}{", "", "")
	f.Fuzz(func(t *testing.T, tmpl, input, context string) {
		got, err := Fill(tmpl, Sample{Input: input, Context: context})
		if err == nil && !strings.ContainsAny(tmpl, "{}") && got != tmpl {
			t.Errorf("Fill(%q) = %q without placeholders", tmpl, got)
		}
	})
}
