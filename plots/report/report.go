package report

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"kvcascade/internal/atomicfile"
	"kvcascade/plots"
	"kvcascade/plots/figure"
	"kvcascade/results"
)

// table is a titled table of strings.
type table struct {
	Title  string
	Header []string
	Rows   [][]string
}

// Write renders the figures of sweep into dir/figures and writes dir/report.html
// (self-contained: figures inlined) and dir/report.md. It returns the two paths.
func Write(db *results.DB, sweep, dir string) (htmlPath, mdPath string, err error) {
	pts, err := load(db, sweep)
	if err != nil {
		return "", "", err
	}
	figs, err := render(db, pts, filepath.Join(dir, "figures"))
	if err != nil {
		return "", "", err
	}
	rows, err := db.Points(results.Filter{Sweep: sweep})
	if err != nil {
		return "", "", err
	}
	metrics, err := metricTables(db, pts)
	if err != nil {
		return "", "", err
	}
	tables := append([]table{summaryTable(pts)}, passkeyTables(pts)...)
	tables = append(tables, rulerTables(pts)...)
	tables = append(tables, budgetTables(pts)...)
	tables = append(tables, metrics...)
	prov := provenance(rows)
	config, err := sweepConfig(db, sweep)
	if err != nil {
		return "", "", err
	}
	title := "kvcascade report"
	if sweep != "" {
		title += ": " + sweep
	}

	md := &strings.Builder{}
	fmt.Fprintf(md, "# %s\n\n%s\n\n", title, summary(rows))
	for _, f := range figs {
		rel, _ := filepath.Rel(dir, f.PNG)
		fmt.Fprintf(md, "## %s\n\n![%s](%s)\n\n%s\n\n", f.Title, f.Title, filepath.ToSlash(rel), f.Caption)
	}
	for _, t := range append(tables, prov) {
		writeMarkdownTable(md, t)
	}
	if config != "" {
		fence := "```"
		for strings.Contains(config, fence) {
			fence += "`"
		}
		fmt.Fprintf(md, "## Sweep file\n\n%stoml\n%s\n%s\n", fence, strings.TrimRight(config, "\n"), fence)
	}
	mdPath = filepath.Join(dir, "report.md")
	if err := atomicfile.WriteFile(mdPath, []byte(md.String()), 0o644); err != nil {
		return "", "", err
	}

	type inlined struct {
		Figure
		Data template.URL
	}
	var in []inlined
	for _, f := range figs {
		png, err := os.ReadFile(f.PNG)
		if err != nil {
			return "", "", err
		}
		in = append(in, inlined{f, template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))})
	}
	htmlPath = filepath.Join(dir, "report.html")
	err = atomicfile.Write(htmlPath, 0o644, func(w io.Writer) error {
		return page.Execute(w, map[string]any{
			"Title": title, "Summary": summary(rows), "Figures": in, "Tables": tables, "Provenance": prov, "Config": config,
		})
	})
	if err != nil {
		return "", "", err
	}
	return htmlPath, mdPath, nil
}

func summary(rows []results.PointRow) string {
	counts := map[results.Status]int{}
	for _, r := range rows {
		counts[r.Status]++
	}
	return fmt.Sprintf("%d points: %d done, %d failed, %d pending, %d running.",
		len(rows), counts[results.Done], counts[results.Failed], counts[results.Pending], counts[results.Running])
}

// passkeyTables gives one accuracy table per policy: lengths × depth bins.
func passkeyTables(pts []*point) []table {
	cells := passkeyCells(pts)
	byPolicy := map[string]map[int]map[int]float64{}
	counts := map[string]map[int]bool{}
	var policies []string
	for _, c := range cells {
		if counts[c.Policy] == nil {
			counts[c.Policy] = map[int]bool{}
		}
		counts[c.Policy][c.N] = true
		if byPolicy[c.Policy] == nil {
			byPolicy[c.Policy] = map[int]map[int]float64{}
			policies = append(policies, c.Policy)
		}
		if byPolicy[c.Policy][c.Length] == nil {
			byPolicy[c.Policy][c.Length] = map[int]float64{}
		}
		byPolicy[c.Policy][c.Length][c.DepthBin] = c.Accuracy
	}
	var out []table
	for _, p := range policies {
		t := table{Title: "Passkey accuracy (%): " + p, Header: []string{"length"}}
		if len(counts[p]) == 1 {
			for n := range counts[p] {
				if n > 0 {
					t.Title += fmt.Sprintf(", n = %d per cell", n)
				}
			}
		}
		for b := 0; b < 5; b++ {
			t.Header = append(t.Header, fmt.Sprintf("%d–%d %%", 20*b, 20*(b+1)))
		}
		var lengths []int
		for l := range byPolicy[p] {
			lengths = append(lengths, l)
		}
		sort.Ints(lengths)
		for _, l := range lengths {
			row := []string{plots.FormatTokens(int64(l))}
			for b := 0; b < 5; b++ {
				if v, ok := byPolicy[p][l][b]; ok {
					row = append(row, fmt.Sprintf("%.0f", v))
				} else {
					row = append(row, "–")
				}
			}
			t.Rows = append(t.Rows, row)
		}
		out = append(out, t)
	}
	return out
}

