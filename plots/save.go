package plots

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgeps"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgpdf"
	"gonum.org/v1/plot/vg/vgsvg"

	"kvcascade/internal/atomicfile"
)

// Drawer is anything that draws itself on a canvas: a *Figure, or a
// *plot.Plot from gonum.org/v1/plot.
type Drawer interface {
	Draw(c draw.Canvas)
}

// Default figure size and PNG resolution.
const (
	// DefaultWidth and DefaultHeight are the size Save uses for a Drawer
	// that has no size of its own (a bare *plot.Plot): 6 × 4 inches.
	DefaultWidth  = 6 * vg.Inch
	DefaultHeight = 4 * vg.Inch

	// PNGDPI is the resolution of PNG output, in dots per inch.
	PNGDPI = 200
)

// Save draws d at width × height and writes it to path in the format its
// extension names: .png (at PNGDPI), .svg, .pdf (fonts embedded) or .eps.
// A zero width or height means the size d suggests through a
// Size() (width, height vg.Length) method (every *Figure has one), or
// DefaultWidth × DefaultHeight. The file is written only once drawing has
// succeeded.
func Save(d Drawer, path string, width, height vg.Length) (err error) {
	if d == nil {
		return fmt.Errorf("save %s: nothing to draw", path)
	}
	if width < 0 || height < 0 {
		return fmt.Errorf("save %s: negative size %v × %v", path, width, height)
	}
	if width == 0 || height == 0 {
		width, height = DefaultWidth, DefaultHeight
		if s, ok := d.(interface{ Size() (vg.Length, vg.Length) }); ok {
			if w, h := s.Size(); w > 0 && h > 0 {
				width, height = w, h
			}
		}
	}
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".png":
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(PNGDPI))}
	case ".svg":
		c = vgsvg.New(width, height)
	case ".pdf":
		c = vgpdf.New(width, height)
	case ".eps":
		c = vgeps.New(width, height)
	default:
		return fmt.Errorf("save %s: unknown format %q (want .png, .svg, .pdf or .eps)", path, ext)
	}
	if err := drawSafely(d, draw.New(c)); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return fmt.Errorf("save %s: encode: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// drawSafely draws d on c, turning a panic inside gonum/plot (which it
// uses for bad ranges, such as a non-positive value on a log axis of a
// hand-edited plot) into an error.
func drawSafely(d Drawer, c draw.Canvas) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("draw: %v", r)
			if e, ok := r.(error); ok {
				err = fmt.Errorf("draw: %w", e)
			}
		}
	}()
	d.Draw(c)
	return nil
}

// ErrNoData is wrapped by the error a builder returns for empty input.
var ErrNoData = errors.New("no data")
