// Package cluster spreads the points of one sweep over several worker
// processes: one per GPU of this host (Local), all claiming points from one
// results database, or one Slurm job-array task per shard of the sweep
// (Array), each writing a results database of its own that
// results.DB.Merge folds into the main one afterwards.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"kvcascade/internal/atomicfile"
)

// MaxArrayTasks is the most tasks an Array may have: Slurm's default
// MaxArraySize (1001) allows task indices 0 to 1000.
const MaxArrayTasks = 1001

// Array is a Slurm job array that runs a sweep in shards. Task i of n runs
//
//	BINARY run CONFIG --shard i/n --db DIR/shard-i.db --stale-after 0 --task
//
// so every task writes a results database of its own: SQLite's locking does
// not work on the network file systems a cluster's nodes share. A task that
// Slurm requeues (preemption, a node failure) runs the same shard into the
// same database again: finished points are skipped, and because the task
// owns its database alone, --stale-after 0 hands the point it was running
// when it was stopped out again at once.
type Array struct {
	Sweep   string // sweep name, for the job name and the comments
	Binary  string // absolute path of the kvcascade binary
	Config  string // absolute path of the sweep file
	Workdir string // absolute working directory of every task
	// Dir is the absolute folder of the script, the shard databases and
	// the logs (one per task, appended to across requeues).
	Dir    string
	MainDB string // database the shards are merged into, for the comments
	Points int    // points of the sweep, for the comments

	Tasks       int    // array tasks (shards), 1 to MaxArrayTasks
	Parallelism int    // tasks running at once; 0 leaves it to Slurm
	Partition   string // "" is the cluster's default partition
	GPUsPerTask int    // GPUs of each task; 0 asks for none
	CPUsPerTask int    // CPUs of each task; 0 is the cluster's default
	Time        string // time limit of each task in a Slurm format; "" is the partition's
	Workers     int    // --workers of each task; 0 or 1 runs one point at a time
}

// ScriptName is the file name of the batch script in Array.Dir.
const ScriptName = "job.sbatch"

// ScriptPath is where Write puts the batch script.
func (a Array) ScriptPath() string { return filepath.Join(a.Dir, ScriptName) }

// ShardDB is the results database of task i.
func (a Array) ShardDB(i int) string {
	return filepath.Join(a.Dir, "shard-"+strconv.Itoa(i)+".db")
}

// Validate checks the array's fields and says which one is wrong, naming it
// as the flag of `kvcascade run --slurm` that sets it.
func (a Array) Validate() error {
	var errs []error
	for _, p := range []struct{ flag, path string }{
		{"binary", a.Binary}, {"config", a.Config}, {"working directory", a.Workdir}, {"folder", a.Dir},
	} {
		if !filepath.IsAbs(p.path) {
			errs = append(errs, fmt.Errorf("%s %q is not an absolute path", p.flag, p.path))
		}
		if strings.ContainsAny(p.path, "\n\r") {
			errs = append(errs, fmt.Errorf("%s %q contains a line break", p.flag, p.path))
		}
	}
	// Both go into #SBATCH lines, which take neither spaces nor quotes,
	// and --output reads '%' as the start of a pattern.
	for _, p := range []struct{ what, path string }{{"working directory", a.Workdir}, {"folder", a.Dir}} {
		if strings.ContainsAny(p.path, " \t\"'%\\") {
			errs = append(errs, fmt.Errorf("%s %q: Slurm's #SBATCH lines take no spaces, quotes, backslashes or '%%' in paths", p.what, p.path))
		}
	}
	if a.Tasks < 1 || a.Tasks > MaxArrayTasks {
		errs = append(errs, fmt.Errorf("--tasks %d: want 1 to %d", a.Tasks, MaxArrayTasks))
	}
	if a.Parallelism < 0 {
		errs = append(errs, fmt.Errorf("--array-parallelism %d: want ≥ 0 (0: no limit)", a.Parallelism))
	}
	if a.GPUsPerTask < 0 {
		errs = append(errs, fmt.Errorf("--gpus-per-task %d: want ≥ 0", a.GPUsPerTask))
	}
	if a.CPUsPerTask < 0 {
		errs = append(errs, fmt.Errorf("--cpus-per-task %d: want ≥ 0 (0: the cluster's default)", a.CPUsPerTask))
	}
	if a.Workers < 0 {
		errs = append(errs, fmt.Errorf("--workers %d: want ≥ 1", a.Workers))
	}
	if a.Partition != "" && !validPartition(a.Partition) {
		errs = append(errs, fmt.Errorf("--partition %q: want letters, digits, '_', '-', '.' or ',' only", a.Partition))
	}
	if a.Time != "" {
		if err := CheckTime(a.Time); err != nil {
			errs = append(errs, fmt.Errorf("--time: %w", err))
		}
	}
	return errors.Join(errs...)
}

func validPartition(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("_-.,", r):
		default:
			return false
		}
	}
	return true
}

