package plots

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"

	"kvcascade/internal/crashtest"
)

// TestSaveStoppedMidway saves a figure over an earlier one in a child
// process that may write only half of it, as if killed while writing: the
// earlier figure must remain whole.
func TestSaveStoppedMidway(t *testing.T) {
	p := plot.New()
	pts, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}, {X: 2, Y: 4}})
	if err != nil {
		t.Fatal(err)
	}
	p.Add(pts)
	if crashtest.Child() {
		t.Logf("stopped save: %v", Save(p, os.Getenv("SAVE_PATH"), 0, 0))
		return
	}
	path := filepath.Join(t.TempDir(), "figure.svg")
	p.Title.Text = "the earlier figure"
	if err := Save(p, path, 0, 0); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	log, err := crashtest.RunLimited(t, uint64(len(old)/2), "SAVE_PATH="+path)
	t.Logf("child: %v\n%s", err, log)
	if now, err := os.ReadFile(path); err != nil || !bytes.Equal(now, old) {
		t.Errorf("figure is %d bytes after the stopped save (%v), want the earlier %d unchanged", len(now), err, len(old))
	}
}
