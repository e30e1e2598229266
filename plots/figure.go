package plots

import (
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Figure is one image made of panels on a grid, with an optional legend
// or colour scale to the right of the panels, outside every data area.
// The builders in this package return one; Save writes it.
type Figure struct {
	// Panels holds the plots row by row: Panels[row][col]. Every row has
	// the same length; a nil entry leaves its cell blank. The plots may be
	// edited (titles, labels) before saving.
	Panels [][]*plot.Plot

	// Width and Height are the size Save uses when it is given zero.
	Width, Height vg.Length

	// xLabel and yLabel, when set, label all panels at once: centred
	// under and left of the panels' data areas. (They also work around
	// gonum/plot v0.17 placing its own axis labels' glyph boxes at the
	// arithmetic mid-range, which on a log axis pads the plot far too
	// much.)
	xLabel, yLabel string

	legend     *plot.Legend // drawn right of the panels when non-nil
	colorScale *colorScale  // drawn right of the panels when non-nil
}

// Size returns the figure's suggested size.
func (f *Figure) Size() (width, height vg.Length) {
	return f.Width, f.Height
}

// Layout constants, in points.
const (
	figPad        vg.Length = 6  // around the whole figure
	panelGapX     vg.Length = 10 // between columns of panels
	panelGapY     vg.Length = 8  // between rows of panels
	sideGap       vg.Length = 10 // between the panels and the legend or colour scale
	legendInset   vg.Length = 5  // inside the legend's box
	outerLabelGap vg.Length = 4  // between a figure-wide axis label and the tick labels
)

// Draw draws the figure on c; it implements Drawer.
func (f *Figure) Draw(c draw.Canvas) {
	c.SetColor(color.White)
	c.Fill(c.Rectangle.Path())
	rows := len(f.Panels)
	if rows == 0 || len(f.Panels[0]) == 0 {
		return
	}
	cols := len(f.Panels[0])

	var sideW vg.Length
	switch {
	case f.legend != nil:
		sideW = sideGap + f.legend.Rectangle(c).Size().X + 2*legendInset
	case f.colorScale != nil:
		sideW = sideGap + f.colorScale.width()
	}
	area := draw.Crop(c, figPad, -figPad-sideW, figPad, -figPad)
	xl, yl := textStyle(labelSize), textStyle(labelSize)
	xl.XAlign, xl.YAlign = draw.XCenter, draw.YBottom
	yl.XAlign, yl.YAlign = draw.XCenter, draw.YTop
	yl.Rotation = math.Pi / 2
	if f.xLabel != "" {
		area.Min.Y += xl.Height(f.xLabel) + outerLabelGap
	}
	if f.yLabel != "" {
		area.Min.X += yl.Height(f.yLabel) + outerLabelGap
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: panelGapX, PadY: panelGapY}
	canvases := plot.Align(f.Panels, tiles, area)

	// The data areas' outer extent, for placing labels and the side
	// element.
	top, bottom := vg.Length(math.Inf(-1)), vg.Length(math.Inf(1))
	left, right := vg.Length(math.Inf(1)), vg.Length(math.Inf(-1))
	for r, row := range f.Panels {
		for k, p := range row {
			if p == nil {
				continue
			}
			p.Draw(canvases[r][k])
			dc := p.DataCanvas(canvases[r][k])
			top = max(top, dc.Max.Y)
			bottom = min(bottom, dc.Min.Y)
			left = min(left, dc.Min.X)
			right = max(right, dc.Max.X)
		}
	}
	if math.IsInf(float64(top), 0) {
		return
	}
	if f.xLabel != "" {
		descent := xl.FontExtents().Descent
		c.FillText(xl, vg.Point{X: (left + right) / 2, Y: c.Min.Y + figPad + descent}, f.xLabel)
	}
	if f.yLabel != "" {
		c.FillText(yl, vg.Point{X: c.Min.X + figPad, Y: (top + bottom) / 2}, f.yLabel)
	}
	side := area.Max.X + sideGap
	switch {
	case f.legend != nil:
		drawLegendBox(c, f.legend, side, top)
	case f.colorScale != nil:
		f.colorScale.draw(c, side, bottom, top)
	}
}

// drawLegendBox draws l in a white box with a thin grey border whose top
// left corner is at (left, top).
func drawLegendBox(c draw.Canvas, l *plot.Legend, left, top vg.Length) {
	size := l.Rectangle(c).Size()
	box := vg.Rectangle{
		Min: vg.Point{X: left, Y: top - size.Y - 2*legendInset},
		Max: vg.Point{X: left + size.X + 2*legendInset, Y: top},
	}
	c.SetColor(color.White)
	c.Fill(box.Path())
	c.SetLineStyle(draw.LineStyle{Color: color.Gray{Y: 190}, Width: vg.Points(0.6)})
	c.Stroke(box.Path())
	inner := draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{
		Min: vg.Point{X: box.Min.X + legendInset, Y: box.Min.Y + legendInset},
		Max: vg.Point{X: box.Max.X - legendInset, Y: box.Max.Y - legendInset},
	}}
	l.Draw(inner)
}

