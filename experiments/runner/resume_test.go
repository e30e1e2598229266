package runner

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"kvcascade/results"
)

// versionSweep is a small latency sweep on the fixture model: 2 lengths ×
// the given policies (TOML tables), with a comment line that edits can
// change.
func versionSweep(t *testing.T, comment, policies string) string {
	return fmt.Sprintf(`# %s
name = "versions"
chunk = 8

[[model]]
path = '%s'

[[experiment]]
name = "latency"
params = { length = [16, 24], decode_tokens = 1, warmup = false }
%s`, comment, fixtureModel(t), policies)
}

const (
	fullPolicy = "\n[[policy]]\nname = \"full\"\n"
	sinkPolicy = "\n[[policy]]\nname = \"sink\"\nparams = { sinks = 2, window = 8 }\n"
)

// TestEditsKeepIdentity: a sweep is its name. Editing a comment runs
// nothing, adding a policy runs only the new points, and reads by name see
// the current version only, never a mix.
func TestEditsKeepIdentity(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, filepath.Join(dir, "r.db"))
	runText := func(text string) Summary {
		t.Helper()
		sum, err := Run(context.Background(), db, loadSweep(t, writeSweep(t, dir, text)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	count := func() int {
		t.Helper()
		rows, err := db.Points(results.Filter{Sweep: "versions"})
		if err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}

	if sum := runText(versionSweep(t, "first", fullPolicy)); sum.Ran != 2 {
		t.Fatalf("first run ran %d points, want 2", sum.Ran)
	}
	if sum := runText(versionSweep(t, "an edited comment", fullPolicy)); sum.Ran != 0 || sum.Carried != 2 || sum.Skipped != 2 {
		t.Errorf("after a comment edit: ran %d, carried %d, skipped %d; want 0, 2, 2", sum.Ran, sum.Carried, sum.Skipped)
	}
	if n := count(); n != 2 {
		t.Errorf("the sweep reads as %d points, want the current version's 2", n)
	}
	sum := runText(versionSweep(t, "a policy more", fullPolicy+sinkPolicy))
	if sum.Ran != 2 || sum.Carried != 2 || sum.Counts != (results.Counts{Done: 4}) {
		t.Errorf("after adding a policy: ran %d, carried %d, counts %+v; want 2 run, 2 carried, 4 done", sum.Ran, sum.Carried, sum.Counts)
	}
	if n := count(); n != 4 {
		t.Errorf("the sweep reads as %d points, want 4", n)
	}
	ms, err := db.Metrics(results.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 4*len(latencyMetrics) {
		t.Errorf("all sweeps read as %d metrics, want the current version's %d", len(ms), 4*len(latencyMetrics))
	}

	versions, err := db.Versions("versions")
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != 3 || !versions[2].Current || versions[0].Current || versions[2].Version != 3 {
		t.Fatalf("versions %+v, want 3 with the last current", versions)
	}
	// An older version stays readable by NAME@N, on its own.
	old, err := db.Points(results.Filter{Sweep: "versions@1"})
	if err != nil || len(old) != 2 || old[0].SweepID != versions[0].ID {
		t.Errorf("versions@1: %d points, %v; want version 1's 2", len(old), err)
	}
	// Running the first text again makes it current again and runs nothing.
	if sum := runText(versionSweep(t, "first", fullPolicy)); sum.Ran != 0 {
		t.Errorf("re-running version 1 ran %d points", sum.Ran)
	}
	if cur, err := db.Sweep("versions"); err != nil || cur.Version != 1 {
		t.Errorf("current version %+v, %v; want 1", cur, err)
	}
	if _, err := db.Sweep("versions@7"); err == nil {
		t.Error("versions@7: no error")
	}
	if _, err := db.Sweep("nosuch"); err == nil {
		t.Error("unknown sweep: no error")
	}
}

// TestFailedRunAgain: failed points run again on the next run unless
// KeepFailed; Force runs everything.
func TestFailedRunAgain(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, filepath.Join(dir, "r.db"))
	s := loadSweep(t, writeSweep(t, dir, versionSweep(t, "x", fullPolicy)))
	sum, err := Run(context.Background(), db, s, Options{})
	if err != nil || sum.Ran != 2 {
		t.Fatalf("first run: %v, ran %d", err, sum.Ran)
	}
	// Mark one point failed as a crash of its experiment would.
	p, err := db.Points(results.Filter{Sweep: s.Name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ResetPoints(sum.SweepID, []string{p[0].Hash}); err != nil {
		t.Fatal(err)
	}
	claimed, err := db.Claim(sum.SweepID, "test")
	if err != nil || claimed == nil {
		t.Fatalf("claim: %v", err)
	}
	if err := db.Finish(claimed, results.Outcome{Err: errors.New("boom")}); err != nil {
		t.Fatal(err)
	}
	if sum, err := Run(context.Background(), db, s, Options{KeepFailed: true}); err != nil || sum.Ran != 0 || sum.Counts.Failed != 1 {
		t.Errorf("KeepFailed: %v, ran %d, counts %+v; want the failed point left alone", err, sum.Ran, sum.Counts)
	}
	if sum, err := Run(context.Background(), db, s, Options{}); err != nil || sum.Ran != 1 || sum.Counts != (results.Counts{Done: 2}) {
		t.Errorf("re-run: %v, ran %d, counts %+v; want the failed point run again", err, sum.Ran, sum.Counts)
	}
	if sum, err := Run(context.Background(), db, s, Options{Force: true}); err != nil || sum.Ran != 2 {
		t.Errorf("force: %v, ran %d; want 2", err, sum.Ran)
	}
}

// TestInterruptReleasesPoint: a run whose context is cancelled (SIGINT,
// SIGTERM) puts the running point back to pending at once, so the next run
// takes it up without waiting for its heartbeat to go stale.
func TestInterruptReleasesPoint(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, filepath.Join(dir, "r.db"))
	s := loadSweep(t, writeSweep(t, dir, fmt.Sprintf(`name = "long"
chunk = 8
[[model]]
path = '%s'
[[experiment]]
name = "latency"
params = { length = 100000, decode_tokens = 1, warmup = false }
[[policy]]
name = "full"
`, fixtureModel(t))))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once the point is running.
		for ctx.Err() == nil {
			if rows, err := db.Points(results.Filter{Sweep: "long", Status: results.Running}); err == nil && len(rows) > 0 {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	start := time.Now()
	sum, err := Run(ctx, db, s, Options{StaleAfter: time.Hour})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the interrupted run took %s", took)
	}
	c, err := db.Status(sum.SweepID)
	if err != nil {
		t.Fatal(err)
	}
	if c != (results.Counts{Pending: 1}) {
		t.Errorf("after the interrupt: %+v, want the point pending", c)
	}
}
