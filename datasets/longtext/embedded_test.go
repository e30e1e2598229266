package longtext

import (
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestEmbedded(t *testing.T) {
	if got := Embedded(); !slices.Contains(got, "kjv-heldout") {
		t.Fatalf("Embedded() = %v, want kjv-heldout among them", got)
	}
	c, err := Open("embedded:kjv-heldout", Options{ChunkBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := collect(t, c)
	if err != nil {
		t.Fatal(err)
	}
	checkChunks(t, chunks, 4096)
	var b strings.Builder
	for _, ch := range chunks {
		if ch.Doc != 0 || ch.Name != "embedded:kjv-heldout" {
			t.Fatalf("chunk of doc %d named %q, want doc 0 named embedded:kjv-heldout", ch.Doc, ch.Name)
		}
		b.WriteString(ch.Text)
	}
	// The text is the held-out books exactly as embedded/README.md says.
	const want = "1dcfeed34405ee516042c407bf637db6becb3deae73345811d85add368648c4b"
	if got := fmt.Sprintf("%x", sha256.Sum256([]byte(b.String()))); got != want {
		t.Errorf("sha256 of the chunks = %s, want %s", got, want)
	}
	if !strings.HasPrefix(b.String(), "Now it came to pass in the days when the judges ruled") {
		t.Errorf("text starts %q, want the first verse of Ruth", b.String()[:60])
	}
	readme, err := os.ReadFile("embedded/README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), want) {
		t.Error("embedded/README.md does not state the text's SHA-256")
	}
}

func TestEmbeddedErrors(t *testing.T) {
	for _, path := range []string{"embedded:", "embedded:nope", "embedded:../longtext", "embedded:kjv-heldout.txt"} {
		_, err := Open(path, Options{})
		if err == nil || !strings.Contains(err.Error(), "no embedded text") || !strings.Contains(err.Error(), "kjv-heldout") {
			t.Errorf("Open(%q) error = %v, want one naming no embedded text and the known names", path, err)
		}
	}
	if !IsEmbedded("embedded:kjv-heldout") || IsEmbedded("kjv-heldout") {
		t.Error("IsEmbedded misreads its prefix")
	}
}
