// Command scorecmp compares the cascade's two scorings, exact and
// reference, in a results database: it pairs every point with the point
// that differs from it only in `scoring`, and prints Markdown tables of
// passkey accuracy on the same prompts (with McNemar's exact test on the
// discordant pairs, and a sign test on the key digits each pair gets right)
// and of streaming perplexity and retention (how many of
// the positions each layer holds are the same under both scorings).
//
// Usage:
//
//	go run ./tools/scorecmp [-sweep NAME[@N]] DB
//
// configs/scoring.toml is the sweep it was written for (docs/design.md,
// "Scoring").
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"kvcascade/results"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scorecmp:", err)
		os.Exit(1)
	}
}

// run parses the command line and writes the report to w.
func run(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("scorecmp", flag.ContinueOnError)
	sweep := fs.String("sweep", "", "only this sweep (NAME or NAME@N); default: every sweep at its current version")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: scorecmp [-sweep NAME[@N]] DB")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("want one results database, got %d arguments", fs.NArg())
	}
	pts, err := load(fs.Arg(0), *sweep)
	if err != nil {
		return err
	}
	pk, ppl, err := compare(pts)
	if err != nil {
		return err
	}
	if len(pk) == 0 && len(ppl) == 0 {
		return fmt.Errorf("%s: no passkey or perplexity point has a finished counterpart under the other scoring", fs.Arg(0))
	}
	return writeReport(w, pk, ppl)
}

// load reads the finished points of a results database with their metrics
// and samples.
func load(path, sweep string) ([]point, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err // results.Open would create it
	}
	db, err := results.Open(path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	f := results.Filter{Sweep: sweep, Status: results.Done}
	rows, err := db.Points(f)
	if err != nil {
		return nil, err
	}
	metrics, err := db.Metrics(f)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]map[string]float64)
	for _, m := range metrics {
		if byID[m.PointID] == nil {
			byID[m.PointID] = make(map[string]float64)
		}
		byID[m.PointID][m.Name] = m.Value
	}
	pts := make([]point, 0, len(rows))
	for _, r := range rows {
		p := point{Experiment: r.Experiment, Metrics: byID[r.ID]}
		if err := json.Unmarshal(r.Params, &p.Params); err != nil {
			return nil, fmt.Errorf("%s: point %s: params: %w", path, r.Hash, err)
		}
		if p.Samples, err = db.Samples(r.ID); err != nil {
			return nil, err
		}
		pts = append(pts, p)
	}
	return pts, nil
}
