package results

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mergePoints is the size of the sweep the merge tests use.
const mergePoints = 100

// finishN claims and finishes n points of a sweep.
func finishN(t *testing.T, db *DB, sweep int64, n int) {
	t.Helper()
	for range n {
		p, err := db.Claim(sweep, "w")
		if err != nil || p == nil {
			t.Fatalf("Claim: %v, %v", p, err)
		}
		if err := db.AddTelemetry(p, []Telemetry{{TimeS: 1, Name: "gpu_mem", Value: 1}}); err != nil {
			t.Fatal(err)
		}
		if err := db.Finish(p, outcomeFor(p.Hash, 2, 8)); err != nil {
			t.Fatal(err)
		}
	}
}

// shard writes a database at path with the sweep's points added in the
// given order and the first done of them finished, then one more claimed
// and left running.
func shard(t *testing.T, path string, order []PointSpec, done int) {
	t.Helper()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sweep, err := db.EnsureSweep("test", testConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddPoints(sweep, order); err != nil {
		t.Fatal(err)
	}
	// A sweep that only this shard has, with nothing finished.
	if _, err := db.EnsureSweep("test", testConfig+"# other\n"); err != nil {
		t.Fatal(err)
	}
	finishN(t, db, sweep, done)
	if _, err := db.Claim(sweep, "still-running"); err != nil {
		t.Fatal(err)
	}
}

// exports returns db's CSV and JSON exports.
func exports(t *testing.T, db *DB) string {
	t.Helper()
	var b bytes.Buffer
	for _, f := range []string{"csv", "json"} {
		if err := db.Export(&b, f, ""); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func TestMerge(t *testing.T) {
	dir := t.TempDir()
	all := specs(mergePoints)
	// Shard a finishes points 0-59, shard b points 40-99: 40-59 overlap.
	a, b := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	shard(t, a, all, 60)
	shard(t, b, append(append([]PointSpec(nil), all[40:]...), all[:40]...), 60)

	// What writing every point directly gives.
	direct, sweep := newSweep(t, mergePoints)
	finishN(t, direct, sweep, mergePoints)
	want := exports(t, direct)

	tests := []struct {
		name string
		// dest prepares the database merged into.
		dest func(t *testing.T) *DB
	}{
		{"into an empty database", func(t *testing.T) *DB { return openTemp(t, "dest.db") }},
		{"into the planned sweep", func(t *testing.T) *DB { db, _ := newSweep(t, mergePoints); return db }},
		{"into a sweep with some points running", func(t *testing.T) *DB {
			db, sweep := newSweep(t, mergePoints)
			for range 5 {
				if _, err := db.Claim(sweep, "elsewhere"); err != nil {
					t.Fatal(err)
				}
			}
			return db
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := tt.dest(t)
			for _, step := range []struct {
				src  string
				want int
			}{{a, 60}, {b, 40}, {a, 0}, {b, 0}} {
				added, err := db.Merge(step.src)
				if err != nil {
					t.Fatal(err)
				}
				if added != step.want {
					t.Errorf("merging %s added %d points, want %d", filepath.Base(step.src), added, step.want)
				}
			}
			sweep, err := db.EnsureSweep("test", testConfig)
			if err != nil {
				t.Fatal(err)
			}
			if c, _ := db.Status(sweep); c.Done+c.Failed != mergePoints || c.Total() != mergePoints {
				t.Errorf("status after merging %+v", c)
			}
			if n := count(t, db, `SELECT count(*) FROM sweeps`); n != 2 {
				t.Errorf("%d sweeps, want 2", n)
			}
			if n := count(t, db, `SELECT count(*) FROM telemetry`); n != mergePoints {
				t.Errorf("%d telemetry rows, want %d", n, mergePoints)
			}
			checkComplete(t, db, 2)
			if got := exports(t, db); got != want {
				t.Errorf("export after merging differs from the directly written one:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestMergeKeepsBetterResult(t *testing.T) {
	// One point, finished in both databases with the given statuses.
	tests := []struct {
		name     string
		src, dst Status
		replaced bool
	}{
		{"done over failed", Done, Failed, true},
		{"failed over done", Failed, Done, false},
		{"done over done", Done, Done, false},
		{"failed over failed", Failed, Failed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write := func(path string, status Status, value float64) *DB {
				db, err := Open(path)
				if err != nil {
					t.Fatal(err)
				}
				sweep, err := db.EnsureSweep("test", testConfig)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.AddPoints(sweep, specs(1)); err != nil {
					t.Fatal(err)
				}
				p, err := db.Claim(sweep, "w")
				if err != nil {
					t.Fatal(err)
				}
				o := Outcome{Metrics: []Metric{{Name: "m", Value: value}}}
				if status == Failed {
					o.Err = errors.New("failed")
				}
				if err := db.Finish(p, o); err != nil {
					t.Fatal(err)
				}
				return db
			}
			src := write(filepath.Join(dir, "src.db"), tt.src, 1)
			src.Close()
			dst := write(filepath.Join(dir, "dst.db"), tt.dst, 2)
			defer dst.Close()
			added, err := dst.Merge(filepath.Join(dir, "src.db"))
			if err != nil {
				t.Fatal(err)
			}
			ms, err := dst.Metrics(Filter{})
			if err != nil || len(ms) != 1 {
				t.Fatalf("metrics %+v, %v", ms, err)
			}
			if got := added == 1; got != tt.replaced || (ms[0].Value == 1) != tt.replaced {
				t.Errorf("added %d, value %g; want replaced %v", added, ms[0].Value, tt.replaced)
			}
		})
	}
}

func TestMergeErrors(t *testing.T) {
	dir := t.TempDir()
	db := openTemp(t, "dest.db")
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte("not a database at all, not at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(dir, "newer.db")
	if n, err := Open(newer); err != nil {
		t.Fatal(err)
	} else {
		n.Close()
	}
	rawExec(t, newer, "PRAGMA user_version = 1000")
	tests := []struct {
		name, src, wantErr string
	}{
		{"missing", filepath.Join(dir, "missing.db"), "no such file"},
		{"itself", db.path, "itself"},
		{"not a database", garbage, "not an intact SQLite database"},
		{"newer schema", newer, "newer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.Merge(tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.src) {
				t.Errorf("Merge: %v; want an error containing %q and the path", err, tt.wantErr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !os.IsNotExist(err) {
		t.Errorf("Merge created the missing source: %v", err)
	}
	// The destination is still usable: the source was detached.
	if _, err := db.Merge(newer); err == nil {
		t.Error("second merge of a newer database succeeded")
	}
	if _, err := db.EnsureSweep("after", testConfig); err != nil {
		t.Error(err)
	}
}

func TestReplaces(t *testing.T) {
	statuses := []Status{Pending, Running, Done, Failed}
	want := map[[2]Status]bool{
		{Done, Pending}: true, {Done, Running}: true, {Done, Failed}: true,
		{Failed, Pending}: true, {Failed, Running}: true,
	}
	for _, src := range []Status{Done, Failed} {
		for _, dst := range statuses {
			if got := replaces(src, dst); got != want[[2]Status{src, dst}] {
				t.Errorf("replaces(%s, %s) = %v", src, dst, got)
			}
		}
	}
}
