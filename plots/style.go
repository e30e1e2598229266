package plots

import (
	"hash/fnv"
	"image/color"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Font sizes used by every figure.
const (
	titleSize  = 13 // panel titles
	labelSize  = 12 // axis labels
	tickSize   = 10 // tick labels
	legendSize = 10 // legend entries
	cellSize   = 10 // numbers printed in heat-map cells
	noteSize   = 10 // in-plot annotations (guide-line labels)
)

// textStyle returns a Liberation Sans style of the given size in points.
// (No bold: gonum/plot v0.17's PDF canvas registers every font under the
// regular style and then fails to find a bold one.)
func textStyle(sizePt float64) text.Style {
	f := font.Font{Typeface: "Liberation", Variant: "Sans"}
	return text.Style{
		Color:   color.Black,
		Font:    font.From(f, font.Length(sizePt)),
		XAlign:  draw.XLeft,
		YAlign:  draw.YBottom,
		Handler: plot.DefaultTextHandler,
	}
}

// newPlot returns a plot with the package's fonts and line widths.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = textStyle(titleSize).Font
	p.Title.Padding = vg.Points(6)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = textStyle(labelSize).Font
		a.Label.Padding = vg.Points(4)
		a.Tick.Label.Font = textStyle(tickSize).Font
		a.Tick.Length = vg.Points(4)
		a.Tick.LineStyle.Width = vg.Points(0.6)
		a.LineStyle.Width = vg.Points(0.8)
		a.Padding = vg.Points(2)
	}
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Legend.TextStyle.Font = textStyle(legendSize).Font
	return p
}

// gridLines returns light grey grid lines at the major ticks of both axes.
func gridLines() plot.Plotter {
	return gridPlotter{sty: gridStyle()}
}

// gridStyle is the line style of grid lines.
func gridStyle() draw.LineStyle {
	return draw.LineStyle{Color: color.Gray{Y: 225}, Width: vg.Points(0.5)}
}

// gridPlotter draws lines at the major ticks; unlike plotter.Grid it lets
// a caller turn the vertical lines off.
type gridPlotter struct {
	sty    draw.LineStyle
	noVert bool
}

// Plot implements plot.Plotter.
func (g gridPlotter) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	if !g.noVert {
		for _, t := range p.X.Tick.Marker.Ticks(p.X.Min, p.X.Max) {
			if t.IsMinor() {
				continue
			}
			if x := trX(t.Value); c.ContainsX(x) {
				c.StrokeLine2(g.sty, x, c.Min.Y, x, c.Max.Y)
			}
		}
	}
	for _, t := range p.Y.Tick.Marker.Ticks(p.Y.Min, p.Y.Max) {
		if t.IsMinor() {
			continue
		}
		if y := trY(t.Value); c.ContainsY(y) {
			c.StrokeLine2(g.sty, c.Min.X, y, c.Max.X, y)
		}
	}
}

// knownPolicy reports the fixed rank, colour and marker of the policies
// this project ships, named by id or display name (see policyID). The
// colours are the Okabe–Ito palette, which stays
// distinguishable under the common forms of colour blindness.
func knownPolicy(name string) (rank int, c color.RGBA, g draw.GlyphDrawer, ok bool) {
	switch policyID(name) {
	case "cascade":
		return 0, rgb(0xD55E00), draw.CircleGlyph{}, true // vermillion
	case "sink":
		return 1, rgb(0x0072B2), draw.BoxGlyph{}, true // blue
	case "h2o":
		return 2, rgb(0x009E73), draw.PyramidGlyph{}, true // bluish green
	case "snapkv":
		return 3, rgb(0xCC79A7), draw.TriangleGlyph{}, true // reddish purple
	case "bigbird":
		return 4, rgb(0xE69F00), draw.CrossGlyph{}, true // orange
	case "full":
		return 5, rgb(0x3F3F3F), draw.RingGlyph{}, true // dark grey
	case "truncated":
		return 6, rgb(0x56B4E9), draw.SquareGlyph{}, true // sky blue
	// The other shipped policies: each a colour and marker of its own, so
	// that a budget sweep of all of them tells every line apart.
	case "pyramidkv":
		return 7, rgb(0x1B3A6B), draw.TriangleGlyph{}, true // navy
	case "adakv":
		return 8, rgb(0x9B1C1C), draw.PyramidGlyph{}, true // maroon
	case "hip_bigbird":
		return 9, rgb(0x8C564B), draw.CrossGlyph{}, true // brown
	case "quest":
		return 10, rgb(0x9E9A1A), draw.BoxGlyph{}, true // olive
	case "duo":
		return 11, rgb(0x7B3294), draw.CircleGlyph{}, true // purple
	case "logsearch":
		return 12, rgb(0x17A2B8), draw.RingGlyph{}, true // cyan
	case "tova":
		return 13, rgb(0x2CA02C), draw.SquareGlyph{}, true // green
	case "expected_attention":
		return 14, rgb(0xB8860B), draw.TriangleGlyph{}, true // dark gold
	case "knorm":
		return 15, rgb(0x5E4FA2), draw.PlusGlyph{}, true // indigo
	case "random":
		return 16, rgb(0xA0A0A0), draw.PlusGlyph{}, true // light grey
	}
	return 0, color.RGBA{}, nil, false
}

