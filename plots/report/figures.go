// Package report turns a sweep stored in a results database into figures
// (through package plots) and a self-contained HTML and Markdown report with
// the tables, the figures and the provenance of every point.
package report

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"kvcascade/experiments"
	"kvcascade/plots"
	"kvcascade/results"
)

// Figure is one rendered figure.
type Figure struct {
	Name    string // file name without extension
	Title   string
	Caption string
	PNG     string // path of the PNG
	SVG     string // path of the SVG
}

// point is a done point with its parameters and metrics decoded.
type point struct {
	id         int64
	experiment string
	label      string // series name: policy label plus what else varies
	params     map[string]any
	metrics    map[string]float64
}

// load reads the done points of sweep (all sweeps when "").
func load(db *results.DB, sweep string) ([]*point, error) {
	rows, err := db.Metrics(results.Filter{Sweep: sweep, Status: results.Done})
	if err != nil {
		return nil, err
	}
	byID := map[int64]*point{}
	var order []*point
	for _, r := range rows {
		p := byID[r.PointID]
		if p == nil {
			p = &point{id: r.PointID, experiment: r.Experiment, label: r.Policy, metrics: map[string]float64{}}
			if err := json.Unmarshal(r.Params, &p.params); err != nil {
				return nil, fmt.Errorf("point %s: params: %w", r.Hash, err)
			}
			byID[r.PointID] = p
			order = append(order, p)
		}
		if r.Name != "" {
			p.metrics[r.Name] = r.Value
		}
	}
	nameSeries(order)
	return order, nil
}

