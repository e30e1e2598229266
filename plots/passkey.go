package plots

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// PasskeyCell is the passkey accuracy of one policy at one context length
// and one insertion-depth bin.
type PasskeyCell struct {
	Policy string
	// Length is the context length in tokens.
	Length int
	// DepthBin is the index of the insertion-depth bin: bin b of n holds
	// depths in [b/n, (b+1)/n) of the filler.
	DepthBin int
	// Accuracy is the exact-match accuracy in percent, in [0, 100].
	Accuracy float64
	// N is the number of samples behind Accuracy. Cells repeated for the
	// same policy, length and bin are merged, weighted by N.
	N int
}

// Passkey heat-map labels.
const (
	passkeyXLabel = "Insert location (%)"
	binTickSize   = 8 // the depth bins' tick labels, in points
	passkeyYLabel = "Context length (tokens)"
	accuracyLabel = "Accuracy (%)"
)

// PasskeyTable draws the passkey heat-map table of one policy: rows are
// context lengths (shortest at the top), columns the bins depth bins,
// each cell coloured by AccuracyColor and labelled with the accuracy. Cells
// of other policies are ignored; missing cells are grey and labelled "–".
func PasskeyTable(cells []PasskeyCell, policy string, bins int) (*Figure, error) {
	var mine []PasskeyCell
	for _, c := range cells {
		if c.Policy == policy {
			mine = append(mine, c)
		}
	}
	if len(mine) == 0 {
		return nil, fmt.Errorf("passkey table: policy %q: %w", policy, ErrNoData)
	}
	return PasskeyPanels(mine, bins)
}

// PasskeyPanels draws one passkey heat-map table per policy, two to a row,
// on one colour scale (0–100 %) shown on the right, with the policy as
// each panel's title, like the cascade paper's poster. The figure is
// DefaultWidth wide, as every figure of the package, and as tall as its
// rows need. All panels share the union of context lengths; bins is the
// number of depth bins (5 in the paper). The number of samples behind each
// cell is written in the colour scale's label when every cell has the same
// count, and under each cell's accuracy otherwise.
func PasskeyPanels(cells []PasskeyCell, bins int) (*Figure, error) {
	t, err := newPasskeyTables(cells, bins)
	if err != nil {
		return nil, err
	}
	n := len(t.policies)
	cols := min(n, 2)
	rows := (n + cols - 1) / cols
	panels := make([][]*plot.Plot, rows)
	for r := range panels {
		panels[r] = make([]*plot.Plot, cols)
	}
	for i, pol := range t.policies {
		r, k := i/cols, i%cols
		// The axis labels are the figure's, once each, so that every
		// panel's title and table line up.
		p := newPlot(pol, "", "")
		t.style(p, k == 0)
		g := &cellGrid{acc: t.acc[pol]}
		if t.sameN < 0 {
			g.n = t.n[pol]
		}
		p.Add(g)
		panels[r][k] = p
	}
	// Panel size: columns wide enough for "80–100" at 10 pt, rows tall
	// enough for a cell number with room around it.
	// Each row also holds its panels' titles and x axes, and is never
	// shorter than a readable single-length table.
	cellH := 0.3 * vg.Inch
	if t.sameN < 0 {
		cellH = 0.42 * vg.Inch // room for the count under the accuracy
	}
	axisH, titleH := 0.85*vg.Inch, 0.35*vg.Inch
	rowH := max(vg.Length(len(t.lengths))*cellH+axisH+titleH, 1.9*vg.Inch)
	h := vg.Length(rows)*rowH + 0.1*vg.Inch
	label := accuracyLabel
	if t.sameN > 0 {
		label = fmt.Sprintf("%s, n = %d per cell", accuracyLabel, t.sameN)
	}
	return &Figure{
		Panels: panels,
		xLabel: passkeyXLabel,
		yLabel: passkeyYLabel,
		Width:  DefaultWidth,
		Height: max(h, 2.5*vg.Inch),
		colorScale: &colorScale{
			min: 0, max: 100, colorOf: AccuracyColor,
			ticks: []float64{0, 20, 40, 60, 80, 100},
			label: label,
		},
	}, nil
}

// passkeyTables is validated, merged passkey data.
type passkeyTables struct {
	policies []string               // figure order
	lengths  []int                  // ascending
	bins     int                    // depth bins
	acc      map[string][][]float64 // policy → [length index][bin], NaN where missing
	n        map[string][][]int     // policy → [length index][bin]: samples, 0 where missing
	sameN    int                    // the count of every present cell when they agree, else -1 (0: none known)
}

