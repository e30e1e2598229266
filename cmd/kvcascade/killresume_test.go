//go:build unix

package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"kvcascade/results"
)

// envKillSeed repeats TestKillResume's random kill times.
const envKillSeed = "KVCASCADE_KILL_SEED"

// TestKillResume builds kvcascade, runs a small sweep on the embedded tiny
// model uninterrupted, then runs it again into another database, killing
// the process with SIGKILL at random moments (while a point runs, while
// the database is written, while figures are drawn) and re-running it
// until it finishes. Both databases must hold the same points, each once,
// done, with the same metrics and samples, and the report must be whole.
// The seed is logged; set KVCASCADE_KILL_SEED to repeat a run.
func TestKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kvcascade and runs a sweep about ten times")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build kvcascade with")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kvcascade")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(envKillSeed); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", envKillSeed, s, err)
		}
	}
	t.Logf("kill seed %d (%s=%d repeats it)", seed, envKillSeed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	words := filepath.Join(dir, "words.txt")
	if err := os.WriteFile(words, []byte("apple\nbanana\ncherry\ndelta\nember\nforest\ngarden\nharbor\nisland\njungle\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "kill.toml")
	src := fmt.Sprintf(`name = "kill"
backend = "cpu"
chunk = 64
[[model]]
name = "tiny"
[[experiment]]
name = "passkey"
[experiment.params]
length = 200
depth_bin = [0, 1, 2, 3, 4]
samples = 1
max_new = 6
words = %q
[[policy]]
name = "full"
[[policy]]
name = "sink"
[policy.params]
sinks = 4
window = 60
`, words)
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	// Every process writes the embedded model to its own cache folder.
	cache := filepath.Join(dir, "cache")
	sweepRun := func(db, out string) *exec.Cmd {
		cmd := exec.Command(bin, "run", cfg, "--db", db, "--out", out, "--workers", "2", "--stale-after", "0")
		cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache, "HOME="+dir)
		return cmd
	}

	refDB := filepath.Join(dir, "ref.db")
	start := time.Now()
	if out, err := sweepRun(refDB, filepath.Join(dir, "ref")).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	whole := time.Since(start)
	t.Logf("uninterrupted run: %v", whole.Round(time.Millisecond))

	killDB, killOut := filepath.Join(dir, "kill.db"), filepath.Join(dir, "killed")
	// Each run is killed within the first 60 % of an uninterrupted run's
	// time, so that most kills land while points run and the sweep takes
	// several runs; kills after it is complete land while figures are drawn.
	const kills = 6
	for i := 0; i < kills; i++ {
		after := time.Duration(rng.Int64N(int64(whole) * 6 / 10))
		cmd := sweepRun(killDB, killOut)
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Logf("run %d finished before its kill at %v: %v", i, after.Round(time.Millisecond), err)
		case <-time.After(after):
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-done
			t.Logf("run %d killed after %v: %s", i, after.Round(time.Millisecond), statusLine(t, killDB))
		}
	}
	var finished bool
	for i := 0; i < 3 && !finished; i++ {
		out, err := sweepRun(killDB, killOut).CombinedOutput()
		if err == nil {
			finished = true
			break
		}
		t.Logf("re-run %d: %v\n%s", i, err, out)
	}
	if !finished {
		t.Fatal("the killed sweep did not finish in three re-runs")
	}

	ref, got := dbContents(t, refDB), dbContents(t, killDB)
	if len(ref) != 10 {
		t.Fatalf("uninterrupted run stored %d points, want 10", len(ref))
	}
	for _, d := range diffContents(ref, got) {
		t.Error(d)
	}
	page, err := os.ReadFile(filepath.Join(killOut, "report.html"))
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(page)), "</html>") {
		t.Errorf("report.html after the killed runs: %d bytes, %v; want a whole page", len(page), err)
	}
}

// statusLine counts the kill sweep's points by status in the database at
// path ("no database yet" when a kill came first).
func statusLine(t *testing.T, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		return "no database yet"
	}
	db, err := results.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Points(results.Filter{Sweep: "kill"})
	if err != nil {
		t.Fatal(err)
	}
	n := map[results.Status]int{}
	for _, r := range rows {
		n[r.Status]++
	}
	return fmt.Sprintf("%d done, %d running, %d pending, %d failed", n[results.Done], n[results.Running], n[results.Pending], n[results.Failed])
}

// pointContent is what a finished point holds, less its timing.
type pointContent struct {
	status  results.Status
	copies  int      // rows with this hash
	metrics []string // "name=value unit", sorted
	samples []string
}

// dbContents reads every point of the kill sweep in the database at path,
// by hash.
func dbContents(t *testing.T, path string) map[string]*pointContent {
	t.Helper()
	db, err := results.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Points(results.Filter{Sweep: "kill"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*pointContent{}
	for _, r := range rows {
		c := out[r.Hash]
		if c == nil {
			c = &pointContent{status: r.Status}
			out[r.Hash] = c
		}
		c.copies++
		samples, err := db.Samples(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range samples {
			c.samples = append(c.samples, string(s))
		}
	}
	metrics, err := db.Metrics(results.Filter{Sweep: "kill"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metrics {
		c := out[m.Hash]
		if c == nil {
			t.Fatalf("%s: metric %s of point %s, which is not in the sweep", path, m.Name, m.Hash)
		}
		c.metrics = append(c.metrics, fmt.Sprintf("%s=%v %s", m.Name, m.Value, m.Unit))
	}
	for _, c := range out {
		sort.Strings(c.metrics)
	}
	return out
}

// diffContents lists how got differs from want.
func diffContents(want, got map[string]*pointContent) []string {
	var diffs []string
	for hash, w := range want {
		g, ok := got[hash]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("point %s lost", hash))
			continue
		case g.copies != 1:
			diffs = append(diffs, fmt.Sprintf("point %s stored %d times", hash, g.copies))
		case w.status != results.Done || g.status != results.Done:
			diffs = append(diffs, fmt.Sprintf("point %s: status %s after the kills, %s uninterrupted; want done", hash, g.status, w.status))
		}
		if strings.Join(g.metrics, "; ") != strings.Join(w.metrics, "; ") {
			diffs = append(diffs, fmt.Sprintf("point %s: metrics %v after the kills, %v uninterrupted", hash, g.metrics, w.metrics))
		}
		if strings.Join(g.samples, "\n") != strings.Join(w.samples, "\n") {
			diffs = append(diffs, fmt.Sprintf("point %s: %d samples after the kills differ from the %d uninterrupted", hash, len(g.samples), len(w.samples)))
		}
	}
	for hash := range got {
		if _, ok := want[hash]; !ok {
			diffs = append(diffs, fmt.Sprintf("point %s appeared only after the kills", hash))
		}
	}
	sort.Strings(diffs)
	return diffs
}
