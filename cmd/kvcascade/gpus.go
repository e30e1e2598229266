package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"kvcascade/experiments/cluster"
	"kvcascade/experiments/runner"
	"kvcascade/experiments/sweep"
	"kvcascade/plots/report"
)

// runFlags are the flags of run that --gpus and --slurm hand on to their
// workers or refuse.
type runFlags struct {
	config     string // the sweep file, as given
	db, out    string
	shard      string
	gpus       string
	workers    int
	dry, force bool
	task       bool
	staleAfter time.Duration
}

// runnerStaleAfter turns --stale-after into runner.Options.StaleAfter, where
// 0 means the default: --stale-after 0 (every running point is stale) is
// the shortest positive duration instead.
func runnerStaleAfter(d time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, fmt.Errorf("--stale-after %s: want ≥ 0", d)
	case d == 0:
		return time.Nanosecond, nil
	}
	return d, nil
}

// runGPUs runs the sweep with one worker process per GPU: this binary again,
// as `run CONFIG --db PATH --task`, with CUDA_VISIBLE_DEVICES set. The
// workers claim points from one database; this process relays their output,
// waits for them and then draws the figures and the report.
func runGPUs(ctx context.Context, f runFlags, s *sweep.Sweep, sh runner.Shard, stdout, stderr io.Writer) error {
	if f.task {
		return fmt.Errorf("--gpus with --task: a task is one worker on one GPU")
	}
	devs, err := cluster.ParseDevices(f.gpus)
	if err != nil {
		return fmt.Errorf("--gpus %w", err)
	}
	if f.workers < 1 {
		return fmt.Errorf("--workers %d: want ≥ 1", f.workers)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--gpus: find this binary to run the workers: %w", err)
	}
	config, err := filepath.Abs(f.config)
	if err != nil {
		return err
	}
	path, err := filepath.Abs(dbPath(f.db, s))
	if err != nil {
		return err
	}
	store, err := createDB(path)
	if err != nil {
		return err
	}
	defer store.Close()
	// Register and reset here, once: a worker given --force would reset
	// the points other workers have just finished (the workers run with
	// --task, which leaves failed points failed).
	id, pts, err := runner.Register(store, s, sh)
	if err != nil {
		return err
	}
	hashes := make([]string, len(pts))
	for i, p := range pts {
		hashes[i] = p.Hash
	}
	reset := store.ResetFailed // failed points run again, done ones never
	if f.force {
		reset = store.ResetPoints
	}
	if _, err := reset(id, hashes); err != nil {
		return err
	}

	args := []string{"run", config, "--db", path, "--task",
		"--workers", strconv.Itoa(f.workers), "--stale-after", f.staleAfter.String()}
	if f.shard != "" {
		args = append(args, "--shard", f.shard)
	}
	fmt.Fprintf(stdout, "running sweep %q with %d worker processes (GPUs %s) on %s\n", s.Name, len(devs), strings.Join(devs, ", "), path)
	start := time.Now()
	werr := cluster.Local{Executable: exe, Args: args, Devices: devs, Stdout: stdout, Stderr: stderr}.Run(ctx)
	c, err := store.Status(id)
	if err != nil {
		return errors.Join(werr, err)
	}
	fmt.Fprintf(stdout, "sweep %q: %d workers done in %s; database %s: %d done, %d failed, %d pending\n",
		s.Name, len(devs), time.Since(start).Round(10*time.Millisecond), path, c.Done, c.Failed, c.Pending+c.Running)
	if err := ctx.Err(); err != nil {
		return errors.Join(werr, err)
	}
	if dir := reportDir(f.out, s); dir != "" {
		html, _, err := report.Write(store, s.Name, dir)
		if err != nil {
			return errors.Join(werr, fmt.Errorf("report: %w", err))
		}
		fmt.Fprintf(stdout, "figures in %s, report %s\n", filepath.Join(dir, "figures"), html)
	}
	if werr != nil {
		if c.Running > 0 {
			werr = fmt.Errorf("%w\n%d points were left running: a later run takes them up once their heartbeat is older than --stale-after (%s)", werr, c.Running, f.staleAfter)
		}
		return werr
	}
	if c.Failed > 0 {
		return errPointsFailed
	}
	return nil
}

// reportDir is the --out flag, else the sweep's out ("" for none).
func reportDir(flagValue string, s *sweep.Sweep) string {
	if flagValue != "" {
		return flagValue
	}
	return s.Out
}
