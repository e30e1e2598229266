package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shards runs the 2 shards of a 4-point sweep into dir/shards/shard-i.db.
func shards(t *testing.T, dir string) (cfg, shardDir string) {
	t.Helper()
	cfg = fixtureSweep(t, dir, "merge", "[16, 24]")
	shardDir = filepath.Join(dir, "shards")
	for _, i := range []string{"0", "1"} {
		db := filepath.Join(shardDir, "shard-"+i+".db")
		if code, out, errOut := run(t, "run", cfg, "--shard", i+"/2", "--db", db, "--task"); code != 0 {
			t.Fatalf("shard %s: exit %d\n%s\n%s", i, code, out, errOut)
		}
	}
	return cfg, shardDir
}

func TestMergeIdempotent(t *testing.T) {
	dir := t.TempDir()
	_, shardDir := shards(t, dir)
	main := filepath.Join(dir, "main.db")
	shard0, shard1 := filepath.Join(shardDir, "shard-0.db"), filepath.Join(shardDir, "shard-1.db")
	for _, step := range []struct {
		args []string // sources
		want []string // in the output
	}{
		{[]string{shard0}, []string{shard0 + ": 2 points added\n", "merged 1 of 1 databases into " + main + ": 2 points added\n", "merge  2     0       0        0"}},
		// A glob (quoted: merge expands it), shard 0 again adds nothing.
		{[]string{filepath.Join(shardDir, "shard-*.db")}, []string{shard0 + ": 0 points added\n", shard1 + ": 2 points added\n", "merge  4     0       0        0"}},
		// A folder, and merging everything again: nothing changes.
		{[]string{shardDir}, []string{"merged 2 of 2 databases into " + main + ": 0 points added\n", "merge  4     0       0        0"}},
		{[]string{shard1, shard0}, []string{"merged 2 of 2 databases into " + main + ": 0 points added\n"}},
	} {
		code, out, errOut := run(t, append([]string{"merge", "--db", main}, step.args...)...)
		if code != 0 {
			t.Fatalf("merge %q: exit %d: %s", step.args, code, errOut)
		}
		for _, w := range step.want {
			if !strings.Contains(out, w) {
				t.Errorf("merge %q: output lacks %q:\n%s", step.args, w, out)
			}
		}
	}
	// The flag after the sources works too, and a folder holding the main
	// database leaves it out.
	if err := os.Rename(main, filepath.Join(shardDir, "main.db")); err != nil {
		t.Fatal(err)
	}
	main = filepath.Join(shardDir, "main.db")
	code, out, errOut := run(t, "merge", shardDir, "--db", main)
	if code != 0 || !strings.Contains(out, "merged 2 of 2 databases into "+main+": 0 points added") {
		t.Errorf("merge of the main database's folder: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestMergeErrors(t *testing.T) {
	dir := t.TempDir()
	_, shardDir := shards(t, dir)
	main := filepath.Join(dir, "main.db")
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database ", 300)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--db", main}, 2, "Usage: kvcascade merge"},
		{[]string{filepath.Join(shardDir, "shard-0.db")}, 1, "--db is required"},
		{[]string{"--db", main, filepath.Join(dir, "missing.db")}, 1, "missing.db"},
		{[]string{"--db", main, empty}, 1, "no *.db files in the folder"},
		{[]string{"--db", main, filepath.Join(dir, "nothing-*.db")}, 1, "no file matches"},
		{[]string{"--db", filepath.Join(shardDir, "shard-0.db"), filepath.Join(shardDir, "shard-0.db")}, 1, "cannot merge a database into itself"},
		// A bad source does not stop the others.
		{[]string{"--db", main, junk, filepath.Join(shardDir, "shard-1.db")}, 1, "junk.db"},
	} {
		code, out, errOut := run(t, append([]string{"merge"}, tt.args...)...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("merge %q: exit %d, stderr %q; want %d and %q\n%s", tt.args, code, errOut, tt.code, tt.want, out)
		}
	}
	if code, out, _ := run(t, "status", "--db", main); code != 0 || !strings.Contains(out, "merge  2     0       0        0") {
		t.Errorf("the good source was not merged next to the bad one: exit %d\n%s", code, out)
	}
}
