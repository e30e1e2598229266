package main

import (
	"strings"
	"testing"

	"kvcascade/datasets/ruler"
)

// TestExperimentsListsRuler: `kvcascade experiments` lists ruler with every
// one of its tasks.
func TestExperimentsListsRuler(t *testing.T) {
	code, out, _ := run(t, "experiments")
	if code != 0 {
		t.Fatalf("experiments exited %d", code)
	}
	if !strings.Contains(out, "ruler — ") {
		t.Fatal("experiments does not list ruler")
	}
	section := out[strings.Index(out, "ruler — "):]
	for _, name := range ruler.Names() {
		if !strings.Contains(section, name) {
			t.Errorf("experiments does not list the ruler task %s", name)
		}
	}
}
