package sweep

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, that every error names
// a position inside the file, and that a sweep Parse accepts expands into
// points with distinct hashes.
func FuzzParse(f *testing.F) {
	f.Add([]byte(grid))
	f.Add([]byte(head + "[[experiment]]\nname = \"passkey\"\n[[policy]]\nname = \"full\"\n"))
	for _, tt := range errorCases {
		f.Add([]byte(tt.src))
	}
	if data, err := os.ReadFile(filepath.Join("testdata", "grid.toml")); err == nil {
		f.Add(data)
	}
	if data, err := os.ReadFile(filepath.Join("..", "..", "configs", "README.md")); err == nil {
		for _, block := range strings.Split(string(data), "```toml\n")[1:] {
			src, _, _ := strings.Cut(block, "```")
			f.Add([]byte(src))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		newLocator(data) // must not panic on anything, parsed or not
		s, err := Parse(data, "f.toml")
		if err != nil {
			lines := bytes.Count(data, []byte("\n")) + 1
			for _, e := range unjoin(err) {
				var pe *Error
				if !errors.As(e, &pe) {
					if !strings.HasPrefix(e.Error(), "f.toml: ") {
						t.Fatalf("error without the file name: %v", e)
					}
					continue
				}
				if pe.File != "f.toml" || pe.Line < 1 || pe.Line > lines || pe.Col < 1 {
					t.Fatalf("error outside the file (%d lines): %v", lines, pe)
				}
			}
			return
		}
		pts, err := s.Points()
		if err != nil {
			t.Fatalf("Parse accepted the file but Points fails: %v", err)
		}
		if len(pts) == 0 {
			t.Fatal("Parse accepted a sweep without points")
		}
		seen := map[string]bool{}
		for _, p := range pts {
			if seen[p.Hash] {
				t.Fatalf("hash %s twice", p.Hash)
			}
			seen[p.Hash] = true
		}
		if err := FormatPlan(new(bytes.Buffer), pts); err != nil {
			t.Fatal(err)
		}
	})
}

// unjoin returns the errors joined in err, or err.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
