package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"kvcascade/experiments/cluster"
	"kvcascade/experiments/sweep"
)

// slurmFlags are run's flags for submitting a sweep as a Slurm job array.
type slurmFlags struct {
	on          bool
	partition   string
	gpusPerTask autoInt // unset: 1 for a cuda sweep, else 0
	cpusPerTask int
	time        string
	parallelism int
	tasks       int // 0: one per point
}

// slurmOnly are the flags that mean something only with --slurm.
var slurmOnly = []string{"partition", "gpus-per-task", "cpus-per-task", "time", "array-parallelism", "tasks"}

func addSlurmFlags(fs *flag.FlagSet) *slurmFlags {
	f := &slurmFlags{}
	fs.BoolVar(&f.on, "slurm", false, "submit the sweep as a Slurm job array, one shard and one database per task, instead of running it")
	fs.StringVar(&f.partition, "partition", "", "with --slurm: the partition (default: the cluster's)")
	fs.Var(&f.gpusPerTask, "gpus-per-task", "with --slurm: `N` GPUs per task (default: 1 when the sweep's backend is cuda, else 0)")
	fs.IntVar(&f.cpusPerTask, "cpus-per-task", 0, "with --slurm: CPUs per task (default: the cluster's)")
	fs.StringVar(&f.time, "time", "", "with --slurm: time limit per task, HH:MM:SS or D-HH:MM:SS (default: the partition's)")
	fs.IntVar(&f.parallelism, "array-parallelism", 0, "with --slurm: tasks running at once (default: no limit)")
	fs.IntVar(&f.tasks, "tasks", 0, fmt.Sprintf("with --slurm: array tasks, each a shard of the points (default: one per point, at most %d)", cluster.MaxArrayTasks))
	return f
}

// check refuses the Slurm flags without --slurm.
func (f *slurmFlags) check(fs *flag.FlagSet) error {
	if f.on {
		return nil
	}
	var errs []error
	fs.Visit(func(fl *flag.Flag) {
		for _, name := range slurmOnly {
			if fl.Name == name {
				errs = append(errs, fmt.Errorf("--%s needs --slurm", name))
			}
		}
	})
	return errors.Join(errs...)
}

// runSlurm writes the batch script of the sweep's job array next to the
// database (DB without .db, plus .slurm) and submits it; with --dry-run it
// prints the script instead.
func runSlurm(ctx context.Context, f *slurmFlags, rf runFlags, s *sweep.Sweep, points int, stdout, stderr io.Writer) error {
	switch {
	case rf.gpus != "":
		return errors.New("--slurm with --gpus: a task's GPUs come from Slurm (--gpus-per-task)")
	case rf.shard != "":
		return errors.New("--slurm with --shard: the array's tasks are the shards (--tasks)")
	case rf.force:
		return errors.New("--slurm with --force: a requeued task would run its finished points again; delete the shard databases to run every point again")
	case rf.task:
		return errors.New("--slurm with --task: the array's tasks get --task")
	case f.tasks < 0:
		return fmt.Errorf("--tasks %d: want ≥ 1", f.tasks)
	case points == 0:
		return fmt.Errorf("sweep %q has no points", s.Name)
	}
	tasks := f.tasks
	switch {
	case tasks == 0:
		tasks = min(points, cluster.MaxArrayTasks)
	case tasks > points:
		fmt.Fprintf(stderr, "--tasks %d for %d points: submitting %d tasks\n", tasks, points, points)
		tasks = points
	}
	gpus := f.gpusPerTask.n
	if !f.gpusPerTask.set && s.Backend.Name == "cuda" {
		gpus = 1
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return fmt.Errorf("--slurm: find this binary for the tasks: %w", err)
	}
	if filepath.Base(filepath.Dir(exe)) == "exe" && strings.Contains(exe, "go-build") {
		return fmt.Errorf("--slurm: this binary (%s) is go run's temporary build, deleted when it exits; build one for the tasks with `go build -o kvcascade ./cmd/kvcascade` and run that", exe)
	}
	config, err := filepath.Abs(rf.config)
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	db, err := filepath.Abs(dbPath(rf.db, s))
	if err != nil {
		return err
	}
	a := cluster.Array{
		Sweep: s.Name, Binary: exe, Config: config, Workdir: wd,
		Dir: strings.TrimSuffix(db, filepath.Ext(db)) + ".slurm", MainDB: db, Points: points,
		Tasks: tasks, Parallelism: f.parallelism, Partition: f.partition,
		GPUsPerTask: gpus, CPUsPerTask: f.cpusPerTask, Time: f.time, Workers: rf.workers,
	}
	if err := a.Validate(); err != nil {
		return err
	}
	if rf.dry {
		fmt.Fprint(stdout, a.Script())
		fmt.Fprintf(stderr, "dry run: sweep %q, %s in %s; nothing written or submitted\n", s.Name, plural(points, "point"), plural(tasks, "task"))
		return nil
	}
	sbatch, err := exec.LookPath("sbatch")
	if err != nil {
		return fmt.Errorf("--slurm: %w (is this a Slurm login node? --dry-run prints the script)", err)
	}
	path, err := a.Write()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: sweep %q, %s in %s\n", path, s.Name, plural(points, "point"), plural(tasks, "task"))
	id, err := cluster.Submit(ctx, sbatch, path)
	if err != nil {
		return err
	}
	report := "DIR"
	if dir := reportDir(rf.out, s); dir != "" {
		report = dir
	}
	fmt.Fprintf(stdout, "submitted job array %s\n"+
		"  watch:  squeue -j %s\n"+
		"  logs:   %s\n"+
		"  merge:  %s merge --db %s %s   (again whenever you like; merging twice adds nothing)\n"+
		"  then:   %s status --db %s; %s report --db %s --out %s\n",
		id, id, filepath.Join(a.Dir, "task-<i>.log"),
		exe, db, a.Dir, exe, db, exe, db, report)
	return nil
}

// autoInt is an int flag whose default depends on other things: unset, it
// prints no default.
type autoInt struct {
	n   int
	set bool
}

func (a *autoInt) String() string {
	if a == nil || !a.set {
		return ""
	}
	return strconv.Itoa(a.n)
}

func (a *autoInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not an integer")
	}
	a.n, a.set = n, true
	return nil
}

// plural is "1 thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}
