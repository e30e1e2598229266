package results

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestEnsureSweep(t *testing.T) {
	db := openTemp(t, "r.db")
	first, err := db.EnsureSweep("passkey", testConfig)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, sweep, config string
		same                bool // want the first sweep's id
		wantErr             bool
	}{
		{name: "same name and config", sweep: "passkey", config: testConfig, same: true},
		{name: "edited config", sweep: "passkey", config: testConfig + "# edited\n"},
		{name: "other name", sweep: "ppl", config: testConfig},
		{name: "empty name", sweep: "", config: testConfig, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := db.EnsureSweep(tt.sweep, tt.config)
			if (err != nil) != tt.wantErr {
				t.Fatalf("EnsureSweep: %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (id == first) != tt.same {
				t.Errorf("id %d, first %d; want same %v", id, first, tt.same)
			}
		})
	}
}

func TestAddPoints(t *testing.T) {
	db, sweep := newSweep(t, 10)
	// Finish one point so that re-adding it must leave it alone.
	p, err := db.Claim(sweep, "w")
	if err != nil || p == nil {
		t.Fatalf("Claim: %v, %v", p, err)
	}
	if err := db.Finish(p, Outcome{Metrics: []Metric{{Name: "m", Value: 1}}}); err != nil {
		t.Fatal(err)
	}
	changed := specs(10)[0]
	changed.Params = map[string]any{"other": true}
	tests := []struct {
		name      string
		sweep     int64
		pts       []PointSpec
		wantAdded int
		wantErr   string
	}{
		{name: "all present", sweep: sweep, pts: specs(10), wantAdded: 0},
		{name: "some new", sweep: sweep, pts: specs(15), wantAdded: 5},
		{name: "existing hash with other params", sweep: sweep, pts: []PointSpec{changed}, wantAdded: 0},
		{name: "nil params", sweep: sweep, pts: []PointSpec{{Hash: "nil-params"}}, wantAdded: 1},
		{name: "empty", sweep: sweep, pts: nil, wantAdded: 0},
		{name: "duplicate in batch", sweep: sweep, pts: append(specs(2), specs(2)[1]), wantErr: "same hash"},
		{name: "no hash", sweep: sweep, pts: []PointSpec{{Policy: "sink"}}, wantErr: "no hash"},
		{name: "unknown sweep", sweep: sweep + 100, pts: specs(1), wantErr: "no sweep"},
		{name: "unencodable params", sweep: sweep, pts: []PointSpec{{Hash: "x", Params: map[string]any{"f": math.Inf(1)}}}, wantErr: "params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			added, err := db.AddPoints(tt.sweep, tt.pts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("AddPoints: %v; want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if added != tt.wantAdded {
				t.Errorf("added %d, want %d", added, tt.wantAdded)
			}
		})
	}
	rows, err := db.Points(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 16 {
		t.Errorf("%d points, want 16", len(rows))
	}
	if rows[0].Status != Done || string(rows[0].Params) != `{"cache":{"cascades":1,"size":256},"depth":0,"length":1024,"seed":0}` {
		t.Errorf("first point changed: %s %s", rows[0].Status, rows[0].Params)
	}
	if last := rows[len(rows)-1]; last.Hash != "nil-params" || string(last.Params) != "{}" {
		t.Errorf("last point %s params %s, want nil-params {}", last.Hash, last.Params)
	}
}

