package plots

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

var rulerOrder = []string{"niah_single_1", "niah_multikey_1", "vt", "cwe", "fwe"}

// rulerCells is synthetic: scores that fall with length, lower for the
// evicting policies, one task missing for sink at the longest length.
func rulerCells() []RulerCell {
	var out []RulerCell
	for pi, pol := range []string{"full", "cascade", "sink"} {
		for ti, task := range []string{"fwe", "vt", "niah_single_1", "cwe", "niah_multikey_1"} {
			for li, l := range []int{4096, 8192, 16384, 32768} {
				if pol == "sink" && task == "cwe" && l == 32768 {
					continue
				}
				out = append(out, RulerCell{Policy: pol, Task: task, Length: l, Score: float64(100 - 10*li - 15*pi - 3*ti), N: 10})
			}
		}
	}
	return out
}

func TestRulerTables(t *testing.T) {
	cells := append(rulerCells(),
		RulerCell{Policy: "full", Task: "qa_9", Length: 4096, Score: 50, N: 30}, // a task outside the order goes last
		RulerCell{Policy: "full", Task: "qa_9", Length: 4096, Score: 90, N: 10}) // merged, weighted by N
	tabs, err := RulerTables(cells, rulerOrder)
	if err != nil {
		t.Fatal(err)
	}
	var pols []string
	for _, tb := range tabs {
		pols = append(pols, tb.Policy)
	}
	if !slices.Equal(pols, sortPolicies([]string{"full", "cascade", "sink"})) {
		t.Errorf("policies %v", pols)
	}
	full := tabs[slices.Index(pols, "full")]
	want := append(slices.Clone(rulerOrder), "qa_9", RulerAverage)
	if !slices.Equal(full.Tasks, want) || !slices.Equal(full.Lengths, []int{4096, 8192, 16384, 32768}) {
		t.Fatalf("rows %v, columns %v", full.Tasks, full.Lengths)
	}
	if got := full.Score[5][0]; got != 60 {
		t.Errorf("merged qa_9 cell %v, want 60", got)
	}
	// Average at 4K of full: tasks score 100-3·ti for ti = 0..4 (mean 94)
	// and qa_9 60: (470+60)/6.
	if got, want := full.Score[6][0], 530.0/6; math.Abs(got-want) > 1e-9 {
		t.Errorf("average %v, want %v", got, want)
	}
	sink := tabs[slices.Index(pols, "sink")]
	if !math.IsNaN(sink.Score[3][3]) || !math.IsNaN(sink.Score[5][3]) {
		t.Errorf("missing sink cells are %v and %v, want NaN", sink.Score[3][3], sink.Score[5][3])
	}
	// sink at 32K averages the four tasks present: 100-30-30-3·ti for ti in {0,1,2,4}.
	if got, want := sink.Score[6][3], (40.0+37+34+28)/4; math.Abs(got-want) > 1e-9 {
		t.Errorf("sink average at 32K %v, want %v", got, want)
	}
}

func TestRulerPanels(t *testing.T) {
	fig, err := RulerPanels(rulerCells(), rulerOrder)
	if err != nil {
		t.Fatal(err)
	}
	path := saveAll(t, fig, "ruler_panels")[".svg"]
	count := map[string]int{}
	for _, s := range svgTexts(t, path) {
		count[s]++
	}
	for _, s := range []string{"full", "cascade", "sink", "4K", "32K", "niah_single_1", "fwe", RulerAverage, "Score (%)", "–"} {
		if count[s] == 0 {
			t.Errorf("text %q missing from the SVG", s)
		}
	}
	for _, c := range rulerCells() {
		if s := fmt.Sprint(c.Score); count[s] == 0 {
			t.Errorf("cell text %q missing", s)
		}
	}
	// Six policies of two lengths wrap onto two rows, each panel narrower
	// than the axis label, which is drawn once under them all.
	var six []RulerCell
	for _, pol := range []string{"full", "cascade", "sink", "h2o", "snapkv", "bigbird"} {
		six = append(six, RulerCell{Policy: pol, Task: "vt", Length: 1024, Score: 10}, RulerCell{Policy: pol, Task: "vt", Length: 2048, Score: 20})
	}
	fig, err = RulerPanels(six, rulerOrder)
	if err != nil {
		t.Fatal(err)
	}
	if len(fig.Panels) != 2 || len(fig.Panels[0]) != 3 {
		t.Errorf("six panels laid out as %d rows of %d, want 2 of 3", len(fig.Panels), len(fig.Panels[0]))
	}
	n := 0
	for _, s := range svgTexts(t, saveAll(t, fig, "ruler_six")[".svg"]) {
		if s == "Context length (tokens)" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the axis label appears %d times, want once", n)
	}
	bad := []struct {
		cells []RulerCell
		want  string
	}{
		{nil, "no data"},
		{[]RulerCell{{Policy: "full", Task: "vt", Length: 4096, Score: 101}}, "outside [0, 100]"},
		{[]RulerCell{{Policy: "full", Task: "", Length: 4096, Score: 1}}, "empty policy or task"},
		{[]RulerCell{{Policy: "full", Task: "vt", Length: 0, Score: 1}}, "length 0"},
	}
	for _, b := range bad {
		_, err := RulerPanels(b.cells, rulerOrder)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("RulerPanels(%v): error %v, want one containing %q", b.cells, err, b.want)
		}
		if b.cells == nil && !errors.Is(err, ErrNoData) {
			t.Errorf("no cells: error %v is not ErrNoData", err)
		}
	}
}
