package runner

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"kvcascade/experiments/sweep"
	"kvcascade/policies/params"
	"kvcascade/results"
)

// TestProgressFitsWidth: on a terminal the bar never exceeds its width,
// and each finished point's line carries its main metric or its error.
func TestProgressFitsWidth(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, true, 40, 2, time.Now())
	pt := sweep.Point{Experiment: "passkey", Label: "a-very-long-policy-label-indeed", Hash: "h1",
		ExperimentParams: params.Values{"length": 65536, "depth_bin": 3}}
	p.begin(pt)
	p.end(pt, results.Outcome{Metrics: []results.Metric{{Name: "accuracy", Value: 70, Unit: "%"}, {Name: "correct", Value: 7}}})
	pt2 := pt
	pt2.Hash = "h2"
	p.begin(pt2)
	p.end(pt2, results.Outcome{Err: errors.New("boom\nmore")})
	p.finish()
	out := buf.String()
	var lines []string
	for _, seg := range strings.Split(out, "\r\033[K") {
		for _, l := range strings.Split(seg, "\n") {
			if strings.HasPrefix(l, "[") && strings.Contains(l, "ETA") {
				if n := utf8.RuneCountInString(l); n > 39 {
					t.Errorf("bar of %d columns on a 40-column terminal: %q", n, l)
				}
			}
			lines = append(lines, l)
		}
	}
	joined := strings.Join(lines, "\n")
	if !strings.Contains(joined, "[1/2] passkey a-very-long-policy-label-indeed length=65536 depth_bin=3") || !strings.Contains(joined, "accuracy 70 %") {
		t.Errorf("the finished point's line lacks its metric:\n%s", joined)
	}
	if !strings.Contains(joined, "FAILED: boom") || strings.Contains(joined, "more") {
		t.Errorf("the failed point's line is not its error's first line:\n%s", joined)
	}
}
