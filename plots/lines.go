package plots

import (
	"fmt"
	"image/color"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Point is one (x, y) measurement.
type Point struct {
	X, Y float64
}

// Series is one policy's curve. Points need not be sorted; they are drawn
// in order of X.
type Series struct {
	Policy string
	Points []Point
}

// Metric names what a scaling figure's y axis measures.
type Metric int

// The metrics of the latency and memory figures.
const (
	PrefillTime Metric = iota // prefill wall time, seconds
	DecodeTime                // decode time, milliseconds per token
	PeakMemory                // peak KV-cache memory, MiB
)

// Label returns the metric's y-axis label, with its unit.
func (m Metric) Label() string {
	switch m {
	case PrefillTime:
		return "Prefill time (s)"
	case DecodeTime:
		return "Decode (ms/token)"
	case PeakMemory:
		return "Peak cache memory (MiB)"
	}
	return fmt.Sprintf("Metric(%d)", int(m))
}

// Labels of the line figures.
const (
	tokensSeenLabel  = "Tokens seen"
	cacheMemoryLabel = "Cache memory held (MiB)"
	perplexityLabel  = "Perplexity"
	lengthLabel      = "Context length (tokens)"
)

// markerLimit is the most points a series may have and still get markers.
const markerLimit = 24

// Perplexity draws streaming perplexity against tokens seen: one line per
// policy on a log x axis labelled in tokens (32K, 1M, …) and a linear y
// axis, or a log one when the values span more than a factor of 20.
// Series of at most 24 points also get markers.
//
// A policy whose perplexity explodes (full attention past its training
// length) would flatten every other curve. So when some series climb
// above four times the typical floor (the median of the series' minima),
// the y axis stops a little above the highest of the other series and the
// exploding curves leave the plot at the top. Set Panels[0][0].Y.Max to
// show more.
func Perplexity(series []Series) (*Figure, error) {
	return PerplexityWith(series, LineOptions{})
}

// Mark is a vertical reference line at X (in the x axis' units), dashed,
// with its label written at the top of the plot: the training length, the
// cache size.
type Mark struct {
	X     float64
	Label string
}

// LineOptions adjust a line figure.
type LineOptions struct {
	// LinearX draws the x axis linearly from 0 instead of in log scale.
	LinearX bool
	// YLabel replaces the figure's y-axis label when not empty.
	YLabel string
	// Marks are vertical reference lines; those outside the x range are
	// left out.
	Marks []Mark
}

// PerplexityWith is Perplexity with options: a linear token axis, a y
// label that says which window each value covers, reference marks.
func PerplexityWith(series []Series, opt LineOptions) (*Figure, error) {
	ss, err := checkSeries("perplexity", series, !opt.LinearX, false)
	if err != nil {
		return nil, err
	}
	p := newPlot("", tokensSeenLabel, perplexityLabel)
	if opt.YLabel != "" {
		p.Y.Label.Text = opt.YLabel
	}
	if opt.LinearX {
		setLinearTokenAxis(&p.X, ss)
	} else {
		setLogAxis(&p.X, ss, func(pt Point) float64 { return pt.X }, tokenLogTicks, 1)
	}
	lo, hi := perplexityRange(ss)
	p.Y.Tick.Marker = plot.TickerFunc(linearTicks)
	dlo, dhi := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, pt := range s.Points {
			dlo, dhi = math.Min(dlo, pt.Y), math.Max(dhi, pt.Y)
		}
	}
	if dlo > 0 && hi/dlo > 20 {
		// Perplexities spanning decades (a model far from its training
		// domain or length) read on a log axis.
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.TickerFunc(logTicks)
		lo, hi = dlo/1.2, hi*1.2
	}
	p.Y.Min, p.Y.Max = lo, hi
	p.Add(gridLines())
	l, err := addLines(p, ss)
	if err != nil {
		return nil, fmt.Errorf("perplexity: %w", err)
	}
	// Adding the lines widened the y range to all of the data; restore it.
	p.Y.Min, p.Y.Max = lo, hi
	addMarks(p, opt.Marks)
	return single(p, l), nil
}

// CacheMemory draws the memory a cache holds against tokens seen, on linear
// axes from 0: one line with markers per policy, in MiB.
func CacheMemory(series []Series, marks []Mark) (*Figure, error) {
	ss, err := checkSeries("cache memory", series, false, false)
	if err != nil {
		return nil, err
	}
	p := newPlot("", tokensSeenLabel, cacheMemoryLabel)
	setLinearTokenAxis(&p.X, ss)
	p.Y.Tick.Marker = plot.TickerFunc(linearTicks)
	hi := 0.0
	for _, s := range ss {
		for _, pt := range s.Points {
			hi = math.Max(hi, pt.Y)
		}
	}
	p.Y.Min, p.Y.Max = 0, math.Max(hi*1.08, 1e-9)
	p.Add(gridLines())
	l, err := addLines(p, ss)
	if err != nil {
		return nil, fmt.Errorf("cache memory: %w", err)
	}
	p.Y.Min, p.Y.Max = 0, math.Max(hi*1.08, 1e-9)
	addMarks(p, marks)
	return single(p, l), nil
}

