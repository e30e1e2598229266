package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestReport checks the loops and histograms found in a small cuobjdump
// listing against testdata/*.golden, by base opcode and with modifiers.
func TestReport(t *testing.T) {
	for _, c := range []struct {
		golden string
		top    int
		full   bool
		min    int
	}{
		{"sample.golden", 12, false, 1},
		{"sample_full.golden", 2, true, 1},
		{"sample_min.golden", 12, false, 4},
	} {
		t.Run(c.golden, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "sample.sass"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			funcs, err := parse(f)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			report(&b, funcs, c.top, c.full, c.min)
			golden.Check(t, filepath.Join("testdata", c.golden), b.Bytes(), *update)
		})
	}
}

// TestParseErrors checks that input with no instructions gives none and
// that a line with an address but no opcode is reported with its number.
func TestParseErrors(t *testing.T) {
	funcs, err := parse(strings.NewReader("not SASS at all\n\tFunction : empty\n"))
	if err != nil || len(funcs) != 0 {
		t.Errorf("parse of no instructions: %d functions, %v", len(funcs), err)
	}
	_, err = parse(strings.NewReader("\tFunction : f\n        /*0000*/   @P0 ;\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("parse of a predicate alone: %v, want an error at line 2", err)
	}
}

// FuzzParse checks that parse never panics and that every function it
// returns has instructions.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "sample.sass")); err == nil {
		f.Add(string(b))
	}
	f.Add("/*0010*/ BRA 0x0 ;\n/*0000*/ X ;")
	f.Fuzz(func(t *testing.T, s string) {
		funcs, err := parse(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, fn := range funcs {
			if len(fn.instrs) == 0 {
				t.Fatalf("function %q without instructions", fn.name)
			}
			fn.loops()
			histogram(fn.instrs, 3, false)
		}
	})
}
