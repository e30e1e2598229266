package results

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The environment of a helper process (see TestHelperProcess).
const (
	helperEnv   = "RESULTS_TEST_HELPER" // "worker" or "crash"
	helperDB    = "RESULTS_TEST_DB"
	helperName  = "RESULTS_TEST_WORKER"
	helperCount = "RESULTS_TEST_POINTS"
)

// Sizes of the outcomes the concurrency tests write.
const (
	concurrentPoints = 400
	concurrentSample = 2 // samples per point
	crashPoints      = 40
	crashSamples     = 200 // samples per point: Finish is a large transaction
	crashSampleBytes = 1000
)

// TestHelperProcess is not a test: it is the body of the child processes
// that other tests start from the test binary.
//
//   - worker: waits for a line on stdin, opens the database (possibly
//     creating it), ensures the sweep and its points, then claims and finishes points until none is left,
//     printing "done HASH" after each.
//   - crash: claims and finishes points, printing "claimed HASH" and
//     waiting for a line on stdin before each Finish, and waits to be
//     killed.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for other tests")
	}
	if err := helper(mode); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// helper runs a helper process.
func helper(mode string) error {
	n, err := strconv.Atoi(os.Getenv(helperCount))
	if err != nil {
		return err
	}
	if mode == "worker" {
		// Start together with the other workers: wait for a line on stdin.
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			return fmt.Errorf("wait for the start signal: %w", err)
		}
	}
	db, err := Open(os.Getenv(helperDB))
	if err != nil {
		return err
	}
	defer db.Close()
	sweep, err := db.EnsureSweep("test", testConfig)
	if err != nil {
		return err
	}
	if _, err := db.AddPoints(sweep, specs(n)); err != nil {
		return err
	}
	worker := os.Getenv(helperName)
	switch mode {
	case "worker":
		return work(db, sweep, worker, concurrentSample, 16, func(hash string) { fmt.Printf("done %s\n", hash) })
	case "crash":
		in := bufio.NewReader(os.Stdin)
		for {
			p, err := db.Claim(sweep, worker)
			if err != nil {
				return err
			}
			if p == nil {
				time.Sleep(time.Hour) // wait to be killed
				return nil
			}
			fmt.Printf("claimed %s\n", p.Hash)
			if _, err := in.ReadString('\n'); err != nil {
				return fmt.Errorf("wait for the go-ahead: %w", err)
			}
			if err := db.Finish(p, outcomeFor(p.Hash, crashSamples, crashSampleBytes)); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// child is a running helper process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner // its stdout, line by line
}

// startHelper starts a helper process on the database at path.
func startHelper(t *testing.T, mode, path, worker string, points int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		helperEnv+"="+mode, helperDB+"="+path, helperName+"="+worker, helperCount+"="+strconv.Itoa(points))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Reap a child that a failing test left behind.
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return &child{cmd: cmd, stdin: stdin, out: bufio.NewScanner(out)}
}