// setLinearTokenAxis makes a a linear axis of tokens from 0 to the largest
// X of ss.
func setLinearTokenAxis(a *plot.Axis, ss []Series) {
	hi := 1.0
	for _, s := range ss {
		for _, pt := range s.Points {
			hi = math.Max(hi, pt.X)
		}
	}
	a.Tick.Marker = plot.TickerFunc(tokenLinearTicks)
	a.Min, a.Max = 0, hi
}

// addMarks adds the marks inside p's x range, their labels one line
// lower each, so that marks close together keep readable labels.
func addMarks(p *plot.Plot, marks []Mark) {
	line := 0
	for _, m := range marks {
		if m.X >= p.X.Min && m.X <= p.X.Max {
			p.Add(&vmark{Mark: m, line: line})
			line++
		}
	}
}

// vmark is a plot.Plotter that draws a Mark: a dashed grey vertical line
// over the whole plot and its label near the top (line lines down), right
// of the line.
type vmark struct {
	Mark
	line int
}

// Plot implements plot.Plotter.
func (m *vmark) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	x := trX(m.X)
	sty, ts := markStyles()
	c.StrokeLine2(sty, x, c.Min.Y, x, c.Max.Y)
	ts.XAlign, ts.YAlign = draw.XLeft, draw.YTop
	y := c.Max.Y - vg.Points(3) - vg.Length(m.line)*1.3*ts.Font.Size
	c.FillText(ts, vg.Point{X: x + vg.Points(3), Y: y}, m.Label)
}

// markStyles returns how a Mark or a Level is drawn: a dashed grey line
// and a darker grey note.
func markStyles() (draw.LineStyle, text.Style) {
	ts := textStyle(noteSize)
	ts.Color = color.Gray{Y: 70}
	return draw.LineStyle{Color: color.Gray{Y: 110}, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}, ts
}

// Scaling draws a latency or memory measurement against context length
// on log–log axes: one line with markers per policy, and dashed grey guide
// lines of slope 1 ("linear") and slope 2 ("quadratic") through the first
// point (smallest length) of the first series, clipped to the data's
// range. The x axis is labelled in tokens at powers of two.
func Scaling(m Metric, series []Series) (*Figure, error) {
	if m < PrefillTime || m > PeakMemory {
		return nil, fmt.Errorf("scaling: unknown metric %d", int(m))
	}
	ss, err := checkSeries("scaling", series, true, true)
	if err != nil {
		return nil, err
	}
	p := newPlot("", lengthLabel, m.Label())
	// At least a factor of four on each axis, so that a flat or nearly
	// flat curve (constant memory) reads as flat.
	setLogAxis(&p.X, ss, func(pt Point) float64 { return pt.X }, tokenLogTicks, 4)
	setLogAxis(&p.Y, ss, func(pt Point) float64 { return pt.Y }, logTicks, 4)
	p.Add(gridLines())
	anchor := series[0].Points[0]
	for _, pt := range series[0].Points {
		if pt.X < anchor.X {
			anchor = pt
		}
	}
	p.Add(&guide{anchor: anchor, slope: 1, label: "linear", avoid: ss},
		&guide{anchor: anchor, slope: 2, label: "quadratic", avoid: ss})
	l, err := addLines(p, ss)
	if err != nil {
		return nil, fmt.Errorf("scaling: %w", err)
	}
	return single(p, l), nil
}

// perplexityRange returns the y range of a perplexity plot: all the data,
// padded by 5 %, unless some series explode (see Perplexity).
func perplexityRange(ss []Series) (lo, hi float64) {
	mins := make([]float64, len(ss))
	maxs := make([]float64, len(ss))
	lo, hi = math.Inf(1), math.Inf(-1)
	for i, s := range ss {
		mins[i], maxs[i] = math.Inf(1), math.Inf(-1)
		for _, pt := range s.Points {
			mins[i], maxs[i] = math.Min(mins[i], pt.Y), math.Max(maxs[i], pt.Y)
		}
		lo, hi = math.Min(lo, mins[i]), math.Max(hi, maxs[i])
	}
	sorted := slices.Clone(mins)
	slices.Sort(sorted)
	floor := sorted[(len(sorted)-1)/2]
	exploded := false
	if floor > 0 {
		tame := math.Inf(-1)
		for _, m := range maxs {
			if m <= 4*floor {
				tame = math.Max(tame, m)
			} else {
				exploded = true
			}
		}
		if exploded && !math.IsInf(tame, -1) {
			hi = tame + 0.15*(tame-lo) + 1e-9*math.Abs(tame)
		}
	}
	pad := 0.05 * (hi - lo)
	if pad == 0 {
		pad = 0.05*math.Abs(hi) + 0.5
	}
	if exploded {
		return lo - pad, hi
	}
	return lo - pad, hi + pad
}

