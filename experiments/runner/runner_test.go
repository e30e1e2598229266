package runner

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"kvcascade/experiments/sweep"
	"kvcascade/results"
)

// The helper process: TestHelperRunSweep runs a sweep when the test binary
// is re-executed with these variables set, and does nothing otherwise.
const (
	envSweep = "KVCASCADE_RUNNER_HELPER_SWEEP" // sweep file
	envDB    = "KVCASCADE_RUNNER_HELPER_DB"    // results database
	// envPace, a duration, slows the helper down: every progress line
	// takes this long to write. With TTY progress a line is written when a
	// point is claimed and when it is finished, so the helper spends most
	// of its time between Claim and Finish or between Finish and the next
	// Claim, and a parent can kill it in the middle of a sweep of points
	// that otherwise take a millisecond each.
	envPace = "KVCASCADE_RUNNER_HELPER_PACE"
	// envStale is Options.StaleAfter; empty keeps the default.
	envStale = "KVCASCADE_RUNNER_HELPER_STALE"
	// envGo, if set, names a file the helper waits for before it starts,
	// so that several helpers start at the same moment.
	envGo = "KVCASCADE_RUNNER_HELPER_GO"
)

// helperHeartbeat and helperStale are the Options of the kill test.
const (
	helperHeartbeat = 50 * time.Millisecond
	helperStale     = 300 * time.Millisecond
)

// pacedWriter discards what is written to it, taking delay per write.
type pacedWriter struct{ delay time.Duration }

func (w pacedWriter) Write(p []byte) (int, error) {
	time.Sleep(w.delay)
	return len(p), nil
}

// TestHelperRunSweep is not a test: it is the child process of the tests
// that run sweeps in other processes. It prints the run's Summary as JSON
// on its last line of output.
func TestHelperRunSweep(t *testing.T) {
	path := os.Getenv(envSweep)
	if path == "" {
		return
	}
	if f := os.Getenv(envGo); f != "" {
		for {
			if _, err := os.Stat(f); err == nil {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	opt := Options{Heartbeat: helperHeartbeat, StaleAfter: helperStale}
	if s := os.Getenv(envStale); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: %v", envStale, err)
		}
		opt.StaleAfter = d
	}
	if s := os.Getenv(envPace); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: %v", envPace, err)
		}
		opt.Progress, opt.TTY = pacedWriter{d}, true
	}
	s, err := sweep.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := results.Open(os.Getenv(envDB))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sum, err := Run(context.Background(), db, s, opt)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	b, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\nSUMMARY %s\n", b)
}

// helper returns the command that runs the sweep at sweepPath into dbPath
// in a child process; env adds variables.
func helper(t *testing.T, sweepPath, dbPath string, env ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRunSweep$", "-test.v")
	cmd.Env = append(os.Environ(), envSweep+"="+sweepPath, envDB+"="+dbPath)
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

// helperSummary reads the Summary a helper printed.
func helperSummary(t *testing.T, out string) Summary {
	t.Helper()
	for line := range strings.Lines(out) {
		if rest, ok := strings.CutPrefix(line, "SUMMARY "); ok {
			var s Summary
			if err := json.Unmarshal([]byte(rest), &s); err != nil {
				t.Fatalf("helper summary %q: %v", rest, err)
			}
			return s
		}
	}
	t.Fatalf("helper printed no summary:\n%s", out)
	return Summary{}
}

// fixtureModel is the absolute path of the tiny Llama the runtime tests use.
func fixtureModel(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../runtime/model/testdata/llama")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Fatalf("fixture model: %v", err)
	}
	return dir
}

// latencyPoints is the number of points of latencySweep.
const latencyPoints = 16

// latencySweep writes a sweep of 16 quick latency points (8 lengths × 2
// policies) on the fixture model into dir and returns its path.
func latencySweep(t *testing.T, dir string) string {
	t.Helper()
	return writeSweep(t, dir, fmt.Sprintf(`name = "latency"
chunk = 8

[[model]]
path = '%s'

[[experiment]]
name = "latency"
params = { length = [16, 24, 32, 40, 48, 56, 64, 72], decode_tokens = 2, warmup = false }

[[policy]]
name = "full"

[[policy]]
name = "sink"
params = { sinks = 2, window = 8 }
`, fixtureModel(t)))
}

