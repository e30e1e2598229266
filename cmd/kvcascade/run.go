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
	"strconv"
	"strings"
	"syscall"

	"kvcascade/experiments/runner"
	"kvcascade/experiments/sweep"
	"kvcascade/plots/report"
	"kvcascade/results"
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
	out := fs.String("out", "", "folder for figures and the report after the run (default: the sweep's out; none if neither)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kvcascade run CONFIG.toml [--db PATH] [--out DIR] [--workers N] [--dry-run] [--force] [--shard i/n]\n\n"+
			"Expands the sweep's grid, prints the plan and runs every point not yet finished into the\n"+
			"results database; a failing point is stored as failed and the sweep goes on. Then draws\n"+
			"the figures and writes the report into the out folder. The exit status is 1 when any\n"+
			"point of the sweep failed.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, reorder(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
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
	if err := sweep.FormatPlan(stdout, pts); err != nil {
		return err
	}
	if *dry {
		return nil
	}
	path := dbPath(*db, s)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	store, err := results.Open(path)
	if err != nil {
		return err
	}
	defer store.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := runner.Run(ctx, store, s, runner.Options{
		Workers: *workers, Force: *force, Progress: stdout, TTY: isTerminal(stdout), Shard: sh,
	})
	fmt.Fprintf(stdout, "sweep %q: ran %d points (%d failed) in %s; %d already finished; database %s: %d done, %d failed, %d pending\n",
		s.Name, sum.Ran, sum.Failed, sum.Duration.Round(1e7), sum.Skipped, path, sum.Counts.Done, sum.Counts.Failed, sum.Counts.Pending+sum.Counts.Running)
	if err != nil {
		return err
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
	case "dry-run", "force", "h", "help":
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
