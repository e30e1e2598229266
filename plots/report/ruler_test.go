package report

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"kvcascade/experiments/runner"
	"kvcascade/experiments/sweep"
	"kvcascade/results"
)

// rulerSweep is a small RULER sweep on the embedded tiny model: two
// tasks at one short length, two samples each, full attention against a
// sink cache smaller than the prompt.
const rulerSweep = `name = "ruler-test"
chunk = 128

[[model]]
name = "tiny"

[[experiment]]
name = "ruler"
[experiment.params]
task = ["niah_single_1", "fwe"]
length = 512
samples = 2
answer_tokens = 8

[[policy]]
name = "full"

[[policy]]
name = "sink"
[policy.params]
sinks = 4
window = 124
`

// TestRulerSweepEndToEnd runs rulerSweep through the runner on the CPU and
// writes its report: every point is done with a score in [0, 100], and the
// report has the RULER figure and one RULER table per policy with a row
// per task and the average.
func TestRulerSweepEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the tiny model")
	}
	dir := t.TempDir()
	s, err := sweep.Parse([]byte(rulerSweep), "ruler-test.toml")
	if err != nil {
		t.Fatal(err)
	}
	db, err := results.Open(filepath.Join(dir, "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	sum, err := runner.Run(context.Background(), db, s, runner.Options{Progress: io.Discard})
	t.Logf("run %v", time.Since(start))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Planned != 4 || sum.Failed != 0 {
		t.Fatalf("summary %+v, want 4 points, none failed", sum)
	}
	ms, err := db.Metrics(results.Filter{Sweep: "ruler-test"})
	if err != nil {
		t.Fatal(err)
	}
	scores := 0
	for _, m := range ms {
		if m.Name == "score" {
			scores++
			if m.Value < 0 || m.Value > 100 {
				t.Errorf("point %s: score %v", m.Hash, m.Value)
			}
		}
	}
	if scores != 4 {
		t.Errorf("%d scores, want 4", scores)
	}
	start = time.Now()
	_, md, err := Write(db, "ruler-test", filepath.Join(dir, "out"))
	t.Logf("report %v", time.Since(start))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "out", "figures", "ruler.png")); err != nil || st.Size() < 1000 {
		t.Errorf("RULER figure: %v", err)
	}
	page, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, pol := range []string{"Full attention", "StreamingLLM"} { // display names (policyLabel)
		head := "## RULER score (%): " + pol
		if !strings.Contains(string(page), head) {
			t.Fatalf("report.md lacks %q", head)
		}
		section := strings.SplitN(strings.SplitN(string(page), head, 2)[1], "\n## ", 2)[0]
		for _, task := range []string{"niah_single_1", "fwe", "average"} {
			if !regexp.MustCompile(`(?m)^\| ` + task + ` \| [0-9.]+ \|$`).MatchString(section) {
				t.Errorf("%s table lacks a row for %s:\n%s", pol, task, section)
			}
		}
	}
}
