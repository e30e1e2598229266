package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// envMain makes the test binary, run again, act as kvcascade: --gpus runs
// os.Executable(), which in a test is the test binary.
const envMain = "KVCASCADE_TEST_MAIN"

// envCrash, in a worker run by --gpus, names the GPU whose worker exits with
// status 3 at once, as if it had crashed.
const envCrash = "KVCASCADE_TEST_CRASH_GPU"

func TestMain(m *testing.M) {
	if os.Getenv(envMain) == "1" {
		if dev := os.Getenv(envCrash); dev != "" && dev == os.Getenv("CUDA_VISIBLE_DEVICES") {
			os.Stderr.WriteString("crashing on purpose\n")
			os.Exit(3)
		}
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// fixtureSweep writes a sweep of latency points on the llama fixture (2
// policies × the lengths) into dir and returns its path.
func fixtureSweep(t *testing.T, dir, name string, lengths string) string {
	t.Helper()
	modelDir, err := filepath.Abs("../../runtime/model/testdata/llama")
	if err != nil {
		t.Fatal(err)
	}
	src := "name = \"" + name + "\"\nchunk = 8\n[[model]]\npath = \"" + filepath.ToSlash(modelDir) + "\"\n" +
		"[[experiment]]\nname = \"latency\"\n[experiment.params]\nlength = " + lengths + "\ndecode_tokens = 2\nwarmup = false\n" +
		"[[policy]]\nname = \"full\"\n[[policy]]\nname = \"sink\"\nparams = { sinks = 2, window = 8 }\n"
	path := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestGPUsRunsWorkerProcesses(t *testing.T) {
	t.Setenv(envMain, "1")
	dir := t.TempDir()
	cfg := fixtureSweep(t, dir, "gpus", "[16, 24, 32]")
	db := filepath.Join(dir, "r.db")
	code, out, errOut := run(t, "run", cfg, "--gpus", "0,1", "--db", db, "--out", filepath.Join(dir, "fig"))
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"running sweep \"gpus\" with 2 worker processes (GPUs 0, 1)",
		"[gpu 0] sweep \"gpus\": ran ", "[gpu 1] sweep \"gpus\": ran ",
		"database " + db + ": 6 done, 0 failed, 0 pending",
		"report " + filepath.Join(dir, "fig", "report.html"),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Workers print no plan, and every line of theirs is prefixed.
	if n := strings.Count(out, "6 points\n"); n != 1 {
		t.Errorf("the plan is printed %d times, want once (by the parent):\n%s", n, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "[") && !strings.HasPrefix(line, "[gpu 0] ") && !strings.HasPrefix(line, "[gpu 1] ") {
			t.Errorf("unprefixed progress line %q", line)
		}
	}

	// Again: nothing to run; --force runs every point again, once.
	code, out, _ = run(t, "run", cfg, "--gpus", "0,1", "--db", db)
	if code != 0 || !strings.Contains(out, "[gpu 0] sweep \"gpus\": ran 0 points") || !strings.Contains(out, "[gpu 1] sweep \"gpus\": ran 0 points") {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "run", cfg, "--gpus", "0,1", "--db", db, "--force")
	if code != 0 || !strings.Contains(out, ": 6 done, 0 failed, 0 pending") || ranTotal(t, out) != 6 {
		t.Fatalf("--force: exit %d, workers ran %d points, want 6\n%s", code, ranTotal(t, out), out)
	}
}

// ranTotal adds up the "ran N points" of every worker in out.
func ranTotal(t *testing.T, out string) int {
	t.Helper()
	total := 0
	for _, line := range strings.Split(out, "\n") {
		_, after, ok := strings.Cut(line, "\": ran ")
		if !ok || !strings.HasPrefix(line, "[gpu ") {
			continue
		}
		n, err := strconv.Atoi(strings.Fields(after)[0])
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		total += n
	}
	return total
}

// TestGPUsWorkerCrash: one worker dies at once; the other runs every point,
// and the exit status says that a worker failed.
func TestGPUsWorkerCrash(t *testing.T) {
	t.Setenv(envMain, "1")
	t.Setenv(envCrash, "1")
	dir := t.TempDir()
	cfg := fixtureSweep(t, dir, "crash", "[16, 24]")
	db := filepath.Join(dir, "r.db")
	code, out, errOut := run(t, "run", cfg, "--gpus", "0,1", "--db", db)
	if code != 1 || !strings.Contains(errOut, "worker on gpu 1: exit status 3") || !strings.Contains(errOut, "[gpu 1] crashing on purpose") {
		t.Errorf("exit %d, stderr %q; want 1 naming the worker on gpu 1", code, errOut)
	}
	if !strings.Contains(out, ": 4 done, 0 failed, 0 pending") {
		t.Errorf("the other worker did not run every point:\n%s", out)
	}
}

func TestGPUsFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := fixtureSweep(t, dir, "flags", "16")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--gpus", "0,,1"}, `--gpus "0,,1": item 2 is empty`},
		{[]string{"--gpus", "0,0"}, "named twice"},
		{[]string{"--gpus", "0", "--task"}, "--gpus with --task"},
		{[]string{"--gpus", "0", "--workers", "0"}, "--workers 0"},
		{[]string{"--stale-after", "-1s"}, "--stale-after -1s"},
	} {
		args := append([]string{"run", cfg, "--db", filepath.Join(dir, "r.db")}, tt.args...)
		if code, _, errOut := run(t, args...); code == 0 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want an error containing %q", tt.args, code, errOut, tt.want)
		}
	}
	// A dry run prints the plan and starts no worker.
	if code, out, _ := run(t, "run", cfg, "--gpus", "0,1", "--dry-run", "--db", filepath.Join(dir, "dry.db")); code != 0 || strings.Contains(out, "[gpu") {
		t.Errorf("dry run: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "dry.db")); !os.IsNotExist(err) {
		t.Errorf("dry run created the database: %v", err)
	}
}
