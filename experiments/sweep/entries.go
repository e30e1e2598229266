package sweep

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	"kvcascade/experiments"
	"kvcascade/policies"
	"kvcascade/policies/params"
)

func (c *checker) experiment(t table) (entry, bool) {
	c.known(t, experimentKeys...)
	name, ok := c.str(t, "name", true)
	if !ok {
		return entry{}, false
	}
	exp, err := experiments.Lookup(name)
	if err != nil {
		c.errorf(t.at.with("name"), "%v", err)
		return entry{}, false
	}
	e := entry{at: t.at, name: name}
	return e, c.params(&e, t, exp.Params(), "experiment "+name)
}

func (c *checker) policy(t table) (entry, bool) {
	c.known(t, policyKeys...)
	name, ok := c.str(t, "name", true)
	if !ok {
		return entry{}, false
	}
	spec, found := policies.Lookup(name)
	if !found {
		c.errorf(t.at.with("name"), "unknown policy %q (known: %s)", name, strings.Join(policies.Names(), ", "))
		return entry{}, false
	}
	// An alias (streaming_llm) runs, and hashes, as the policy it names;
	// the label keeps the name as written.
	e := entry{at: t.at, name: spec.Name, label: name}
	if _, written := t.m["label"]; written {
		label, ok := c.str(t, "label", false)
		if !ok {
			return entry{}, false
		}
		e.label = label
	}
	// e keeps its label even when its parameters are bad, so that
	// duplicate labels are still found.
	return e, c.params(&e, t, spec.Params, "policy "+name)
}

// params reads t's params table into e: each value converted to its
// parameter's kind, lists (lists of lists for "ints") as grid axes in the
// order of specs.
func (c *checker) params(e *entry, t table, specs []params.Param, owner string) bool {
	e.fixed = map[string]any{}
	v, present := t.m["params"]
	if !present {
		return true
	}
	at := t.at.with("params")
	m, isTable := v.(map[string]any)
	if !isTable {
		c.errorf(at, "want a table of parameters, got %s", tomlType(v))
		return false
	}
	ok := true
	order := map[string]int{}
	for i, p := range specs {
		order[p.Name] = i
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		i, known := order[k]
		if !known {
			c.errorf(at.with(k), "unknown parameter of %s (known: %s)", owner, strings.Join(params.Names(specs), ", "))
			ok = false
			continue
		}
		vals, isAxis, good := c.values(specs[i], m[k], at.with(k))
		switch {
		case !good:
			ok = false
		case isAxis:
			e.axes = append(e.axes, axis{name: k, at: at.with(k), values: vals})
		default:
			e.fixed[k] = vals[0]
		}
	}
	sort.SliceStable(e.axes, func(i, j int) bool { return order[e.axes[i].name] < order[e.axes[j].name] })
	return ok
}

// values converts the value written for p. A list is a grid axis, except
// for an "ints" parameter, whose axis is a list of lists.
func (c *checker) values(p params.Param, raw any, at keyPath) (vals []any, isAxis, ok bool) {
	list, isList := raw.([]any)
	if !isList || p.Kind == "ints" && !allLists(list) {
		v, err := convert(p, raw)
		if err != nil {
			c.errorf(at, "%v", err)
			return nil, false, false
		}
		return []any{v}, false, true
	}
	if len(list) == 0 {
		c.errorf(at, "empty list: a grid axis needs at least one value")
		return nil, true, false
	}
	ok = true
	seen := map[string]bool{}
	for i, x := range list {
		v, err := convert(p, x)
		if err != nil {
			c.errorf(at.with(i), "%v", err)
			ok = false
			continue
		}
		s := formatValue(v)
		if seen[s] {
			c.errorf(at.with(i), "%s repeats an earlier value", s)
			ok = false
			continue
		}
		seen[s] = true
		vals = append(vals, v)
	}
	return vals, true, ok
}

// allLists reports whether list is non-empty and holds only lists.
func allLists(list []any) bool {
	for _, x := range list {
		if _, ok := x.([]any); !ok {
			return false
		}
	}
	return len(list) > 0
}

// convert is params.Convert, refusing infinities too: results are stored
// as JSON, which has none.
func convert(p params.Param, raw any) (any, error) {
	v, err := params.Convert(p, raw)
	if err != nil {
		return nil, err
	}
	if f, ok := v.(float64); ok && math.IsInf(f, 0) {
		return nil, fmt.Errorf("want a finite number, got %v", f)
	}
	return v, nil
}

func toInt(raw any) (int, error) {
	v, err := params.Convert(params.Param{Kind: "int"}, raw)
	if err != nil {
		return 0, err
	}
	return v.(int), nil
}

func (c *checker) rule(t table) rule {
	r := rule{at: t.at, m: t.m, keys: slices.Sorted(maps.Keys(t.m))}
	if len(r.keys) == 0 {
		c.errorf(t.at, "empty rule: it would match every point")
	}
	return r
}

// formatValue writes a parameter value as TOML would.
func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case []int:
		s := make([]string, len(v))
		for i, x := range v {
			s[i] = fmt.Sprint(x)
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	return fmt.Sprint(v)
}
