package policies_test

import (
	"fmt"
	"testing"
)

// TestE2EQuestDuoLimits runs quest and duo through the fixture models at
// the limits where they are other policies: quest retrieving every page,
// or dense in every layer, is full; quest with pages of one token and no
// retrieval is sink; duo with every head retrieving is full, and with none
// is its streaming policy, sink or cascade (which checks the streaming
// heads' view and mass as duo maps them).
func TestE2EQuestDuoLimits(t *testing.T) {
	const n = 100
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			m := loadFixture(t, fx)
			prompt := randomIDs(n, m.Vocab, 8)
			full, _ := runWith(t, m, "full", nil, n, false, prompt)
			for _, chunk := range []int{16, 1} {
				for _, pos := range []string{"cache", "original"} {
					what := fmt.Sprintf("chunk %d, positions %s", chunk, pos)
					for _, tc := range []struct {
						policy, what string
						params       map[string]any
					}{
						{"quest", "retrieving every page", map[string]any{"sinks": 4, "page": 4, "topk": 100}},
						{"quest", "dense", map[string]any{"topk": 0, "dense_layers": 100}},
						{"duo", "all retrieval", map[string]any{"window": 8, "retrieval_ratio": 1.0, "heads": "random"}},
					} {
						tc.params["positions"] = pos
						got, _ := runWith(t, m, tc.policy, tc.params, chunk, false, prompt)
						checkClose(t, what+": "+tc.policy+" "+tc.what+" vs full", got, full)
					}
					sink, _ := runWith(t, m, "sink", map[string]any{"sinks": 4, "window": 24, "positions": pos}, chunk, false, prompt)
					got, _ := runWith(t, m, "quest", map[string]any{"sinks": 4, "window": 24, "page": 1, "topk": 0, "positions": pos}, chunk, false, prompt)
					checkClose(t, what+": quest without pages vs sink", got, sink)
					got, _ = runWith(t, m, "duo", map[string]any{"sinks": 4, "window": 24, "retrieval_ratio": 0.0, "heads": "random", "positions": pos}, chunk, false, prompt)
					checkClose(t, what+": duo without retrieval heads vs sink", got, sink)
					cascade, _ := runWith(t, m, "cascade", map[string]any{"sinks": 4, "size": 24, "cascades": 4, "positions": pos}, chunk, false, prompt)
					got, _ = runWith(t, m, "duo", map[string]any{"sinks": 4, "window": 24, "cascades": 4, "streaming": "cascade",
						"retrieval_ratio": 0.0, "heads": "random", "positions": pos}, chunk, false, prompt)
					checkClose(t, what+": duo's cascade without retrieval heads vs cascade", got, cascade)
				}
			}
		})
	}
}
