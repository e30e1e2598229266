package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"kvcascade/policies"
)

func runPolicies(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policies", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kvcascade policies\n\nLists every cache policy with its aliases, parameters, defaults and a description.")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, s := range policies.Specs() {
		fmt.Fprintf(stdout, "%s — %s\n", s.Name, s.Doc)
		if len(s.Aliases) > 0 {
			fmt.Fprintf(stdout, "    aliases: %s\n", strings.Join(s.Aliases, ", "))
		}
		if len(s.Params) == 0 {
			fmt.Fprintln(stdout, "    (no parameters)")
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, p := range s.Params {
			kind := p.Kind
			if len(p.Choices) > 0 {
				kind = fmt.Sprintf("%v", p.Choices)
			}
			def := fmt.Sprint(p.Default)
			if p.Default == nil {
				def = "unset"
			}
			fmt.Fprintf(tw, "    %s\t%s\tdefault %s\t%s\n", p.Name, kind, def, p.Doc)
		}
		tw.Flush()
		fmt.Fprintln(stdout)
	}
	return nil
}