// extraColor returns colour i (mod 8) of the palette for policies that
// knownPolicy does not name.
func extraColor(i int) color.RGBA {
	pal := [...]uint32{
		0x8C564B, // brown
		0x7B3294, // purple
		0x9E9A1A, // olive
		0x17A2B8, // cyan
		0xE377C2, // pink
		0x2CA02C, // green
		0x1B3A6B, // navy
		0x9B1C1C, // maroon
	}
	return rgb(pal[i%len(pal)])
}

// numExtraColors is the length of extraColor's palette.
const numExtraColors = 8

func rgb(hex uint32) color.RGBA {
	return color.RGBA{R: uint8(hex >> 16), G: uint8(hex >> 8), B: uint8(hex), A: 255}
}

// extraIndex is the palette index an unknown policy name hashes to.
func extraIndex(name string) int {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32() % numExtraColors)
}

// PolicyColor returns the colour that every figure uses for policy.
// The policies the project ships have fixed colours; any other name gets one of eight further colours chosen by a
// hash of the name, so it too is the same in every figure. (If two unknown
// names in one figure share a hash, the figure gives the later one the
// next free colour; see policyStyles.)
func PolicyColor(policy string) color.Color {
	if _, c, _, ok := knownPolicy(policy); ok {
		return c
	}
	return extraColor(extraIndex(policy))
}

// policyStyle is how one policy is drawn.
type policyStyle struct {
	color color.Color
	glyph draw.GlyphDrawer
}

// policyStyles assigns colours and markers to the policies of one figure:
// PolicyColor's colour, except that unknown names whose hash collides with
// an earlier unknown name (in sortPolicies order) take the next free extra
// colour, so that the policies of one figure never share a colour.
func policyStyles(names []string) map[string]policyStyle {
	out := make(map[string]policyStyle, len(names))
	var used [numExtraColors]bool
	for _, n := range sortPolicies(names) {
		if _, c, g, ok := knownPolicy(n); ok {
			out[n] = policyStyle{color: c, glyph: g}
			continue
		}
		i := extraIndex(n)
		for k := 0; k < numExtraColors && used[i]; k++ {
			i = (i + 1) % numExtraColors
		}
		used[i] = true
		out[n] = policyStyle{color: extraColor(i), glyph: draw.PlusGlyph{}}
	}
	return out
}

// sortPolicies returns the distinct names in figure order: the known
// policies in their fixed order, then the others alphabetically.
func sortPolicies(names []string) []string {
	out := slices.Clone(names)
	slices.SortFunc(out, func(a, b string) int {
		ra, _, _, ka := knownPolicy(a)
		rb, _, _, kb := knownPolicy(b)
		switch {
		case ka && kb:
			return ra - rb
		case ka:
			return -1
		case kb:
			return 1
		}
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	})
	return slices.Compact(out)
}

// AccuracyColor returns the heat-map colour of an accuracy in percent:
// the nine-class ColorBrewer "Greens" ramp, from near-white at 0 % to dark
// green at 100 %, interpolated linearly between its classes. Values
// outside [0, 100] are clamped; NaN gives light grey.
func AccuracyColor(accuracyPct float64) color.Color {
	if math.IsNaN(accuracyPct) {
		return color.RGBA{R: 0xE0, G: 0xE0, B: 0xE0, A: 0xFF}
	}
	ramp := [...]uint32{0xF7FCF5, 0xE5F5E0, 0xC7E9C0, 0xA1D99B, 0x74C476, 0x41AB5D, 0x238B45, 0x006D2C, 0x00441B}
	t := math.Min(math.Max(accuracyPct/100, 0), 1) * float64(len(ramp)-1)
	i := int(t)
	if i == len(ramp)-1 {
		return rgb(ramp[i])
	}
	f := t - float64(i)
	a, b := rgb(ramp[i]), rgb(ramp[i+1])
	mix := func(x, y uint8) uint8 { return uint8(math.Round(float64(x)*(1-f) + float64(y)*f)) }
	return color.RGBA{R: mix(a.R, b.R), G: mix(a.G, b.G), B: mix(a.B, b.B), A: 255}
}

// textColorOn returns black or white, whichever reads better on bg
// (by WCAG relative luminance).
func textColorOn(bg color.Color) color.Color {
	r, g, b, _ := bg.RGBA()
	lin := func(v uint32) float64 {
		c := float64(v) / 0xFFFF
		if c <= 0.04045 {
			return c / 12.92
		}
		return math.Pow((c+0.055)/1.055, 2.4)
	}
	l := 0.2126*lin(r) + 0.7152*lin(g) + 0.0722*lin(b)
	// Contrast with black is (l+0.05)/0.05, with white 1.05/(l+0.05);
	// they are equal at l ≈ 0.179.
	if l > 0.179 {
		return color.Black
	}
	return color.White
}

// blend mixes c with white: f = 1 gives c, f = 0 white.
func blend(c color.Color, f float64) color.Color {
	r, g, b, _ := c.RGBA()
	mix := func(v uint32) uint8 {
		return uint8(math.Round((float64(v>>8)*f + 255*(1-f))))
	}
	return color.RGBA{R: mix(r), G: mix(g), B: mix(b), A: 255}
}
