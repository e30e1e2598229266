package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenerateFlagRanges: out-of-range flags are refused before a model is
// loaded.
func TestGenerateFlagRanges(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--chunk", "0"}, "--chunk must be at least 1"},
		{[]string{"--max-new", "-1"}, "--max-new must be at least 1"},
		{[]string{"--backend", "tpu"}, `--backend "tpu"`},
		{[]string{"--policy", "cascade:sinks"}, "want key=value"},
		{[]string{"--policy", ":size=4"}, "want NAME"},
		{[]string{"--policy", "sink:window=8", "-p", "window=9"}, "window given twice"},
		{[]string{"stray"}, `unexpected argument "stray"`},
	} {
		args := append([]string{"generate", "--model", "tiny", "--prompt", "In the beginning"}, tc.args...)
		code, out, errOut := run(t, args...)
		if code == 0 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want a failure with %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// TestGeneratePolicySyntax: generate takes --policy NAME:key=value,... like
// bench, and the older -p form still works.
func TestGeneratePolicySyntax(t *testing.T) {
	for _, args := range [][]string{
		{"--policy", "sink:sinks=2,window=8"},
		{"--policy", "sink", "-p", "sinks=2", "-p", "window=8"},
	} {
		all := append([]string{"generate", "--model", "tiny", "--prompt", "In the beginning", "--max-new", "2"}, args...)
		if code, _, errOut := run(t, all...); code != 0 {
			t.Errorf("%v: exit %d: %s", args, code, errOut)
		}
	}
}

// TestRunChecksFilesFirst: a sweep naming a missing word list stops before
// the first point, with the sweep file's place and the path, said once; no
// database is made. --dry-run checks the same.
func TestRunChecksFilesFirst(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "s.toml")
	src := "name = \"c\"\n[[model]]\nname = \"tiny\"\n[[experiment]]\nname = \"passkey\"\n[experiment.params]\n" +
		"length = [64, 128]\ndepth_bin = [0, 1]\nsamples = 1\nwords = \"w/none.txt\"\n[[policy]]\nname = \"full\"\n"
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "r.db")
	for _, dry := range []bool{false, true} {
		args := []string{"run", cfg, "--db", db}
		if dry {
			args = append(args, "--dry-run")
		}
		code, out, errOut := run(t, args...)
		want := cfg + ":10:1: experiment[0].params.words:"
		if code == 0 || !strings.Contains(errOut, want) || !strings.Contains(errOut, filepath.Join(dir, "w", "none.txt")) {
			t.Errorf("dry %v: exit %d, stderr %q; want it to name %s and the path", dry, code, errOut, want)
		}
		if n := strings.Count(errOut, "none.txt not found"); n != 1 {
			t.Errorf("dry %v: the error is said %d times, want once: %s", dry, n, errOut)
		}
		if strings.Contains(out, "[1/") {
			t.Errorf("dry %v: a point ran: %s", dry, out)
		}
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("a failed check made the database")
	}
}