// CheckTime checks a Slurm time limit: "MM", "MM:SS", "HH:MM:SS", "D-HH",
// "D-HH:MM", "D-HH:MM:SS", or "UNLIMITED"/"INFINITE" (0, like those, means
// no limit).
func CheckTime(s string) error {
	if s == "UNLIMITED" || s == "INFINITE" {
		return nil
	}
	rest := s
	if d, r, ok := strings.Cut(s, "-"); ok {
		if !digits(d) {
			return fmt.Errorf("%q: days %q are not a number", s, d)
		}
		rest = r
	}
	parts := strings.Split(rest, ":")
	if len(parts) > 3 {
		return fmt.Errorf("%q: want HH:MM:SS, MM:SS, MM or D-HH[:MM[:SS]]", s)
	}
	for i, p := range parts {
		if !digits(p) {
			return fmt.Errorf("%q: want HH:MM:SS, MM:SS, MM or D-HH[:MM[:SS]]", s)
		}
		// The fields after the first (minutes and seconds) are below 60.
		if n, _ := strconv.Atoi(p); i > 0 && n >= 60 {
			return fmt.Errorf("%q: %s is not below 60", s, p)
		}
	}
	return nil
}

func digits(s string) bool {
	if s == "" || len(s) > 9 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Script is the batch script of the array.
func (a Array) Script() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("#!/bin/bash")
	w("# kvcascade sweep %q: %s in %s, each with a results", a.Sweep, count(a.Points, "point"), count(a.Tasks, "job-array task"))
	w("# database of its own (shard-<task>.db beside this script).")
	w("# Written by `kvcascade run --slurm`; submit with `sbatch --parsable %s`.", a.ScriptPath())
	w("# When the array is done (or meanwhile, as often as you like), fold the shards")
	w("# into the main database:")
	w("#   %s merge --db %s %s", shellQuote(a.Binary), shellQuote(a.MainDB), shellQuote(a.Dir))
	array := fmt.Sprintf("0-%d", a.Tasks-1)
	if a.Parallelism > 0 {
		array += "%" + strconv.Itoa(a.Parallelism)
	}
	w("#SBATCH --job-name=%s", jobName(a.Sweep))
	w("#SBATCH --array=%s", array)
	w("#SBATCH --ntasks=1")
	if a.Partition != "" {
		w("#SBATCH --partition=%s", a.Partition)
	}
	if a.GPUsPerTask > 0 {
		w("#SBATCH --gpus-per-task=%d", a.GPUsPerTask)
	}
	if a.CPUsPerTask > 0 {
		w("#SBATCH --cpus-per-task=%d", a.CPUsPerTask)
	}
	if a.Time != "" {
		w("#SBATCH --time=%s", a.Time)
	}
	w("#SBATCH --chdir=%s", a.Workdir)
	w("#SBATCH --output=%s", filepath.Join(a.Dir, "task-%a.log"))
	w("#SBATCH --open-mode=append")
	w("#SBATCH --requeue")
	w("")
	w("set -euo pipefail")
	w(`: "${SLURM_ARRAY_TASK_ID:?not a job-array task: submit this script with sbatch}"`)
	w(`echo "== kvcascade task ${SLURM_ARRAY_TASK_ID}/%d of job ${SLURM_ARRAY_JOB_ID:-?} on $(hostname), start $((${SLURM_RESTART_COUNT:-0} + 1)), $(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)"`, a.Tasks)
	workers := a.Workers
	if workers < 1 {
		workers = 1
	}
	w("exec %s run %s \\", shellQuote(a.Binary), shellQuote(a.Config))
	w(`    --shard "${SLURM_ARRAY_TASK_ID}/%d" \`, a.Tasks)
	w(`    --db %s"/shard-${SLURM_ARRAY_TASK_ID}.db" \`, shellQuote(a.Dir))
	w("    --workers %d --stale-after 0 --task", workers)
	return b.String()
}

// count is "1 thing" or "n things".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

// jobName is the sweep's name with what Slurm or a shell might mind replaced.
func jobName(sweep string) string {
	var b strings.Builder
	b.WriteString("kvcascade-")
	for _, r := range sweep {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Write creates a.Dir and writes the batch script into it, returning its
// path.
func (a Array) Write() (string, error) {
	if err := a.Validate(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(a.Dir, 0o755); err != nil {
		return "", err
	}
	path := a.ScriptPath()
	if err := atomicfile.WriteFile(path, []byte(a.Script()), 0o755); err != nil {
		return "", err
	}
	return path, nil
}

// Submit submits the batch script at path with `sbatch --parsable` (sbatch
// is the command's path or name) and returns the job id.
func Submit(ctx context.Context, sbatch, path string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, sbatch, "--parsable", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return "", fmt.Errorf("sbatch --parsable %s: %w: %s", path, err, msg)
	}
	return ParseJobID(stdout.String())
}

// ParseJobID reads the output of `sbatch --parsable`: "JOBID" or
// "JOBID;CLUSTER", on the last line (sbatch may print warnings first).
func ParseJobID(out string) (string, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	id, _, _ := strings.Cut(last, ";")
	if !digits(id) {
		return "", fmt.Errorf("sbatch --parsable printed %q, not a job id", strings.TrimSpace(out))
	}
	return id, nil
}