// checkOnce verifies that every point of a finished sweep was done by
// exactly one worker, with exactly its results.
func checkOnce(t *testing.T, db *DB, doneBy map[string][]string) {
	t.Helper()
	pts, err := db.Points(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != concurrentPoints {
		t.Fatalf("%d points, want %d", len(pts), concurrentPoints)
	}
	for _, p := range pts {
		if p.Status != Done && p.Status != Failed || p.Attempt != 1 {
			t.Errorf("point %s: %s after %d attempts", p.Hash, p.Status, p.Attempt)
		}
		if w := doneBy[p.Hash]; len(w) != 1 || w[0] != p.Worker {
			t.Errorf("point %s finished by %v, recorded worker %q", p.Hash, w, p.Worker)
		}
	}
	if len(doneBy) != concurrentPoints {
		t.Errorf("workers reported %d points, want %d", len(doneBy), concurrentPoints)
	}
	if n := count(t, db, `SELECT count(*) FROM metrics`); n != concurrentPoints*metricsPerPoint {
		t.Errorf("%d metric rows, want %d", n, concurrentPoints*metricsPerPoint)
	}
	if n := count(t, db, `SELECT count(*) FROM samples`); n != concurrentPoints*concurrentSample {
		t.Errorf("%d sample rows, want %d", n, concurrentPoints*concurrentSample)
	}
	checkComplete(t, db, concurrentSample)
}

func TestConcurrentGoroutines(t *testing.T) {
	const workers = 8
	tests := []struct {
		name      string
		perWorker bool // each goroutine opens its own *DB
	}{
		{"shared handle", false},
		{"handle per goroutine", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, sweep := newSweep(t, concurrentPoints)
			var (
				mu     sync.Mutex
				doneBy = make(map[string][]string)
				wg     sync.WaitGroup
				errs   = make(chan error, workers)
			)
			for i := range workers {
				wg.Go(func() {
					h := db
					if tt.perWorker {
						var err error
						if h, err = Open(db.path); err != nil {
							errs <- err
							return
						}
						defer h.Close()
					}
					name := fmt.Sprintf("g%d", i)
					errs <- work(h, sweep, name, concurrentSample, 16, func(hash string) {
						mu.Lock()
						doneBy[hash] = append(doneBy[hash], name)
						mu.Unlock()
					})
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			checkOnce(t, db, doneBy)
		})
	}
}

func TestConcurrentProcesses(t *testing.T) {
	const procs = 4
	// The children create the database, migrate it and add the sweep all
	// at once.
	path := filepath.Join(t.TempDir(), "shared.db")
	doneBy := make(map[string][]string)
	var mu sync.Mutex
	var wg sync.WaitGroup
	children := make([]*child, procs)
	for i := range procs {
		name := fmt.Sprintf("proc%d", i)
		c := startHelper(t, "worker", path, name, concurrentPoints)
		children[i] = c
		wg.Go(func() {
			for c.out.Scan() {
				if hash, ok := strings.CutPrefix(c.out.Text(), "done "); ok {
					mu.Lock()
					doneBy[hash] = append(doneBy[hash], name)
					mu.Unlock()
				}
			}
		})
	}
	for _, c := range children {
		if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for i, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("worker process %d: %v", i, err)
		}
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := count(t, db, `SELECT count(*) FROM sweeps`); n != 1 {
		t.Errorf("%d sweeps, want 1", n)
	}
	checkOnce(t, db, doneBy)
	t.Logf("points per process: %v", perWorker(doneBy))
}

// perWorker counts the points each worker finished.
func perWorker(doneBy map[string][]string) map[string]int {
	n := make(map[string]int)
	for _, ws := range doneBy {
		for _, w := range ws {
			n[w]++
		}
	}
	return n
}

func TestCrashDuringFinish(t *testing.T) {
	// The child finishes killAfter-1 points, then is killed delay after it
	// was allowed to finish the next one: before, during or after that
	// Finish's transaction.
	tests := []struct {
		killAfter int
		delay     time.Duration
	}{
		// A Finish of crashSamples samples takes about 2 ms.
		{1, 0},
		{4, time.Millisecond},
		{7, 2 * time.Millisecond},
		{10, 3 * time.Millisecond},
		{13, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		killAfter := tt.killAfter
		t.Run(fmt.Sprintf("kill %v into finish %d", tt.delay, killAfter), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "crash.db")
			doomed := startHelper(t, "crash", path, "doomed", crashPoints)
			claims := 0
			for claims < killAfter && doomed.out.Scan() {
				if strings.HasPrefix(doomed.out.Text(), "claimed ") {
					claims++
					if _, err := io.WriteString(doomed.stdin, "go\n"); err != nil {
						t.Fatal(err)
					}
				}
			}
			if claims < killAfter {
				t.Fatalf("the child stopped after %d claims", claims)
			}
			time.Sleep(tt.delay)
			if err := doomed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			doomed.cmd.Wait()

			db, err := Open(path)
			if err != nil {
				t.Fatalf("reopening after the crash: %v", err)
			}
			defer db.Close()
			sweep, err := db.EnsureSweep("test", testConfig)
			if err != nil {
				t.Fatal(err)
			}
			c, err := db.Status(sweep)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("after SIGKILL: %+v", c)
			if c.Total() != crashPoints || c.Running > 1 || c.Done+c.Failed < killAfter-1 || c.Done+c.Failed > killAfter {
				t.Errorf("status after the crash %+v, killed at claim %d", c, killAfter)
			}
			checkComplete(t, db, crashSamples)

			n, err := db.ResetStale(sweep, 0)
			if err != nil {
				t.Fatal(err)
			}
			if n != c.Running {
				t.Errorf("ResetStale reset %d, want %d", n, c.Running)
			}
			if err := work(db, sweep, "survivor", crashSamples, crashSampleBytes, func(string) {}); err != nil {
				t.Fatal(err)
			}
			if c, _ := db.Status(sweep); c.Done+c.Failed != crashPoints {
				t.Errorf("status after the rerun %+v", c)
			}
			checkComplete(t, db, crashSamples)
		})
	}
}
