package policies

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"kvcascade/policies/params"
)

// Param describes one parameter a policy takes; see params.Param.
type Param = params.Param

// Spec describes a policy: its name, what it does and its parameters.
type Spec struct {
	Name   string
	Doc    string
	Params []Param
	// Aliases are other names the policy answers to: those kvpress and
	// KVCache-Factory users know it by.
	Aliases []string
	// Bounded policies hold (or, for the sparse views, attend to) a fixed
	// number of keys and take the budget vocabulary: `budget` or `ratio`
	// (see budget.go).
	Bounded bool
	// SplitKeys are the policy's own keys a budget is split over.
	SplitKeys []string
	// split sets SplitKeys from a budget; nil where budget is one of the
	// policy's own parameters.
	split splitFunc
	// splitDoc says how split divides the budget.
	splitDoc string
	// make builds the factory from parameters already checked and defaulted.
	make func(p Values) (Factory, error)
}

// Values are a policy's parameters after defaults are filled in; see
// params.Values.
type Values = params.Values

// Specs returns every policy this build knows, sorted by name.
func Specs() []Spec {
	s := []Spec{fullSpec(), truncatedSpec(), cascadeSpec(), sinkSpec(), h2oSpec(), snapkvSpec(), bigbirdSpec(), hipBigbirdSpec(), logsearchSpec()}
	s = append(s, questSpec(), duoSpec())
	s = append(s, newSpecs()...)
	s = append(s, adakvSpec())
	s = append(s, expectedSpec())
	for i := range s {
		addVocabulary(&s[i])
		withBudget(&s[i])
	}
	sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name })
	return s
}

// Lookup returns the spec of the policy named name or an alias of it.
func Lookup(name string) (Spec, bool) {
	for _, s := range Specs() {
		if s.Name == name || slices.Contains(s.Aliases, name) {
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
	if v.Has(ratioKey) {
		return ratioFactory{spec: s, ratio: v.Float(ratioKey), v: v}, nil
	}
	return s.make(v)
}

// Resolve checks params against the spec and returns them with defaults
// filled in. Errors name the policy and the parameter.
// A bounded policy's budget is split into its own keys here (and a ratio
// leaves them open), so that resolving the result again changes nothing.
func (s Spec) Resolve(raw map[string]any) (Values, error) {
	v, err := params.Resolve("policy "+s.Name, s.Params, raw)
	if err != nil {
		return nil, err
	}
	if err := s.resolveBudget(raw, v); err != nil {
		return nil, err
	}
	return v, nil
}

// withBudget adds the budget vocabulary's parameters to a bounded spec that
// lacks them.
func withBudget(s *Spec) {
	if !s.Bounded {
		return
	}
	if !slices.ContainsFunc(s.Params, func(p Param) bool { return p.Name == budgetKey }) {
		s.Params = append(s.Params, budgetParam(s.splitDoc))
	}
	s.Params = append(s.Params, ratioParam())
}

// checkShape returns an error when a policy cannot work on s.
func checkShape(s Shape) error {
	if s.KVHeads <= 0 || s.QHeads <= 0 || s.QHeads%s.KVHeads != 0 {
		return fmt.Errorf("bad shape: %d query heads over %d KV heads", s.QHeads, s.KVHeads)
	}
	return nil
}

// paramError is a bad parameter value, named.
func paramError(policy, param, format string, a ...any) error {
	return fmt.Errorf("policy %s: parameter %s: %s", policy, param, fmt.Sprintf(format, a...))
}

// atLeast checks that the named int parameters are at least lo.
func atLeast(policy string, v Values, lo int, names ...string) error {
	for _, n := range names {
		if x := v.Int(n); x < lo {
			return paramError(policy, n, "must be at least %d, got %d", lo, x)
		}
	}
	return nil
}

// maxSlots bounds the capacity of a bounded policy so that slots fit int32.
const maxSlots = math.MaxInt32 / 2