// checkSeries validates series and returns them in figure order with
// their points sorted by X: every policy named once, at least one point
// each, finite values, positive where an axis is logarithmic.
func checkSeries(what string, series []Series, logX, logY bool) ([]Series, error) {
	if len(series) == 0 {
		return nil, fmt.Errorf("%s: %w", what, ErrNoData)
	}
	seen := make(map[string]bool)
	var names []string
	byName := make(map[string]Series)
	for i, s := range series {
		switch {
		case s.Policy == "":
			return nil, fmt.Errorf("%s: series %d: empty policy", what, i)
		case seen[s.Policy]:
			return nil, fmt.Errorf("%s: policy %q appears in two series", what, s.Policy)
		case len(s.Points) == 0:
			return nil, fmt.Errorf("%s: policy %q: %w", what, s.Policy, ErrNoData)
		}
		seen[s.Policy] = true
		for j, pt := range s.Points {
			for _, v := range []struct {
				axis string
				val  float64
				log  bool
			}{{"x", pt.X, logX}, {"y", pt.Y, logY}} {
				switch {
				case math.IsNaN(v.val) || math.IsInf(v.val, 0):
					return nil, fmt.Errorf("%s: policy %q, point %d: %s = %v is not a finite number", what, s.Policy, j, v.axis, v.val)
				case v.log && v.val <= 0:
					return nil, fmt.Errorf("%s: policy %q, point %d: %s = %v, but the %s axis is logarithmic and needs values > 0", what, s.Policy, j, v.axis, v.val, v.axis)
				}
			}
		}
		pts := slices.Clone(s.Points)
		slices.SortStableFunc(pts, func(a, b Point) int { return cmpFloat(a.X, b.X) })
		byName[s.Policy] = Series{Policy: s.Policy, Points: pts}
		names = append(names, s.Policy)
	}
	var out []Series
	for _, n := range sortPolicies(names) {
		out = append(out, byName[n])
	}
	return out, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// setLogAxis makes a a log axis over the values of ss that value picks,
// widened symmetrically (in log space) to span at least minRatio.
func setLogAxis(a *plot.Axis, ss []Series, value func(Point) float64, ticks plot.TickerFunc, minRatio float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, pt := range s.Points {
			lo, hi = math.Min(lo, value(pt)), math.Max(hi, value(pt))
		}
	}
	if hi/lo < minRatio || hi == lo {
		mid := math.Sqrt(lo * hi)
		half := math.Sqrt(math.Max(minRatio, 2))
		lo, hi = mid/half, mid*half
	}
	a.Scale = plot.LogScale{}
	a.Tick.Marker = ticks
	a.Min, a.Max = lo, hi
}

// addLines adds one line per series to p in the policy's colour (with
// markers when the series is short) and returns the legend for them.
func addLines(p *plot.Plot, ss []Series) (*plot.Legend, error) {
	var names []string
	for _, s := range ss {
		names = append(names, s.Policy)
	}
	styles := policyStyles(names)
	l := newLegend()
	for _, s := range ss {
		xys := make(plotter.XYs, len(s.Points))
		for i, pt := range s.Points {
			xys[i] = plotter.XY{X: pt.X, Y: pt.Y}
		}
		st := styles[s.Policy]
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("policy %q: %w", s.Policy, err)
		}
		line.LineStyle = draw.LineStyle{Color: st.color, Width: vg.Points(1.6)}
		thumbs := []plot.Thumbnailer{line}
		p.Add(line)
		if len(s.Points) <= markerLimit {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, fmt.Errorf("policy %q: %w", s.Policy, err)
			}
			sc.GlyphStyle = draw.GlyphStyle{Color: st.color, Radius: vg.Points(3), Shape: st.glyph}
			p.Add(sc)
			thumbs = append(thumbs, sc)
		}
		l.Add(s.Policy, thumbs...)
	}
	return l, nil
}

// single wraps one plot and its legend (drawn outside, on the right) in a
// Figure of the default size. The plot's axis labels move to the figure.
func single(p *plot.Plot, l *plot.Legend) *Figure {
	f := &Figure{Panels: [][]*plot.Plot{{p}}, Width: DefaultWidth, Height: DefaultHeight, legend: l,
		xLabel: p.X.Label.Text, yLabel: p.Y.Label.Text}
	p.X.Label.Text, p.Y.Label.Text = "", ""
	return f
}

