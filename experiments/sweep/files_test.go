package sweep

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/datasets/longtext"
	"kvcascade/experiments"
)

// writeSweep writes files (name → contents, folders made) into a new
// folder and returns it.
func writeSweep(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const filesPolicy = "\n[[policy]]\nname = \"full\"\n"

func TestCheckFiles(t *testing.T) {
	tiny := "[[model]]\nname = \"tiny\"\n"
	for _, tc := range []struct {
		name  string
		sweep string
		files map[string]string
		want  []string // each must appear; nil: no error
	}{
		{"embedded words", tiny + "[[experiment]]\nname = \"passkey\"\n", nil, nil},
		{"words next to the sweep", tiny + "[[experiment]]\nname = \"passkey\"\nparams.words = \"lists/w.txt\"\n",
			map[string]string{"sweeps/lists/w.txt": "apple\n"}, nil},
		{"missing words", tiny + "[[experiment]]\nname = \"passkey\"\nparams.words = \"lists/none.txt\"\n", nil,
			[]string{"s.toml:6:8: experiment[0].params.words:", filepath.Join("sweeps", "lists", "none.txt") + " not found"}},
		{"missing words in an axis", tiny + "[[experiment]]\nname = \"passkey\"\nparams.words = [\"lists/w.txt\", \"lists/none.txt\"]\n",
			map[string]string{"sweeps/lists/w.txt": "apple\n"},
			[]string{"s.toml:6:32: experiment[0].params.words[1]:", "none.txt not found"}},
		{"unknown embedded model", "[[model]]\nname = \"huge\"\n[[experiment]]\nname = \"latency\"\n", nil,
			[]string{"s.toml:3:1: model[0].name:", `no embedded model "huge"`}},
		{"missing model dir", "[[model]]\npath = \"../models/none\"\n[[experiment]]\nname = \"latency\"\n", nil,
			[]string{"s.toml:3:1: model[0].path:", filepath.Join("models", "none") + " does not exist"}},
		{"model dir without config", "[[model]]\npath = \"m\"\n[[experiment]]\nname = \"latency\"\n",
			map[string]string{"sweeps/m/tokenizer.json": "{}"}, []string{"s.toml:3:1: model[0].path:", "config.json"}},
		{"missing text", tiny + "[[experiment]]\nname = \"perplexity\"\nparams.text = \"book.txt\"\n", nil,
			[]string{"s.toml:6:8: experiment[0].params.text:", "book.txt"}},
		{"text next to the sweep", tiny + "[[experiment]]\nname = \"perplexity\"\nparams.text = \"book.txt\"\n",
			map[string]string{"sweeps/book.txt": "Once upon a time."}, nil},
		{"mixed longbench", tiny + "[[experiment]]\nname = \"longbench\"\nparams.data = \"lb.jsonl\"\n",
			map[string]string{"sweeps/lb.jsonl": `{"input":"a","context":"b","answers":["c"],"dataset":"trec","_id":"1"}` + "\n" +
				`{"input":"a","context":"b","answers":["c"],"dataset":"samsum","_id":"2"}` + "\n"},
			[]string{"s.toml:6:8: experiment[0].params.data:", "mixes 2 subsets (trec, samsum)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"sweeps/s.toml": "name = \"t\"\n" + tc.sweep + filesPolicy}
			for k, v := range tc.files {
				files[k] = v
			}
			dir := writeSweep(t, files)
			s, err := Load(filepath.Join(dir, "sweeps", "s.toml"))
			if err != nil {
				t.Fatal(err)
			}
			err = s.CheckFiles()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("CheckFiles: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("CheckFiles: no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
				t.Errorf("%d errors, want 1: %v", n, err)
			}
		})
	}
}

