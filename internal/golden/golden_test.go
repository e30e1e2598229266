package golden

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records failures instead of stopping.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.msg = format
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }
func (r *recorder) Fatal(args ...any)                 { r.failed = true }

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.golden")
	for _, tc := range []struct {
		name   string
		got    string
		update bool
		fail   bool
	}{
		{"missing file", "a", false, true},
		{"update writes it", "a\n", true, false},
		{"same", "a\n", false, false},
		{"differs", "b\n", false, true},
		{"binary differs", "\xff\xfe", false, true},
	} {
		r := &recorder{TB: t}
		Check(r, path, []byte(tc.got), tc.update)
		if r.failed != tc.fail {
			t.Errorf("%s: failed = %v, want %v (%s)", tc.name, r.failed, tc.fail, r.msg)
		}
		if tc.name == "binary differs" && !strings.Contains(r.msg, "bytes") {
			t.Errorf("binary difference reported as %q, want sizes", r.msg)
		}
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "a\n" {
		t.Errorf("golden file holds %q (%v), want what the update wrote", data, err)
	}
}
