package sweep

import (
	"bytes"
	"flag"
	"path/filepath"
	"testing"

	"kvcascade/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func TestFormatPlan(t *testing.T) {
	s, err := Load(filepath.Join("testdata", "grid.toml"))
	if err != nil {
		t.Fatal(err)
	}
	pts, err := s.Points()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := FormatPlan(&b, pts); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "grid.plan"), b.Bytes(), *update)
}

func TestFormatPlanEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := FormatPlan(&b, nil); err != nil || b.String() != "0 points\n" {
		t.Errorf("FormatPlan(nil) = %q, %v", b.String(), err)
	}
}
