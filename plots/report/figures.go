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
	"slices"
	"sort"
	"strings"

	"kvcascade/plots"
	"kvcascade/plots/figure"
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
	policy     string // the registered policy name
	label      string // series name: display name and budget plus what else varies
	// params are the point's settings and parameters in one flat object
	// (results.Flatten); expKeys name the experiment's parameters among
	// them, in the order it declares them.
	params  map[string]any
	expKeys []string
	figures []figure.Kind // what the point's experiment draws
	metrics map[string]float64
}

// draws reports whether p's experiment declares the figure kind k.
func (p *point) draws(k figure.Kind) bool { return slices.Contains(p.figures, k) }

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
			p = &point{id: r.PointID, experiment: r.Experiment, policy: r.Policy, metrics: map[string]float64{}}
			flat, err := results.Flatten(r.Params, r.ExperimentParams, r.PolicyParams)
			if err != nil {
				return nil, fmt.Errorf("point %s: %w", r.Hash, err)
			}
			if err := json.Unmarshal(flat, &p.params); err != nil {
				return nil, fmt.Errorf("point %s: params: %w", r.Hash, err)
			}
			if p.expKeys, err = results.Keys(r.ExperimentParams); err != nil {
				return nil, fmt.Errorf("point %s: experiment %w", r.Hash, err)
			}
			for _, k := range r.Figures {
				p.figures = append(p.figures, figure.Kind(k))
			}
			p.label = policyLabel(r.Policy, p.params)
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
	type group struct{ exp, label string }
	values := map[group]map[string]map[string]bool{}
	for _, p := range pts {
		g := group{p.experiment, p.label}
		if values[g] == nil {
			values[g] = map[string]map[string]bool{}
		}
		for k, v := range p.params {
			if slices.Contains(p.expKeys, k) || strings.HasPrefix(k, "experiment.") || k == "experiment" || k == "policy" || k == "label" || k == "backend" {
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
		if err := save("passkey", "Passkey retrieval", "Accuracy (%) of exact 5-digit retrieval per context length (rows) and depth of the key in the filler (columns), one table per policy with its cache budget; n is the number of prompts behind each cell.", f, err); err != nil {
			return nil, err
		}
	}
	if err := renderRuler(pts, save); err != nil {
		return nil, err
	}
	if err := renderBudget(pts, save); err != nil {
		return nil, err
	}
	if series, opt, err := perplexitySeries(db, pts); err != nil {
		return nil, err
	} else if len(series) > 0 {
		f, err := plots.PerplexityWith(series, opt)
		caption := "Perplexity of the tokens since the previous checkpoint, as the text streams through each cache."
		if len(opt.Marks) > 0 {
			caption += " Dashed lines mark the cache size and the model's training length."
		}
		if err := save("perplexity", "Streaming perplexity", caption, f, err); err != nil {
			return nil, err
		}
	}
	scaling := []struct {
		fig                 figure.Kind
		metric, name, title string
		kind                plots.Metric
		scale               float64
	}{
		{figure.PrefillTime, "prefill_s", "latency_prefill", "Prefill time", plots.PrefillTime, 1},
		{figure.DecodeTime, "decode_ms_per_token", "latency_decode", "Decode time per token", plots.DecodeTime, 1},
	}
	for _, s := range scaling {
		series := lineSeries(pts, s.fig, "length", s.metric, s.scale)
		if len(series) == 0 {
			continue
		}
		f, err := plots.Scaling(s.kind, series)
		if err := save(s.name, s.title, s.title+" against context length; dashed guides show linear and quadratic growth.", f, err); err != nil {
			return nil, err
		}
	}
	if series, from, err := memorySeries(db, pts); err != nil {
		return nil, err
	} else if len(series) > 0 {
		f, err := plots.CacheMemory(series, nil)
		caption := "Memory of the keys and values each cache holds (bytes of the tokens held, not storage allocated) at each checkpoint, as the " + from + " streams through it."
		if err := save("memory", "Cache memory", caption, f, err); err != nil {
			return nil, err
		}
	}
	scores, err := longbenchScores(db, pts)
	if err != nil {
		return nil, err
	}
	if len(scores) > 0 {
		f, err := plots.LongBench(scores)
		if err := save("longbench", "LongBench", "Score (0–100, LongBench's scale) per LongBench subset and the average.", f, err); err != nil {
			return nil, err
		}
	}
	if err := renderDiagnostics(db, pts, save); err != nil {
		return nil, err
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
		if !p.draws(figure.PasskeyGrid) {
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

// lineSeries collects metric against the parameter x of the points that
// draw kind, one series a label.
func lineSeries(pts []*point, kind figure.Kind, x, metric string, scale float64) []plots.Series {
	by := map[string][]plots.Point{}
	var names []string
	for _, p := range pts {
		xv, ok1 := num(p.params[x])
		yv, ok2 := p.metrics[metric]
		if !p.draws(kind) || !ok1 || !ok2 {
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

// eachSample calls fn with every sample of every point that draws kind.
func eachSample(db *results.DB, pts []*point, kind figure.Kind, fn func(p *point, raw json.RawMessage)) error {
	for _, p := range pts {
		if !p.draws(kind) {
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

// perplexitySeries returns the perplexity curves and how to draw them: a
// linear token axis when the checkpoints do not start near 0 (spaced from
// the cache size), the window each value covers in the y label, and marks
// at the cache size (the budget the bounded policies share) and the
// model's training length.
func perplexitySeries(db *results.DB, pts []*point) ([]plots.Series, plots.LineOptions, error) {
	var out []plots.Series
	var opt plots.LineOptions
	byPoint := map[*point]int{}
	windows := map[int64]bool{}
	first, last := math.Inf(1), 0.0
	err := eachSample(db, pts, figure.Perplexity, func(p *point, raw json.RawMessage) {
		var smp struct {
			Tokens    float64  `json:"tokens"`
			WindowPPL *float64 `json:"window_ppl"`
			Window    int64    `json:"window"`
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
		n := len(out[i].Points)
		out[i].Points = append(out[i].Points, plots.Point{X: smp.Tokens, Y: *smp.WindowPPL})
		if n > 0 { // the first window starts at the text's start
			windows[smp.Window] = true
		}
		first, last = math.Min(first, smp.Tokens), math.Max(last, smp.Tokens)
	})
	if err != nil || len(out) == 0 {
		return out, opt, err
	}
	opt.LinearX = first >= 0.02*last
	opt.YLabel = "Perplexity since the previous checkpoint"
	lo, hi, sum := int64(math.MaxInt64), int64(0), int64(0)
	for w := range windows {
		lo, hi, sum = min(lo, w), max(hi, w), sum+w
	}
	switch {
	case len(windows) == 1 && lo > 0:
		opt.YLabel = fmt.Sprintf("Perplexity of the last %d tokens", lo)
	case len(windows) > 1 && lo > 0 && float64(hi-lo) <= 0.02*float64(hi):
		// Linear checkpoints that do not divide the text evenly.
		opt.YLabel = fmt.Sprintf("Perplexity of the last ~%d tokens", (sum+int64(len(windows))/2)/int64(len(windows)))
	}
	budgets := map[int]bool{}
	train := 0.0
	for p := range byPoint {
		if b, ok := budget(p.policy, p.params); ok {
			budgets[b] = true
		}
		train = math.Max(train, p.metrics["train_length"])
	}
	if len(budgets) == 1 {
		for b := range budgets {
			opt.Marks = append(opt.Marks, plots.Mark{X: float64(b), Label: fmt.Sprintf("cache size %d", b)})
		}
	}
	if train > 0 {
		opt.Marks = append(opt.Marks, plots.Mark{X: train, Label: "training length " + plots.FormatTokens(int64(train))})
	}
	return out, opt, nil
}

// memorySeries returns the cache memory held (MiB) against tokens seen,
// one curve per series (its longest prompt): from the points that draw
// figure.CacheMemory or, when the sweep has none, from those that draw
// figure.StreamMemory. from names the source for the caption.
func memorySeries(db *results.DB, pts []*point) ([]plots.Series, string, error) {
	for _, kind := range []figure.Kind{figure.CacheMemory, figure.StreamMemory} {
		var longest = map[string]*point{}
		var order []string
		for _, p := range pts {
			if !p.draws(kind) {
				continue
			}
			q, seen := longest[p.label]
			if !seen {
				order = append(order, p.label)
			}
			if !seen || lengthOf(p) > lengthOf(q) {
				longest[p.label] = p
			}
		}
		var out []plots.Series
		for _, label := range order {
			samples, err := db.Samples(longest[label].id)
			if err != nil {
				return nil, "", err
			}
			s := plots.Series{Policy: label}
			for _, raw := range samples {
				var smp struct {
					Tokens     float64 `json:"tokens"`
					CacheBytes *int64  `json:"cache_bytes"`
				}
				if json.Unmarshal(raw, &smp) != nil || smp.CacheBytes == nil || smp.Tokens <= 0 {
					continue
				}
				s.Points = append(s.Points, plots.Point{X: smp.Tokens, Y: float64(*smp.CacheBytes) / (1 << 20)})
			}
			if len(s.Points) > 0 {
				out = append(out, s)
			}
		}
		if len(out) > 0 {
			if kind == figure.CacheMemory {
				return out, "random prompt", nil
			}
			return out, "perplexity text", nil
		}
	}
	return nil, "", nil
}

// lengthOf is a point's length parameter, or its tokens, or 0.
func lengthOf(p *point) float64 {
	for _, k := range []string{"length", "tokens"} {
		if v, ok := num(p.params[k]); ok {
			return v
		}
	}
	return 0
}

// longbenchScores returns each LongBench point's score under its subset:
// the subset parameter, or when that was left empty (the file's own), the
// subset its samples name, or the data file's base name.
func longbenchScores(db *results.DB, pts []*point) ([]plots.Score, error) {
	var out []plots.Score
	for _, p := range pts {
		if !p.draws(figure.LongBenchScores) {
			continue
		}
		score, ok := p.metrics["score"]
		if !ok {
			continue
		}
		subset, err := subsetOf(db, p)
		if err != nil {
			return nil, err
		}
		out = append(out, plots.Score{Policy: p.label, Subset: subset, Score: score})
	}
	return out, nil
}

// subsetOf names the LongBench subset of point p.
func subsetOf(db *results.DB, p *point) (string, error) {
	if s, _ := p.params["subset"].(string); s != "" {
		return s, nil
	}
	samples, err := db.Samples(p.id)
	if err != nil {
		return "", err
	}
	for _, raw := range samples {
		var smp struct {
			Subset string `json:"subset"`
		}
		if json.Unmarshal(raw, &smp) == nil && smp.Subset != "" {
			return smp.Subset, nil
		}
	}
	data, _ := p.params["data"].(string)
	name := strings.TrimSuffix(filepath.Base(data), ".jsonl")
	if name == "" || name == "." {
		name = "longbench"
	}
	return name, nil
}

func retention(db *results.DB, pts []*point) ([]plots.Retention, error) {
	var out []plots.Retention
	err := eachSample(db, pts, figure.Retention, func(p *point, raw json.RawMessage) {
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
