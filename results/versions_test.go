package results

import (
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMigrateVersions: a database of schema 1, where each edit of a sweep
// was a sweep of its own, opens with the later text as the sweep's current
// version, and reads by name see that version only.
func TestMigrateVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1.db")
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{migrations[0], "PRAGMA user_version = 1",
		`INSERT INTO sweeps (name, config, config_hash, created) VALUES ('s', 'a', '` + configHash("a") + `', '2026-01-01T00:00:00.000000000Z')`,
		`INSERT INTO sweeps (name, config, config_hash, created) VALUES ('s', 'b', '` + configHash("b") + `', '2026-01-02T00:00:00.000000000Z')`,
		`INSERT INTO points (sweep_id, hash, experiment, model, policy, params, status) VALUES (1, 'x', 'e', 'm', 'p', '{}', 'done')`,
		`INSERT INTO points (sweep_id, hash, experiment, model, policy, params, status) VALUES (2, 'x', 'e', 'm', 'p', '{}', 'done')`,
		`INSERT INTO points (sweep_id, hash, experiment, model, policy, params, status) VALUES (2, 'y', 'e', 'm', 'p', '{}', 'done')`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cur, err := db.Sweep("s")
	if err != nil || cur.ID != 2 || cur.Version != 2 || !cur.Current {
		t.Errorf("current version %+v, %v; want the second text", cur, err)
	}
	rows, err := db.Points(Filter{Sweep: "s"})
	if err != nil || len(rows) != 2 {
		t.Errorf("points of s: %d, %v; want the current version's 2", len(rows), err)
	}
	rows, err = db.Points(Filter{})
	if err != nil || len(rows) != 2 {
		t.Errorf("points of every sweep: %d, %v; want 2", len(rows), err)
	}
	// Registering the first text again makes it current.
	id, err := db.EnsureSweep("s", "a")
	if err != nil || id != 1 {
		t.Fatalf("EnsureSweep: %d, %v", id, err)
	}
	if cur, err := db.Sweep("s"); err != nil || cur.ID != 1 {
		t.Errorf("after re-registering the first text: %+v, %v", cur, err)
	}
}

// TestCarryOver: pending points take the outcome of a done point with the
// same hash in another version of the same sweep, with its metrics and
// samples; failed points and other sweeps' points are not carried.
func TestCarryOver(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v1, _ := db.EnsureSweep("s", "one")
	other, _ := db.EnsureSweep("t", "one")
	pts := specs(3)
	for _, id := range []int64{v1, other} {
		if _, err := db.AddPoints(id, pts); err != nil {
			t.Fatal(err)
		}
	}
	// v1: point 0 done with a metric and a sample, point 1 failed; sweep t:
	// point 2 done.
	finish := func(sweep int64, o Outcome) {
		t.Helper()
		p, err := db.Claim(sweep, "w")
		if err != nil || p == nil {
			t.Fatalf("claim: %v", err)
		}
		if err := db.Finish(p, o); err != nil {
			t.Fatal(err)
		}
	}
	finish(v1, Outcome{Metrics: []Metric{{Name: "accuracy", Value: 50, Unit: "%"}}, Samples: []json.RawMessage{json.RawMessage(`{"a":1}`)}})
	finish(v1, Outcome{Err: errors.New("boom")})
	for i := 0; i < 3; i++ {
		finish(other, Outcome{})
	}
	v2, _ := db.EnsureSweep("s", "two")
	if _, err := db.AddPoints(v2, pts); err != nil {
		t.Fatal(err)
	}
	n, err := db.CarryOver(v2)
	if err != nil || n != 1 {
		t.Fatalf("CarryOver: %d, %v; want 1", n, err)
	}
	c, _ := db.Status(v2)
	if c != (Counts{Done: 1, Pending: 2}) {
		t.Errorf("version 2: %+v, want 1 done, 2 pending", c)
	}
	ms, err := db.Metrics(Filter{Sweep: "s"})
	if err != nil || len(ms) != 1 || ms[0].Value != 50 || ms[0].Hash != pts[0].Hash {
		t.Errorf("metrics of version 2: %+v, %v", ms, err)
	}
	rows, _ := db.Points(Filter{Sweep: "s", Status: Done})
	if s, err := db.Samples(rows[0].ID); err != nil || len(s) != 1 || string(s[0]) != `{"a":1}` {
		t.Errorf("samples carried: %s, %v", s, err)
	}
	if n, err := db.CarryOver(v2); err != nil || n != 0 {
		t.Errorf("second CarryOver: %d, %v; want 0", n, err)
	}
}

// TestMigrateSplitParams: the migration to schema 4 splits each point's
// mixed parameters by its experiment's declared parameters and records the
// experiment's figures; Flatten gives back the object it split, so exports
// do not change. Without the declarations, a point whose keys cannot be
// told apart refuses the migration, and one with only settings does not.
func TestMigrateSplitParams(t *testing.T) {
	const mixed = `{"backend":"cpu","chunk":512,"experiment.chunk":3,"length":1024,"policy.seed":7,"policy_name":"cascade","seed":1,"size":256}`
	declared := func(exp string) ([]string, []string, bool) {
		if exp != "passkey" {
			return nil, nil, false
		}
		return []string{"length", "seed", "chunk"}, []string{"passkey_grid"}, true
	}
	schema3 := func(t *testing.T, params string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "v3.db")
		raw, err := sql.Open("sqlite3", path)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		qs := append(slices.Clone(migrations[:3]), "PRAGMA user_version = 3",
			`INSERT INTO sweeps (name, config, config_hash, created) VALUES ('s', 'a', '`+configHash("a")+`', '2026-01-01T00:00:00.000000000Z')`,
			`INSERT INTO points (sweep_id, hash, experiment, model, policy, params, status) VALUES (1, 'x', 'passkey', 'm', 'p', '`+params+`', 'done')`)
		for _, q := range qs {
			if _, err := raw.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		return path
	}
	tests := []struct {
		name     string
		params   string
		opt      Options
		wantErr  string
		settings string
		exp, pol string
		figures  []string
	}{
		{"declared", mixed, Options{Declared: declared}, "",
			`{"backend":"cpu","chunk":512,"policy_name":"cascade"}`, `{"length":1024,"seed":1,"chunk":3}`, `{"seed":7,"size":256}`, []string{"passkey_grid"}},
		{"undeclared", mixed, Options{}, `cannot tell whether "length"`, "", "", "", nil},
		{"settings only", `{"backend":"cpu","chunk":512}`, Options{}, "",
			`{"backend":"cpu","chunk":512}`, `{}`, `{}`, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := OpenWith(schema3(t, tt.params), tt.opt)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("OpenWith: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if v, err := db.SchemaVersion(); err != nil || v != len(migrations) {
				t.Errorf("schema version %d, %v", v, err)
			}
			rows, err := db.Points(Filter{})
			if err != nil || len(rows) != 1 {
				t.Fatalf("points: %d, %v", len(rows), err)
			}
			r := rows[0]
			if string(r.Params) != tt.settings || string(r.ExperimentParams) != tt.exp || string(r.PolicyParams) != tt.pol || !slices.Equal(r.Figures, tt.figures) {
				t.Errorf("split into %s | %s | %s | %q, want %s | %s | %s | %q",
					r.Params, r.ExperimentParams, r.PolicyParams, r.Figures, tt.settings, tt.exp, tt.pol, tt.figures)
			}
			flat, err := Flatten(r.Params, r.ExperimentParams, r.PolicyParams)
			if err != nil || string(flat) != tt.params {
				t.Errorf("Flatten: %s, %v; want the stored object %s", flat, err, tt.params)
			}
		})
	}
}
