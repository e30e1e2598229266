package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/internal/crashtest"
	"kvcascade/plots/figure"
	"kvcascade/results"
)

// fill stores done points of three experiments, as the runner would.
func fill(t *testing.T, db *results.DB) {
	t.Helper()
	id, err := db.EnsureSweep("s", "name = \"s\"\n")
	if err != nil {
		t.Fatal(err)
	}
	type pt struct {
		hash, exp, policy string
		params            map[string]any // the experiment's
		metrics           []results.Metric
		samples           []string
	}
	var pts []pt
	polParams := map[string]map[string]any{"cascade": {"sinks": 4, "size": 256, "cascades": 4}, "full": {}}
	// What the experiments declare: their parameters' order and figures.
	order := map[string][]string{"longbench": {"data", "subset"}, "passkey": {"length", "depth_bin"}, "latency": {"length"}, "perplexity": {"tokens"}}
	figures := map[string][]figure.Kind{
		"longbench":  {figure.LongBenchScores},
		"passkey":    {figure.PasskeyGrid},
		"latency":    {figure.PrefillTime, figure.DecodeTime},
		"perplexity": {figure.Perplexity, figure.StreamMemory, figure.Retention},
	}
	for _, pol := range []string{"cascade", "full"} {
		pts = append(pts, pt{hash: pol + "lb", exp: "longbench", policy: pol, params: map[string]any{"data": "x/trec.jsonl", "subset": ""},
			metrics: []results.Metric{{Name: "score", Value: 55}, {Name: "samples", Value: 2}},
			samples: []string{`{"subset":"trec","id":"a","score":1}`, `{"subset":"trec","id":"b","score":0.1}`}})
		for _, l := range []int{1024, 4096} {
			for b := 0; b < 5; b++ {
				pts = append(pts, pt{hash: pol + "pk" + string(rune('a'+b)) + string(rune('0'+l/1024)), exp: "passkey", policy: pol,
					params:  map[string]any{"length": l, "depth_bin": b},
					metrics: []results.Metric{{Name: "accuracy", Value: float64(20 * b), Unit: "%"}, {Name: "samples", Value: 5}}})
			}
			pts = append(pts, pt{hash: pol + "lat" + string(rune('0'+l/1024)), exp: "latency", policy: pol,
				params:  map[string]any{"length": l},
				metrics: []results.Metric{{Name: "prefill_s", Value: float64(l) / 1000, Unit: "s"}, {Name: "decode_ms_per_token", Value: 3, Unit: "ms"}}})
		}
		pts = append(pts, pt{hash: pol + "ppl", exp: "perplexity", policy: pol, params: map[string]any{"tokens": 1000},
			metrics: []results.Metric{{Name: "ppl", Value: 20}, {Name: "train_length", Value: 512}},
			samples: []string{`{"tokens":300,"ppl":30,"window_ppl":30,"window":300,"cache_bytes":1048576}`,
				`{"tokens":650,"ppl":25,"window_ppl":22,"window":350,"cache_bytes":2097152}`,
				`{"tokens":1000,"ppl":20,"window_ppl":18,"window":350,"cache_bytes":3145728}`, `{"tokens":1000,"held":[[0,1,60,61],[0,62]]}`}})
	}
	var specs []results.PointSpec
	for _, p := range pts {
		exp, err := results.OrderedObject(p.params, order[p.exp])
		if err != nil {
			t.Fatal(err)
		}
		pol, err := json.Marshal(polParams[p.policy])
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, results.PointSpec{Hash: p.hash, Experiment: p.exp, Model: "m", Policy: p.policy,
			ExperimentParams: exp, PolicyParams: pol, Figures: figure.Strings(figures[p.exp])})
	}
	if _, err := db.AddPoints(id, specs); err != nil {
		t.Fatal(err)
	}
	for range pts {
		c, err := db.Claim(id, "w")
		if err != nil || c == nil {
			t.Fatalf("claim: %v", err)
		}
		var p pt
		for _, q := range pts {
			if q.hash == c.Hash {
				p = q
			}
		}
		o := results.Outcome{Metrics: p.metrics}
		for _, s := range p.samples {
			o.Samples = append(o.Samples, json.RawMessage(s))
		}
		if err := db.Finish(c, o); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	db, err := results.Open(filepath.Join(dir, "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fill(t, db)
	html, md, err := Write(db, "s", filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"passkey", "perplexity", "latency_prefill", "latency_decode", "retention", "memory", "longbench"} {
		for _, ext := range []string{".png", ".svg"} {
			st, err := os.Stat(filepath.Join(dir, "out", "figures", name+ext))
			if err != nil || st.Size() < 1000 {
				t.Errorf("figure %s%s: %v", name, ext, err)
			}
		}
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "out", "figures", "perplexity.svg"))
	for _, want := range []string{"cache size 260", "training length 512", "Perplexity of the last 350 tokens"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("perplexity.svg lacks %q", want)
		}
	}
	page, _ := os.ReadFile(md)
	for _, want := range []string{
		"## Summary: mean per policy and experiment (n: samples, tokens scored, or points), every bounded policy at 260 slots",
		"| policy | latency (prefill s) | longbench (score 0–100) | passkey (accuracy %) | perplexity (perplexity) |",
		"| Cascade (260 slots) | 2.56 (n = 2) | 55 (n = 2) | 40 (n = 50) | 20 (n = 1) |",
		"| Full attention | 2.56 (n = 2) | 55 (n = 2) | 40 (n = 50) | 20 (n = 1) |",
		"## Passkey accuracy (%): Cascade (260 slots), n = 5 per cell", "| 4K | 0 | 20 | 40 | 60 | 80 |",
		"| policy | length | depth_bin | accuracy | samples |", "| Cascade (260 slots) | 4096 | 3 | 60 | 5 |",
		"| policy | subset | samples | score |", "| Full attention | trec | 2 | 55 |",
		"## Provenance", "![Streaming perplexity](figures/perplexity.png)",
		"## Sweep file\n\n```toml\nname = \"s\"\n```",
	} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	h, _ := os.ReadFile(html)
	if !strings.Contains(string(h), "data:image/png;base64,") || strings.Count(string(h), "<figure>") != 7 {
		t.Errorf("report.html is not self-contained with 7 figures")
	}
	if !strings.Contains(string(h), "<h2>Sweep file</h2><pre>name = &#34;s&#34;") {
		t.Errorf("report.html lacks the sweep file")
	}
	// The database's only sweep is the report's when none is named.
	_, md2, err := Write(db, "", filepath.Join(dir, "all"))
	if err != nil {
		t.Fatal(err)
	}
	if page, _ := os.ReadFile(md2); !strings.Contains(string(page), "## Sweep file") {
		t.Error("report of the only sweep, unnamed, lacks the sweep file")
	}
	if _, err := db.EnsureSweep("other", "name = \"other\"\n"); err != nil {
		t.Fatal(err)
	}
	_, md3, err := Write(db, "", filepath.Join(dir, "two"))
	if err != nil {
		t.Fatal(err)
	}
	if page, _ := os.ReadFile(md3); strings.Contains(string(page), "## Sweep file") {
		t.Error("report over two sweeps, unnamed, shows a sweep file")
	}
}

