package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/results"
)

// TestQuarterBudgetThroughRunner: the runner hands the experiment the
// point's policy name and parameters, so longbench's budget = "quarter",
// which rebuilds the policy per sample, runs to the end.
func TestQuarterBudgetThroughRunner(t *testing.T) {
	dir := t.TempDir()
	rec, err := json.Marshal(map[string]any{
		"input": "Where did the miller walk?", "context": strings.Repeat("The miller walked to the old bridge. ", 30),
		"answers": []string{"to the bridge"}, "dataset": "narrativeqa", "_id": "q0",
	})
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "narrativeqa.jsonl")
	if err := os.WriteFile(data, append(rec, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	s := loadSweep(t, writeSweep(t, dir, fmt.Sprintf(`name = "quarter"
chunk = 16

[[model]]
path = '%s'

[[experiment]]
name = "longbench"
params = { data = '%s', budget = "quarter", max_new = 2 }

[[policy]]
name = "h2o"
params = { heavy = 8, recent = 8 }
`, fixtureModel(t), data)))
	db := openDB(t, filepath.Join(dir, "results.db"))
	sum, err := Run(context.Background(), db, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Points(results.Filter{Sweep: s.Name})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed != 0 || len(rows) != 1 || rows[0].Status != results.Done {
		var why string
		if len(rows) == 1 {
			why = rows[0].Error
		}
		t.Fatalf("quarter point: %d failed, %d rows; error %q", sum.Failed, len(rows), why)
	}
}