func TestLifecycle(t *testing.T) {
	db, sweep := newSweep(t, 3)
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	db.now = func() time.Time { return clock }

	p1, err := db.Claim(sweep, "worker-1")
	if err != nil {
		t.Fatal(err)
	}
	if p1.Hash != "p0000" || p1.Attempt != 1 || p1.Worker != "worker-1" || !p1.Started.Equal(clock) {
		t.Errorf("first claim %+v", p1)
	}
	var params map[string]any
	if err := json.Unmarshal(p1.Params, &params); err != nil || params["length"] != 1024.0 {
		t.Errorf("params %s: %v", p1.Params, err)
	}
	p2, err := db.Claim(sweep, "worker-2")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := db.Status(sweep); c != (Counts{Pending: 1, Running: 2}) {
		t.Errorf("status after two claims %+v", c)
	}
	if err := db.AddTelemetry(p1, []Telemetry{{TimeS: 0.5, Name: "gpu_mem", Value: 1e9}, {TimeS: 1, Name: "gpu_mem", Value: 2e9}}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(90 * time.Second)
	if err := db.Heartbeat(p1); err != nil {
		t.Fatal(err)
	}
	pv := Provenance{Host: "h", CPU: "c", GPU: "g", Driver: "d", GoVersion: "go", GitRevision: "r"}
	samples := []json.RawMessage{json.RawMessage(`{"a":1}`), json.RawMessage(`[2]`), json.RawMessage(`"three"`)}
	if err := db.Finish(p1, Outcome{
		Metrics:    []Metric{{Name: "accuracy", Value: 0.75, Unit: "fraction"}, {Name: "ppl", Value: math.NaN()}, {Name: "ratio", Value: math.Inf(1)}},
		Samples:    samples,
		Provenance: pv,
	}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Second)
	if err := db.Finish(p2, Outcome{Err: errors.New("CUDA out of memory")}); err != nil {
		t.Fatal(err)
	}
	if c, _ := db.Status(sweep); c != (Counts{Pending: 1, Done: 1, Failed: 1}) || c.Total() != 3 {
		t.Errorf("status after finishing %+v", c)
	}

	rows, err := db.Points(Filter{Status: Done})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d done points, want 1", len(rows))
	}
	r := rows[0]
	if r.Hash != "p0000" || r.Sweep != "test" || r.Provenance != pv || r.Worker != "worker-1" || r.Attempt != 1 ||
		r.Duration != 90*time.Second || !r.Finished.Equal(clock.Add(-time.Second)) || !r.Heartbeat.Equal(clock.Add(-time.Second)) {
		t.Errorf("done point %+v", r)
	}
	failed, err := db.Points(Filter{Status: Failed, Policy: "sink"})
	if err != nil || len(failed) != 1 || failed[0].Error != "CUDA out of memory" {
		t.Errorf("failed points %+v, %v", failed, err)
	}

	got, err := db.Samples(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(samples) {
		t.Fatalf("%d samples, want %d", len(got), len(samples))
	}
	for i := range got {
		if string(got[i]) != string(samples[i]) {
			t.Errorf("sample %d = %s, want %s", i, got[i], samples[i])
		}
	}
	ms, err := db.Metrics(Filter{Sweep: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[0].Name != "accuracy" || ms[0].Value != 0.75 || ms[0].Unit != "fraction" ||
		!math.IsNaN(ms[1].Value) || !math.IsInf(ms[2].Value, 1) || ms[0].Hash != "p0000" || ms[0].Status != Done {
		t.Errorf("metrics %+v", ms)
	}
	if n := count(t, db, `SELECT count(*) FROM telemetry WHERE point_id = ?`, r.ID); n != 2 {
		t.Errorf("%d telemetry rows, want 2", n)
	}

	p3, err := db.Claim(sweep, "worker-1")
	if err != nil || p3 == nil || p3.Hash != "p0002" {
		t.Fatalf("third claim %+v, %v", p3, err)
	}
	if p, err := db.Claim(sweep, "worker-1"); p != nil || err != nil {
		t.Errorf("claim with nothing pending: %+v, %v; want nil, nil", p, err)
	}
	if _, err := db.Claim(sweep, ""); err == nil {
		t.Error("claim with an empty worker name succeeded")
	}
}

func TestFinishIsAtomic(t *testing.T) {
	db, sweep := newSweep(t, 1)
	p, err := db.Claim(sweep, "w")
	if err != nil {
		t.Fatal(err)
	}
	good := []Metric{{Name: "a", Value: 1}, {Name: "b", Value: 2}}
	tests := []struct {
		name    string
		o       Outcome
		wantErr string
	}{
		{"duplicate metric", Outcome{Metrics: append(good, Metric{Name: "a", Value: 3})}, "UNIQUE"},
		{"metric without name", Outcome{Metrics: append(good, Metric{Value: 3})}, "empty name"},
		{"invalid sample", Outcome{Metrics: good, Samples: []json.RawMessage{json.RawMessage(`{}`), json.RawMessage(`{`)}}, "sample 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.Finish(p, tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Finish: %v; want an error containing %q", err, tt.wantErr)
			}
			if n := count(t, db, `SELECT count(*) FROM metrics`) + count(t, db, `SELECT count(*) FROM samples`); n != 0 {
				t.Errorf("a failed Finish left %d rows", n)
			}
			if c, _ := db.Status(sweep); c.Running != 1 {
				t.Errorf("status %+v; want the point still running", c)
			}
		})
	}
	if err := db.Finish(p, Outcome{Metrics: good}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT count(*) FROM metrics`); n != 2 {
		t.Errorf("%d metrics, want 2", n)
	}
}

func TestClaimLost(t *testing.T) {
	tests := []struct {
		name string
		// lose takes p's claim away.
		lose func(t *testing.T, db *DB, sweep int64, p *Point)
	}{
		{"reset stale and claimed again", func(t *testing.T, db *DB, sweep int64, p *Point) {
			if n, err := db.ResetStale(sweep, 0); n != 1 || err != nil {
				t.Fatalf("ResetStale: %d, %v", n, err)
			}
			if q, err := db.Claim(sweep, "other"); err != nil || q.Hash != p.Hash || q.Attempt != 2 {
				t.Fatalf("second claim %+v, %v", q, err)
			}
		}},
		{"reset stale, not claimed again", func(t *testing.T, db *DB, sweep int64, p *Point) {
			if n, err := db.ResetStale(sweep, 0); n != 1 || err != nil {
				t.Fatalf("ResetStale: %d, %v", n, err)
			}
		}},
		{"finished by itself", func(t *testing.T, db *DB, sweep int64, p *Point) {
			if err := db.Finish(p, Outcome{}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, sweep := newSweep(t, 1)
			p, err := db.Claim(sweep, "w")
			if err != nil {
				t.Fatal(err)
			}
			tt.lose(t, db, sweep, p)
			calls := map[string]error{
				"Finish":       db.Finish(p, Outcome{Metrics: []Metric{{Name: "late", Value: 1}}}),
				"Heartbeat":    db.Heartbeat(p),
				"AddTelemetry": db.AddTelemetry(p, []Telemetry{{Name: "late"}}),
			}
			for name, err := range calls {
				if !errors.Is(err, ErrClaimLost) {
					t.Errorf("%s: %v; want ErrClaimLost", name, err)
				}
			}
			if n := count(t, db, `SELECT count(*) FROM metrics WHERE name = 'late'`) +
				count(t, db, `SELECT count(*) FROM telemetry WHERE name = 'late'`); n != 0 {
				t.Errorf("a lost claim wrote %d rows", n)
			}
		})
	}
}

func TestResetStale(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		beatAfter time.Duration // heartbeat this long after the claim (0: none)
		now       time.Duration // ResetStale this long after the claim
		olderThan time.Duration
		wantReset int
	}{
		{name: "fresh claim", now: time.Minute, olderThan: 5 * time.Minute, wantReset: 0},
		{name: "old claim", now: 10 * time.Minute, olderThan: 5 * time.Minute, wantReset: 1},
		{name: "old claim, recent heartbeat", beatAfter: 8 * time.Minute, now: 10 * time.Minute, olderThan: 5 * time.Minute, wantReset: 0},
		{name: "old heartbeat", beatAfter: 2 * time.Minute, now: 10 * time.Minute, olderThan: 5 * time.Minute, wantReset: 1},
		{name: "exactly at the limit", now: 5 * time.Minute, olderThan: 5 * time.Minute, wantReset: 1},
		{name: "zero resets every running point", olderThan: 0, wantReset: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, sweep := newSweep(t, 3)
			clock := start
			db.now = func() time.Time { return clock }
			done, err := db.Claim(sweep, "w")
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Finish(done, Outcome{}); err != nil {
				t.Fatal(err)
			}
			p, err := db.Claim(sweep, "w")
			if err != nil {
				t.Fatal(err)
			}
			if tt.beatAfter > 0 {
				clock = start.Add(tt.beatAfter)
				if err := db.Heartbeat(p); err != nil {
					t.Fatal(err)
				}
			}
			clock = start.Add(tt.now)
			n, err := db.ResetStale(sweep, tt.olderThan)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.wantReset {
				t.Errorf("reset %d points, want %d", n, tt.wantReset)
			}
			want := Counts{Pending: 1 + tt.wantReset, Running: 1 - tt.wantReset, Done: 1}
			if c, _ := db.Status(sweep); c != want {
				t.Errorf("status %+v, want %+v", c, want)
			}
		})
	}
}

func TestResetPoints(t *testing.T) {
	tests := []struct {
		name      string
		hashes    []string
		wantReset int
	}{
		{"all", nil, 2},
		{"one", []string{"p0001"}, 1},
		{"repeated", []string{"p0001", "p0001"}, 1},
		{"running and pending untouched", []string{"p0002", "p0003"}, 0},
		{"unknown", []string{"nope"}, 0},
		{"none", []string{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, sweep := newSweep(t, 4)
			for range 2 { // p0000 done, p0001 failed
				p, err := db.Claim(sweep, "w")
				if err != nil {
					t.Fatal(err)
				}
				o := Outcome{Metrics: []Metric{{Name: "m", Value: 1}}, Samples: []json.RawMessage{json.RawMessage("1")}}
				if p.Hash == "p0001" {
					o.Err = errors.New("boom")
				}
				if err := db.Finish(p, o); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.Claim(sweep, "w"); err != nil { // p0002 running
				t.Fatal(err)
			}
			n, err := db.ResetPoints(sweep, tt.hashes)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.wantReset {
				t.Errorf("reset %d, want %d", n, tt.wantReset)
			}
			c, _ := db.Status(sweep)
			if c.Pending != 1+tt.wantReset || c.Running != 1 || c.Done+c.Failed != 2-tt.wantReset {
				t.Errorf("status %+v", c)
			}
			if m := count(t, db, `SELECT count(*) FROM metrics`); m != 2-tt.wantReset {
				t.Errorf("%d metric rows left, want %d", m, 2-tt.wantReset)
			}
			if s := count(t, db, `SELECT count(*) FROM samples`); s != 2-tt.wantReset {
				t.Errorf("%d sample rows left, want %d", s, 2-tt.wantReset)
			}
		})
	}
}
