package results

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"testing"
)

// testConfig is the TOML text of the sweeps the tests create.
const testConfig = `experiment = "passkey"
model = "tiny"
[grid]
policy = ["cascade", "sink"]
length = [1024, 2048, 4096, 8192, 16384]
`

// specs returns n distinct points with grid-like parameters.
func specs(n int) []PointSpec {
	pts := make([]PointSpec, n)
	policies := []string{"cascade", "sink"}
	for i := range pts {
		pts[i] = PointSpec{
			Hash:       fmt.Sprintf("p%04d", i),
			Experiment: "passkey",
			Model:      "tiny",
			Policy:     policies[i%2],
			Params: map[string]any{
				"length": 1024 << (i % 5),
				"depth":  float64(i%4) * 0.25,
				"seed":   i / 40,
				"cache":  map[string]any{"size": 256, "cascades": 1 + i%3},
			},
		}
	}
	return pts
}

// Every outcome that outcomeFor builds has this many metrics.
const metricsPerPoint = 3

// outcomeFor returns a deterministic outcome for the point with this hash:
// metricsPerPoint metrics and nSamples samples of about sampleBytes bytes
// each; every 17th point (by hash) fails.
func outcomeFor(hash string, nSamples, sampleBytes int) Outcome {
	h := fnv.New64a()
	h.Write([]byte(hash))
	x := h.Sum64()
	o := Outcome{
		Metrics: []Metric{
			{Name: "accuracy", Value: float64(x%101) / 100, Unit: "fraction"},
			{Name: "latency", Value: float64(x%997) + 0.5, Unit: "ms"},
			{Name: "tokens", Value: float64(x % 4096), Unit: "tokens"},
		},
		Provenance: Provenance{Host: "test", CPU: "test", GPU: "none", Driver: "none", GoVersion: "go", GitRevision: "rev"},
	}
	pad := make([]byte, sampleBytes)
	for i := range pad {
		pad[i] = 'a' + byte((x+uint64(i))%26)
	}
	for i := range nSamples {
		b, _ := json.Marshal(map[string]any{"hash": hash, "i": i, "pad": string(pad)})
		o.Samples = append(o.Samples, b)
	}
	if x%17 == 0 {
		o.Err = errors.New("out of memory")
	}
	return o
}

// work claims and finishes points of a sweep until none is pending, calling
// done after each.
func work(db *DB, sweep int64, worker string, nSamples, sampleBytes int, done func(hash string)) error {
	for {
		p, err := db.Claim(sweep, worker)
		if err != nil {
			return err
		}
		if p == nil {
			return nil
		}
		if err := db.Finish(p, outcomeFor(p.Hash, nSamples, sampleBytes)); err != nil {
			return err
		}
		done(p.Hash)
	}
}

// openTemp opens a new database in a temporary directory.
func openTemp(t *testing.T, name string) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newSweep opens a new database with one sweep of n points.
func newSweep(t *testing.T, n int) (*DB, int64) {
	t.Helper()
	db := openTemp(t, "results.db")
	id, err := db.EnsureSweep("test", testConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddPoints(id, specs(n)); err != nil {
		t.Fatal(err)
	}
	return db, id
}

// count returns the result of a counting query.
func count(t *testing.T, db *DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.r.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// rawExec runs statements on the file at path without this package's checks.
func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// checkComplete verifies that every done or failed point of a sweep has
// exactly the results outcomeFor gives it and that other points have none.
func checkComplete(t *testing.T, db *DB, nSamples int) {
	t.Helper()
	pts, err := db.Points(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pts {
		metrics := count(t, db, `SELECT count(*) FROM metrics WHERE point_id = ?`, p.ID)
		samples := count(t, db, `SELECT count(*) FROM samples WHERE point_id = ?`, p.ID)
		wantM, wantS := 0, 0
		if p.Status == Done || p.Status == Failed {
			wantM, wantS = metricsPerPoint, nSamples
			want := outcomeFor(p.Hash, nSamples, 0)
			if (p.Status == Failed) != (want.Err != nil) {
				t.Errorf("point %s: status %s, error %v", p.Hash, p.Status, want.Err)
			}
		}
		if metrics != wantM || samples != wantS {
			t.Errorf("point %s (%s): %d metrics, %d samples; want %d, %d", p.Hash, p.Status, metrics, samples, wantM, wantS)
		}
	}
}