// latencyMetrics are the metrics of a point of latencySweep.
var latencyMetrics = []string{"decode_ms_per_token", "prefill_s", "prefill_tokens_per_s", "prompt_tokens"}

func writeSweep(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "sweep.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadSweep(t *testing.T, path string) *sweep.Sweep {
	t.Helper()
	s, err := sweep.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openDB(t *testing.T, path string) *results.DB {
	t.Helper()
	db, err := results.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// checkAllDone checks that the sweep's points are each in db exactly once,
// all done, each with exactly the metrics want, and returns the points by
// hash.
func checkAllDone(t *testing.T, db *results.DB, s *sweep.Sweep, sweepID int64, want []string) map[string]results.PointRow {
	t.Helper()
	pts, err := s.Points()
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.Status(sweepID)
	if err != nil {
		t.Fatal(err)
	}
	if c != (results.Counts{Done: len(pts)}) {
		t.Errorf("status %+v, want all %d points done", c, len(pts))
	}
	rows, err := db.Points(results.Filter{Sweep: s.Name})
	if err != nil {
		t.Fatal(err)
	}
	byHash := make(map[string]results.PointRow, len(rows))
	for _, r := range rows {
		if _, dup := byHash[r.Hash]; dup {
			t.Errorf("point %s is stored twice", r.Hash)
		}
		byHash[r.Hash] = r
		if r.Status != results.Done || r.Error != "" {
			t.Errorf("point %s: status %s, error %q; want done", r.Hash, r.Status, r.Error)
		}
	}
	if len(rows) != len(pts) {
		t.Errorf("%d point rows, want %d", len(rows), len(pts))
	}
	for _, p := range pts {
		if _, ok := byHash[p.Hash]; !ok {
			t.Errorf("point %s (%s) is missing", p.Hash, describe(p))
		}
	}
	ms, err := db.Metrics(results.Filter{Sweep: s.Name})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string][]string{}
	for _, m := range ms {
		names[m.Hash] = append(names[m.Hash], m.Name)
	}
	for h := range byHash {
		if got := names[h]; !slices.Equal(got, want) {
			t.Errorf("point %s has metrics %q, want each of %q once", h, got, want)
		}
	}
	if len(ms) != len(pts)*len(want) {
		t.Errorf("%d metric rows, want %d points × %d metrics", len(ms), len(pts), len(want))
	}
	return byHash
}

// TestKillAndRerun kills a process running a sweep with SIGKILL and checks
// that running the sweep again finishes exactly the points the dead process
// did not, including one it had claimed when it died.
func TestKillAndRerun(t *testing.T) {
	dir := t.TempDir()
	sweepPath, dbPath := latencySweep(t, dir), filepath.Join(dir, "results.db")
	s := loadSweep(t, sweepPath)
	db := openDB(t, dbPath)
	id, _, err := Register(db, s, Shard{})
	if err != nil {
		t.Fatal(err)
	}

	// 40 ms per progress write, three writes per point (one while it is
	// claimed): about 120 ms per point, 2 s for the sweep.
	cmd, out := helper(t, sweepPath, dbPath, envPace+"=40ms")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var atKill results.Counts
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if atKill, err = db.Status(id); err != nil {
			t.Fatal(err)
		}
		// Kill while a point is claimed, if the poll catches one, so that
		// the second run must take over an orphan; give up waiting for
		// that a few points before the end.
		if atKill.Done >= 3 && (atKill.Running == 1 || atKill.Done >= latencyPoints-4) {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("helper exited (%v) before 3 points were done:\n%s", err, out)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("3 points not done after 30 s (status %+v):\n%s", atKill, out)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	killed := time.Now()
	if atKill, err = db.Status(id); err != nil {
		t.Fatal(err)
	}
	t.Logf("at the kill: %+v", atKill)
	if atKill.Done == latencyPoints {
		t.Fatalf("the helper finished the sweep before it was killed; slow it down")
	}
	if atKill.Failed != 0 || atKill.Running > 1 {
		t.Fatalf("at the kill: %+v, want no failed point and at most one running", atKill)
	}
	var orphan string // the point the helper had claimed, if any
	if atKill.Running == 1 {
		rows, err := db.Points(results.Filter{Status: results.Running})
		if err != nil {
			t.Fatal(err)
		}
		orphan = rows[0].Hash
	}

	opt := Options{Heartbeat: helperHeartbeat, StaleAfter: helperStale, Worker: "rerun"}
	time.Sleep(time.Until(killed.Add(helperStale + 100*time.Millisecond)))
	second, err := Run(context.Background(), db, s, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second run: ran %d, skipped %d in %v", second.Ran, second.Skipped, second.Duration)
	if second.Skipped < 3 || second.Skipped != atKill.Done || second.Ran+second.Skipped != latencyPoints || second.Failed != 0 {
		t.Errorf("second run: ran %d (failed %d), skipped %d; want skipped = %d done before (≥ 3) and ran the other %d",
			second.Ran, second.Failed, second.Skipped, atKill.Done, latencyPoints-atKill.Done)
	}
	if second.Planned != latencyPoints || second.Counts != (results.Counts{Done: latencyPoints}) {
		t.Errorf("second run: planned %d, counts %+v; want %d all done", second.Planned, second.Counts, latencyPoints)
	}
	rows := checkAllDone(t, db, s, id, latencyMetrics)
	if orphan != "" {
		if r := rows[orphan]; r.Attempt != 2 || r.Worker != "rerun/0" {
			t.Errorf("orphaned point: attempt %d by %q, want attempt 2 by rerun/0", r.Attempt, r.Worker)
		}
	}
	byRerun := 0
	for _, r := range rows {
		if r.Worker == "rerun/0" {
			byRerun++
		}
	}
	if byRerun != second.Ran {
		t.Errorf("%d points stored by the second run, which says it ran %d", byRerun, second.Ran)
	}

	third, err := Run(context.Background(), db, s, opt)
	if err != nil {
		t.Fatal(err)
	}
	if third.Ran != 0 || third.Skipped != latencyPoints {
		t.Errorf("third run: ran %d, skipped %d; want 0 and %d", third.Ran, third.Skipped, latencyPoints)
	}
	checkAllDone(t, db, s, id, latencyMetrics)
}

// TestConcurrentProcesses runs one sweep in four processes into one
// database at once.
func TestConcurrentProcesses(t *testing.T) {
	const procs = 4
	dir := t.TempDir()
	sweepPath, dbPath := latencySweep(t, dir), filepath.Join(dir, "results.db")
	goFile := filepath.Join(dir, "go")
	type child struct {
		cmd *exec.Cmd
		out *bytes.Buffer
	}
	var children []child
	for range procs {
		// The default StaleAfter (1 min): no process takes over another's
		// point, whatever the load on the machine.
		cmd, out := helper(t, sweepPath, dbPath, envPace+"=10ms", envStale+"=", envGo+"="+goFile)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, child{cmd, out})
	}
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ran := 0
	for i, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, c.out)
		}
		sum := helperSummary(t, c.out.String())
		t.Logf("helper %d: ran %d, skipped %d in %v", i, sum.Ran, sum.Skipped, sum.Duration)
		if sum.Planned != latencyPoints || sum.Failed != 0 || sum.Counts.Failed != 0 {
			t.Errorf("helper %d: planned %d, failed %d, counts %+v", i, sum.Planned, sum.Failed, sum.Counts)
		}
		ran += sum.Ran
	}
	if ran != latencyPoints {
		t.Errorf("the helpers ran %d points in all, want %d (each once)", ran, latencyPoints)
	}

	s := loadSweep(t, sweepPath)
	db := openDB(t, dbPath)
	sweeps, err := db.Sweeps()
	if err != nil {
		t.Fatal(err)
	}
	if len(sweeps) != 1 {
		t.Fatalf("%d sweeps in the database, want 1", len(sweeps))
	}
	rows := checkAllDone(t, db, s, sweeps[0].ID, latencyMetrics)
	workers := map[string]int{}
	for _, r := range rows {
		if r.Attempt != 1 {
			t.Errorf("point %s was claimed %d times", r.Hash, r.Attempt)
		}
		workers[r.Worker]++
	}
	t.Logf("points by worker: %v", workers)
	if len(workers) < 2 {
		t.Errorf("one process ran every point (%v); the test did not run them concurrently", workers)
	}
}

