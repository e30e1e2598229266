package report

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoExperimentsImport: the report draws what the stored points declare
// and never asks package experiments (nor guesses from experiment names).
func TestNoExperimentsImport(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "kvcascade/experiments" || strings.HasPrefix(path, "kvcascade/experiments/") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
