// Package golden compares what a test produced with a golden file in its
// package's testdata, and rewrites the file when the test runs with
// -update (each package declares that flag and passes its value).
package golden

import (
	"bytes"
	"os"
	"testing"
	"unicode/utf8"
)

// Check writes got to path when update is set, then compares got with the
// file at path and fails t where they differ, showing both when they are
// text.
func Check(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	if utf8.Valid(got) && utf8.Valid(want) {
		t.Errorf("%s differs from the golden file (run go test -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
		return
	}
	t.Errorf("%s differs from the golden file (%d bytes, want %d; run go test -update if the change is intended)", path, len(got), len(want))
}