// TestFailingPointRecorded runs a sweep in which half the points fail when
// they run (perplexity of a text file that does not exist).
func TestFailingPointRecorded(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.txt")
	s := loadSweep(t, writeSweep(t, dir, fmt.Sprintf(`name = "failing"
chunk = 16

[[model]]
path = '%s'

[[experiment]]
name = "perplexity"
params = { text = ['%s', '%s'], tokens = 64, checkpoints = 4 }

[[policy]]
name = "full"

[[policy]]
name = "sink"
params = { sinks = 2, window = 8 }
`, fixtureModel(t), text, missing)))
	db := openDB(t, filepath.Join(dir, "results.db"))
	sum, err := Run(context.Background(), db, s, Options{})
	if err != nil {
		t.Fatalf("Run: %v (a failing point is no error of the run)", err)
	}
	if sum.Ran != 4 || sum.Failed != 2 || sum.Counts != (results.Counts{Done: 2, Failed: 2}) {
		t.Errorf("summary: ran %d, failed %d, counts %+v; want 4 run, 2 failed, 2 done", sum.Ran, sum.Failed, sum.Counts)
	}
	rows, err := db.Points(results.Filter{Sweep: s.Name})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := db.Metrics(results.Filter{Sweep: s.Name})
	if err != nil {
		t.Fatal(err)
	}
	metrics := map[string]int{}
	for _, m := range ms {
		metrics[m.Hash]++
	}
	for _, r := range rows {
		var p struct{ Text string }
		if err := json.Unmarshal(r.ExperimentParams, &p); err != nil {
			t.Fatal(err)
		}
		switch p.Text {
		case missing:
			if r.Status != results.Failed || !strings.Contains(r.Error, "missing.txt") {
				t.Errorf("%s on the missing text: status %s, error %q; want failed naming the file", r.Policy, r.Status, r.Error)
			}
			if metrics[r.Hash] != 0 {
				t.Errorf("%s on the missing text: %d metrics stored, want none", r.Policy, metrics[r.Hash])
			}
		case text:
			if r.Status != results.Done || r.Error != "" {
				t.Errorf("%s on the text: status %s, error %q; want done", r.Policy, r.Status, r.Error)
			}
			if metrics[r.Hash] != 4 { // ppl, nll, tokens, train_length
				t.Errorf("%s on the text: %d metrics, want 4", r.Policy, metrics[r.Hash])
			}
		default:
			t.Errorf("point %s has text %q", r.Hash, p.Text)
		}
	}

	// A re-run runs the failed points again, never the done ones.
	again, err := Run(context.Background(), db, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Ran != 2 || again.Failed != 2 || again.Skipped != 2 {
		t.Errorf("second run: ran %d (%d failed), skipped %d; want the 2 failed run again, 2 skipped", again.Ran, again.Failed, again.Skipped)
	}
	// Once the file exists they succeed, and the next run runs nothing.
	if err := os.WriteFile(missing, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	third, err := Run(context.Background(), db, s, Options{})
	if err != nil || third.Ran != 2 || third.Failed != 0 || third.Counts != (results.Counts{Done: 4}) {
		t.Errorf("third run: %v, ran %d (%d failed), counts %+v; want 2 run, all done", err, third.Ran, third.Failed, third.Counts)
	}
	last, err := Run(context.Background(), db, s, Options{})
	if err != nil || last.Ran != 0 || last.Skipped != 4 {
		t.Errorf("last run: %v, ran %d, skipped %d; want 0 and 4", err, last.Ran, last.Skipped)
	}
}

// exportShape is what two exports of the same sweep share although their
// timings differ: the CSV export's lines with the values of the timing
// metrics blanked out, so every (point hash, metric) pair with its status,
// parameters and the values that do not depend on time.
func exportShape(t *testing.T, db *results.DB, sweepName string) []string {
	t.Helper()
	var buf bytes.Buffer
	if err := db.Export(&buf, "csv", sweepName); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	metric, value := slices.Index(recs[0], "metric"), slices.Index(recs[0], "value")
	if metric < 0 || value < 0 {
		t.Fatalf("export header %q has no metric or value column", recs[0])
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		switch r[metric] {
		case "prefill_s", "prefill_tokens_per_s", "decode_ms_per_token":
			if v, err := strconv.ParseFloat(r[value], 64); err != nil || v <= 0 {
				t.Errorf("export row %q: %s is not a positive number", r, r[metric])
			}
			r[value] = "(timing)"
		}
		out[i] = strings.Join(r, ",")
	}
	return out
}

// missingFrom returns the lines of a that b lacks.
func missingFrom(a, b []string) []string {
	var out []string
	for _, l := range a {
		if !slices.Contains(b, l) {
			out = append(out, l)
		}
	}
	return out
}

// TestShards runs a sweep as three shards into three databases, merges them
// and compares the result with one run of the whole sweep.
func TestShards(t *testing.T) {
	const n = 3
	dir := t.TempDir()
	s := loadSweep(t, latencySweep(t, dir))
	pts, err := s.Points()
	if err != nil {
		t.Fatal(err)
	}

	whole := openDB(t, filepath.Join(dir, "whole.db"))
	if _, err := Run(context.Background(), whole, s, Options{}); err != nil {
		t.Fatal(err)
	}

	merged := openDB(t, filepath.Join(dir, "merged.db"))
	seen := map[string]int{}
	for i := range n {
		path := filepath.Join(dir, fmt.Sprintf("shard%d.db", i))
		db := openDB(t, path)
		sum, err := Run(context.Background(), db, s, Options{Shard: Shard{Index: i, Of: n}})
		if err != nil {
			t.Fatal(err)
		}
		want := (len(pts) - i + n - 1) / n
		if sum.Planned != want || sum.Ran != want || sum.Counts != (results.Counts{Done: want}) {
			t.Errorf("shard %d/%d: planned %d, ran %d, counts %+v; want %d all done", i, n, sum.Planned, sum.Ran, sum.Counts, want)
		}
		rows, err := db.Points(results.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			seen[r.Hash]++
			if k := slices.IndexFunc(pts, func(p sweep.Point) bool { return p.Hash == r.Hash }); k%n != i {
				t.Errorf("shard %d/%d holds point %d of the sweep", i, n, k)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		added, err := merged.Merge(path)
		if err != nil {
			t.Fatal(err)
		}
		if added != want {
			t.Errorf("merging shard %d added %d points, want %d", i, added, want)
		}
	}
	for _, p := range pts {
		if seen[p.Hash] != 1 {
			t.Errorf("point %s is in %d shards, want 1", p.Hash, seen[p.Hash])
		}
	}

	sweeps, err := merged.Sweeps()
	if err != nil {
		t.Fatal(err)
	}
	if len(sweeps) != 1 {
		t.Fatalf("%d sweeps in the merged database, want 1", len(sweeps))
	}
	checkAllDone(t, merged, s, sweeps[0].ID, latencyMetrics)
	got, want := exportShape(t, merged, s.Name), exportShape(t, whole, s.Name)
	if !slices.Equal(got, want) {
		t.Errorf("export of the merged shards differs from one run's:\nonly in the merged export: %q\nonly in the single run's: %q",
			missingFrom(got, want), missingFrom(want, got))
	}
	if len(want) != 1+len(pts)*len(latencyMetrics) {
		t.Errorf("export has %d lines, want a header and %d×%d rows", len(want), len(pts), len(latencyMetrics))
	}
}

// TestShardsShareOneDB runs shard 0 of 2 into a database in which shard 1
// has registered its points but not run them (it was killed, or runs
// alongside), then shard 1.
func TestShardsShareOneDB(t *testing.T) {
	dir := t.TempDir()
	s := loadSweep(t, latencySweep(t, dir))
	db := openDB(t, filepath.Join(dir, "results.db"))
	id, _, err := Register(db, s, Shard{Index: 1, Of: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		sum, err := Run(context.Background(), db, s, Options{Shard: Shard{Index: i, Of: 2}})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Planned != latencyPoints/2 || sum.Ran != latencyPoints/2 || sum.Failed != 0 {
			t.Errorf("shard %d/2: planned %d, ran %d (failed %d); want %d run", i, sum.Planned, sum.Ran, sum.Failed, latencyPoints/2)
		}
	}
	checkAllDone(t, db, s, id, latencyMetrics)
}
