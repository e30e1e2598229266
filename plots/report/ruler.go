package report

import (
	"fmt"
	"math"

	"kvcascade/datasets/ruler"
	"kvcascade/plots"
	"kvcascade/plots/figure"
)

// rulerCells collects the score of every done ruler point.
func rulerCells(pts []*point) []plots.RulerCell {
	var cells []plots.RulerCell
	for _, p := range pts {
		if !p.draws(figure.RulerScores) {
			continue
		}
		task, _ := p.params["task"].(string)
		length, ok1 := num(p.params["length"])
		score, ok2 := p.metrics["score"]
		if task == "" || !ok1 || !ok2 {
			continue
		}
		cells = append(cells, plots.RulerCell{Policy: p.label, Task: task, Length: int(length), Score: score, N: int(p.metrics["samples"])})
	}
	return cells
}

// renderRuler draws the RULER table figure when the sweep has ruler points.
func renderRuler(pts []*point, save func(name, title, caption string, f *plots.Figure, err error) error) error {
	cells := rulerCells(pts)
	if len(cells) == 0 {
		return nil
	}
	f, err := plots.RulerPanels(cells, ruler.Names())
	return save("ruler", "RULER", "RULER score (%, string match as RULER defines it) per task and context length, "+
		"with the mean over the tasks of each length, one table per policy.", f, err)
}

// rulerTables gives one score table per policy: tasks × lengths, with the
// average last.
func rulerTables(pts []*point) []table {
	cells := rulerCells(pts)
	if len(cells) == 0 {
		return nil
	}
	tabs, err := plots.RulerTables(cells, ruler.Names())
	if err != nil {
		return nil // the figure reports the error
	}
	var out []table
	for _, tb := range tabs {
		t := table{Title: "RULER score (%): " + tb.Policy, Header: []string{"task"}}
		for _, l := range tb.Lengths {
			t.Header = append(t.Header, plots.FormatTokens(int64(l)))
		}
		for i, task := range tb.Tasks {
			row := []string{task}
			for _, v := range tb.Score[i] {
				if math.IsNaN(v) {
					row = append(row, "–")
				} else {
					row = append(row, fmt.Sprintf("%.1f", v))
				}
			}
			t.Rows = append(t.Rows, row)
		}
		out = append(out, t)
	}
	return out
}