func TestPolicyLabel(t *testing.T) {
	for _, tc := range []struct {
		policy string
		params map[string]any
		want   string
	}{
		{"cascade", map[string]any{"sinks": 4.0, "size": 256.0, "cascades": 4.0}, "Cascade (260 slots)"},
		{"sink", map[string]any{"sinks": 4.0, "window": 256.0}, "StreamingLLM (260 slots)"},
		{"h2o", map[string]any{"heavy": 128.0, "recent": 132.0}, "H2O (260 slots)"},
		{"snapkv", map[string]any{"budget": 260.0, "window": 16.0}, "SnapKV (260 slots)"},
		{"bigbird", map[string]any{"global": 4.0, "window": 128.0, "random_blocks": 8.0, "block": 16.0}, "BigBird (attends to 260)"},
		{"quest", map[string]any{"sinks": 4.0, "window": 0.0, "topk": 14.0, "page": 16.0}, "Quest (attends to 244)"},
		{"duo", map[string]any{"sinks": 4.0, "window": 252.0}, "DuoAttention (256 slots per streaming head)"},
		{"full", map[string]any{}, "Full attention"},
		{"truncated", map[string]any{"keep": 4096.0}, "Truncated (4096 prompt tokens)"},
		{"cascade", map[string]any{"sinks": 4.0}, "Cascade"}, // size missing: no budget
		{"mine", map[string]any{"size": 3.0}, "mine"},
	} {
		if got := policyLabel(tc.policy, tc.params); got != tc.want {
			t.Errorf("policyLabel(%s, %v) = %q, want %q", tc.policy, tc.params, got, tc.want)
		}
	}
}

func TestRenderEmpty(t *testing.T) {
	dir := t.TempDir()
	db, err := results.Open(filepath.Join(dir, "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	figs, err := Render(db, "", filepath.Join(dir, "f"))
	if err != nil || len(figs) != 0 {
		t.Errorf("empty database: %d figures, %v", len(figs), err)
	}
}

// TestWriteStoppedMidway rewrites a report in a child process that may
// write files only up to a size between the largest figure and the HTML
// page, as if killed while writing the page: the previous report.html must
// remain whole, not a prefix that looks valid.
func TestWriteStoppedMidway(t *testing.T) {
	if crashtest.Child() {
		db, err := results.Open(os.Getenv("REPORT_DB"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		_, _, err = Write(db, "s", os.Getenv("REPORT_DIR"))
		t.Logf("stopped write: %v", err)
		return
	}
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "r.db")
	db, err := results.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, db)
	out := filepath.Join(dir, "out")
	html, _, err := Write(db, "s", out)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	figs, err := os.ReadDir(filepath.Join(out, "figures"))
	if err != nil {
		t.Fatal(err)
	}
	var largest int64
	for _, f := range figs {
		info, err := f.Info()
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, info.Size())
	}
	if largest >= int64(len(old)) {
		t.Fatalf("largest figure %d bytes, report.html %d: no limit stops only the page", largest, len(old))
	}
	limit := uint64(largest+int64(len(old))) / 2
	log, err := crashtest.RunLimited(t, limit, "REPORT_DB="+dbPath, "REPORT_DIR="+out)
	t.Logf("child limited to %d bytes: %v\n%s", limit, err, log)
	now, err := os.ReadFile(html)
	if err != nil || !bytes.Equal(now, old) {
		t.Errorf("report.html is %d bytes after the stopped rewrite (%v), want the previous %d bytes unchanged", len(now), err, len(old))
	}
	if !strings.HasSuffix(strings.TrimSpace(string(now)), "</html>") {
		t.Errorf("report.html does not end with </html>")
	}
}
