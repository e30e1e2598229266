package experiments_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/experiments"
)

// resolve returns the named experiment and raw resolved against it.
func resolve(t *testing.T, name string, raw map[string]any) (experiments.Experiment, map[string]any) {
	t.Helper()
	e, err := experiments.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := experiments.Resolve(e, raw)
	if err != nil {
		t.Fatalf("resolve %v: %v", raw, err)
	}
	return e, p
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		exp  string
		raw  map[string]any
		want string // "" for no error
	}{
		{"passkey", map[string]any{"length": 2048, "depth_bin": 4}, ""},
		{"passkey", map[string]any{"length": 0}, "parameter length: must be at least 1, got 0"},
		{"passkey", map[string]any{"depth_bin": 9}, "parameter depth_bin: 9 is outside 0..4"},
		{"passkey", map[string]any{"depth_bin": -1}, "parameter depth_bin: must be at least 0"},
		{"passkey", map[string]any{"samples": 0}, "parameter samples"},
		{"passkey", map[string]any{"max_new": 0}, "parameter max_new"},
		{"passkey", map[string]any{"template": "[INST]"}, "parameter template"},
		{"perplexity", map[string]any{"text": "a.txt"}, ""},
		{"perplexity", map[string]any{}, "parameter text: required"},
		{"perplexity", map[string]any{"text": "a.txt", "tokens": 1}, "parameter tokens"},
		{"perplexity", map[string]any{"text": "a.txt", "checkpoints": 0}, "parameter checkpoints"},
		{"longbench", map[string]any{"data": "a.jsonl"}, ""},
		{"longbench", map[string]any{}, "parameter data: required"},
		{"longbench", map[string]any{"data": "a.jsonl", "subset": "nosuch"}, `parameter subset: unknown subset "nosuch"`},
		{"longbench", map[string]any{"data": "a.jsonl", "limit": -1}, "parameter limit"},
		{"latency", map[string]any{"length": 0}, "parameter length"},
		{"latency", map[string]any{"decode_tokens": -1}, "parameter decode_tokens"},
		{"memory", map[string]any{"length": -5}, "parameter length"},
		{"memory", map[string]any{"checkpoints": 0}, "parameter checkpoints"},
	} {
		e, p := resolve(t, tc.exp, tc.raw)
		err := experiments.Check(e, p)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %v: %v", tc.exp, tc.raw, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "experiment "+tc.exp+": ")):
			t.Errorf("%s %v: error %v, want one with %q", tc.exp, tc.raw, err, tc.want)
		}
	}
}

func TestResolvePaths(t *testing.T) {
	e, p := resolve(t, "perplexity", map[string]any{"text": "books/a.txt"})
	r := experiments.ResolvePaths(e, p, "/sweeps")
	if got := r["text"]; got != filepath.Join("/sweeps", "books/a.txt") {
		t.Errorf("text resolved to %v", got)
	}
	if p["text"] != "books/a.txt" {
		t.Error("ResolvePaths changed its argument")
	}
	e, p = resolve(t, "passkey", map[string]any{})
	if r := experiments.ResolvePaths(e, p, "/sweeps"); r["words"] != "" {
		t.Errorf("unset words resolved to %v, want \"\" (the embedded list)", r["words"])
	}
	e, p = resolve(t, "perplexity", map[string]any{"text": "embedded:book"})
	if r := experiments.ResolvePaths(e, p, "/sweeps"); r["text"] != "embedded:book" {
		t.Errorf("an embedded name resolved to %v", r["text"])
	}
	e, p = resolve(t, "longbench", map[string]any{"data": "/abs/trec.jsonl"})
	if r := experiments.ResolvePaths(e, p, "/sweeps"); r["data"] != "/abs/trec.jsonl" {
		t.Errorf("absolute data resolved to %v", r["data"])
	}
}

// longbenchLine is one record of a LongBench file of subset dataset.
func longbenchLine(t *testing.T, dataset string, i int) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"input": "Who?", "context": "Nobody.", "answers": []string{"Nobody"}, "all_classes": nil,
		"length": 2, "dataset": dataset, "language": "en", "_id": dataset + string(rune('a'+i)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheckFiles(t *testing.T) {
	words := writeFile(t, "words.txt", "apple\nbanana\n")
	noWords := writeFile(t, "nowords.txt", "Apple\n")
	text := writeFile(t, "book.txt", pplText)
	one := writeFile(t, "trec.jsonl", longbenchLine(t, "trec", 0)+"\n"+longbenchLine(t, "trec", 1)+"\n")
	mixed := writeFile(t, "mixed.jsonl", longbenchLine(t, "trec", 0)+"\n"+longbenchLine(t, "samsum", 1)+"\n")
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		exp  string
		raw  map[string]any
		want string
	}{
		{"passkey", map[string]any{}, ""},
		{"passkey", map[string]any{"words": words}, ""},
		{"passkey", map[string]any{"words": missing}, "parameter words: passkey: word list " + missing + " not found"},
		{"passkey", map[string]any{"words": noWords}, "no plain lowercase"},
		{"perplexity", map[string]any{"text": text}, ""},
		{"perplexity", map[string]any{"text": missing}, "parameter text:"},
		{"longbench", map[string]any{"data": one}, ""},
		{"longbench", map[string]any{"data": missing}, "parameter data:"},
		{"longbench", map[string]any{"data": mixed}, "mixes 2 subsets (trec, samsum)"},
		{"longbench", map[string]any{"data": mixed, "subset": "trec"}, "mixes 2 subsets"},
		{"latency", map[string]any{}, ""},
	} {
		e, p := resolve(t, tc.exp, tc.raw)
		err := experiments.CheckFiles(e, p, &experiments.Files{})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %v: %v", tc.exp, tc.raw, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s %v: error %v, want one with %q", tc.exp, tc.raw, err, tc.want)
		}
	}
}

// TestLongBenchRefusesMixedSubsets: a point whose file mixes subsets fails
// instead of scoring every sample with the first one's task.
func TestLongBenchRefusesMixedSubsets(t *testing.T) {
	mixed := writeFile(t, "mixed.jsonl", longbenchLine(t, "trec", 0)+"\n"+longbenchLine(t, "samsum", 1)+"\n")
	env := newEnv(t, "full", nil)
	e, p := resolve(t, "longbench", map[string]any{"data": mixed, "max_new": 1})
	if _, err := e.Run(context.Background(), env, p); err == nil || !strings.Contains(err.Error(), "mixes 2 subsets") {
		t.Errorf("error %v, want one saying the file mixes subsets", err)
	}
}

// TestPerplexityShortText: a text with fewer tokens than asked fails the
// point instead of scoring fewer tokens than the point says.
func TestPerplexityShortText(t *testing.T) {
	text := writeFile(t, "short.txt", "The mill stood on the bank of the river.")
	env := newEnv(t, "full", nil)
	e, p := resolve(t, "perplexity", map[string]any{"text": text, "tokens": 5000})
	_, err := e.Run(context.Background(), env, p)
	if err == nil || !strings.Contains(err.Error(), "fewer than tokens = 5000") {
		t.Errorf("error %v, want one saying the text has fewer than 5000 tokens", err)
	}
}
