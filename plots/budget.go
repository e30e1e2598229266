package plots

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Level is a horizontal reference line at Y with its label: a policy
// without a budget (full attention) in a budget sweep.
type Level struct {
	Y     float64
	Label string
}

// BudgetOptions adjust a budget-sweep figure.
type BudgetOptions struct {
	// XLabel names the budget axis; empty: "Cache budget (slots per KV
	// head)".
	XLabel string
	// YLabel names the metric, with its unit.
	YLabel string
	// Percent fixes the y axis to [0, 100].
	Percent bool
	// Levels are the policies without a budget, drawn as dashed
	// horizontal lines.
	Levels []Level
}

// budgetXLabel is the default x label of a budget sweep.
const budgetXLabel = "Cache budget (slots per KV head)"

// BudgetSweep draws a metric (passkey accuracy, perplexity) against the
// cache budget or ratio each policy was given: one line with markers per
// policy on a log₂ x axis labelled at the budgets swept, and a dashed grey
// line for each Level. Budgets must be positive.
func BudgetSweep(series []Series, opt BudgetOptions) (*Figure, error) {
	ss, err := checkSeries("budget sweep", series, true, false)
	if err != nil {
		return nil, err
	}
	xl := opt.XLabel
	if xl == "" {
		xl = budgetXLabel
	}
	p := newPlot("", xl, opt.YLabel)
	var xs []float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, pt := range s.Points {
			if !slices.Contains(xs, pt.X) {
				xs = append(xs, pt.X)
			}
			lo, hi = math.Min(lo, pt.Y), math.Max(hi, pt.Y)
		}
	}
	for _, l := range opt.Levels {
		lo, hi = math.Min(lo, l.Y), math.Max(hi, l.Y)
	}
	slices.Sort(xs)
	p.X.Scale = plot.LogScale{}
	p.X.Min, p.X.Max = xs[0]/math.Sqrt2, xs[len(xs)-1]*math.Sqrt2
	p.X.Tick.Marker = plot.TickerFunc(func(float64, float64) []plot.Tick {
		ts := make([]plot.Tick, len(xs))
		for i, x := range xs {
			ts[i] = plot.Tick{Value: x, Label: formatNumber(x)}
		}
		return ts
	})
	p.Y.Tick.Marker = plot.TickerFunc(linearTicks)
	if opt.Percent {
		lo, hi = 0, 100
	} else if pad := 0.05 * (hi - lo); pad > 0 {
		lo, hi = lo-pad, hi+pad
	} else {
		lo, hi = lo-1, hi+1
	}
	p.Add(gridLines())
	l, err := addLines(p, ss)
	if err != nil {
		return nil, fmt.Errorf("budget sweep: %w", err)
	}
	p.Y.Min, p.Y.Max = lo, hi
	for i, lv := range opt.Levels {
		if math.IsNaN(lv.Y) || math.IsInf(lv.Y, 0) {
			return nil, fmt.Errorf("budget sweep: level %q: %v is not a finite number", lv.Label, lv.Y)
		}
		p.Add(&hlevel{Level: lv, line: i})
	}
	return single(p, l), nil
}

// hlevel is a plot.Plotter that draws a Level: a dashed grey horizontal
// line across the plot with its label at the right end, above the line.
type hlevel struct {
	Level
	line int
}

// Plot implements plot.Plotter.
func (h *hlevel) Plot(c draw.Canvas, p *plot.Plot) {
	_, trY := p.Transforms(&c)
	y := trY(h.Y)
	sty, ts := markStyles()
	c.StrokeLine2(sty, c.Min.X, y, c.Max.X, y)
	ts.XAlign, ts.YAlign = draw.XRight, draw.YBottom
	c.FillText(ts, vg.Point{X: c.Max.X - vg.Points(3), Y: y + vg.Points(2) + vg.Length(h.line)*1.3*ts.Font.Size}, h.Label)
}