// TestCheckFilesOncePerFile: a missing file that many points name is one
// error, not one per point.
func TestCheckFilesOncePerFile(t *testing.T) {
	dir := writeSweep(t, map[string]string{"s.toml": "name = \"t\"\n[[model]]\nname = \"tiny\"\n" +
		"[[experiment]]\nname = \"passkey\"\n[experiment.params]\nwords = \"none.txt\"\nlength = [100, 200, 300]\ndepth_bin = [0, 1, 2, 3, 4]\n" +
		filesPolicy + "[[policy]]\nname = \"sink\"\n"})
	s, err := Load(filepath.Join(dir, "s.toml"))
	if err != nil {
		t.Fatal(err)
	}
	err = s.CheckFiles()
	if err == nil || strings.Count(err.Error(), "not found") != 1 {
		t.Errorf("error %v, want the missing word list reported once", err)
	}
}

// TestParseChecksRanges: a single value out of range (length = 0,
// depth_bin = 9) is a plan error at its place, not a failure per point.
func TestParseChecksRanges(t *testing.T) {
	for _, tc := range []struct{ params, want string }{
		{"length = 0", "t.toml:7:1: experiment[0].params.length: experiment passkey: parameter length: must be at least 1, got 0"},
		{"depth_bin = 9", "t.toml:7:1: experiment[0].params.depth_bin: experiment passkey: parameter depth_bin: 9 is outside 0..4"},
		{"depth_bin = [0, 9]", "t.toml:7:17: experiment[0].params.depth_bin[1]: experiment passkey: parameter depth_bin: 9 is outside 0..4 (at depth_bin = 9)"},
	} {
		src := "name = \"t\"\n[[model]]\nname = \"tiny\"\n[[experiment]]\nname = \"passkey\"\n[experiment.params]\n" + tc.params + "\n" + filesPolicy
		_, err := Parse([]byte(src), "t.toml")
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: error\n%v\nwant\n%s", tc.params, err, tc.want)
		}
	}
}

// TestRunParamsResolveAgainstSweep: experiments get paths joined to the
// sweep file's folder, while hashes keep them as written.
func TestRunParamsResolveAgainstSweep(t *testing.T) {
	src := "name = \"t\"\n[[model]]\nname = \"tiny\"\n[[experiment]]\nname = \"perplexity\"\nparams.text = \"books/a.txt\"\n" + filesPolicy
	a, err := Parse([]byte(src), filepath.Join("one", "t.toml"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte(src), filepath.Join("two", "t.toml"))
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := a.Points()
	pb, _ := b.Points()
	if got := pa[0].RunParams()["text"]; got != filepath.Join("one", "books", "a.txt") {
		t.Errorf("text runs as %v", got)
	}
	if pa[0].ExperimentParams["text"] != "books/a.txt" || pa[0].Hash != pb[0].Hash {
		t.Errorf("as written %v; hashes %s, %s: want the path as written and equal hashes", pa[0].ExperimentParams["text"], pa[0].Hash, pb[0].Hash)
	}
}

// TestQuickstartNeedsNothingOutside: the README's main command names no
// file outside the repository (no /usr/share/dict, no
// /usr/share/common-licenses): every path the quickstart's points use
// resolves inside the repository, and everything it names opens.
func TestQuickstartNeedsNothingOutside(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(filepath.Join(root, "configs", "quickstart.toml"))
	if err != nil {
		t.Fatal(err)
	}
	pts, err := s.Points()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pts {
		if p.Model.Path != "" && !inside(root, p.Model.Path) {
			t.Errorf("model %s is outside the repository", p.Model.Path)
		}
		e, err := experiments.Lookup(p.Experiment)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range experiments.PathParams(e) {
			v, _ := p.RunParams()[k].(string)
			if v == "" || longtext.IsEmbedded(v) {
				continue // embedded in the binary
			}
			if !inside(root, v) {
				t.Errorf("%s parameter %s: %s is outside the repository", p.Experiment, k, v)
			}
		}
	}
}

// inside reports whether path is root or under it.
func inside(root, path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(root, abs)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
