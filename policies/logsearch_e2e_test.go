package policies_test

import (
	"fmt"
	"slices"
	"testing"
)

// TestE2ELogsearchLimits runs logsearch through the fixture models at its
// two limits, which exercise the whole path (queries and keys read to the
// host by the Cache, the index, the view): with block 1 and no retrieval it
// is sink with the same window, and when it retrieves every evicted block
// it attends to every token in order and equals full.
func TestE2ELogsearchLimits(t *testing.T) {
	const n = 100
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			m := loadFixture(t, fx)
			prompt := randomIDs(n, m.Vocab, 5)
			full, _ := runWith(t, m, "full", nil, n, false, prompt)
			for _, chunk := range []int{16, 1} {
				for _, pos := range []string{"cache", "original"} {
					what := fmt.Sprintf("chunk %d, positions %s", chunk, pos)
					want, _ := runWith(t, m, "sink", map[string]any{"sinks": 4, "window": 24, "positions": pos}, chunk, false, prompt)
					got, c := runWith(t, m, "logsearch", map[string]any{"sinks": 4, "window": 24, "block": 1, "topk": 0, "positions": pos}, chunk, false, prompt)
					checkClose(t, what+": logsearch topk 0 vs sink", got, want)
					if held := c.Held(0, 0); len(held) != n {
						t.Errorf("%s: logsearch holds %d tokens, want all %d", what, len(held), n)
					}
					got, _ = runWith(t, m, "logsearch", map[string]any{"sinks": 4, "window": 16, "block": 4, "topk": 100, "positions": pos}, chunk, false, prompt)
					checkClose(t, what+": logsearch retrieving everything vs full", got, full)
				}
			}
		})
	}
}

// TestE2ELogsearchRetrieves: with a few retrieved blocks the logits differ
// from the working set alone (the retrieval reaches the attention), and a
// decode after a chunked prefill runs.
func TestE2ELogsearchRetrieves(t *testing.T) {
	const n = 100
	m := loadFixture(t, fixtures[0])
	prompt := randomIDs(n, m.Vocab, 6)
	base := map[string]any{"sinks": 4, "window": 16, "block": 4, "topk": 0}
	with := map[string]any{"sinks": 4, "window": 16, "block": 4, "topk": 2}
	a, _ := runWith(t, m, "logsearch", base, 16, false, prompt)
	b, _ := runWith(t, m, "logsearch", with, 16, false, prompt)
	if worst, _ := maxDiff(a, b); worst < 1e-3 {
		t.Fatalf("retrieving 2 blocks changed the logits by at most %g", worst)
	}
	d, _ := runWith(t, m, "logsearch", with, 1, true, prompt)
	if len(d) != n || slices.ContainsFunc(d, func(r []float32) bool { return len(r) != m.Vocab }) {
		t.Fatalf("decode gave %d rows", len(d))
	}
}
