package experiments_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"kvcascade/datasets/ruler"
	"kvcascade/experiments"
)

// rulerRecord is a per-sample record of the ruler experiment.
type rulerRecord struct {
	Index        int      `json:"index"`
	Task         string   `json:"task"`
	Length       int      `json:"length"`
	PromptTokens int      `json:"prompt_tokens"`
	Haystack     int      `json:"haystack"`
	Answers      []string `json:"answers"`
	Output       string   `json:"output"`
	Score        float64  `json:"score"`
}

// TestRulerRecordsGreedyAnswers runs three RULER tasks on the fixture: each
// record's output is the fixture's own greedy continuation of the
// generated prompt, its score is RULER's metric of that output, the prompt
// and answer fit the length, and the point's score is the mean.
func TestRulerRecordsGreedyAnswers(t *testing.T) {
	env := newEnv(t, "full", nil)
	for _, tc := range []struct {
		task   string
		length int
	}{{"niah_single_1", 400}, {"niah_multikey_3", 600}, {"fwe", 300}} {
		raw := map[string]any{"task": tc.task, "length": tc.length, "samples": 2, "seed": 4, "answer_tokens": 6}
		r := run(t, env, "ruler", raw)
		recs := samples[rulerRecord](t, r)
		if len(recs) != 2 {
			t.Fatalf("%s: %d records, want 2", tc.task, len(recs))
		}
		task, err := ruler.Lookup(tc.task)
		if err != nil {
			t.Fatal(err)
		}
		var total float64
		for i, rec := range recs {
			s, err := ruler.Generate(ruler.Config{Task: task, Length: tc.length, AnswerTokens: 6, Seed: 4}, env.Tokenizer, i)
			if err != nil {
				t.Fatal(err)
			}
			ids := env.Tokenizer.Encode(s.Prompt, true)
			want := env.Tokenizer.Decode(greedy(t, env.Model, ids, 6), true)
			if rec.Output != want || rec.PromptTokens != len(ids) || !slices.Equal(rec.Answers, s.Answers) ||
				rec.Task != tc.task || rec.Length != tc.length || rec.Haystack != s.Haystack {
				t.Errorf("%s sample %d: record %+v, want output %q, %d prompt tokens, answers %v", tc.task, i, rec, want, len(ids), s.Answers)
			}
			if rec.PromptTokens+6 > tc.length {
				t.Errorf("%s sample %d: %d prompt tokens + 6 exceed %d", tc.task, i, rec.PromptTokens, tc.length)
			}
			if got := task.Score(rec.Output, rec.Answers); got != rec.Score {
				t.Errorf("%s sample %d: score %v, RULER's metric gives %v", tc.task, i, rec.Score, got)
			}
			total += rec.Score
		}
		if got, want := metric(t, r, "score"), 100*total/2; math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: score %v, want the mean %v", tc.task, got, want)
		}
	}
}

func TestRulerErrors(t *testing.T) {
	env := newEnv(t, "full", nil)
	e, err := experiments.Lookup("ruler")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{"task": "niah"}, `unknown task "niah"`},
		{map[string]any{"task": "qa_1", "length": 300}, "parameter qa: task qa_1 needs a squad-format JSON file"},
		{map[string]any{"task": "qa_2", "qa": "/nonexistent/hotpot.json"}, "/nonexistent/hotpot.json"},
		{map[string]any{"task": "niah_single_2", "essay": "/nonexistent/essay.txt"}, "/nonexistent/essay.txt"},
		{map[string]any{"task": "niah_single_1", "length": 100}, "length too short"},
		{map[string]any{"samples": 0}, "parameter samples: must be at least 1"},
		{map[string]any{"template": "no placeholder"}, "parameter template"},
	}
	for _, tt := range tests {
		p, err := experiments.Resolve(e, tt.raw)
		if err != nil {
			t.Fatalf("resolve %v: %v", tt.raw, err)
		}
		_, err = e.Run(context.Background(), env, p)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one containing %q", tt.raw, err, tt.want)
		}
	}
}

// TestRulerListsTasks: the task parameter's description names every task,
// so that `kvcascade experiments` lists them.
func TestRulerListsTasks(t *testing.T) {
	e, err := experiments.Lookup("ruler")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range e.Params() {
		if p.Name != "task" {
			continue
		}
		for _, name := range ruler.Names() {
			if !strings.Contains(p.Doc, name) {
				t.Errorf("task parameter doc %q lacks %s", p.Doc, name)
			}
		}
		return
	}
	t.Error("ruler has no task parameter")
}

// TestRulerCheckFiles: the sweep-time checks read the files the task uses
// and name the parameter, and resolve the three path parameters.
func TestRulerCheckFiles(t *testing.T) {
	e, err := experiments.Lookup("ruler")
	if err != nil {
		t.Fatal(err)
	}
	if got := experiments.PathParams(e); !slices.Equal(got, []string{"essay", "words", "qa"}) {
		t.Errorf("PathParams = %v", got)
	}
	essay := writeFile(t, "essay.txt", "One sentence. Another one.")
	bad := writeFile(t, "bad.json", "[1, 2")
	tests := []struct {
		raw  map[string]any
		want string // "" for no error
	}{
		{map[string]any{"task": "niah_single_2", "essay": essay}, ""},
		{map[string]any{"task": "niah_single_1", "essay": "/nonexistent/essay.txt"}, ""}, // noise: the essay is not read
		{map[string]any{"task": "niah_single_2", "essay": "/nonexistent/essay.txt"}, "parameter essay"},
		{map[string]any{"task": "qa_2", "qa": bad}, "parameter qa"},
		{map[string]any{"words": "/nonexistent/words.txt"}, "parameter words"},
	}
	for _, tt := range tests {
		p, err := experiments.Resolve(e, tt.raw)
		if err != nil {
			t.Fatal(err)
		}
		err = experiments.CheckFiles(e, p, nil)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%v: error %v, want %q", tt.raw, err, tt.want)
		}
	}
}
