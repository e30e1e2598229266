package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/internal/golden"
)

var update = flag.Bool("update", false, "rewrite testdata/report.golden")

func TestMcNemar(t *testing.T) {
	for _, c := range []struct {
		b, c int
		want float64
	}{
		{0, 0, 1},
		{1, 0, 1},
		{0, 5, 2.0 / 32},              // 2·(1/2)^5
		{2, 8, 2 * 56.0 / 1024},       // 2·(1 + 10 + 45)/2^10
		{8, 2, 2 * 56.0 / 1024},       // symmetric
		{5, 5, 1},                     // capped at 1
		{0, 20, 2 * math.Pow(2, -20)}, // far tail
	} {
		if got := mcnemar(c.b, c.c); math.Abs(got-c.want) > 1e-12*math.Max(1, c.want) {
			t.Errorf("mcnemar(%d, %d) = %v, want %v", c.b, c.c, got, c.want)
		}
	}
}

func TestJaccard(t *testing.T) {
	for _, c := range []struct {
		a, b []int64
		want float64
	}{
		{nil, nil, 1},
		{[]int64{1, 2}, nil, 0},
		{[]int64{1, 2, 3}, []int64{2, 3, 4}, 0.5},
		{[]int64{5, 1}, []int64{1, 5}, 1},
	} {
		if got := jaccard(c.a, c.b); got != c.want {
			t.Errorf("jaccard(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// synthetic returns points as a results database returns them: two budgets
// of passkey over two depth bins and of perplexity, each under both
// scorings, and a full-attention point that has no scoring.
func synthetic(t *testing.T) []point {
	t.Helper()
	raw := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var pts []point
	for _, size := range []float64{192, 448} {
		for _, scoring := range []string{exact, reference} {
			for _, bin := range []float64{0, 4} {
				p := point{Experiment: "passkey", Params: map[string]any{"size": size, "scoring": scoring, "depth_bin": bin, "length": 2048.0}}
				for i := range 10 {
					// exact gets i < 6 right at 448, reference i < 3
					// and i == 9; both get none right at 192.
					right := size == 448 && (scoring == exact && i < 6 || scoring == reference && (i < 3 || i == 9))
					// reference gets all five digits of i < 4 at 448.
					digits := i % 6
					if size == 448 && scoring == reference && i < 4 {
						digits = 5
					}
					p.Samples = append(p.Samples, raw(map[string]any{"index": i, "key": fmt.Sprint(10000 + i), "correct": right, "digits": digits}))
				}
				pts = append(pts, p)
			}
			held := [][]int64{{0, 1, 2, 3, 7}, {0, 1, 5, 6, 7}}
			if scoring == reference {
				held = [][]int64{{0, 1, 2, 3, 7}, {0, 4, 5, 6, 7}}
			}
			pts = append(pts, point{Experiment: "perplexity", Params: map[string]any{"size": size, "scoring": scoring},
				Metrics: map[string]float64{"ppl": size / 10}, Samples: []json.RawMessage{
					raw(map[string]any{"tokens": 4, "ppl": 3.0}), raw(map[string]any{"tokens": 8, "held": held})}})
		}
	}
	return append(pts, point{Experiment: "passkey", Params: map[string]any{"depth_bin": 0.0, "length": 2048.0}})
}

func TestReportGolden(t *testing.T) {
	pk, ppl, err := compare(synthetic(t))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := writeReport(&b, pk, ppl); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "report.golden"), b.Bytes(), *update)
}

// TestDifferentPrompts: pairs whose keys differ were not read from the same
// prompts, and the comparison refuses them.
func TestDifferentPrompts(t *testing.T) {
	pts := synthetic(t)
	pts[3].Samples[0] = // size 192, reference, bin 0
		json.RawMessage(`{"index": 0, "key": "99999", "correct": true}`)
	if _, _, err := compare(pts); err == nil || !strings.Contains(err.Error(), "99999") {
		t.Errorf("compare with different keys: err = %v, want one naming the keys", err)
	}
}
