package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"kvcascade/experiments"
	"kvcascade/results"
)

func runExperiments(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("experiments", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kvcascade experiments\n\nLists every experiment with its parameters, defaults and a description.")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, e := range experiments.All() {
		fmt.Fprintf(stdout, "%s — %s\n", e.Name(), e.Doc())
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, p := range e.Params() {
			def := fmt.Sprint(p.Default)
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(tw, "    %s\t%s\tdefault %s\t%s\n", p.Name, p.Kind, def, p.Doc)
		}
		tw.Flush()
		fmt.Fprintln(stdout)
	}
	return nil
}

// openDB opens the existing database named by a --db flag, which must be
// given: the commands that only read never make one (a mistyped path is an
// error, not an empty database).
func openDB(path string) (*results.DB, error) {
	if path == "" {
		return nil, fmt.Errorf("--db is required")
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("--db %s: %w", path, err)
	}
	return openResults(path)
}

// checkSweep returns an error unless the --sweep value (NAME or NAME@N;
// "" for every sweep) names a sweep of db.
func checkSweep(db *results.DB, sweep string) error {
	if sweep == "" {
		return nil
	}
	_, err := db.Sweep(sweep)
	return err
}

// sweepFlagDoc documents --sweep for the commands that read.
const sweepFlagDoc = "only this sweep, at its current version (the one last run), or NAME@N for its version N (see status --versions); default: every sweep at its current version"

// openResults opens the results database at path with the experiments'
// declarations, which a database written before experiment and policy
// parameters were stored apart is migrated with.
func openResults(path string) (*results.DB, error) {
	return results.OpenWith(path, results.Options{Declared: experiments.Declared})
}

// createDB opens the results database at path, creating its folder and
// the file when they do not exist.
func createDB(path string) (*results.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return openResults(path)
}

func runExport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "results database")
	format := fs.String("format", "csv", "csv or json")
	sweepName := fs.String("sweep", "", sweepFlagDoc)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kvcascade export --db PATH [--format csv|json] [--sweep NAME[@N]]\n\n"+
			"Prints one row per (point, metric): sweep, experiment, model, policy, the grid\nparameters, metric, value, unit, status and the point's hash.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "csv" && *format != "json" {
		return fmt.Errorf("--format %q: want csv or json", *format)
	}
	store, err := openDB(*db)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := checkSweep(store, *sweepName); err != nil {
		return err
	}
	return store.Export(stdout, *format, *sweepName)
}

func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "results database")
	versions := fs.Bool("versions", false, "list every version of each sweep, not only the current one")
	sweepName := fs.String("sweep", "", "only this sweep (NAME or NAME@N)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kvcascade status --db PATH [--versions] [--sweep NAME[@N]]\n\n"+
			"Shows the done, failed, pending and running points of each sweep at its current version\n"+
			"(the one last run). A sweep is its name: each edit of its file that was run is a version,\n"+
			"numbered from 1; --versions lists them all, and NAME@N picks one in plot, report and export.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	store, err := openDB(*db)
	if err != nil {
		return err
	}
	defer store.Close()
	var sweeps []results.SweepRow
	switch name, version := results.SplitVersion(*sweepName); {
	case *sweepName != "" && (version > 0 || !*versions):
		s, err := store.Sweep(*sweepName)
		if err != nil {
			return err
		}
		sweeps = []results.SweepRow{s}
	case *versions:
		if sweeps, err = store.Versions(name); err == nil && len(sweeps) == 0 && name != "" {
			_, err = store.Sweep(name)
		}
	default:
		sweeps, err = store.Sweeps()
	}
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if *versions {
		fmt.Fprintln(tw, "sweep\tversion\tdone\tfailed\tpending\trunning\tfirst run")
	} else {
		fmt.Fprintln(tw, "sweep\tdone\tfailed\tpending\trunning")
	}
	for _, s := range sweeps {
		c, err := store.Status(s.ID)
		if err != nil {
			return err
		}
		if !*versions {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", s.Name, c.Done, c.Failed, c.Pending, c.Running)
			continue
		}
		v := fmt.Sprint(s.Version)
		if s.Current {
			v += " (current)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", s.Name, v, c.Done, c.Failed, c.Pending, c.Running, s.Created)
	}
	return tw.Flush()
}
