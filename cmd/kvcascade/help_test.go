package main

import (
	"strings"
	"testing"
)

// TestHelp: "help CMD" and "CMD --help" print the command's description and
// flags on standard output and exit 0, for every command.
func TestHelp(t *testing.T) {
	for _, c := range commands() {
		for _, args := range [][]string{{"help", c.name}, {c.name, "--help"}, {c.name, "-h"}} {
			code, out, errOut := run(t, args...)
			if code != 0 || errOut != "" || !strings.HasPrefix(out, "Usage: kvcascade "+c.name) {
				t.Errorf("%v: exit %d, stdout %.60q, stderr %q; want the usage on stdout", args, code, out, errOut)
			}
			if len(strings.Split(out, "\n")) < 3 {
				t.Errorf("%v: no description: %q", args, out)
			}
		}
	}
	code, out, _ := run(t, "help", "run")
	for _, flag := range []string{"-dry-run", "-force", "-db"} {
		if code != 0 || !strings.Contains(out, flag) {
			t.Errorf("help run does not list %s", flag)
		}
	}
	if code, _, errOut := run(t, "help", "nope"); code != 2 || !strings.Contains(errOut, `unknown command "nope"`) {
		t.Errorf("help nope: exit %d, %q", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		code, out, _ := run(t, arg)
		if code != 0 || !strings.HasPrefix(out, "kvcascade: module kvcascade ") || !strings.Contains(out, "git revision ") {
			t.Errorf("%s: exit %d, %q", arg, code, out)
		}
	}
}
