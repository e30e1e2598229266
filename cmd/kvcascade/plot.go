package main

import (
	"flag"
	"fmt"
	"io"

	"kvcascade/plots/report"
)

func runPlot(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "results database")
	out := fs.String("out", "", "folder for the figures (PNG and SVG)")
	sweepName := fs.String("sweep", "", "only this sweep (default all)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kvcascade plot --db PATH --out DIR [--sweep NAME]\n\n"+
			"Draws every figure the database supports: passkey tables per policy, perplexity vs\n"+
			"tokens seen, latency and memory vs length, LongBench bars and retention maps.\n\nFlags:")
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
	figs, err := report.Render(store, *sweepName, *out)
	if err != nil {
		return err
	}
	if len(figs) == 0 {
		return fmt.Errorf("%s: no finished points to draw", *db)
	}
	for _, f := range figs {
		fmt.Fprintf(stdout, "%s\n%s\n", f.PNG, f.SVG)
	}
	return nil
}

func runReport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "results database")
	out := fs.String("out", "", "folder for report.html, report.md and figures/")
	sweepName := fs.String("sweep", "", "only this sweep (default all)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kvcascade report --db PATH --out DIR [--sweep NAME]\n\n"+
			"Writes a self-contained HTML page and a Markdown page with the tables and figures of\n"+
			"a sweep and the provenance of every point.\n\nFlags:")
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
	html, md, err := report.Write(store, *sweepName, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n%s\n", html, md)
	return nil
}
