package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"kvcascade/experiments/runner"
	"kvcascade/experiments/sweep"
	"kvcascade/results"
)

func TestSlurmFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := fixtureSweep(t, dir, "flags", "[16, 24]")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--partition", "gpu"}, "--partition needs --slurm"},
		{[]string{"--tasks", "3", "--time", "1:00"}, "--time needs --slurm"},
		{[]string{"--slurm", "--gpus", "0,1"}, "--slurm with --gpus"},
		{[]string{"--slurm", "--shard", "0/2"}, "--slurm with --shard"},
		{[]string{"--slurm", "--force"}, "--slurm with --force"},
		{[]string{"--slurm", "--task"}, "--slurm with --task"},
		{[]string{"--slurm", "--tasks", "-1"}, "--tasks -1"},
		{[]string{"--slurm", "--time", "2h"}, `--time: "2h"`},
		{[]string{"--slurm", "--time", "1:75:00"}, "75 is not below 60"},
		{[]string{"--slurm", "--array-parallelism", "-2"}, "--array-parallelism -2"},
		{[]string{"--slurm", "--cpus-per-task", "-1"}, "--cpus-per-task -1"},
		{[]string{"--slurm", "--partition", "gpu;x"}, `--partition "gpu;x"`},
		{[]string{"--slurm", "--db", filepath.Join(dir, "my out", "r.db")}, "take no spaces"},
	} {
		args := append([]string{"run", cfg, "--dry-run"}, tt.args...)
		if code, out, errOut := run(t, args...); code == 0 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want an error containing %q", tt.args, code, errOut, tt.want)
		} else if out != "" {
			t.Errorf("%q: printed %q before refusing", tt.args, out)
		}
	}
}

