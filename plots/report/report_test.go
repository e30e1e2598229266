package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/internal/crashtest"
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
		params            map[string]any
		metrics           []results.Metric
		samples           []string
	}
	var pts []pt
	for _, pol := range []string{"cascade", "full"} {
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
		pts = append(pts, pt{hash: pol + "ppl", exp: "perplexity", policy: pol, params: map[string]any{"tokens": 64},
			metrics: []results.Metric{{Name: "ppl", Value: 20}},
			samples: []string{`{"tokens":8,"ppl":30,"window_ppl":30}`, `{"tokens":64,"ppl":20,"window_ppl":18}`, `{"tokens":64,"held":[[0,1,60,61],[0,62]]}`}})
	}
	var specs []results.PointSpec
	for _, p := range pts {
		specs = append(specs, results.PointSpec{Hash: p.hash, Experiment: p.exp, Model: "m", Policy: p.policy, Params: p.params})
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
	for _, name := range []string{"passkey", "perplexity", "latency_prefill", "latency_decode", "retention"} {
		for _, ext := range []string{".png", ".svg"} {
			st, err := os.Stat(filepath.Join(dir, "out", "figures", name+ext))
			if err != nil || st.Size() < 1000 {
				t.Errorf("figure %s%s: %v", name, ext, err)
			}
		}
	}
	page, _ := os.ReadFile(md)
	for _, want := range []string{"## Passkey accuracy (%): cascade", "| 4K | 0 | 20 | 40 | 60 | 80 |", "## Provenance", "![Streaming perplexity](figures/perplexity.png)"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	h, _ := os.ReadFile(html)
	if !strings.Contains(string(h), "data:image/png;base64,") || strings.Count(string(h), "<figure>") != 5 {
		t.Errorf("report.html is not self-contained with 5 figures")
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
