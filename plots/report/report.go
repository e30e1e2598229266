package report

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"kvcascade/internal/atomicfile"
	"kvcascade/plots"
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
	tables := append(append(passkeyTables(pts), rulerTables(pts)...), metricTables(pts)...)
	prov := provenance(rows)
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
			"Title": title, "Summary": summary(rows), "Figures": in, "Tables": tables, "Provenance": prov,
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
	var policies []string
	for _, c := range cells {
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

// metricTables lists every done point's metrics, one table per experiment.
func metricTables(pts []*point) []table {
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
		t := table{Title: "Metrics: " + e, Header: append([]string{"policy", "length"}, metrics...)}
		for _, p := range byExp[e] {
			row := []string{p.label, fmt.Sprint(p.params["length"])}
			if _, ok := p.params["length"]; !ok {
				row[1] = "–"
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
	return out
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
</body></html>
`))
