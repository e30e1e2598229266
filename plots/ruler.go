package plots

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// RulerCell is the RULER score of one policy on one task at one length.
type RulerCell struct {
	Policy string
	// Task is the RULER task's name ("niah_single_1", "vt", …).
	Task string
	// Length is the context length in tokens.
	Length int
	// Score is RULER's score in percent, in [0, 100].
	Score float64
	// N is the number of samples behind Score. Cells repeated for the same
	// policy, task and length are merged, weighted by N.
	N int
}

// RulerAverage is the name of the row that averages the tasks of a length.
const RulerAverage = "average"

// RulerTable is the merged RULER data of one policy.
type RulerTable struct {
	Policy  string
	Tasks   []string // rows, the average last
	Lengths []int    // columns, ascending
	// Score[row][col] in percent; NaN where missing. The average row is
	// the mean over the tasks present at that length.
	Score [][]float64
}

// RulerTables merges cells into one table per policy, in figure order.
// Tasks are ordered as in order (RULER's order), then the others by name;
// every table has the union of tasks and lengths.
func RulerTables(cells []RulerCell, order []string) ([]RulerTable, error) {
	if len(cells) == 0 {
		return nil, fmt.Errorf("ruler: %w", ErrNoData)
	}
	var names, tasks []string
	var lengths []int
	type key struct {
		policy, task string
		length       int
	}
	sums := map[key]*cellMean{}
	for i, c := range cells {
		switch {
		case c.Policy == "" || c.Task == "":
			return nil, fmt.Errorf("ruler cell %d: empty policy or task", i)
		case c.Length <= 0:
			return nil, fmt.Errorf("ruler cell %d (%s, %s): length %d, want > 0", i, c.Policy, c.Task, c.Length)
		case math.IsNaN(c.Score) || c.Score < 0 || c.Score > 100:
			return nil, fmt.Errorf("ruler cell %d (%s, %s, length %d): score %v outside [0, 100]", i, c.Policy, c.Task, c.Length, c.Score)
		case c.N < 0:
			return nil, fmt.Errorf("ruler cell %d (%s, %s, length %d): negative sample count %d", i, c.Policy, c.Task, c.Length, c.N)
		}
		names = append(names, c.Policy)
		tasks = append(tasks, c.Task)
		lengths = append(lengths, c.Length)
		k := key{c.Policy, c.Task, c.Length}
		s := sums[k]
		if s == nil {
			s = &cellMean{}
			sums[k] = s
		}
		s.add(c.Score, c.N)
	}
	slices.Sort(lengths)
	lengths = slices.Compact(lengths)
	rank := func(t string) int {
		if i := slices.Index(order, t); i >= 0 {
			return i
		}
		return len(order)
	}
	slices.SortFunc(tasks, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	})
	tasks = slices.Compact(tasks)
	var out []RulerTable
	for _, pol := range sortPolicies(names) {
		t := RulerTable{Policy: pol, Tasks: append(slices.Clone(tasks), RulerAverage), Lengths: lengths}
		avg := make([]float64, len(lengths))
		seen := make([]int, len(lengths))
		for _, task := range tasks {
			row := make([]float64, len(lengths))
			for j, l := range lengths {
				s := sums[key{pol, task, l}]
				if s == nil {
					row[j] = math.NaN()
					continue
				}
				row[j] = s.mean()
				avg[j] += row[j]
				seen[j]++
			}
			t.Score = append(t.Score, row)
		}
		for j := range avg {
			if seen[j] == 0 {
				avg[j] = math.NaN()
			} else {
				avg[j] /= float64(seen[j])
			}
		}
		t.Score = append(t.Score, avg)
		out = append(out, t)
	}
	return out, nil
}

// RulerPanels draws the RULER table of each policy side by side, as the
// passkey tables are drawn: rows are tasks (RULER's order, given by
// order, with their average last), columns context lengths, each cell
// coloured by AccuracyColor and labelled with the score; one colour scale
// (0–100) on the right, the policy as each panel's title. More than four
// policies wrap onto further rows.
func RulerPanels(cells []RulerCell, order []string) (*Figure, error) {
	tables, err := RulerTables(cells, order)
	if err != nil {
		return nil, err
	}
	n := len(tables)
	cols := n
	if n > 4 {
		rows := (n + 3) / 4
		cols = (n + rows - 1) / rows
	}
	rows := (n + cols - 1) / cols
	panels := make([][]*plot.Plot, rows)
	for r := range panels {
		panels[r] = make([]*plot.Plot, cols)
	}
	for i, t := range tables {
		r, k := i/cols, i%cols
		p := newPlot(t.Policy, "", "")
		styleRuler(p, t, k == 0)
		p.Add(&cellGrid{acc: t.Score})
		panels[r][k] = p
	}
	nl, nt := len(tables[0].Lengths), len(tables[0].Tasks)
	cellW, cellH := 0.56*vg.Inch, 0.26*vg.Inch
	axisW, axisH, titleH := 1.35*vg.Inch, 0.45*vg.Inch, 0.35*vg.Inch
	w := axisW + vg.Length(cols)*(vg.Length(nl)*cellW+panelGapX) + 1.0*vg.Inch
	h := vg.Length(rows)*(vg.Length(nt)*cellH+axisH+titleH) + 0.1*vg.Inch
	return &Figure{
		Panels: panels,
		Width:  max(w, 4*vg.Inch),
		Height: max(h, 2.5*vg.Inch),
		// One label under all panels: a panel of two or three lengths is
		// narrower than the label, which would squeeze its data area.
		xLabel: "Context length (tokens)",
		colorScale: &colorScale{
			min: 0, max: 100, colorOf: AccuracyColor,
			ticks: []float64{0, 20, 40, 60, 80, 100},
			label: "Score (%)",
		},
	}, nil
}

// styleRuler sets p's axes for a RULER table: one row per task (the first
// at the top), one column per length, no axis lines; task names only when
// yLabels.
func styleRuler(p *plot.Plot, t RulerTable, yLabels bool) {
	rows := len(t.Tasks)
	var xt, yt plot.ConstantTicks
	for j, l := range t.Lengths {
		xt = append(xt, plot.Tick{Value: float64(j) + 0.5, Label: FormatTokens(int64(l))})
	}
	if yLabels {
		for r, task := range t.Tasks {
			yt = append(yt, plot.Tick{Value: float64(rows-1-r) + 0.5, Label: task})
		}
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = xt, yt
	p.X.Min, p.X.Max = 0, float64(len(t.Lengths))
	p.Y.Min, p.Y.Max = 0, float64(rows)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.LineStyle.Width = 0
		a.Tick.Length = 0
		a.Padding = vg.Points(1)
	}
}
