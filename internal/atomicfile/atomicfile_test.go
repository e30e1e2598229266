package atomicfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/internal/crashtest"
)

func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.txt")
	for _, content := range []string{"first version\n", "second, longer version\n"} {
		if err := WriteFile(path, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, %v; want 0640", st.Mode(), err)
	}
	if names := dirNames(t, filepath.Dir(path)); len(names) != 1 {
		t.Errorf("folder holds %v, want only out.txt", names)
	}
}

// TestWriteFailureMidway fails the write after part of the content: the
// previous file (or none) must remain, and no temporary file.
func TestWriteFailureMidway(t *testing.T) {
	errStop := errors.New("disk on fire")
	half := func(w io.Writer) error {
		if _, err := w.Write(bytes.Repeat([]byte("partial "), 1<<14)); err != nil {
			return err
		}
		return errStop
	}
	for _, old := range []string{"", "the old report\n"} {
		dir := t.TempDir()
		path := filepath.Join(dir, "report.html")
		if old != "" {
			if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		err := Write(path, 0o644, half)
		if !errors.Is(err, errStop) || !strings.Contains(err.Error(), path) {
			t.Errorf("error %v, want %v naming %s", err, errStop, path)
		}
		got, readErr := os.ReadFile(path)
		switch {
		case old == "" && !os.IsNotExist(readErr):
			t.Errorf("no previous file: now %d bytes (%v), want none", len(got), readErr)
		case old != "" && string(got) != old:
			t.Errorf("previous file now %d bytes (%v), want it unchanged", len(got), readErr)
		}
		want := 0
		if old != "" {
			want = 1
		}
		if names := dirNames(t, dir); len(names) != want {
			t.Errorf("folder holds %v after the failure", names)
		}
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestWriteStoppedByFileSizeLimit writes a file larger than the child
// process may write: the child fails or dies midway, and the previous file
// must remain whole.
func TestWriteStoppedByFileSizeLimit(t *testing.T) {
	if crashtest.Child() {
		WriteFile(os.Getenv("ATOMICFILE_PATH"), bytes.Repeat([]byte("new content "), 1<<16), 0o644)
		return
	}
	path := filepath.Join(t.TempDir(), "figure.png")
	old := []byte("the previous figure")
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := crashtest.RunLimited(t, 64<<10, "ATOMICFILE_PATH="+path)
	t.Logf("child: %v\n%s", err, out)
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, old) {
		t.Errorf("after the stopped write the file holds %d bytes (%v), want the previous %d", len(got), err, len(old))
	}
}
