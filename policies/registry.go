package policies

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Param describes one parameter a policy takes.
type Param struct {
	Name    string
	Kind    string // "int", "float", "string" or "bool"
	Default any
	Doc     string
	// Choices lists the allowed values of a "string" parameter, if limited.
	Choices []string
}

// Spec describes a policy: its name, what it does and its parameters.
type Spec struct {
	Name   string
	Doc    string
	Params []Param
	// make builds the factory from parameters already checked and defaulted.
	make func(p Values) (Factory, error)
}

// Values are a policy's parameters after defaults are filled in.
type Values map[string]any

// Int returns an int parameter.
func (v Values) Int(name string) int { return v[name].(int) }

// Float returns a float parameter.
func (v Values) Float(name string) float64 { return v[name].(float64) }

// String returns a string parameter.
func (v Values) String(name string) string { return v[name].(string) }

// Bool returns a bool parameter.
func (v Values) Bool(name string) bool { return v[name].(bool) }

// Specs returns every policy this build knows, sorted by name.
func Specs() []Spec {
	s := []Spec{fullSpec(), truncatedSpec(), cascadeSpec(), sinkSpec(), h2oSpec(), snapkvSpec(), bigbirdSpec()}
	sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name })
	return s
}

// Lookup returns the spec of the named policy.
func Lookup(name string) (Spec, bool) {
	for _, s := range Specs() {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

// Names returns the names of all policies.
func Names() []string {
	var n []string
	for _, s := range Specs() {
		n = append(n, s.Name)
	}
	return n
}

// New checks params against the named policy's spec, fills in defaults and
// returns its factory. Unknown parameters and values of the wrong type are
// errors naming the parameter.
func New(name string, params map[string]any) (Factory, error) {
	s, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("unknown policy %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	v, err := s.Resolve(params)
	if err != nil {
		return nil, err
	}
	return s.make(v)
}

// Resolve checks params against the spec and returns them with defaults
// filled in.
func (s Spec) Resolve(params map[string]any) (Values, error) {
	v := Values{}
	known := map[string]Param{}
	for _, p := range s.Params {
		known[p.Name] = p
		v[p.Name] = p.Default
	}
	for k, raw := range params {
		p, ok := known[k]
		if !ok {
			return nil, fmt.Errorf("policy %s: unknown parameter %q (known: %s)", s.Name, k, strings.Join(s.paramNames(), ", "))
		}
		val, err := convert(p, raw)
		if err != nil {
			return nil, fmt.Errorf("policy %s: parameter %s: %w", s.Name, k, err)
		}
		v[k] = val
	}
	return v, nil
}

func (s Spec) paramNames() []string {
	var n []string
	for _, p := range s.Params {
		n = append(n, p.Name)
	}
	return n
}

// convert turns a decoded TOML or JSON value into the kind a parameter takes.
func convert(p Param, raw any) (any, error) {
	switch p.Kind {
	case "int":
		switch x := raw.(type) {
		case int:
			return x, nil
		case int64:
			if x > math.MaxInt32 || x < math.MinInt32 {
				return nil, fmt.Errorf("%d out of range", x)
			}
			return int(x), nil
		case float64:
			if x != math.Trunc(x) || math.Abs(x) > math.MaxInt32 {
				return nil, fmt.Errorf("want an integer, got %v", x)
			}
			return int(x), nil
		}
	case "float":
		switch x := raw.(type) {
		case float64:
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
			if len(p.Choices) > 0 {
				for _, c := range p.Choices {
					if c == x {
						return x, nil
					}
				}
				return nil, fmt.Errorf("%q is not one of %s", x, strings.Join(p.Choices, ", "))
			}
			return x, nil
		}
	}
	return nil, fmt.Errorf("want %s, got %T (%v)", p.Kind, raw, raw)
}