func TestSlurmDryRun(t *testing.T) {
	dir := t.TempDir()
	cfg := fixtureSweep(t, dir, "dry", "[16, 24]") // 4 points
	db := filepath.Join(dir, "out", "dry.db")
	code, out, errOut := run(t, "run", cfg, "--slurm", "--dry-run", "--db", db, "--tasks", "3",
		"--array-parallelism", "2", "--partition", "debug", "--time", "00:10:00", "--cpus-per-task", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	slurmDir := filepath.Join(dir, "out", "dry.slurm")
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	for _, want := range []string{
		"#!/bin/bash\n",
		"#SBATCH --array=0-2%2\n", "#SBATCH --partition=debug\n", "#SBATCH --time=00:10:00\n", "#SBATCH --cpus-per-task=2\n",
		"#SBATCH --requeue\n", "#SBATCH --open-mode=append\n",
		"#SBATCH --output=" + filepath.Join(slurmDir, "task-%a.log") + "\n",
		"exec '" + exe + "' run '" + cfg + "' \\\n",
		`--shard "${SLURM_ARRAY_TASK_ID}/3"`,
		"--db '" + slurmDir + `'"/shard-${SLURM_ARRAY_TASK_ID}.db"`,
		"--stale-after 0 --task",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("script lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "--gpus-per-task") {
		t.Errorf("a cpu sweep asks for GPUs:\n%s", out)
	}
	if !strings.Contains(errOut, "4 points in 3 tasks; nothing written or submitted") {
		t.Errorf("stderr %q", errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("a dry run wrote files: %v", err)
	}
	// More tasks than points: one task per point; --gpus-per-task given.
	code, out, errOut = run(t, "run", cfg, "--slurm", "--dry-run", "--db", db, "--tasks", "9", "--gpus-per-task", "2")
	if code != 0 || !strings.Contains(out, "#SBATCH --array=0-3\n") || !strings.Contains(out, "#SBATCH --gpus-per-task=2\n") ||
		!strings.Contains(errOut, "--tasks 9 for 4 points: submitting 4 tasks") {
		t.Errorf("--tasks 9: exit %d, stderr %q\n%s", code, errOut, out)
	}
	// A cuda sweep asks for one GPU per task unless told otherwise.
	src, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cuda := filepath.Join(dir, "cuda.toml")
	if err := os.WriteFile(cuda, []byte(strings.Replace(string(src), "chunk = 8", "backend = \"cuda\"\nchunk = 8", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "#SBATCH --gpus-per-task=1\n"},
		{[]string{"--gpus-per-task", "0"}, ""},
	} {
		code, out, errOut := run(t, append([]string{"run", cuda, "--slurm", "--dry-run", "--db", db}, tt.args...)...)
		if got := strings.Contains(out, "--gpus-per-task"); code != 0 || got != (tt.want != "") || (got && !strings.Contains(out, tt.want)) {
			t.Errorf("cuda sweep %q: exit %d, stderr %q; want %q\n%s", tt.args, code, errOut, tt.want, out)
		}
	}
}

// TestSlurmSubmitAndRunTasks submits through a fake sbatch, then runs the
// script it wrote as Slurm would, once per task (the binary in it is this
// test binary, which acts as kvcascade), merges the shard databases and
// compares them with a local run.
func TestSlurmSubmitAndRunTasks(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to run the batch script")
	}
	t.Setenv(envMain, "1")
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fixtureSweep(t, dir, "array", "[16, 24, 32]") // 6 points
	db := filepath.Join(dir, "out", "array.db")

	path := os.Getenv("PATH")
	t.Setenv("PATH", bin)
	code, _, errOut := run(t, "run", cfg, "--slurm", "--db", db)
	if code == 0 || !strings.Contains(errOut, "sbatch") || !strings.Contains(errOut, "--dry-run prints the script") {
		t.Errorf("no sbatch: exit %d, stderr %q", code, errOut)
	}
	args := filepath.Join(dir, "sbatch-args")
	fake := "#!/bin/sh\necho \"$@\" > '" + args + "'\necho 4242\n"
	if err := os.WriteFile(filepath.Join(bin, "sbatch"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "run", cfg, "--slurm", "--db", db, "--tasks", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	slurmDir := filepath.Join(dir, "out", "array.slurm")
	script := filepath.Join(slurmDir, "job.sbatch")
	for _, want := range []string{"wrote " + script, "submitted job array 4242\n", "squeue -j 4242", "merge --db " + db + " " + slurmDir} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got, err := os.ReadFile(args); err != nil || strings.TrimSpace(string(got)) != "--parsable "+script {
		t.Errorf("sbatch got %q (%v)", got, err)
	}

	// Slurm's part: every task runs the script with its index.
	for i := range 3 {
		cmd := exec.Command(bash, script)
		cmd.Env = append(os.Environ(), "PATH="+path, "SLURM_ARRAY_TASK_ID="+strconv.Itoa(i), "SLURM_ARRAY_JOB_ID=4242")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "ran 2 points (0 failed)") {
			t.Fatalf("task %d: %v\n%s", i, err, out)
		}
	}
	cmd := exec.Command(bash, script)
	cmd.Env = append(os.Environ(), "PATH="+path)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not a job-array task") {
		t.Errorf("script outside an array: %v\n%s", err, out)
	}

	main := filepath.Join(dir, "main.db")
	code, out, errOut = run(t, "merge", "--db", main, slurmDir)
	if code != 0 || !strings.Contains(out, "merged 3 of 3 databases into "+main+": 6 points added") {
		t.Fatalf("merge: exit %d\n%s\n%s", code, out, errOut)
	}
	local := filepath.Join(dir, "local.db")
	if code, out, errOut := run(t, "run", cfg, "--db", local); code != 0 {
		t.Fatalf("local run: exit %d\n%s\n%s", code, out, errOut)
	}
	if a, b := exportShape(t, main), exportShape(t, local); a != b {
		t.Errorf("merged shards and local run differ:\n%s\n---\n%s", a, b)
	}
}

// exportShape is the CSV export of db without its value column (timings
// differ from run to run).
func exportShape(t *testing.T, db string) string {
	t.Helper()
	code, out, errOut := run(t, "export", "--db", db)
	if code != 0 {
		t.Fatalf("export %s: exit %d: %s", db, code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	col := -1
	for i, name := range strings.Split(lines[0], ",") {
		if name == "value" {
			col = i
		}
	}
	if col < 0 {
		t.Fatalf("export of %s has no value column: %s", db, lines[0])
	}
	for i, line := range lines {
		f := strings.Split(line, ",")
		f[col] = ""
		lines[i] = strings.Join(f, ",")
	}
	return strings.Join(lines, "\n")
}

// TestSlurmRequeuedTaskResumes: a task stopped in the middle of a point (a
// preemption) leaves it running in its shard database. Run again as a
// requeued task runs (--stale-after 0), it runs that point and skips the
// finished ones; with the default --stale-after the point would wait a
// minute.
func TestSlurmRequeuedTaskResumes(t *testing.T) {
	dir := t.TempDir()
	cfg := fixtureSweep(t, dir, "requeue", "[16, 24]") // 4 points; shard 0/2 has 2
	shardDB := filepath.Join(dir, "shard-0.db")
	task := []string{"run", cfg, "--shard", "0/2", "--db", shardDB, "--task"}

	s, err := sweep.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	store, err := results.Open(shardDB)
	if err != nil {
		t.Fatal(err)
	}
	id, pts, err := runner.Register(store, s, runner.Shard{Index: 0, Of: 2})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := store.ClaimAmong(id, "preempted", []string{pts[0].Hash}); err != nil || p == nil {
		t.Fatalf("claim: %v", err)
	}
	store.Close()

	code, out, _ := run(t, task...)
	if code != 0 || !strings.Contains(out, "ran 1 points (0 failed)") || !strings.Contains(out, "1 done, 0 failed, 1 pending") {
		t.Fatalf("default --stale-after: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, append(task, "--stale-after", "0")...)
	if code != 0 || !strings.Contains(out, "ran 1 points (0 failed)") || !strings.Contains(out, "2 done, 0 failed, 0 pending") {
		t.Fatalf("--stale-after 0: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, append(task, "--stale-after", "0")...)
	if code != 0 || !strings.Contains(out, "ran 0 points") || strings.Contains(out, "2 points\n") {
		t.Fatalf("third run (a task prints no plan): exit %d\n%s", code, out)
	}
}
