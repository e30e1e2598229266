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

// openDB opens the database named by a --db flag, which must be given.
func openDB(path string) (*results.DB, error) {
	if path == "" {
		return nil, fmt.Errorf("--db is required")
	}
	return results.Open(path)
}

// createDB opens the results database at path, creating its folder and
// the file when they do not exist.
func createDB(path string) (*results.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return results.Open(path)
}

func runExport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "results database")
	format := fs.String("format", "csv", "csv or json")
	sweepName := fs.String("sweep", "", "only this sweep (default all)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kvcascade export --db PATH [--format csv|json] [--sweep NAME]\n\n"+
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
	return store.Export(stdout, *format, *sweepName)
}

func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "results database")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	store, err := openDB(*db)
	if err != nil {
		return err
	}
	defer store.Close()
	sweeps, err := store.Sweeps()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "sweep\tdone\tfailed\tpending\trunning")
	for _, s := range sweeps {
		c, err := store.Status(s.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", s.Name, c.Done, c.Failed, c.Pending, c.Running)
	}
	return tw.Flush()
}