// guide is a plot.Plotter that draws the line y = y0·(x/x0)^slope through
// anchor, dashed and grey, clipped to the plot's range, with its label
// written along it where it covers the fewest data lines.
type guide struct {
	anchor Point
	slope  float64
	label  string
	avoid  []Series // data the label should not cover
}

// Plot implements plot.Plotter.
func (g *guide) Plot(c draw.Canvas, p *plot.Plot) {
	f := func(x float64) float64 { return g.anchor.Y * math.Pow(x/g.anchor.X, g.slope) }
	x0, x1 := math.Max(g.anchor.X, p.X.Min), p.X.Max
	// Clip to the y range: y grows with x, so only the top matters past
	// the anchor.
	if f(x1) > p.Y.Max {
		x1 = g.anchor.X * math.Pow(p.Y.Max/g.anchor.Y, 1/g.slope)
	}
	if !(x1 > x0) {
		return
	}
	trX, trY := p.Transforms(&c)
	a := vg.Point{X: trX(x0), Y: trY(f(x0))}
	b := vg.Point{X: trX(x1), Y: trY(f(x1))}
	sty := draw.LineStyle{Color: color.Gray{Y: 140}, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}
	c.StrokeLine2(sty, a.X, a.Y, b.X, b.Y)

	ts := textStyle(noteSize)
	ts.Color = color.Gray{Y: 100}
	ts.XAlign, ts.YAlign = draw.XCenter, draw.YBottom
	d := vg.Length(math.Hypot(float64(b.X-a.X), float64(b.Y-a.Y)))
	w, h := ts.Width(g.label), ts.Height(g.label)
	if d < w+vg.Points(8) {
		return // too short to label
	}
	ux, uy := (b.X-a.X)/d, (b.Y-a.Y)/d // along the line
	nx, ny := -uy, ux                  // its left normal ("above")
	ts.Rotation = math.Atan2(float64(uy), float64(ux))

	var segs [][2]vg.Point
	for _, s := range g.avoid {
		for i := 1; i < len(s.Points); i++ {
			p0, p1 := s.Points[i-1], s.Points[i]
			segs = append(segs, [2]vg.Point{{X: trX(p0.X), Y: trY(p0.Y)}, {X: trX(p1.X), Y: trY(p1.Y)}})
		}
		if len(s.Points) == 1 {
			pt := vg.Point{X: trX(s.Points[0].X), Y: trY(s.Points[0].Y)}
			segs = append(segs, [2]vg.Point{pt, pt})
		}
	}
	// Candidates: the label's centre at fractions of the line's length,
	// from the far end back, above or below it; the score counts sample
	// points of the label's box that lie on data (or outside the data
	// area).
	const clearance = 4 // points: half a marker plus a line's width
	best, bestScore := vg.Point{}, math.MaxInt
	for _, frac := range []float64{0.85, 0.75, 0.65, 0.55, 0.45, 0.35} {
		along := vg.Length(frac) * d
		if along+w/2 > d-vg.Points(3) || along-w/2 < vg.Points(3) {
			continue
		}
		for _, side := range []vg.Length{-1, 1} { // below first: gonum's PNG text drifts a little clockwise when rotated
			off := side * vg.Points(3)
			if side < 0 {
				off -= h
			}
			mid := vg.Point{X: a.X + along*ux + off*nx, Y: a.Y + along*uy + off*ny}
			score := 0
			for i := 0; i <= 8; i++ {
				for j := 0; j <= 2; j++ {
					s := vg.Length(float64(i)/8-0.5) * w
					t := vg.Length(float64(j)/2) * h
					q := vg.Point{X: mid.X + s*ux + t*nx, Y: mid.Y + s*uy + t*ny}
					if !c.Contains(q) {
						score += 3
						continue
					}
					for _, sg := range segs {
						if distToSegment(q, sg[0], sg[1]) < clearance {
							score++
							break
						}
					}
				}
			}
			if score < bestScore {
				best, bestScore = mid, score
			}
		}
	}
	if bestScore == math.MaxInt {
		return
	}
	c.FillText(ts, best, g.label)
}

// distToSegment returns the distance from q to the segment [a, b].
func distToSegment(q, a, b vg.Point) vg.Length {
	dx, dy := float64(b.X-a.X), float64(b.Y-a.Y)
	qx, qy := float64(q.X-a.X), float64(q.Y-a.Y)
	t := 0.0
	if l2 := dx*dx + dy*dy; l2 > 0 {
		t = math.Min(math.Max((qx*dx+qy*dy)/l2, 0), 1)
	}
	return vg.Length(math.Hypot(qx-t*dx, qy-t*dy))
}