// nameSeries gives each point the name of its line in a figure: its policy
// label, plus the parameters (other than the experiment's own) that differ
// between points with that label, such as a cache size swept as an axis.
func nameSeries(pts []*point) {
	expParams := map[string]bool{}
	for _, e := range experiments.All() {
		for _, p := range e.Params() {
			expParams[e.Name()+"\x00"+p.Name] = true
		}
	}
	type group struct{ exp, label string }
	values := map[group]map[string]map[string]bool{}
	for _, p := range pts {
		g := group{p.experiment, p.label}
		if values[g] == nil {
			values[g] = map[string]map[string]bool{}
		}
		for k, v := range p.params {
			if expParams[p.experiment+"\x00"+k] || k == "experiment" || k == "policy" || k == "label" || k == "backend" {
				continue
			}
			if values[g][k] == nil {
				values[g][k] = map[string]bool{}
			}
			values[g][k][fmt.Sprint(v)] = true
		}
	}
	for _, p := range pts {
		vs := values[group{p.experiment, p.label}]
		var keys []string
		for k, set := range vs {
			if len(set) > 1 {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%v", k, p.params[k]))
		}
		if len(parts) > 0 {
			p.label += " (" + strings.Join(parts, ", ") + ")"
		}
	}
}

func num(v any) (float64, bool) {
	f, ok := v.(float64)
	return f, ok
}

// Render draws every figure the sweep's data supports into dir as PNG and
// SVG and returns them in a stable order.
func Render(db *results.DB, sweep, dir string) ([]Figure, error) {
	pts, err := load(db, sweep)
	if err != nil {
		return nil, err
	}
	return render(db, pts, dir)
}

// render draws the figures of points already loaded.
func render(db *results.DB, pts []*point, dir string) ([]Figure, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var figs []Figure
	save := func(name, title, caption string, f *plots.Figure, err error) error {
		if err != nil {
			return fmt.Errorf("figure %s: %w", name, err)
		}
		fig := Figure{Name: name, Title: title, Caption: caption,
			PNG: filepath.Join(dir, name+".png"), SVG: filepath.Join(dir, name+".svg")}
		for _, path := range []string{fig.PNG, fig.SVG} {
			if err := plots.Save(f, path, 0, 0); err != nil {
				return err
			}
		}
		figs = append(figs, fig)
		return nil
	}
	if cells := passkeyCells(pts); len(cells) > 0 {
		f, err := plots.PasskeyPanels(cells, 5)
		if err := save("passkey", "Passkey retrieval", "Accuracy (%) of exact 5-digit retrieval per context length and insertion depth, one table per policy.", f, err); err != nil {
			return nil, err
		}
	}
	if err := renderRuler(pts, save); err != nil {
		return nil, err
	}
	if series, err := perplexitySeries(db, pts); err != nil {
		return nil, err
	} else if len(series) > 0 {
		f, err := plots.Perplexity(series)
		if err := save("perplexity", "Streaming perplexity", "Perplexity of the tokens since the previous checkpoint, as the text streams through each cache.", f, err); err != nil {
			return nil, err
		}
	}
	scaling := []struct {
		exp, metric, name, title string
		kind                     plots.Metric
		scale                    float64
	}{
		{"latency", "prefill_s", "latency_prefill", "Prefill time", plots.PrefillTime, 1},
		{"latency", "decode_ms_per_token", "latency_decode", "Decode time per token", plots.DecodeTime, 1},
		{"memory", "peak_cache_bytes", "memory", "Peak cache memory", plots.PeakMemory, 1.0 / (1 << 20)},
	}
	for _, s := range scaling {
		series := lineSeries(pts, s.exp, "length", s.metric, s.scale)
		if len(series) == 0 {
			continue
		}
		f, err := plots.Scaling(s.kind, series)
		if err := save(s.name, s.title, s.title+" against context length; dashed guides show linear and quadratic growth.", f, err); err != nil {
			return nil, err
		}
	}
	if scores := longbenchScores(pts); len(scores) > 0 {
		f, err := plots.LongBench(scores)
		if err := save("longbench", "LongBench", "Score per LongBench subset and the average.", f, err); err != nil {
			return nil, err
		}
	}
	if rs, err := retention(db, pts); err != nil {
		return nil, err
	} else if len(rs) > 0 {
		f, err := plots.RetentionMap(rs)
		if err := save("retention", "Retention", "Original positions each policy still holds (KV head 0 of each layer) after the text has streamed through.", f, err); err != nil {
			return nil, err
		}
	}
	return figs, nil
}

func passkeyCells(pts []*point) []plots.PasskeyCell {
	var cells []plots.PasskeyCell
	for _, p := range pts {
		if p.experiment != "passkey" {
			continue
		}
		length, ok1 := num(p.params["length"])
		bin, ok2 := num(p.params["depth_bin"])
		acc, ok3 := p.metrics["accuracy"]
		if !ok1 || !ok2 || !ok3 {
			continue
		}
		cells = append(cells, plots.PasskeyCell{Policy: p.label, Length: int(length), DepthBin: int(bin), Accuracy: acc, N: int(p.metrics["samples"])})
	}
	return cells
}

// lineSeries collects metric against the parameter x, one series a label.
func lineSeries(pts []*point, exp, x, metric string, scale float64) []plots.Series {
	by := map[string][]plots.Point{}
	var names []string
	for _, p := range pts {
		xv, ok1 := num(p.params[x])
		yv, ok2 := p.metrics[metric]
		if p.experiment != exp || !ok1 || !ok2 {
			continue
		}
		if _, seen := by[p.label]; !seen {
			names = append(names, p.label)
		}
		by[p.label] = append(by[p.label], plots.Point{X: xv, Y: yv * scale})
	}
	var out []plots.Series
	for _, n := range names {
		ps := by[n]
		sort.Slice(ps, func(i, j int) bool { return ps[i].X < ps[j].X })
		out = append(out, plots.Series{Policy: n, Points: ps})
	}
	return out
}

// eachPerplexitySample calls fn with every sample of every perplexity point.
func eachPerplexitySample(db *results.DB, pts []*point, fn func(p *point, raw json.RawMessage)) error {
	for _, p := range pts {
		if p.experiment != "perplexity" {
			continue
		}
		samples, err := db.Samples(p.id)
		if err != nil {
			return err
		}
		for _, raw := range samples {
			fn(p, raw)
		}
	}
	return nil
}

func perplexitySeries(db *results.DB, pts []*point) ([]plots.Series, error) {
	var out []plots.Series
	byPoint := map[*point]int{}
	err := eachPerplexitySample(db, pts, func(p *point, raw json.RawMessage) {
		var smp struct {
			Tokens    float64  `json:"tokens"`
			WindowPPL *float64 `json:"window_ppl"`
		}
		if json.Unmarshal(raw, &smp) != nil || smp.WindowPPL == nil || smp.Tokens <= 0 || math.IsInf(*smp.WindowPPL, 0) {
			return
		}
		i, ok := byPoint[p]
		if !ok {
			i = len(out)
			byPoint[p] = i
			out = append(out, plots.Series{Policy: p.label})
		}
		out[i].Points = append(out[i].Points, plots.Point{X: smp.Tokens, Y: *smp.WindowPPL})
	})
	return out, err
}

func longbenchScores(pts []*point) []plots.Score {
	var out []plots.Score
	for _, p := range pts {
		if p.experiment != "longbench" {
			continue
		}
		subset, _ := p.params["subset"].(string)
		if score, ok := p.metrics["score"]; ok && subset != "" {
			out = append(out, plots.Score{Policy: p.label, Subset: subset, Score: score})
		}
	}
	return out
}

func retention(db *results.DB, pts []*point) ([]plots.Retention, error) {
	var out []plots.Retention
	err := eachPerplexitySample(db, pts, func(p *point, raw json.RawMessage) {
		var smp struct {
			Held   [][]int64 `json:"held"`
			Tokens int64     `json:"tokens"`
		}
		if json.Unmarshal(raw, &smp) != nil || smp.Held == nil {
			return
		}
		out = append(out, plots.Retention{Policy: p.label, Tokens: smp.Tokens, Rows: smp.Held, RowLabel: "Layer"})
	})
	return out, err
}