// metricTables lists every done point's metrics, one table per experiment,
// with the experiment parameters that vary between its points (length,
// depth bin, …) as columns, and for LongBench the subset run.
func metricTables(db *results.DB, pts []*point) ([]table, error) {
	byExp := map[string][]*point{}
	var exps []string
	for _, p := range pts {
		if byExp[p.experiment] == nil {
			exps = append(exps, p.experiment)
		}
		byExp[p.experiment] = append(byExp[p.experiment], p)
	}
	sort.Strings(exps)
	var out []table
	for _, e := range exps {
		names := map[string]bool{}
		for _, p := range byExp[e] {
			for m := range p.metrics {
				names[m] = true
			}
		}
		var metrics []string
		for m := range names {
			metrics = append(metrics, m)
		}
		sort.Strings(metrics)
		axes := varyingAxes(byExp[e])
		header := append([]string{"policy"}, axes...)
		longbench := byExp[e][0].draws(figure.LongBenchScores)
		if longbench {
			header = append(header, "subset")
		}
		t := table{Title: "Metrics: " + e, Header: append(header, metrics...)}
		for _, p := range byExp[e] {
			row := []string{p.label}
			for _, a := range axes {
				if v, ok := p.params[a]; ok {
					row = append(row, fmt.Sprint(v))
				} else {
					row = append(row, "–")
				}
			}
			if longbench {
				subset, err := subsetOf(db, p)
				if err != nil {
					return nil, err
				}
				row = append(row, subset)
			}
			for _, m := range metrics {
				if v, ok := p.metrics[m]; ok {
					row = append(row, fmt.Sprintf("%.4g", v))
				} else {
					row = append(row, "")
				}
			}
			t.Rows = append(t.Rows, row)
		}
		out = append(out, t)
	}
	return out, nil
}

// varyingAxes returns the experiment parameters whose values differ
// between pts (points of one experiment), in the order the experiment
// declares them (the order they are stored in).
func varyingAxes(pts []*point) []string {
	var names []string
	for _, p := range pts {
		for _, k := range p.expKeys {
			if !slices.Contains(names, k) {
				names = append(names, k)
			}
		}
	}
	var axes []string
	for _, name := range names {
		seen := map[string]bool{}
		for _, p := range pts {
			seen[fmt.Sprint(p.params[name])] = true
		}
		if len(seen) > 1 {
			axes = append(axes, name)
		}
	}
	return axes
}

// mainMetric is the metric the summary table averages for the points that
// draw a kind of figure, with how it reads. The weight is the metric that
// counts what the mean is over (samples, tokens); points without it count
// one each. scale multiplies the value.
type mainMetric struct {
	metric, unit, weight string
	scale                float64
}

// mainMetrics are the summary's metrics by the figure kind that shows them;
// a point takes the first of its experiment's figures listed here.
var mainMetrics = map[figure.Kind]mainMetric{
	figure.PasskeyGrid:     {"accuracy", "accuracy %", "samples", 1},
	figure.Perplexity:      {"ppl", "perplexity", "tokens", 1},
	figure.LongBenchScores: {"score", "score 0–100", "samples", 1},
	figure.PrefillTime:     {"prefill_s", "prefill s", "", 1},
	figure.CacheMemory:     {"peak_cache_bytes", "peak cache MiB", "", 1.0 / (1 << 20)},
}

// mainMetricOf returns the summary metric of p, if it has one.
func mainMetricOf(p *point) (mainMetric, bool) {
	for _, k := range p.figures {
		if mm, ok := mainMetrics[k]; ok {
			return mm, true
		}
	}
	return mainMetric{}, false
}

