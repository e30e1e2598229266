// Package crashtest helps tests check what a process leaves on disk when
// it dies while writing: a test re-runs itself in a child process whose
// file size limit (RLIMIT_FSIZE) stops a write midway, as a kill or a full
// disk would, and then inspects the files.
package crashtest

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// childEnv carries the file size limit to the child process.
const childEnv = "KVCASCADE_CRASHTEST_FSIZE"

// Child reports whether this process is the child that RunLimited started;
// the test then does its writing (the limit is already in force) and
// returns.
func Child() bool {
	if os.Getenv(childEnv) == "" {
		return false
	}
	limit, err := strconv.ParseUint(os.Getenv(childEnv), 10, 64)
	if err != nil {
		panic("crashtest: bad " + childEnv)
	}
	if err := setFileSizeLimit(limit); err != nil {
		panic("crashtest: " + err.Error())
	}
	return true
}

// RunLimited runs the current test again in a child process whose files
// may grow to at most limit bytes, passing env (KEY=value) along. A write
// past the limit fails or kills the child (SIGXFSZ); either way the child's
// outcome is returned for the test to log, not to judge: the files are
// what the test checks.
func RunLimited(t *testing.T, limit uint64, env ...string) (output string, err error) {
	t.Helper()
	if !supported {
		t.Skip("crashtest: no file size limit on this system")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), childEnv+"="+strconv.FormatUint(limit, 10)), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