// newLegend returns an empty legend in the package's style: icons on the
// left, entries from the top.
func newLegend() *plot.Legend {
	l := plot.NewLegend()
	l.TextStyle = textStyle(legendSize)
	l.Top, l.Left = true, true
	l.ThumbnailWidth = vg.Points(22)
	l.Padding = vg.Points(2)
	l.YPosition = draw.PosCenter
	return &l
}

// colorScale is a vertical colour bar for values in [min, max] coloured
// by colorOf, with a rotated label on its right.
type colorScale struct {
	min, max float64
	colorOf  func(float64) color.Color
	ticks    []float64
	label    string
}

// Colour-scale dimensions, in points.
const (
	barWidth vg.Length = 11
	tickLen  vg.Length = 3
)

func (s *colorScale) tickStyle() text.Style {
	sty := textStyle(tickSize)
	sty.YAlign = draw.YCenter
	return sty
}

func (s *colorScale) labelStyle() text.Style {
	sty := textStyle(labelSize)
	sty.Rotation = math.Pi / 2 // reads bottom to top, its top towards the bar
	sty.XAlign, sty.YAlign = draw.XCenter, draw.YTop
	return sty
}

// width is the horizontal space the scale needs: bar, ticks, labels and
// the rotated title.
func (s *colorScale) width() vg.Length {
	var w vg.Length
	sty := s.tickStyle()
	for _, t := range s.ticks {
		w = max(w, sty.Width(formatNumber(t)))
	}
	return barWidth + tickLen + vg.Points(2) + w + vg.Points(6) + s.labelStyle().Height(s.label)
}

// draw draws the scale with its bar spanning [bottom, top] vertically.
func (s *colorScale) draw(c draw.Canvas, left, bottom, top vg.Length) {
	const steps = 100
	h := (top - bottom) / steps
	for i := range steps {
		v := s.min + (s.max-s.min)*(float64(i)+0.5)/steps
		y0 := bottom + vg.Length(i)*h
		r := vg.Rectangle{Min: vg.Point{X: left, Y: y0}, Max: vg.Point{X: left + barWidth, Y: y0 + h + vg.Points(0.3)}}
		c.SetColor(s.colorOf(v))
		c.Fill(r.Path())
	}
	frame := vg.Rectangle{Min: vg.Point{X: left, Y: bottom}, Max: vg.Point{X: left + barWidth, Y: top}}
	line := draw.LineStyle{Color: color.Black, Width: vg.Points(0.6)}
	c.SetLineStyle(line)
	c.Stroke(frame.Path())

	sty := s.tickStyle()
	var labelW vg.Length
	for _, t := range s.ticks {
		y := bottom + (top-bottom)*vg.Length((t-s.min)/(s.max-s.min))
		c.StrokeLine2(line, left+barWidth, y, left+barWidth+tickLen, y)
		txt := formatNumber(t)
		c.FillText(sty, vg.Point{X: left + barWidth + tickLen + vg.Points(2), Y: y}, txt)
		labelW = max(labelW, sty.Width(txt))
	}
	x := left + barWidth + tickLen + vg.Points(2) + labelW + vg.Points(6)
	c.FillText(s.labelStyle(), vg.Point{X: x, Y: (top + bottom) / 2}, s.label)
}