// summaryTable is one row per policy and one column per experiment: the
// mean of the experiment's main metric over the policy's points, weighted
// by samples where the points record them, and n (samples, or points). The
// title says whether the bounded policies share one budget.
func summaryTable(pts []*point) table {
	type cell struct{ sum, weight, n float64 }
	cells := map[string]map[string]*cell{}
	var labels, exps []string
	units := map[string]string{}
	budgets := map[int]bool{}
	for _, p := range pts {
		mm, ok := mainMetricOf(p)
		v, ok2 := p.metrics[mm.metric]
		if !ok || !ok2 || math.IsNaN(v) {
			continue
		}
		v *= mm.scale
		units[p.experiment] = mm.unit
		if cells[p.label] == nil {
			cells[p.label] = map[string]*cell{}
			labels = append(labels, p.label)
		}
		c := cells[p.label][p.experiment]
		if c == nil {
			c = &cell{}
			cells[p.label][p.experiment] = c
			if !slices.Contains(exps, p.experiment) {
				exps = append(exps, p.experiment)
			}
		}
		w := 1.0
		if n, ok := p.metrics[mm.weight]; ok && n > 0 {
			w = n
		}
		c.sum += v * w
		c.weight += w
		c.n += w
		if b, ok := budget(p.policy, p.params); ok {
			budgets[b] = true
		}
	}
	sort.Strings(exps)
	title := "Summary: mean per policy and experiment (n: samples, tokens scored, or points)"
	if len(budgets) == 1 {
		for b := range budgets {
			title += fmt.Sprintf(", every bounded policy at %d slots", b)
		}
	} else if len(budgets) > 1 {
		title += ", budgets differ between policies"
	}
	t := table{Title: title, Header: []string{"policy"}}
	for _, e := range exps {
		t.Header = append(t.Header, e+" ("+units[e]+")")
	}
	for _, l := range labels {
		row := []string{l}
		for _, e := range exps {
			if c := cells[l][e]; c != nil {
				row = append(row, fmt.Sprintf("%.4g (n = %.0f)", c.sum/c.weight, c.n))
			} else {
				row = append(row, "–")
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// sweepConfig returns the text of the sweep file of the newest sweep named
// sweep, or when sweep is "" and the database holds sweeps of one name
// only, of the newest of them; "" otherwise.
func sweepConfig(db *results.DB, sweep string) (string, error) {
	rows, err := db.Sweeps()
	if err != nil {
		return "", err
	}
	config := ""
	for _, r := range rows {
		switch {
		case sweep == "" && r.Name != rows[0].Name:
			return "", nil // several sweeps: none is the report's
		case sweep == "" || r.Name == sweep:
			config = r.Config
		}
	}
	return config, nil
}

func provenance(rows []results.PointRow) table {
	t := table{Title: "Provenance", Header: []string{"point", "experiment", "policy", "status", "duration", "host", "cpu", "gpu", "driver", "backend", "dtype", "go", "revision", "error"}}
	for _, r := range rows {
		pv := r.Provenance
		dur := ""
		if r.Duration > 0 {
			dur = r.Duration.Round(1e6).String()
		}
		t.Rows = append(t.Rows, []string{r.Hash[:min(8, len(r.Hash))], r.Experiment, r.Policy, string(r.Status), dur,
			pv.Host, pv.CPU, pv.GPU, pv.Driver, pv.Backend, pv.DType, pv.GoVersion, pv.GitRevision, firstLine(r.Error)})
	}
	return t
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func writeMarkdownTable(w *strings.Builder, t table) {
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	fmt.Fprintf(w, "## %s\n\n| %s |\n|", t.Title, strings.Join(t.Header, " | "))
	for range t.Header {
		w.WriteString(" --- |")
	}
	w.WriteString("\n")
	for _, r := range t.Rows {
		for i := range r {
			r[i] = esc(r[i])
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
	w.WriteString("\n")
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:0.85em}
figure{margin:2em 0} img{max-width:100%} figcaption{color:#555}
</style></head><body>
<h1>{{.Title}}</h1><p>{{.Summary}}</p>
{{range .Figures}}<figure><h2>{{.Title}}</h2><img src="{{.Data}}" alt="{{.Title}}"><figcaption>{{.Caption}}</figcaption></figure>
{{end}}
{{range .Tables}}<h2>{{.Title}}</h2><table><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>
{{end}}
<h2>{{.Provenance.Title}}</h2><table><tr>{{range .Provenance.Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Provenance.Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>
{{if .Config}}<h2>Sweep file</h2><pre>{{.Config}}</pre>{{end}}
</body></html>
`))
