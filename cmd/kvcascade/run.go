package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"kvcascade/experiments/runner"
	"kvcascade/experiments/sweep"
	"kvcascade/plots/report"
)

// errPointsFailed makes the exit status say that some points failed.
var errPointsFailed = errors.New("some points failed")

func runSweep(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "results database (default: the sweep's db, else out/<name>.db)")
	workers := fs.Int("workers", 1, "points run at once in this process")
	dry := fs.Bool("dry-run", false, "print the plan and exit")
	force := fs.Bool("force", false, "run finished points again")
	shard := fs.String("shard", "", "run only shard i of n (\"i/n\", 0-based) of the points")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	out := fs.String("out", "", "folder for figures and the report after the run (default: the sweep's out; none if neither)")
	gpus := fs.String("gpus", "", "run one worker process per GPU, e.g. 0,1,2,3 (its CUDA_VISIBLE_DEVICES), all on one database")
	staleAfter := fs.Duration("stale-after", time.Minute, "a running point whose heartbeat is older is run again; 0: every running point (only when no other process uses the database)")
	task := fs.Bool("task", false, "run as one worker of --gpus or of a Slurm array: no plan, no figures, exit status 1 only for points this process failed")
	slurm := addSlurmFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kvcascade run CONFIG.toml [--db PATH] [--out DIR] [--workers N] [--dry-run] [--force] [--shard i/n]\n"+
			"                     [--gpus 0,1,...] [--slurm [--tasks N] [--partition P] [--time HH:MM:SS] ...]\n\n"+
			"Expands the sweep's grid, prints the plan and runs every point not yet finished into the\n"+
			"results database; a failing point is stored as failed and the sweep goes on. Then draws\n"+
			"the figures and writes the report into the out folder. The exit status is 1 when any\n"+
			"point of the sweep failed.\n\n"+
			"--gpus runs one worker process per GPU on this host, all on one database. --slurm\n"+
			"writes a Slurm job array next to the database instead (DB without .db, plus .slurm/),\n"+
			"one shard of the points and one database per task, and submits it with sbatch; fold\n"+
			"the shards in afterwards with kvcascade merge.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, reorder(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	if *workers < 1 {
		return fmt.Errorf("--workers %d: want at least 1", *workers)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	s, err := sweep.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	pts, err := s.Points()
	if err != nil {
		return err
	}
	sh, err := parseShard(*shard)
	if err != nil {
		return err
	}
	if !*task {
		// Every model, data file and word list opens before the first
		// point runs; a worker of --gpus or Slurm was started after its
		// parent checked them.
		if err := s.CheckFiles(); err != nil {
			return err
		}
	}
	if err := slurm.check(fs); err != nil {
		return err
	}
	stale, err := runnerStaleAfter(*staleAfter)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rf := runFlags{config: fs.Arg(0), db: *db, out: *out, shard: *shard, gpus: *gpus, workers: *workers,
		dry: *dry, force: *force, task: *task, staleAfter: *staleAfter}
	if slurm.on {
		return runSlurm(ctx, slurm, rf, s, len(pts), stdout, stderr)
	}
	if !*task {
		if err := sweep.FormatPlan(stdout, pts); err != nil {
			return err
		}
		if err := printDone(stdout, dbPath(*db, s), s, pts, *force); err != nil {
			return err
		}
	}
	if *dry {
		return nil
	}
	if *gpus != "" {
		return runGPUs(ctx, rf, s, sh, stdout, stderr)
	}
	path := dbPath(*db, s)
	store, err := createDB(path)
	if err != nil {
		return err
	}
	defer store.Close()
	sum, err := runner.Run(ctx, store, s, runner.Options{
		Workers: *workers, Force: *force, KeepFailed: *task, Progress: stdout, TTY: isTerminal(stdout), Width: terminalWidth(stdout),
		Shard: sh, StaleAfter: stale,
	})
	fmt.Fprintf(stdout, "sweep %q: ran %d points (%d failed) in %s; %d already finished; database %s: %d done, %d failed, %d pending\n",
		s.Name, sum.Ran, sum.Failed, sum.Duration.Round(1e7), sum.Skipped, path, sum.Counts.Done, sum.Counts.Failed, sum.Counts.Pending+sum.Counts.Running)
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted: the point that was running is pending again; run the same command to go on")
	}
	if err != nil {
		return err
	}
	if *task {
		if sum.Failed > 0 {
			return errPointsFailed
		}
		return nil
	}
	if *out != "" || s.Out != "" {
		dir := *out
		if dir == "" {
			dir = s.Out
		}
		html, _, err := report.Write(store, s.Name, dir)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		fmt.Fprintf(stdout, "figures in %s, report %s\n", filepath.Join(dir, "figures"), html)
	}
	if sum.Counts.Failed > 0 {
		return errPointsFailed
	}
	return nil
}

// printDone says how many of the planned points are already done in the
// database at path (in any version of the sweep, found by their hash) and
// so will not run again; nothing when the database does not exist yet.
func printDone(w io.Writer, path string, s *sweep.Sweep, pts []sweep.Point, force bool) error {
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(w, "\nnone of the %d points is done yet (no database %s)\n", len(pts), path)
		return nil
	}
	store, err := openResults(path)
	if err != nil {
		return err
	}
	defer store.Close()
	done, err := store.DoneHashes(s.Name)
	if err != nil {
		return err
	}
	n := 0
	for _, p := range pts {
		if done[p.Hash] {
			n++
		}
	}
	switch {
	case force:
		fmt.Fprintf(w, "\n%d of the %d points are done in %s; --force runs all %d again\n", n, len(pts), path, len(pts))
	default:
		fmt.Fprintf(w, "\n%d of the %d points are done in %s; %d to run\n", n, len(pts), path, len(pts)-n)
	}
	return nil
}

// dbPath is the flag's database, the sweep's, or out/<name>.db.
func dbPath(flagValue string, s *sweep.Sweep) string {
	switch {
	case flagValue != "":
		return flagValue
	case s.DB != "":
		return s.DB
	}
	return filepath.Join("out", s.Name+".db")
}

func parseShard(s string) (runner.Shard, error) {
	if s == "" {
		return runner.Shard{}, nil
	}
	i, n, ok := strings.Cut(s, "/")
	ii, err1 := strconv.Atoi(i)
	nn, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil || nn < 1 || ii < 0 || ii >= nn {
		return runner.Shard{}, fmt.Errorf("--shard %q: want i/n with 0 ≤ i < n", s)
	}
	return runner.Shard{Index: ii, Of: nn}, nil
}

// reorder moves flags after positional arguments in front of them, so that
// "run config.toml --db x" works as users expect.
func reorder(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) && !isBoolFlag(a) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}

func isBoolFlag(a string) bool {
	switch strings.TrimLeft(a, "-") {
	case "dry-run", "force", "h", "help", "slurm", "task":
		return true
	}
	return false
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
