package cluster

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update to rewrite it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func testArray() Array {
	return Array{
		Sweep: "quick start", Binary: "/opt/kv cascade/bin/kvcascade", Config: "/home/me/it's/quickstart.toml",
		Workdir: "/home/me/work", Dir: "/home/me/work/out/quickstart.slurm", MainDB: "/home/me/work/out/quickstart.db",
		Points: 60, Tasks: 8, Parallelism: 4, Partition: "gpu", GPUsPerTask: 1, CPUsPerTask: 8, Time: "02:00:00", Workers: 1,
	}
}

func TestScriptGolden(t *testing.T) {
	for _, tt := range []struct {
		file string
		edit func(*Array)
	}{
		{"job.sbatch", func(*Array) {}},
		// Only what must be there: no partition, GPUs, CPUs, time or limit.
		{"job-minimal.sbatch", func(a *Array) {
			a.Partition, a.GPUsPerTask, a.CPUsPerTask, a.Time, a.Parallelism, a.Workers, a.Tasks = "", 0, 0, "", 0, 0, 1
		}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			a := testArray()
			tt.edit(&a)
			if err := a.Validate(); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.file, a.Script())
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*Array)
		want string // in the error; "" for none
	}{
		{"ok", func(*Array) {}, ""},
		{"relative binary", func(a *Array) { a.Binary = "kvcascade" }, `binary "kvcascade" is not an absolute path`},
		{"relative config", func(a *Array) { a.Config = "q.toml" }, `config "q.toml"`},
		{"no tasks", func(a *Array) { a.Tasks = 0 }, "--tasks 0: want 1 to 1001"},
		{"too many tasks", func(a *Array) { a.Tasks = MaxArrayTasks + 1 }, "--tasks 1002"},
		{"negative parallelism", func(a *Array) { a.Parallelism = -1 }, "--array-parallelism -1"},
		{"negative gpus", func(a *Array) { a.GPUsPerTask = -2 }, "--gpus-per-task -2"},
		{"negative cpus", func(a *Array) { a.CPUsPerTask = -1 }, "--cpus-per-task -1"},
		{"negative workers", func(a *Array) { a.Workers = -1 }, "--workers -1"},
		{"partition", func(a *Array) { a.Partition = "gpu;rm" }, `--partition "gpu;rm"`},
		{"partitions", func(a *Array) { a.Partition = "gpu,gpu-long" }, ""},
		{"time", func(a *Array) { a.Time = "2h" }, `--time: "2h"`},
		{"space in folder", func(a *Array) { a.Dir = "/home/me/my out" }, "#SBATCH lines take no spaces"},
		{"percent in workdir", func(a *Array) { a.Workdir = "/home/100%" }, "#SBATCH lines take no spaces"},
		{"newline in config", func(a *Array) { a.Config = "/a\nb.toml" }, "line break"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := testArray()
			tt.edit(&a)
			err := a.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCheckTime(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"30", true}, {"30:00", true}, {"02:00:00", true}, {"100:00:00", true}, {"1-0", true},
		{"1-12:30", true}, {"7-00:00:00", true}, {"0", true}, {"UNLIMITED", true}, {"INFINITE", true},
		{"", false}, {"2h", false}, {"1:60", false}, {"1:00:60", false}, {"1:2:3:4", false},
		{"-1", false}, {"1-", false}, {"a-1", false}, {"1-1-1", false}, {"::", false}, {" 1", false},
		{"unlimited", false}, {"9999999999", false},
	} {
		if err := CheckTime(tt.in); (err == nil) != tt.ok {
			t.Errorf("CheckTime(%q) = %v; want ok=%v", tt.in, err, tt.ok)
		}
	}
}

// FuzzCheckTime checks that no input makes CheckTime panic and that what it
// accepts is a Slurm time: digits, '-' and ':' only, or a keyword.
func FuzzCheckTime(f *testing.F) {
	for _, s := range []string{"02:00:00", "1-12:30", "30", "1:60", "UNLIMITED", "1-", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckTime(s) != nil || s == "UNLIMITED" || s == "INFINITE" {
			return
		}
		if strings.Trim(s, "0123456789-:") != "" || strings.Count(s, "-") > 1 || strings.Count(s, ":") > 2 {
			t.Errorf("CheckTime accepted %q", s)
		}
	})
}

func TestParseJobID(t *testing.T) {
	for _, tt := range []struct{ out, id string }{
		{"4242\n", "4242"},
		{"4242;cluster-a\n", "4242"},
		{"sbatch: warning: no --time given\n77\n", "77"},
		{"", ""},
		{"Submitted batch job 5\n", ""},
	} {
		id, err := ParseJobID(tt.out)
		if id != tt.id || (err == nil) != (tt.id != "") {
			t.Errorf("ParseJobID(%q) = %q, %v; want %q", tt.out, id, err, tt.id)
		}
	}
}

// TestWriteAndSubmit submits through a fake sbatch that records its
// arguments.
func TestWriteAndSubmit(t *testing.T) {
	dir := t.TempDir()
	a := testArray()
	a.Dir = filepath.Join(dir, "out", "q.slurm")
	path, err := a.Write()
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != a.Script() {
		t.Fatalf("script at %s: %v", path, err)
	}
	args := filepath.Join(dir, "args")
	fake := filepath.Join(dir, "sbatch")
	src := "#!/bin/sh\necho \"$@\" > " + shellQuote(args) + "\necho '99;tiny'\n"
	if err := os.WriteFile(fake, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	id, err := Submit(context.Background(), fake, path)
	if err != nil || id != "99" {
		t.Fatalf("Submit = %q, %v; want 99", id, err)
	}
	if got, _ := os.ReadFile(args); strings.TrimSpace(string(got)) != "--parsable "+path {
		t.Errorf("sbatch got %q", got)
	}

	failing := filepath.Join(dir, "sbatch-fails")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\necho 'sbatch: error: invalid partition' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Submit(context.Background(), failing, path); err == nil || !strings.Contains(err.Error(), "invalid partition") {
		t.Errorf("failing sbatch: %v; want sbatch's message", err)
	}
}
