package sweep

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// FormatPlan writes a compact plan of pts: the models, backend and chunks,
// a table of points per experiment (rows) and policy label (columns), the
// parameters that vary (per experiment and per policy label) with their
// values, the settings that do not vary, and the total.
func FormatPlan(w io.Writer, pts []Point) error {
	var (
		exps, labels, models, backends, chunks ordered
		count                                  = map[[2]string]int{}
		expAxes                                = map[string]*paramValues{}
		polAxes                                = map[string]*paramValues{}
	)
	for _, p := range pts {
		exps.add(p.Experiment)
		labels.add(p.Label)
		models.add(p.Model.String())
		backends.add(p.Backend.String())
		chunks.add(fmt.Sprint(p.Chunk))
		count[[2]string{p.Experiment, p.Label}]++
		collect(expAxes, p.Experiment, p.ExperimentParams)
		collect(polAxes, p.Label, p.PolicyParams)
	}
	bw := &errWriter{w: w}
	fmt.Fprintf(bw, "%d points\n", len(pts))
	if len(pts) == 0 {
		return bw.err
	}
	fmt.Fprintf(bw, "models: %s\n", strings.Join(models, ", "))
	fmt.Fprintf(bw, "backend: %s; chunk: %s\n\n", strings.Join(backends, ", "), strings.Join(chunks, ", "))

	// Numbers align right; the first column is padded to stay left-aligned.
	width := len("total")
	for _, e := range exps {
		width = max(width, len(e))
	}
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\t%s\ttotal\t\n", width, "", strings.Join(labels, "\t"))
	colTotal := make([]int, len(labels))
	for _, e := range exps {
		row := make([]string, len(labels))
		sum := 0
		for i, l := range labels {
			n := count[[2]string{e, l}]
			row[i], sum, colTotal[i] = fmt.Sprint(n), sum+n, colTotal[i]+n
		}
		fmt.Fprintf(tw, "%-*s\t%s\t%d\t\n", width, e, strings.Join(row, "\t"), sum)
	}
	if len(exps) > 1 {
		row := make([]string, len(labels))
		for i, n := range colTotal {
			row[i] = fmt.Sprint(n)
		}
		fmt.Fprintf(tw, "%-*s\t%s\t%d\t\n", width, "total", strings.Join(row, "\t"), len(pts))
	}
	tw.Flush()

	tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	axes := 0
	for _, groups := range []struct {
		names ordered
		vals  map[string]*paramValues
	}{{exps, expAxes}, {labels, polAxes}} {
		for _, owner := range groups.names {
			pv := groups.vals[owner]
			for _, name := range pv.names {
				if vs := pv.values[name]; len(vs) > 1 {
					if axes == 0 {
						fmt.Fprintln(tw, "\naxes:")
					}
					axes++
					fmt.Fprintf(tw, "  %s\t%s\t%s\n", owner, name, strings.Join(vs, ", "))
				}
			}
		}
	}
	tw.Flush()
	formatSettings(bw, pts)
	return bw.err
}

// ordered is a list of distinct strings in the order first seen.
type ordered []string

func (o *ordered) add(s string) bool {
	if contains(*o, s) {
		return false
	}
	*o = append(*o, s)
	return true
}

// paramValues are the distinct values each parameter of an owner takes.
type paramValues struct {
	names  ordered
	values map[string]ordered
}

func collect(m map[string]*paramValues, owner string, v map[string]any) {
	pv := m[owner]
	if pv == nil {
		pv = &paramValues{values: map[string]ordered{}}
		m[owner] = pv
	}
	for _, k := range slices.Sorted(maps.Keys(v)) {
		pv.names.add(k)
		vs := pv.values[k]
		vs.add(formatValue(v[k]))
		pv.values[k] = vs
	}
}

// errWriter keeps the first error of w and writes nothing after it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
