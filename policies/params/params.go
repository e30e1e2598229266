// Package params describes typed, documented parameters — of policies and of
// experiments — and checks values decoded from TOML or the command line
// against them.
package params

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Param describes one parameter.
type Param struct {
	Name string
	Kind string // "int", "float", "string", "bool" or "ints" (a list of integers)
	// Default is the value of an unset parameter. A nil Default makes the
	// parameter optional: unset, it is absent from Values (see Values.Has),
	// so that adding it changes nothing that hashes or stores Values.
	Default any
	Doc     string
	// Choices lists the allowed values of a "string" parameter, if limited.
	Choices []string
	// OmitDefault leaves the parameter out of Identity while it has its
	// default value: set on a parameter added after results were recorded,
	// so that the points those results belong to keep their identity.
	OmitDefault bool
}

// Identity returns the values that identify a configuration (a sweep
// point's hash): v less the parameters marked OmitDefault that have their
// default value. v itself is not changed.
func Identity(specs []Param, v Values) Values {
	out := make(Values, len(v))
	for k, x := range v {
		out[k] = x
	}
	for _, p := range specs {
		if !p.OmitDefault {
			continue
		}
		if x, ok := v[p.Name]; ok && p.Kind != "ints" && x == p.Default {
			delete(out, p.Name)
		}
	}
	return out
}

// Values are parameters after defaults are filled in, keyed by name.
type Values map[string]any

// Has reports whether the named parameter has a value: set, or defaulted
// to a non-nil Default.
func (v Values) Has(name string) bool { _, ok := v[name]; return ok }

// Int returns an int parameter.
func (v Values) Int(name string) int { return v[name].(int) }

// Ints returns a list-of-integers parameter.
func (v Values) Ints(name string) []int { return v[name].([]int) }

// Float returns a float parameter.
func (v Values) Float(name string) float64 { return v[name].(float64) }

// String returns a string parameter.
func (v Values) String(name string) string { return v[name].(string) }

// Bool returns a bool parameter.
func (v Values) Bool(name string) bool { return v[name].(bool) }

// Resolve checks raw against specs and returns the values with defaults
// filled in. owner ("policy cascade", "experiment passkey") prefixes errors.
func Resolve(owner string, specs []Param, raw map[string]any) (Values, error) {
	v := Values{}
	known := map[string]Param{}
	for _, p := range specs {
		known[p.Name] = p
		if p.Default != nil {
			v[p.Name] = p.Default
		}
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p, ok := known[k]
		if !ok {
			return nil, fmt.Errorf("%s: unknown parameter %q (known: %s)", owner, k, strings.Join(Names(specs), ", "))
		}
		val, err := Convert(p, raw[k])
		if err != nil {
			return nil, fmt.Errorf("%s: parameter %s: %w", owner, k, err)
		}
		v[k] = val
	}
	return v, nil
}

// Names returns the parameter names in order.
func Names(specs []Param) []string {
	n := make([]string, len(specs))
	for i, p := range specs {
		n[i] = p.Name
	}
	return n
}

// Convert turns a decoded TOML or JSON value into the kind p takes.
func Convert(p Param, raw any) (any, error) {
	switch p.Kind {
	case "int":
		return toInt(raw)
	case "ints":
		list, ok := raw.([]any)
		if !ok {
			if ints, ok := raw.([]int); ok {
				return ints, nil
			}
			return nil, fmt.Errorf("want a list of integers, got %T (%v)", raw, raw)
		}
		out := make([]int, len(list))
		for i, x := range list {
			n, err := toInt(x)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			out[i] = n
		}
		return out, nil
	case "float":
		switch x := raw.(type) {
		case float64:
			if math.IsNaN(x) {
				return nil, fmt.Errorf("NaN not allowed")
			}
			return x, nil
		case int64:
			return float64(x), nil
		case int:
			return float64(x), nil
		}
	case "bool":
		if x, ok := raw.(bool); ok {
			return x, nil
		}
	case "string":
		if x, ok := raw.(string); ok {
			if len(p.Choices) == 0 {
				return x, nil
			}
			for _, c := range p.Choices {
				if c == x {
					return x, nil
				}
			}
			return nil, fmt.Errorf("%q is not one of %s", x, strings.Join(p.Choices, ", "))
		}
	default:
		return nil, fmt.Errorf("parameter kind %q unknown", p.Kind)
	}
	return nil, fmt.Errorf("want %s, got %T (%v)", p.Kind, raw, raw)
}

func toInt(raw any) (int, error) {
	switch x := raw.(type) {
	case int:
		return x, nil
	case int64:
		if x > math.MaxInt32 || x < math.MinInt32 {
			return 0, fmt.Errorf("%d out of range", x)
		}
		return int(x), nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > math.MaxInt32 {
			return 0, fmt.Errorf("want an integer, got %v", x)
		}
		return int(x), nil
	}
	return 0, fmt.Errorf("want int, got %T (%v)", raw, raw)
}
