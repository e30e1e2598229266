package report

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"kvcascade/plots"
	"kvcascade/plots/figure"
)

// The budget sweep: when a sweep runs policies at several budgets (or
// ratios), each experiment with a headline metric gets a figure of that
// metric against the budget, one line per policy, and a leaderboard table,
// policy × budget. The metric is averaged over the experiment's other axes
// (length, depth bin, task), weighted by the samples behind each point.
// Policies run without a budget (full attention) are a level: a dashed
// line in the figure, one value in the table.

// headline is the metric a budget sweep shows for an experiment.
type headline struct {
	metric, label string
	percent       bool
}

// headlines are the metrics of the figure kinds whose points a budget
// sweep can show, in the order a point declaring several is looked up.
var headlines = []struct {
	kind figure.Kind
	h    headline
}{
	{figure.PasskeyGrid, headline{"accuracy", "Passkey accuracy (%)", true}},
	{figure.RulerScores, headline{"score", "RULER score (%)", true}},
	{figure.Perplexity, headline{"ppl", "Perplexity", false}},
}

// headlineOf returns the headline metric of the first kind p draws that
// has one.
func headlineOf(p *point) (headline, bool) {
	for _, k := range headlines {
		if p.draws(k.kind) {
			return k.h, true
		}
	}
	return headline{}, false
}

// budgetAxis is one experiment's sweep along budget or ratio.
type budgetAxis struct {
	exp, key string // experiment; "budget" or "ratio"
	h        headline
	xs       []float64
	// cells[name][x] is the weighted sum and weight of the metric
	cells  map[string]map[float64][2]float64
	levels map[string][2]float64
	names  []string // policies, in order of first appearance
}

// budgetAxes collects the budget sweeps of pts: one per experiment and
// key where some policy was run at two budgets or more.
func budgetAxes(pts []*point) []*budgetAxis {
	by := map[[2]string]*budgetAxis{}
	var order []*budgetAxis
	for _, key := range []string{"budget", "ratio"} {
		for _, p := range pts {
			h, ok := headlineOf(p)
			y, ok2 := p.metrics[h.metric]
			if !ok || !ok2 {
				continue
			}
			a := by[[2]string{p.experiment, key}]
			if a == nil {
				a = &budgetAxis{exp: p.experiment, key: key, h: h, cells: map[string]map[float64][2]float64{}, levels: map[string][2]float64{}}
				by[[2]string{p.experiment, key}] = a
				order = append(order, a)
			}
			w := p.metrics["samples"]
			if w <= 0 {
				w = 1
			}
			name := budgetName(p)
			x, has := num(p.params[key])
			_, other := p.params[otherKey(key)]
			switch {
			case has:
				if a.cells[name] == nil {
					a.cells[name] = map[float64][2]float64{}
					a.names = append(a.names, name)
				}
				c := a.cells[name][x]
				a.cells[name][x] = [2]float64{c[0] + w*y, c[1] + w}
			case !other:
				c := a.levels[name]
				a.levels[name] = [2]float64{c[0] + w*y, c[1] + w}
			}
		}
	}
	var out []*budgetAxis
	for _, a := range order {
		swept := false
		xs := map[float64]bool{}
		for _, n := range a.names {
			swept = swept || len(a.cells[n]) > 1
			for x := range a.cells[n] {
				xs[x] = true
			}
		}
		if !swept {
			continue
		}
		for x := range xs {
			a.xs = append(a.xs, x)
		}
		sort.Float64s(a.xs)
		out = append(out, a)
	}
	return out
}

// otherKey is ratio for budget and budget for ratio.
func otherKey(key string) string {
	if key == "budget" {
		return "ratio"
	}
	return "budget"
}

// budgetName is a point's line in a budget sweep: its label as the sweep
// wrote it, or the policy's display name.
func budgetName(p *point) string {
	if l, ok := p.params["label"].(string); ok && l != "" {
		return l
	}
	return plots.DisplayName(p.policy)
}

// renderBudget draws the figure of every budget sweep in pts.
func renderBudget(pts []*point, save func(name, title, caption string, f *plots.Figure, err error) error) error {
	for _, a := range budgetAxes(pts) {
		var series []plots.Series
		for _, n := range a.names {
			s := plots.Series{Policy: n}
			for x, c := range a.cells[n] {
				s.Points = append(s.Points, plots.Point{X: x, Y: c[0] / c[1]})
			}
			series = append(series, s)
		}
		opt := plots.BudgetOptions{YLabel: a.h.label, Percent: a.h.percent}
		if a.key == "ratio" {
			opt.XLabel = "Fraction of the prompt kept (ratio)"
		}
		for _, n := range slices.Sorted(maps.Keys(a.levels)) {
			c := a.levels[n]
			opt.Levels = append(opt.Levels, plots.Level{Y: c[0] / c[1], Label: n})
		}
		f, err := plots.BudgetSweep(series, opt)
		caption := fmt.Sprintf("%s against the cache %s each policy was given, averaged over the experiment's other axes "+
			"weighted by samples; dashed lines: policies without a budget.", a.h.label, a.key)
		if err := save(a.key+"_"+a.exp, strings.ToUpper(a.key[:1])+a.key[1:]+" sweep: "+a.exp, caption, f, err); err != nil {
			return err
		}
	}
	return nil
}

// budgetTables gives the leaderboard of every budget sweep: one row per
// policy, best mean first, one column per budget and the mean over them.
func budgetTables(pts []*point) []table {
	var out []table
	for _, a := range budgetAxes(pts) {
		t := table{Title: fmt.Sprintf("Leaderboard: %s by %s", a.h.label, a.key), Header: []string{"policy"}}
		for _, x := range a.xs {
			t.Header = append(t.Header, fmt.Sprintf("%s %v", a.key, x))
		}
		t.Header = append(t.Header, "mean")
		type row struct {
			cells []string
			mean  float64
		}
		var rows []row
		for _, n := range a.names {
			r := row{cells: []string{n}}
			var sum float64
			var k int
			for _, x := range a.xs {
				c, ok := a.cells[n][x]
				if !ok {
					r.cells = append(r.cells, "–")
					continue
				}
				v := c[0] / c[1]
				sum += v
				k++
				r.cells = append(r.cells, formatMetric(v))
			}
			r.mean = sum / float64(k)
			r.cells = append(r.cells, formatMetric(r.mean))
			rows = append(rows, r)
		}
		for _, n := range slices.Sorted(maps.Keys(a.levels)) {
			c := a.levels[n]
			r := row{cells: []string{n + " (no budget)"}, mean: c[0] / c[1]}
			for range a.xs {
				r.cells = append(r.cells, "–")
			}
			rows = append(rows, row{cells: append(r.cells, formatMetric(r.mean)), mean: r.mean})
		}
		sort.SliceStable(rows, func(i, j int) bool {
			if a.h.percent {
				return rows[i].mean > rows[j].mean
			}
			return rows[i].mean < rows[j].mean // perplexity: lower is better
		})
		for _, r := range rows {
			t.Rows = append(t.Rows, r.cells)
		}
		out = append(out, t)
	}
	return out
}

// formatMetric writes a leaderboard value to one decimal.
func formatMetric(v float64) string { return fmt.Sprintf("%.1f", v) }
