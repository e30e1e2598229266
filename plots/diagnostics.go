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

// KeyCell is one diagnostics value of a passkey sweep: for one policy, one
// layer and KV head and one depth bin, a percentage such as the fraction
// of the key block the head still holds at the question.
type KeyCell struct {
	Policy   string
	Layer    int
	Head     int
	DepthBin int
	// Value is in percent, in [0, 100]. Cells repeated for the same
	// policy, layer, head and bin are averaged.
	Value float64
}

// KeyMaps draws one table per policy, two to a row, on one colour scale
// (0–100 %, labelled label): rows are the layers' KV heads ("L0 h0" at the
// top), columns the bins depth bins of the key, each cell coloured and
// labelled with its value; missing cells are grey and labelled "–".
func KeyMaps(cells []KeyCell, bins int, label string) (*Figure, error) {
	t, err := newKeyTables(cells, bins)
	if err != nil {
		return nil, err
	}
	cols := min(len(t.policies), 2)
	nrows := (len(t.policies) + cols - 1) / cols
	panels := make([][]*plot.Plot, nrows)
	for r := range panels {
		panels[r] = make([]*plot.Plot, cols)
	}
	for i, pol := range t.policies {
		p := newPlot(pol, "", "")
		var xt, yt plot.ConstantTicks
		for b := range bins {
			lo, hi := 100*float64(b)/float64(bins), 100*float64(b+1)/float64(bins)
			xt = append(xt, plot.Tick{Value: float64(b) + 0.5, Label: binLabel(lo, hi)})
		}
		if i%cols == 0 {
			for r, rk := range t.rows {
				yt = append(yt, plot.Tick{Value: float64(len(t.rows)-1-r) + 0.5, Label: fmt.Sprintf("L%d h%d", rk.layer, rk.head)})
			}
		}
		p.X.Tick.Marker, p.Y.Tick.Marker = xt, yt
		p.X.Tick.Label.Font = textStyle(binTickSize).Font
		p.X.Min, p.X.Max = 0, float64(bins)
		p.Y.Min, p.Y.Max = 0, float64(len(t.rows))
		for _, a := range []*plot.Axis{&p.X, &p.Y} {
			a.LineStyle.Width = 0
			a.Tick.Length = 0
			a.Padding = vg.Points(1)
		}
		p.Add(&cellGrid{acc: t.grid[pol]})
		panels[i/cols][i%cols] = p
	}
	cellH := 0.24 * vg.Inch
	rowH := max(vg.Length(len(t.rows))*cellH+1.2*vg.Inch, 1.9*vg.Inch)
	return &Figure{
		Panels: panels,
		xLabel: passkeyXLabel,
		yLabel: "Layer and KV head",
		Width:  DefaultWidth,
		Height: vg.Length(nrows)*rowH + 0.1*vg.Inch,
		colorScale: &colorScale{
			min: 0, max: 100, colorOf: AccuracyColor,
			ticks: []float64{0, 20, 40, 60, 80, 100},
			label: label,
		},
	}, nil
}

// layerHead is one row of a key map.
type layerHead struct{ layer, head int }

// keyTables is validated, merged key-map data.
type keyTables struct {
	policies []string               // figure order
	rows     []layerHead            // by layer, then head
	grid     map[string][][]float64 // policy → [row][bin], NaN where missing
}

func newKeyTables(cells []KeyCell, bins int) (*keyTables, error) {
	if len(cells) == 0 {
		return nil, fmt.Errorf("key maps: %w", ErrNoData)
	}
	if bins < 1 {
		return nil, fmt.Errorf("key maps: %d depth bins, want at least 1", bins)
	}
	type key struct {
		policy string
		row    layerHead
		bin    int
	}
	var names []string
	var rows []layerHead
	sums := make(map[key]*cellMean)
	for i, c := range cells {
		switch {
		case c.Policy == "":
			return nil, fmt.Errorf("key cell %d: empty policy", i)
		case c.Layer < 0 || c.Head < 0:
			return nil, fmt.Errorf("key cell %d (%s): layer %d, head %d, want ≥ 0", i, c.Policy, c.Layer, c.Head)
		case c.DepthBin < 0 || c.DepthBin >= bins:
			return nil, fmt.Errorf("key cell %d (%s): depth bin %d outside [0, %d)", i, c.Policy, c.DepthBin, bins)
		case math.IsNaN(c.Value) || c.Value < 0 || c.Value > 100:
			return nil, fmt.Errorf("key cell %d (%s, layer %d, head %d): value %v outside [0, 100] %%", i, c.Policy, c.Layer, c.Head, c.Value)
		}
		names = append(names, c.Policy)
		r := layerHead{c.Layer, c.Head}
		rows = append(rows, r)
		k := key{c.Policy, r, c.DepthBin}
		if sums[k] == nil {
			sums[k] = &cellMean{}
		}
		sums[k].add(c.Value, 0)
	}
	slices.SortFunc(rows, func(a, b layerHead) int {
		if a.layer != b.layer {
			return a.layer - b.layer
		}
		return a.head - b.head
	})
	t := &keyTables{policies: sortPolicies(names), rows: slices.Compact(rows), grid: make(map[string][][]float64)}
	for _, pol := range t.policies {
		g := make([][]float64, len(t.rows))
		for r, rk := range t.rows {
			g[r] = make([]float64, bins)
			for b := range bins {
				g[r][b] = math.NaN()
				if s := sums[key{pol, rk, b}]; s != nil {
					g[r][b] = s.mean()
				}
			}
		}
		t.grid[pol] = g
	}
	return t, nil
}

// RetentionSpans is RetentionMap with a span of original positions marked
// in each policy's panel by two dashed vertical lines: spans[policy] is
// [first, end) (a passkey prompt's key block, say). Policies without a span
// are drawn unmarked.
func RetentionSpans(rs []Retention, spans map[string][2]int64) (*Figure, error) {
	f, err := RetentionMap(rs)
	if err != nil {
		return nil, err
	}
	for _, row := range f.Panels {
		for _, p := range row {
			if p == nil {
				continue
			}
			if s, ok := spans[p.Title.Text]; ok {
				p.Add(spanLines{s[0], s[1]})
			}
		}
	}
	return f, nil
}

// spanLines is a plot.Plotter that draws dashed vertical lines at two x
// values across the whole panel.
type spanLines [2]int64

// Plot implements plot.Plotter.
func (s spanLines) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	sty := draw.LineStyle{Color: color.Black, Width: vg.Points(0.8), Dashes: []vg.Length{vg.Points(2), vg.Points(1.5)}}
	for _, x := range s {
		px := trX(float64(x))
		c.StrokeLine2(sty, px, c.Min.Y, px, c.Max.Y)
	}
}