func newPasskeyTables(cells []PasskeyCell, bins int) (*passkeyTables, error) {
	if len(cells) == 0 {
		return nil, fmt.Errorf("passkey: %w", ErrNoData)
	}
	if bins < 1 {
		return nil, fmt.Errorf("passkey: %d depth bins, want at least 1", bins)
	}
	var names []string
	var lengths []int
	for i, c := range cells {
		switch {
		case c.Policy == "":
			return nil, fmt.Errorf("passkey cell %d: empty policy", i)
		case c.Length <= 0:
			return nil, fmt.Errorf("passkey cell %d (%s): length %d, want > 0", i, c.Policy, c.Length)
		case c.DepthBin < 0 || c.DepthBin >= bins:
			return nil, fmt.Errorf("passkey cell %d (%s, length %d): depth bin %d outside [0, %d)", i, c.Policy, c.Length, c.DepthBin, bins)
		case math.IsNaN(c.Accuracy) || c.Accuracy < 0 || c.Accuracy > 100:
			return nil, fmt.Errorf("passkey cell %d (%s, length %d, bin %d): accuracy %v outside [0, 100] %%", i, c.Policy, c.Length, c.DepthBin, c.Accuracy)
		case c.N < 0:
			return nil, fmt.Errorf("passkey cell %d (%s, length %d, bin %d): negative sample count %d", i, c.Policy, c.Length, c.DepthBin, c.N)
		}
		names = append(names, c.Policy)
		lengths = append(lengths, c.Length)
	}
	slices.Sort(lengths)
	t := &passkeyTables{
		policies: sortPolicies(names),
		lengths:  slices.Compact(lengths),
		bins:     bins,
		acc:      make(map[string][][]float64),
		n:        make(map[string][][]int),
	}
	type key struct {
		policy      string
		length, bin int
	}
	sums := make(map[key]*cellMean)
	for _, c := range cells {
		k := key{c.Policy, c.Length, c.DepthBin}
		s := sums[k]
		if s == nil {
			s = &cellMean{}
			sums[k] = s
		}
		s.add(c.Accuracy, c.N)
	}
	for _, s := range sums {
		switch n := int(s.weight); {
		case t.sameN == 0:
			t.sameN = n
		case t.sameN != n:
			t.sameN = -1
		}
	}
	for _, pol := range t.policies {
		grid := make([][]float64, len(t.lengths))
		counts := make([][]int, len(t.lengths))
		for r, l := range t.lengths {
			grid[r] = make([]float64, bins)
			counts[r] = make([]int, bins)
			for b := range bins {
				s := sums[key{pol, l, b}]
				if s != nil {
					counts[r][b] = int(s.weight)
				}
				if s == nil {
					grid[r][b] = math.NaN()
				} else {
					grid[r][b] = s.mean()
				}
			}
		}
		t.acc[pol] = grid
		t.n[pol] = counts
	}
	return t, nil
}

// style sets p's axes for a table: one row per length (shortest on top),
// one column per bin, no axis lines; y tick labels only when yLabels.
func (t *passkeyTables) style(p *plot.Plot, yLabels bool) {
	rows := len(t.lengths)
	var xt, yt plot.ConstantTicks
	for b := range t.bins {
		lo, hi := 100*float64(b)/float64(t.bins), 100*float64(b+1)/float64(t.bins)
		xt = append(xt, plot.Tick{Value: float64(b) + 0.5, Label: binLabel(lo, hi)})
	}
	if yLabels {
		for r, l := range t.lengths {
			yt = append(yt, plot.Tick{Value: float64(rows-1-r) + 0.5, Label: FormatTokens(int64(l))})
		}
	}
	if rows < 3 && p.Y.Label.Text != "" {
		// A table of one or two rows is too short for the long label.
		p.Y.Label.Text = "Length"
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = xt, yt
	p.X.Tick.Label.Font = textStyle(binTickSize).Font // "60–80" fits its column two panels to a row
	p.X.Min, p.X.Max = 0, float64(t.bins)
	p.Y.Min, p.Y.Max = 0, float64(rows)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.LineStyle.Width = 0
		a.Tick.Length = 0
		a.Padding = vg.Points(1)
	}
}

// binLabel writes a depth bin's range in percent, "0–20".
func binLabel(lo, hi float64) string {
	f := func(v float64) string { return strconv.FormatFloat(math.Round(v), 'f', -1, 64) }
	return f(lo) + "–" + f(hi)
}

// cellGrid is a plot.Plotter that draws a table of accuracies: row r of
// acc at the top when r is 0, one unit square per cell.
type cellGrid struct {
	acc [][]float64 // [row][col], percent, NaN where missing
	n   [][]int     // [row][col] samples, written under the accuracy; nil: not written
}

// Plot implements plot.Plotter.
func (g *cellGrid) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	rows := len(g.acc)
	sty := textStyle(cellSize)
	sty.XAlign, sty.YAlign = draw.XCenter, draw.YCenter
	border := draw.LineStyle{Color: color.White, Width: vg.Points(1)}
	for r, row := range g.acc {
		y0, y1 := trY(float64(rows-1-r)), trY(float64(rows-r))
		for k, v := range row {
			x0, x1 := trX(float64(k)), trX(float64(k+1))
			rect := vg.Rectangle{Min: vg.Point{X: x0, Y: y0}, Max: vg.Point{X: x1, Y: y1}}
			bg := AccuracyColor(v)
			c.SetColor(bg)
			c.Fill(rect.Path())
			c.SetLineStyle(border)
			c.Stroke(rect.Path())
			txt := "–"
			if !math.IsNaN(v) {
				txt = strconv.FormatFloat(math.Round(v), 'f', 0, 64)
			}
			sty.Color = textColorOn(bg)
			mid := vg.Point{X: (x0 + x1) / 2, Y: (y0 + y1) / 2}
			if g.n != nil && g.n[r][k] > 0 {
				small := textStyle(cellSize - 2)
				small.XAlign, small.YAlign, small.Color = draw.XCenter, draw.YTop, sty.Color
				sty.YAlign = draw.YBottom
				c.FillText(sty, mid, txt)
				c.FillText(small, mid, fmt.Sprintf("n=%d", g.n[r][k]))
				sty.YAlign = draw.YCenter
				continue
			}
			c.FillText(sty, mid, txt)
		}
	}
}

// cellMean merges the repeated values of one table cell: their mean
// weighted by sample counts where the values have them, a plain mean
// where none has.
type cellMean struct {
	weighted, weight, plain float64
	count                   int
}

// add merges value v, a mean over n samples (0: unknown).
func (m *cellMean) add(v float64, n int) {
	m.weighted += v * float64(n)
	m.weight += float64(n)
	m.plain += v
	m.count++
}

// mean returns the merged value.
func (m *cellMean) mean() float64 {
	if m.weight > 0 {
		return m.weighted / m.weight
	}
	return m.plain / float64(m.count)
}
