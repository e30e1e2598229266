package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"kvcascade/results"
)

// TestProvenanceBackend runs one point on a [backend] table and checks that
// its provenance records the backend and the type it actually stored
// tensors in.
func TestProvenanceBackend(t *testing.T) {
	dir := t.TempDir()
	s := loadSweep(t, writeSweep(t, dir, fmt.Sprintf(`name = "backend"
chunk = 8

[[model]]
path = '%s'

[[experiment]]
name = "latency"
params = { length = 16, decode_tokens = 1, warmup = false }

[[policy]]
name = "full"

[backend]
name = "cpu"
dtype = "f32"
`, fixtureModel(t))))
	db := openDB(t, filepath.Join(dir, "results.db"))
	if sum, err := Run(context.Background(), db, s, Options{}); err != nil || sum.Ran != 1 || sum.Failed != 0 {
		t.Fatalf("Run: %+v, %v", sum, err)
	}
	pts, err := db.Points(results.Filter{Sweep: s.Name})
	if err != nil || len(pts) != 1 {
		t.Fatalf("points: %v, %v", pts, err)
	}
	if pv := pts[0].Provenance; pv.Backend != "cpu" || pv.DType != "F32" {
		t.Errorf("provenance backend %q, dtype %q; want cpu, F32", pv.Backend, pv.DType)
	}
}
