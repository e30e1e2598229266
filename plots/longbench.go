package plots

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Score is one policy's LongBench score on one subset.
type Score struct {
	Policy string
	// Subset is the LongBench subset ("narrativeqa", "gov_report", …).
	Subset string
	// Score is the subset's metric (QA-F1, ROUGE-L, accuracy, …) scaled
	// to 0–100, as LongBench reports it.
	Score float64
}

// averageGroup is the name of the last group of the LongBench figure.
const averageGroup = "Average"

// LongBench draws grouped bars: one group per subset, in the order the
// subsets first appear in scores, then an "Average" group (the mean over
// subsets), one bar per policy in each. Every policy needs a score on
// every subset. The figure widens with the number of bars, and the subset
// names are rotated when they would not fit side by side.
func LongBench(scores []Score) (*Figure, error) {
	if len(scores) == 0 {
		return nil, fmt.Errorf("longbench: %w", ErrNoData)
	}
	type key struct{ policy, subset string }
	byKey := make(map[key]float64)
	var subsets, names []string
	seenSubset := make(map[string]bool)
	for i, s := range scores {
		switch {
		case s.Policy == "":
			return nil, fmt.Errorf("longbench: score %d: empty policy", i)
		case s.Subset == "":
			return nil, fmt.Errorf("longbench: score %d (%s): empty subset", i, s.Policy)
		case s.Subset == averageGroup:
			return nil, fmt.Errorf("longbench: score %d (%s): subset name %q is reserved for the mean", i, s.Policy, averageGroup)
		case math.IsNaN(s.Score) || math.IsInf(s.Score, 0):
			return nil, fmt.Errorf("longbench: score %d (%s, %s): %v is not a finite number", i, s.Policy, s.Subset, s.Score)
		}
		k := key{s.Policy, s.Subset}
		if _, dup := byKey[k]; dup {
			return nil, fmt.Errorf("longbench: policy %q has two scores for subset %q", s.Policy, s.Subset)
		}
		byKey[k] = s.Score
		if !seenSubset[s.Subset] {
			seenSubset[s.Subset] = true
			subsets = append(subsets, s.Subset)
		}
		names = append(names, s.Policy)
	}
	policies := sortPolicies(names)
	values := make([][]float64, len(policies)) // [policy][group]
	lo, hi := 0.0, 0.0
	for i, pol := range policies {
		values[i] = make([]float64, len(subsets)+1)
		var sum float64
		for g, sub := range subsets {
			v, ok := byKey[key{pol, sub}]
			if !ok {
				return nil, fmt.Errorf("longbench: policy %q has no score for subset %q", pol, sub)
			}
			values[i][g] = v
			sum += v
		}
		values[i][len(subsets)] = sum / float64(len(subsets))
		for _, v := range values[i] {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}

	groups := append(append([]string(nil), subsets...), averageGroup)
	// Group g is centred at x = g, except that "Average" stands a little
	// apart.
	centres := make([]float64, len(groups))
	for g := range groups {
		centres[g] = float64(g)
	}
	centres[len(groups)-1] += 0.35

	p := newPlot("", "", "Score")
	p.Add(gridPlotter{sty: gridStyle(), noVert: true})
	styles := policyStyles(policies)
	l := newLegend()
	const groupWidth = 0.8
	w := groupWidth / float64(len(policies))
	for i, pol := range policies {
		b := &bars{color: styles[pol].color}
		for g := range groups {
			x0 := centres[g] - groupWidth/2 + float64(i)*w
			b.rects = append(b.rects, bar{x0: x0, x1: x0 + w, y: values[i][g]})
		}
		p.Add(b)
		l.Add(pol, b)
	}
	var ticks plot.ConstantTicks
	for g, name := range groups {
		ticks = append(ticks, plot.Tick{Value: centres[g], Label: name})
	}
	p.X.Tick.Marker = ticks
	p.X.Tick.Length = 0
	p.X.Min, p.X.Max = centres[0]-0.5, centres[len(centres)-1]+0.5
	p.X.Padding = 0
	p.Y.Tick.Marker = plot.TickerFunc(linearTicks)
	p.Y.Min, p.Y.Max = lo, hi*1.05
	p.Y.Padding = 0
	fig := single(p, l)
	fig.Width = DefaultWidth // every figure of the package has the same width
	// Rotate the subset names when the widest would not fit its group at
	// the suggested size (about 2.3 in go to the y axis and the legend).
	perGroup := (fig.Width - 2.3*vg.Inch) / vg.Length(p.X.Max-p.X.Min)
	var widest vg.Length
	for _, g := range groups {
		widest = max(widest, p.X.Tick.Label.Width(g))
	}
	if widest > 0.92*perGroup {
		// The right end of each name's middle line sits under its group.
		// Its upper half rises above the label band, into room made by
		// invisible tick marks.
		p.X.Tick.Label.Rotation = math.Pi / 5
		p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
		p.X.Tick.Length = vg.Points(6)
		p.X.Tick.LineStyle = draw.LineStyle{Color: color.Transparent, Width: vg.Points(0.1)}
	}
	return fig, nil
}

// bar is one bar in data coordinates: [x0, x1] × [0, y].
type bar struct {
	x0, x1, y float64
}

// bars is a plot.Plotter of bars of one colour; it is also the legend
// thumbnail of its policy.
type bars struct {
	color color.Color
	rects []bar
}

// Plot implements plot.Plotter.
func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	edge := draw.LineStyle{Color: color.White, Width: vg.Points(0.5)}
	base := math.Max(p.Y.Min, 0)
	for _, r := range b.rects {
		y0, y1 := trY(base), trY(r.y)
		if y1 < y0 {
			y0, y1 = y1, y0
		}
		rect := vg.Rectangle{Min: vg.Point{X: trX(r.x0), Y: y0}, Max: vg.Point{X: trX(r.x1), Y: y1}}
		poly := c.ClipPolygonXY([]vg.Point{rect.Min, {X: rect.Max.X, Y: rect.Min.Y}, rect.Max, {X: rect.Min.X, Y: rect.Max.Y}})
		c.FillPolygon(b.color, poly)
		c.StrokeLines(edge, c.ClipLinesXY(append(poly, poly[0]))...)
	}
}

// DataRange implements plot.DataRanger.
func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax, ymin, ymax = math.Inf(1), math.Inf(-1), 0, 0
	for _, r := range b.rects {
		xmin, xmax = math.Min(xmin, r.x0), math.Max(xmax, r.x1)
		ymin, ymax = math.Min(ymin, r.y), math.Max(ymax, r.y)
	}
	return xmin, xmax, ymin, ymax
}

// Thumbnail implements plot.Thumbnailer: a filled square.
func (b *bars) Thumbnail(c *draw.Canvas) {
	side := min(c.Max.Y-c.Min.Y, c.Max.X-c.Min.X)
	mid := c.Center()
	r := vg.Rectangle{Min: vg.Point{X: mid.X - side/2, Y: mid.Y - side/2}, Max: vg.Point{X: mid.X + side/2, Y: mid.Y + side/2}}
	c.SetColor(b.color)
	c.Fill(r.Path())
}
