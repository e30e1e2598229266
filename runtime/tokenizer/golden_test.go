package tokenizer

import (
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var (
	update    = flag.Bool("update", false, "rewrite the golden files written by this package's tests")
	goldenDir = flag.String("golden", "testdata", "directory whose subdirectories hold tokenizer.json and golden.json")
)

// goldenCase is one entry of a golden.json written by the tokenizers
// library: the text, its ids with and without special tokens, and the
// decoding of ids.
type goldenCase struct {
	Text     string  `json:"text"`
	IDs      []int32 `json:"ids"`
	IDsPlain []int32 `json:"ids_plain"`
	Decoded  string  `json:"decoded"`
}

// goldenDirs returns the subdirectories of root holding both files.
func goldenDirs(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("read %s: %v", root, err)
	}
	var dirs []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if exists(filepath.Join(dir, "tokenizer.json")) && exists(filepath.Join(dir, "golden.json")) {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// byteLevelFamily reports whether tok decodes with a ByteLevel decoder.
func byteLevelFamily(tok *Tokenizer) bool {
	var has func(d decoder) bool
	has = func(d decoder) bool {
		switch d := d.(type) {
		case byteLevelDec:
			return true
		case sequenceDec:
			return slices.ContainsFunc(d, has)
		}
		return false
	}
	return has(tok.dec)
}

// TestTokenizerGolden checks parity with the tokenizers library on every
// fixture directory under -golden that has a tokenizer.json and a
// golden.json.
func TestTokenizerGolden(t *testing.T) {
	dirs := goldenDirs(t, *goldenDir)
	if len(dirs) == 0 {
		t.Skipf("no directory under %s has both tokenizer.json and golden.json yet", *goldenDir)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			tok, err := Load(filepath.Join(dir, "tokenizer.json"))
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(dir, "golden.json"))
			if err != nil {
				t.Fatal(err)
			}
			var cases []goldenCase
			if err := json.Unmarshal(data, &cases); err != nil {
				t.Fatalf("%s: %v", dir, err)
			}
			roundTrip := byteLevelFamily(tok) && tok.norm == nil
			failures := 0
			for i, c := range cases {
				ok := true
				if got := tok.Encode(c.Text, true); !slices.Equal(got, c.IDs) {
					t.Errorf("case %d: Encode(%q, true) = %v, want %v", i, c.Text, got, c.IDs)
					ok = false
				}
				if got := tok.Encode(c.Text, false); !slices.Equal(got, c.IDsPlain) {
					t.Errorf("case %d: Encode(%q, false) = %v, want %v", i, c.Text, got, c.IDsPlain)
					ok = false
				}
				if got := tok.Decode(c.IDs, false); got != c.Decoded {
					t.Errorf("case %d: Decode(%v, false) = %q, want %q", i, c.IDs, got, c.Decoded)
					ok = false
				}
				if roundTrip {
					if got := tok.Decode(c.IDsPlain, false); got != c.Text {
						t.Errorf("case %d: Decode(ids_plain, false) = %q, want the text %q", i, got, c.Text)
						ok = false
					}
				}
				if !ok {
					if failures++; failures >= 20 {
						t.Fatalf("stopping after %d failing cases of %d", failures, len(cases))
					}
				}
			}
		})
	}
}
