package plots

import (
	"fmt"
	"image/color"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Retention is what one policy's cache holds after Tokens tokens: for each
// row (a layer or a KV head) the original positions, in [0, Tokens), still
// in the cache.
type Retention struct {
	Policy string
	// Tokens is how many tokens have gone through the cache.
	Tokens int64
	// Rows holds the held positions of each row: Rows[row] in any order.
	Rows [][]int64
	// RowLabel names what a row is ("Layer", "KV head"); empty means "Row".
	RowLabel string
}

// retentionBins is the most columns a retention row is drawn with; longer
// sequences are binned, each bin shaded by the fraction of its positions
// held.
const retentionBins = 1000

// RetentionMap draws which original positions each policy still holds: one
// panel per policy, stacked vertically on a shared x axis of original
// positions (0 to the largest Tokens), one horizontal strip per row, filled
// in the policy's colour where the row holds the position. Up to 1000
// positions are drawn one column each; beyond that positions are binned and
// a bin's shade grows with the fraction of it held (any held position shows
// at least a light tint, and every held run is at least 1.5 pt wide, so
// that a few sink tokens stay visible). A policy
// that has seen fewer tokens than the longest has the rest of its panel
// greyed.
func RetentionMap(rs []Retention) (*Figure, error) {
	if len(rs) == 0 {
		return nil, fmt.Errorf("retention: %w", ErrNoData)
	}
	var names []string
	byName := make(map[string]Retention)
	var tokens int64
	for i, r := range rs {
		switch {
		case r.Policy == "":
			return nil, fmt.Errorf("retention %d: empty policy", i)
		case r.Tokens <= 0:
			return nil, fmt.Errorf("retention %s: %d tokens, want > 0", r.Policy, r.Tokens)
		case len(r.Rows) == 0:
			return nil, fmt.Errorf("retention %s: no rows: %w", r.Policy, ErrNoData)
		}
		if _, dup := byName[r.Policy]; dup {
			return nil, fmt.Errorf("retention: policy %q appears twice", r.Policy)
		}
		for row, held := range r.Rows {
			for _, pos := range held {
				if pos < 0 || pos >= r.Tokens {
					return nil, fmt.Errorf("retention %s, row %d: position %d outside [0, %d)", r.Policy, row, pos, r.Tokens)
				}
			}
		}
		byName[r.Policy] = r
		names = append(names, r.Policy)
		tokens = max(tokens, r.Tokens)
	}
	policies := sortPolicies(names)
	styles := policyStyles(policies)
	bins := int(min(tokens, retentionBins))
	binWidth := float64(tokens) / float64(bins)

	panels := make([][]*plot.Plot, len(policies))
	var height vg.Length
	for i, pol := range policies {
		r := byName[pol]
		label := r.RowLabel
		if label == "" {
			label = "Row"
		}
		p := newPlot(pol, "", label)
		p.Title.Padding = vg.Points(3)
		st := &strips{color: styles[pol].color, binWidth: binWidth, seen: float64(r.Tokens), fill: make([][]float64, len(r.Rows))}
		for row, held := range r.Rows {
			st.fill[row] = binFractions(held, tokens, bins)
		}
		p.Add(st)
		p.X.Min, p.X.Max = 0, float64(tokens)
		p.Y.Min, p.Y.Max = 0, float64(len(r.Rows))
		p.X.Padding, p.Y.Padding = 0, 0
		p.X.Tick.Marker = plot.TickerFunc(tokenLinearTicks)
		if i < len(policies)-1 {
			p.X.Tick.Marker = unlabelled(p.X.Tick.Marker)
		}
		p.Y.Tick.Marker = rowTicks(len(r.Rows))
		panels[i] = []*plot.Plot{p}
		// A strip of at least 4 pt per row, between 0.6 and 1.6 inches.
		height += min(max(vg.Length(len(r.Rows))*4, 0.6*vg.Inch), 1.6*vg.Inch) + 0.4*vg.Inch
	}
	return &Figure{
		Panels: panels,
		Width:  DefaultWidth,
		Height: height + 0.8*vg.Inch,
		xLabel: "Original position (token index)",
	}, nil
}

// binFractions returns, for each of bins equal bins of [0, tokens), the
// fraction of its positions that held contains (duplicates counted once).
func binFractions(held []int64, tokens int64, bins int) []float64 {
	sorted := slices.Clone(held)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	count := make([]int64, bins)
	for _, pos := range sorted {
		count[int(pos*int64(bins)/tokens)]++
	}
	out := make([]float64, bins)
	for b := range bins {
		// Bin b holds the positions p with p*bins/tokens == b.
		lo := (int64(b)*tokens + int64(bins) - 1) / int64(bins)
		hi := (int64(b+1)*tokens + int64(bins) - 1) / int64(bins)
		if n := hi - lo; n > 0 {
			out[b] = float64(count[b]) / float64(n)
		}
	}
	return out
}

// rowTicks labels rows 0, k, 2k, … (at most six labels) at their centres.
func rowTicks(rows int) plot.Ticker {
	step := 1
	for (rows-1)/step+1 > 6 {
		step *= 2
	}
	var ts plot.ConstantTicks
	for r := 0; r < rows; r += step {
		ts = append(ts, plot.Tick{Value: float64(r) + 0.5, Label: fmt.Sprint(r)})
	}
	return ts
}

// strips is a plot.Plotter that draws retention rows: row r is the band
// [r, r+1] in y; bin b of a row spans [b, b+1]·binWidth in x and is
// filled in color with an intensity given by its fraction held.
type strips struct {
	color    color.Color
	binWidth float64
	seen     float64     // positions at or past seen are greyed: this policy has not seen them
	fill     [][]float64 // [row][bin], fraction held in [0, 1]
}

// minRunWidth is the narrowest a run of held bins is drawn, in points.
const minRunWidth vg.Length = 1.5

// shade maps a fraction held to a colour intensity: 0 stays white, any
// positive fraction shows at least a 15 % tint, and the tint grows with the
// square root of the fraction, so that the halving densities of a cascade
// (1, 1/2, 1/4, 1/8) come out as roughly even steps.
func shade(frac float64) float64 {
	if frac <= 0 {
		return 0
	}
	return 0.15 + 0.85*math.Sqrt(math.Min(frac, 1))
}

// Plot implements plot.Plotter. Runs of bins with the same shade become
// one rectangle, so vector output stays small.
func (s *strips) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	if s.seen < p.X.Max {
		unseen := vg.Rectangle{Min: vg.Point{X: trX(s.seen), Y: c.Min.Y}, Max: c.Max}
		c.SetColor(color.Gray{Y: 235})
		c.Fill(unseen.Path())
	}
	const levels = 16 // distinct shades
	level := func(f float64) int { return int(math.Round(shade(f) * levels)) }
	for r, row := range s.fill {
		y0, y1 := trY(float64(r)), trY(float64(r+1))
		for b := 0; b < len(row); {
			lv := level(row[b])
			e := b + 1
			for e < len(row) && level(row[e]) == lv {
				e++
			}
			if lv > 0 {
				x0, x1 := trX(float64(b)*s.binWidth), trX(float64(e)*s.binWidth)
				if x1-x0 < minRunWidth { // keep a few sink tokens visible
					x1 = min(x0+minRunWidth, c.Max.X)
					x0 = x1 - minRunWidth
				}
				rect := vg.Rectangle{Min: vg.Point{X: x0, Y: y0}, Max: vg.Point{X: x1, Y: y1}}
				c.SetColor(blend(s.color, float64(lv)/levels))
				c.Fill(rect.Path())
			}
			b = e
		}
	}
	// Thin separators between rows when they are tall enough to see.
	if rows := len(s.fill); rows > 1 && (trY(1)-trY(0)) >= vg.Points(3) {
		sep := draw.LineStyle{Color: color.White, Width: vg.Points(0.5)}
		for r := 1; r < rows; r++ {
			y := trY(float64(r))
			c.StrokeLine2(sep, c.Min.X, y, c.Max.X, y)
		}
	}
	frame := draw.LineStyle{Color: color.Gray{Y: 160}, Width: vg.Points(0.5)}
	c.SetLineStyle(frame)
	c.Stroke(c.Rectangle.Path())
}
