// Command kvcascade runs KV-cache eviction experiments on Llama-family
// models: sweeps from a TOML file into SQLite, figures and reports.
//
// Usage:
//
//	kvcascade <command> [flags]
//
// Run "kvcascade help" for the list of commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
)

// command is one subcommand of the CLI.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	c := []command{
		{"policies", "list the cache policies with their parameters", runPolicies},
		{"generate", "greedy generation from a prompt through a cache policy", runGenerate},
		{"run", "run a sweep from a TOML file into a results database", runSweep},
		{"experiments", "list the experiments with their parameters", runExperiments},
		{"export", "print a results database as CSV or JSON, one row per (point, metric)", runExport},
		{"status", "show done/failed/pending points per sweep of a results database", runStatus},
		{"merge", "fold shard results databases (Slurm array tasks) into a main one", runMerge},
		{"plot", "draw the figures of a results database", runPlot},
		{"report", "write an HTML and Markdown report of a results database", runReport},
		{"bench", "time prefill and decoding of a model shape with random weights (no weight files)", runBench},
		{"passkey-docs", "write passkey training documents in the evaluation's layout", runPasskeyDocs},
	}
	sort.Slice(c, func(i, j int) bool { return c[i].name < c[j].name })
	return c
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "kvcascade: KV-cache eviction experiments on Llama-family models")
	fmt.Fprintln(w, "\nUsage: kvcascade <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"kvcascade help <command>\" (or \"kvcascade <command> --help\") for a command's description\n"+
		"and flags, \"kvcascade --version\" for the version.")
}

// version writes the module's version and the git revision it was built
// from, as the build recorded them (go build in a clone records the
// revision; go run and -buildvcs=false do not).
func version(w io.Writer) {
	mod, rev, dirty, goVersion := "unknown", "unknown", false, runtime.Version()
	if info, ok := debug.ReadBuildInfo(); ok {
		mod = info.Main.Path + " " + info.Main.Version
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if dirty {
		rev += "+dirty"
	}
	fmt.Fprintf(w, "kvcascade: module %s, git revision %s, %s\n", mod, rev, goVersion)
}

// wantsHelp reports whether args (before any "--") ask for help.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs the CLI and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version" || args[0] == "version") {
		version(stdout)
		return 0
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" && len(args) == 1 {
		usage(stdout)
		return 0
	}
	name, rest := args[0], args[1:]
	if name == "help" {
		// "help CMD": the command's own --help.
		name, rest = args[1], []string{"--help"}
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		if wantsHelp(rest) {
			// Asked for, help is the output: description and flags on
			// standard output, exit 0.
			if err := c.run([]string{"--help"}, stdout, stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(stderr, "kvcascade %s: %v\n", c.name, err)
				return 1
			}
			return 0
		}
		err := c.run(rest, stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		case errors.Is(err, errPointsFailed):
			fmt.Fprintf(stderr, "kvcascade %s: %v\n", c.name, err)
			return 1
		}
		fmt.Fprintf(stderr, "kvcascade %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(stderr, "kvcascade: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

// errUsage marks an error already reported by a flag set.
var errUsage = errors.New("usage")

// parseFlags parses args with fs, mapping flag errors to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}
