package sweep

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestRulerConfigs loads configs/paper/ruler.toml and configs/ruler-tiny.toml
// and checks their plans: every task at every length, for every policy.
func TestRulerConfigs(t *testing.T) {
	for _, c := range []struct {
		file   string
		points int
		want   []string
	}{
		{"paper/ruler.toml", 6 * 13 * 6, []string{
			"backend: cuda; chunk: 4096",
			"ruler  length  4096, 8192, 16384, 32768, 65536, 131072",
			`"niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2", "niah_multikey_3", "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe", "qa_1", "qa_2"`,
			"samples = 100",
		}},
		{"ruler-tiny.toml", 6 * 12 * 2, []string{
			"backend: cpu; chunk: 256",
			"ruler  length  1024, 2048",
			"samples = 2",
		}},
	} {
		t.Run(c.file, func(t *testing.T) {
			s, err := Load(filepath.Join("..", "..", "configs", c.file))
			if err != nil {
				t.Fatal(err)
			}
			pts, err := s.Points()
			if err != nil {
				t.Fatal(err)
			}
			if len(pts) != c.points {
				t.Errorf("%d points, want %d", len(pts), c.points)
			}
			var b bytes.Buffer
			if err := FormatPlan(&b, pts); err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("plan lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}
