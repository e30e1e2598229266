package sweep

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
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
	golden := filepath.Join("testdata", "grid.plan")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("plan differs from %s (run with -update to rewrite):\n%s", golden, b.Bytes())
	}
}

func TestFormatPlanEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := FormatPlan(&b, nil); err != nil || b.String() != "0 points\n" {
		t.Errorf("FormatPlan(nil) = %q, %v", b.String(), err)
	}
}
