package main

import (
	"flag"
	"fmt"
	"io"

	"kvcascade/plots/report"
	"kvcascade/results"
)

// dbOutCommand parses the flags shared by plot and report (--db, --out,
// --sweep), opens the database and hands it to fn.
func dbOutCommand(name, usage string, args []string, stderr io.Writer, fn func(db *results.DB, sweep, out string) error) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "results database")
	out := fs.String("out", "", "output folder")
	sweepName := fs.String("sweep", "", sweepFlagDoc)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kvcascade %s --db PATH --out DIR [--sweep NAME[@N]]\n\n%s\n\nFlags:\n", name, usage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	store, err := openDB(*db)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := checkSweep(store, *sweepName); err != nil {
		return err
	}
	return fn(store, *sweepName, *out)
}

func runPlot(args []string, stdout, stderr io.Writer) error {
	return dbOutCommand("plot", "Draws every figure the database supports into DIR (PNG and SVG): passkey tables per\n"+
		"policy, perplexity vs tokens seen, latency and memory vs length, LongBench bars,\nretention maps, and for passkey with diagnostics = true the key held (and the question's\nattention on it) per layer and KV head and retention at the question, key block marked.",
		args, stderr, func(db *results.DB, sweep, out string) error {
			figs, err := report.Render(db, sweep, out)
			if err != nil {
				return err
			}
			if len(figs) == 0 {
				return fmt.Errorf("%s: no finished points to draw", db.Path())
			}
			for _, f := range figs {
				fmt.Fprintf(stdout, "%s\n%s\n", f.PNG, f.SVG)
			}
			return nil
		})
}

func runReport(args []string, stdout, stderr io.Writer) error {
	return dbOutCommand("report", "Writes DIR/report.html (self-contained) and DIR/report.md with the tables and figures of\n"+
		"a sweep and the provenance of every point.",
		args, stderr, func(db *results.DB, sweep, out string) error {
			html, md, err := report.Write(db, sweep, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\n%s\n", html, md)
			return nil
		})
}
