package main

import (
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/internal/modeltest"
)

// TestGenerateNonFiniteLogits runs generate on a copy of the model fixture
// whose final norm weights (3.4e38) make every logit overflow: it must
// fail naming the non-finite logits rather than print the argmax of NaN.
func TestGenerateNonFiniteLogits(t *testing.T) {
	src := filepath.Join("..", "..", "runtime", "model", "testdata", "llama")
	dir := modeltest.EditedCopy(t, src, modeltest.Fill("model.norm.weight", 3.4e38))
	code, stdout, stderr := run(t, "generate", "--model", dir, "--prompt", "the mill by the river", "--max-new", "4")
	if code == 0 || !strings.Contains(stderr, "non-finite logits") || !strings.Contains(stderr, "model.norm output") {
		t.Errorf("generate exited %d, stdout %q, stderr %q; want a failure naming the non-finite logits and model.norm", code, stdout, stderr)
	}
}
