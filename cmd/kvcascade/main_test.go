package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run calls Main and returns its exit code and output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestListings(t *testing.T) {
	code, out, _ := run(t, "policies")
	if code != 0 {
		t.Fatalf("policies exited %d", code)
	}
	for _, name := range []string{"cascade", "sink", "h2o", "snapkv", "bigbird", "full", "truncated", "pyramidkv", "tova", "knorm", "random"} {
		if !strings.Contains(out, "\n"+name+" — ") && !strings.HasPrefix(out, name+" — ") {
			t.Errorf("policies does not list %s", name)
		}
	}
	for _, want := range []string{"aliases: streaming_llm", "aliases: heavy_hitter", "budget ", "ratio ", "default unset"} {
		if !strings.Contains(out, want) {
			t.Errorf("policies does not say %q", want)
		}
	}
	if n := strings.Count(out, " — "); n < 12 {
		t.Errorf("policies lists %d policies, want at least 12", n)
	}
	code, out, _ = run(t, "experiments")
	if code != 0 {
		t.Fatalf("experiments exited %d", code)
	}
	for _, name := range []string{"passkey", "perplexity", "longbench", "latency", "memory"} {
		if !strings.Contains(out, name+" — ") {
			t.Errorf("experiments does not list %s", name)
		}
	}
	if code, _, errOut := run(t, "nope"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
}

func TestBadConfigNamesLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.toml")
	src := "name = \"bad\"\n[[model]]\npath = \"m\"\n[[experiment]]\nname = \"passkey\"\n[experiment.params]\nlenght = 4\n[[policy]]\nname = \"full\"\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "run", path)
	if code == 0 || !strings.Contains(errOut, "bad.toml:7:") || !strings.Contains(errOut, "lenght") {
		t.Errorf("exit %d, stderr %q; want non-zero naming bad.toml:7 and the key", code, errOut)
	}
	code, _, errOut = run(t, "run", filepath.Join(dir, "missing.toml"))
	if code == 0 || !strings.Contains(errOut, "missing.toml") {
		t.Errorf("missing file: exit %d, stderr %q", code, errOut)
	}
}

// TestRunTwiceAndExport runs a small sweep on a fixture model twice (the
// second run runs nothing), then exports it.
func TestRunTwiceAndExport(t *testing.T) {
	dir := t.TempDir()
	modelDir, err := filepath.Abs("../../runtime/model/testdata/llama")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "s.toml")
	src := "name = \"cli\"\nchunk = 8\n[[model]]\npath = \"" + filepath.ToSlash(modelDir) + "\"\n" +
		"[[experiment]]\nname = \"latency\"\n[experiment.params]\nlength = [16, 32]\ndecode_tokens = 2\nwarmup = false\n" +
		"[[policy]]\nname = \"full\"\n[[policy]]\nname = \"sink\"\nparams = { sinks = 2, window = 8 }\n"
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "r.db")
	code, out, errOut := run(t, "run", cfg, "--db", db, "--out", filepath.Join(dir, "fig"))
	if code != 0 || !strings.Contains(out, "ran 4 points (0 failed)") {
		t.Fatalf("first run: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = run(t, "run", cfg, "--db", db)
	if code != 0 || !strings.Contains(out, "ran 0 points") {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "export", "--db", db)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || !strings.HasPrefix(lines[0], "sweep,experiment,model,policy,") || !strings.Contains(lines[0], ",metric,value,unit,") {
		t.Fatalf("export: exit %d, header %q", code, lines[0])
	}
	if len(lines) != 1+4*4 { // 4 points × 4 latency metrics
		t.Errorf("export has %d rows, want 16", len(lines)-1)
	}
	code, out, _ = run(t, "export", "--db", db, "--format", "json")
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(out), "[") {
		t.Errorf("json export: exit %d", code)
	}
	if code, _, errOut := run(t, "export", "--db", filepath.Join(dir, "f.txt"), "--format", "xml"); code == 0 || !strings.Contains(errOut, "xml") {
		t.Errorf("bad format: exit %d %q", code, errOut)
	}
}

func TestCorruptDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a database "), 200), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "status", "--db", path)
	if code == 0 || !strings.Contains(errOut, "junk.db") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}
