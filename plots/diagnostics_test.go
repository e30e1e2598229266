package plots

import (
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyMaps(t *testing.T) {
	ok := []KeyCell{
		{Policy: "cascade", Layer: 0, Head: 0, DepthBin: 0, Value: 40},
		{Policy: "cascade", Layer: 0, Head: 0, DepthBin: 0, Value: 60}, // averaged with the first: 50
		{Policy: "cascade", Layer: 1, Head: 1, DepthBin: 4, Value: 100},
		{Policy: "h2o", Layer: 0, Head: 1, DepthBin: 2, Value: 0},
	}
	for _, tt := range []struct {
		name  string
		cells []KeyCell
		bins  int
		err   string
	}{
		{"ok", ok, 5, ""},
		{"none", nil, 5, "no data"},
		{"bins", ok, 0, "depth bins"},
		{"bin out of range", []KeyCell{{Policy: "a", DepthBin: 5}}, 5, "depth bin 5"},
		{"value", []KeyCell{{Policy: "a", Value: 101}}, 5, "outside [0, 100]"},
		{"nan", []KeyCell{{Policy: "a", Value: math.NaN()}}, 5, "outside [0, 100]"},
		{"negative layer", []KeyCell{{Policy: "a", Layer: -1}}, 5, "layer -1"},
		{"no policy", []KeyCell{{Value: 1}}, 5, "empty policy"},
	} {
		f, err := KeyMaps(tt.cells, tt.bins, "held (%)")
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) && !(tt.err == "no data" && errors.Is(err, ErrNoData)) {
				t.Errorf("%s: error %v, want one about %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if len(f.Panels) != 1 || len(f.Panels[0]) != 2 {
			t.Fatalf("%s: panels %d×%d, want 1×2 (two policies)", tt.name, len(f.Panels), len(f.Panels[0]))
		}
		kt, _ := newKeyTables(tt.cells, tt.bins)
		g := kt.grid["cascade"]
		// Rows L0 h0, L0 h1, L1 h1 in that order (L0 h0 at the top).
		if len(g) != 3 || g[0][0] != 50 || g[2][4] != 100 || !math.IsNaN(g[1][0]) {
			t.Errorf("%s: cascade grid %v", tt.name, g)
		}
		if err := Save(f, filepath.Join(t.TempDir(), "k.png"), 0, 0); err != nil {
			t.Errorf("%s: save: %v", tt.name, err)
		}
	}
}

func TestRetentionSpans(t *testing.T) {
	rs := []Retention{
		{Policy: "sink", Tokens: 100, Rows: [][]int64{{0, 1, 90, 91}}},
		{Policy: "full", Tokens: 100, Rows: [][]int64{{0, 1, 2}}},
	}
	// A span for a policy not drawn is ignored.
	f, err := RetentionSpans(rs, map[string][2]int64{"sink": {40, 60}, "h2o": {1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := Save(f, filepath.Join(t.TempDir(), "r.svg"), 0, 0); err != nil {
		t.Error(err)
	}
}
