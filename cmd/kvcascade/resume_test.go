package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// resumeSweep writes a latency sweep on the fixture model (2 lengths × the
// policies given) under a comment and returns its path.
func resumeSweep(t *testing.T, dir, comment, policies string) string {
	t.Helper()
	modelDir, err := filepath.Abs("../../runtime/model/testdata/llama")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "s.toml")
	src := "# " + comment + "\nname = \"resume\"\nchunk = 8\n[[model]]\npath = \"" + filepath.ToSlash(modelDir) + "\"\n" +
		"[[experiment]]\nname = \"latency\"\n[experiment.params]\nlength = [16, 32]\ndecode_tokens = 1\nwarmup = false\n" +
		"[[policy]]\nname = \"full\"\n" + policies
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestResumeAcrossEdits: a second run and a run after a comment edit run
// nothing and exit 0; adding a policy runs only its points; export shows
// the current version alone; --dry-run says what is done.
func TestResumeAcrossEdits(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "r.db")
	step := func(name, cfg, want string, args ...string) string {
		t.Helper()
		code, out, errOut := run(t, append([]string{"run", cfg, "--db", db}, args...)...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("%s: exit %d, want %q in\n%s\n%s", name, code, want, out, errOut)
		}
		return out
	}
	cfg := resumeSweep(t, dir, "first", "")
	step("dry run on no database", cfg, "none of the 2 points is done yet", "--dry-run")
	step("first run", cfg, "ran 2 points (0 failed)")
	step("second run", cfg, "ran 0 points (0 failed)")
	cfg = resumeSweep(t, dir, "a comment edited", "")
	step("dry run after an edit", cfg, "2 of the 2 points are done in "+db+"; 0 to run", "--dry-run")
	step("run after a comment edit", cfg, "ran 0 points (0 failed)")
	cfg = resumeSweep(t, dir, "a policy added", "[[policy]]\nname = \"sink\"\nparams = { sinks = 2, window = 8 }\n")
	step("dry run with a new policy", cfg, "2 of the 4 points are done in "+db+"; 2 to run", "--dry-run")
	step("run with a new policy", cfg, "ran 2 points (0 failed)")

	code, out, _ := run(t, "export", "--db", db)
	if rows := strings.Count(strings.TrimSpace(out), "\n"); code != 0 || rows != 4*4 {
		t.Errorf("export: exit %d, %d rows; want the current version's 4 points × 4 metrics", code, rows)
	}
	code, out, _ = run(t, "export", "--db", db, "--sweep", "resume@1")
	if rows := strings.Count(strings.TrimSpace(out), "\n"); code != 0 || rows != 2*4 {
		t.Errorf("export of version 1: exit %d, %d rows; want 2 points × 4 metrics", code, rows)
	}
	code, out, _ = run(t, "status", "--db", db, "--versions")
	if code != 0 || !strings.Contains(out, "resume  3 (current)  4") || !strings.Contains(out, "resume  1            2") {
		t.Errorf("status --versions: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "status", "--db", db)
	if code != 0 || strings.Count(out, "resume") != 1 || !strings.Contains(out, "resume  4     0") {
		t.Errorf("status: exit %d, want the current version alone\n%s", code, out)
	}
}

// TestReadCommandsRefuseMissing: the commands that read refuse a --db that
// does not exist (making none) and a --sweep the database lacks.
func TestReadCommandsRefuseMissing(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "typo.db")
	for _, args := range [][]string{
		{"status", "--db", missing},
		{"export", "--db", missing},
		{"plot", "--db", missing, "--out", filepath.Join(dir, "fig")},
		{"report", "--db", missing, "--out", filepath.Join(dir, "rep")},
	} {
		code, _, errOut := run(t, args...)
		if code == 0 || !strings.Contains(errOut, "typo.db") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a read command made the missing database")
	}

	db := filepath.Join(dir, "r.db")
	if code, _, errOut := run(t, "run", resumeSweep(t, dir, "x", ""), "--db", db); code != 0 {
		t.Fatalf("run: exit %d: %s", code, errOut)
	}
	for _, args := range [][]string{
		{"status", "--db", db, "--sweep", "nope"},
		{"export", "--db", db, "--sweep", "nope"},
		{"plot", "--db", db, "--out", filepath.Join(dir, "fig"), "--sweep", "nope"},
		{"report", "--db", db, "--out", filepath.Join(dir, "rep"), "--sweep", "nope"},
		{"export", "--db", db, "--sweep", "resume@2"},
	} {
		code, _, errOut := run(t, args...)
		if code == 0 || !strings.Contains(errOut, "resume") {
			t.Errorf("%v: exit %d, stderr %q; want an error naming the sweeps there are", args, code, errOut)
		}
	}
}
