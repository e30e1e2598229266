package sweep

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"kvcascade/experiments"
	"kvcascade/policies"
	"kvcascade/policies/params"
)

// formatSettings writes, per experiment and per policy label, the
// parameters that keep one value over all of pts, defaults included: the
// settings a sweep fixes, which the axes of FormatPlan do not show. It
// writes nothing when there are none.
func formatSettings(w io.Writer, pts []Point) {
	type owner struct {
		name  string // experiment name or policy label
		specs []params.Param
		vals  *paramValues
	}
	var owners []*owner
	seen := map[string]*owner{}
	add := func(key, name string, specs []params.Param, v map[string]any) {
		o := seen[key]
		if o == nil {
			o = &owner{name: name, specs: specs, vals: &paramValues{values: map[string]ordered{}}}
			seen[key] = o
			owners = append(owners, o)
		}
		m := map[string]*paramValues{"": o.vals}
		collect(m, "", v)
	}
	for _, p := range pts {
		var specs []params.Param
		if e, err := experiments.Lookup(p.Experiment); err == nil {
			specs = e.Params()
		}
		add("e\x00"+p.Experiment, p.Experiment, specs, p.ExperimentParams)
	}
	for _, p := range pts {
		var specs []params.Param
		if s, ok := policies.Lookup(p.Policy); ok {
			specs = s.Params
		}
		add("p\x00"+p.Label, p.Label, specs, p.PolicyParams)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	n := 0
	for _, o := range owners {
		var fixed []string
		for _, sp := range o.specs {
			vs := o.vals.values[sp.Name]
			if len(vs) != 1 {
				continue
			}
			fixed = append(fixed, sp.Name+" = "+vs[0])
		}
		if len(fixed) == 0 {
			continue
		}
		if n == 0 {
			fmt.Fprintln(tw, "\nsettings:")
		}
		n++
		fmt.Fprintf(tw, "  %s\t%s\n", o.name, strings.Join(fixed, "; "))
	}
	tw.Flush()
}
