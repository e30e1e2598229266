package sweep

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"kvcascade/experiments"
	"kvcascade/policies"
	"kvcascade/policies/params"
	"kvcascade/runtime/backend"
)

// Point is one cell of a sweep's grid: everything one measurement needs.
type Point struct {
	Model      ModelRef
	Experiment string
	// ExperimentParams are the experiment's parameters, defaults filled in.
	ExperimentParams params.Values
	// Policy is the policy's registered name and Label its display name
	// (the policy's name unless the file gives a label).
	Policy, Label string
	// PolicyParams are the policy's parameters, defaults filled in.
	PolicyParams params.Values
	// Chunk is the prefill chunk in tokens.
	Chunk int
	// Backend is the backend the point runs on, with its options.
	Backend backend.Spec
	// Hash identifies the point by its resolved parameters; see Hash.
	Hash string
	// Dir is the sweep file's folder, against which relative paths in the
	// experiment's parameters resolve (see RunParams). It is not hashed.
	Dir string

	// What Parse looked up, resolved and built once, so that nothing
	// downstream does it again: the experiment, the parameters it runs with
	// and the policy's factory. Nil in a Point not made by Parse.
	exp     experiments.Experiment
	run     params.Values
	factory policies.Factory
}

// Definition returns the registered experiment the point runs: the one
// Parse looked up, else (a Point made by hand) looked up by name.
func (p Point) Definition() (experiments.Experiment, error) {
	if p.exp != nil {
		return p.exp, nil
	}
	return experiments.Lookup(p.Experiment)
}

// Factory returns the policy factory the point runs with: the one Parse
// built from the point's parameters, else (a Point made by hand) built now.
// A factory only makes layers, so points may share it.
func (p Point) Factory() (policies.Factory, error) {
	if p.factory != nil {
		return p.factory, nil
	}
	return policies.New(p.Policy, p.PolicyParams)
}

// clone returns a copy of p that shares no map or list with it.
func (p Point) clone() Point {
	p.ExperimentParams = cloneValues(p.ExperimentParams)
	p.PolicyParams = cloneValues(p.PolicyParams)
	if p.run != nil {
		p.run = cloneValues(p.run)
	}
	return p
}

// RunParams returns the experiment's parameters as the experiment runs
// them: ExperimentParams with relative file and folder paths joined to Dir
// (experiments.ResolvePaths), as Parse resolved them. ExperimentParams keep
// the paths as written, so that hashes and stored parameters do not depend
// on where the sweep folder is.
func (p Point) RunParams() params.Values {
	if p.run != nil {
		return cloneValues(p.run)
	}
	e, err := experiments.Lookup(p.Experiment)
	if err != nil {
		return p.ExperimentParams
	}
	return experiments.ResolvePaths(e, p.ExperimentParams, p.Dir)
}

// hashVersion is part of every hash; changing what is hashed bumps it.
const hashVersion = 1

// canonical is the JSON a point's hash is taken of: the model (path as
// written and name), experiment and policy names, all their resolved
// parameters (less parameters marked OmitDefault that have their
// default), chunk and backend name, with keys sorted, and the backend's
// options (device, dtype, kernel switches) only where they differ from the
// backend's defaults, so that a sweep that sets none keeps the hashes it
// had before the options existed. The label, the sweep's name and the
// model's resolved path are not part of it.
func (p *Point) canonical() ([]byte, error) {
	m := map[string]any{
		"v":                 hashVersion,
		"model":             map[string]string{"path": p.Model.AsWritten, "name": p.Model.Name},
		"experiment":        p.Experiment,
		"experiment_params": map[string]any(p.experimentIdentity()),
		"policy":            p.Policy,
		"policy_params":     map[string]any(p.policyIdentity()),
		"chunk":             p.Chunk,
		"backend":           p.Backend.Name,
	}
	if o := p.Backend.Options(); o != nil {
		m["backend_options"] = o
	}
	return json.Marshal(m)
}

// experimentIdentity returns the experiment's parameters as hashed: those
// added after sweeps were recorded (params.Param.OmitDefault) only where
// they differ from their defaults.
func (p *Point) experimentIdentity() params.Values {
	e, err := experiments.Lookup(p.Experiment)
	if err != nil {
		return p.ExperimentParams
	}
	return params.Identity(e.Params(), p.ExperimentParams)
}

// policyIdentity returns the policy's parameters as hashed: those added
// after sweeps were recorded (params.Param.OmitDefault) only where they
// differ from their defaults.
func (p *Point) policyIdentity() params.Values {
	spec, ok := policies.Lookup(p.Policy)
	if !ok {
		return p.PolicyParams
	}
	return params.Identity(spec.Params, p.PolicyParams)
}

// hash returns the hex of the first 16 bytes of the SHA-256 of the
// canonical JSON.
func (p *Point) hash() (string, error) {
	b, err := p.canonical()
	if err != nil {
		return "", fmt.Errorf("hash point: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}

// fixedKeys are the keys of Params that are not parameters.
var fixedKeys = []string{"model", "experiment", "policy", "label", "chunk", "backend", "backend_options"}

// Params flattens the point for the include and exclude rules: "model" (its name or
// path as written), "experiment", "policy", "label", "chunk", "backend"
// (its name), "backend_options" (only where the backend's options differ
// from its defaults: backend.Spec.String, as "cuda[dtype=f32]"), then the experiment's parameters by name and the policy's by name. A
// parameter whose name is already taken is prefixed: "experiment." for an
// experiment parameter named like one of the keys above, "policy." for a
// policy parameter named like those or like a parameter of the point's
// experiment (bigbird's seed beside passkey's seed is "policy.seed"). The
// results store keeps the parts apart and results.Flatten joins them into
// this same form for its export.
func (p Point) Params() map[string]any {
	m := map[string]any{
		"model": p.Model.String(), "experiment": p.Experiment, "policy": p.Policy,
		"label": p.Label, "chunk": p.Chunk, "backend": p.Backend.Name,
	}
	if !p.Backend.IsDefault() {
		m["backend_options"] = p.Backend.String()
	}
	for _, k := range slices.Sorted(maps.Keys(p.ExperimentParams)) {
		name := k
		if _, taken := m[k]; taken {
			name = "experiment." + k
		}
		m[name] = p.ExperimentParams[k]
	}
	for _, k := range slices.Sorted(maps.Keys(p.PolicyParams)) {
		name := k
		if _, taken := m[k]; taken {
			name = "policy." + k
		}
		m[name] = p.PolicyParams[k]
	}
	return m
}

// Points returns the sweep's points: the cross product of models ×
// experiments × their parameter axes × policies × their parameter axes ×
// chunks, in that order (the last varies fastest; axes in the order the
// experiment or policy declares its parameters, values in the order
// written), less those the include and exclude rules drop.
//
// Parse expands the grid once; Points returns a copy of that plan, so
// that a caller that edits a point's parameters changes nothing another
// caller sees. The error is for a Sweep not made by Parse or Load.
func (s *Sweep) Points() ([]Point, error) {
	if s == nil || len(s.points) == 0 {
		return nil, errors.New("sweep has no points: make it with Parse or Load")
	}
	out := make([]Point, len(s.points))
	for i, p := range s.points {
		out[i] = p.clone()
	}
	return out, nil
}

// Len returns the number of points of the sweep, without copying them.
func (s *Sweep) Len() int {
	if s == nil {
		return 0
	}
	return len(s.points)
}

// combo is one setting of an entry's parameters: one value of each axis.
type combo struct {
	choice  []int            // index of the value taken on each axis
	raw     map[string]any   // the written parameters, one value of each axis
	values  params.Values    // resolved, defaults filled in
	run     params.Values    // experiments only: values with paths resolved
	factory policies.Factory // policies only: built from values
	// refused says why the sweep's backend cannot run this policy setting;
	// it is an error only where a point that the rules keep uses it.
	refused error
}

// combos enumerates e's settings, the last axis varying fastest.
func (e *entry) combos() []combo {
	n := 1
	for _, a := range e.axes {
		n *= len(a.values)
	}
	out := make([]combo, 0, n)
	choice := make([]int, len(e.axes))
	for {
		raw := make(map[string]any, len(e.fixed)+len(e.axes))
		for k, v := range e.fixed {
			raw[k] = v
		}
		for i, a := range e.axes {
			raw[a.name] = a.values[choice[i]]
		}
		out = append(out, combo{choice: slices.Clone(choice), raw: raw})
		i := len(choice) - 1
		for ; i >= 0; i-- {
			choice[i]++
			if choice[i] < len(e.axes[i].values) {
				break
			}
			choice[i] = 0
		}
		if i < 0 {
			return out
		}
	}
}

// size is the number of settings of e, as a float so it cannot overflow.
func (e *entry) size() float64 {
	n := 1.0
	for _, a := range e.axes {
		n *= float64(len(a.values))
	}
	return n
}

// describe writes the axis values of a setting: " (at length = 2048)".
func (e *entry) describe(cb combo) string {
	if len(e.axes) == 0 {
		return ""
	}
	s := make([]string, len(e.axes))
	for i, a := range e.axes {
		s[i] = a.name + " = " + formatValue(a.values[cb.choice[i]])
	}
	return " (at " + strings.Join(s, ", ") + ")"
}

// blame returns the key an error of e's factory or resolver is about: the
// parameter it names ("parameter size: …"), else the written parameter
// that appears first in its text, else e's params table or e itself.
func (e *entry) blame(err error) keyPath {
	msg := err.Error()
	written := slices.Sorted(maps.Keys(e.fixed))
	for _, a := range e.axes {
		written = append(written, a.name)
	}
	best, bestAt := "", len(msg)+1
	for _, k := range written {
		if strings.Contains(msg, "parameter "+k+":") {
			return e.at.with("params", k)
		}
		if i := wordIndex(msg, k); i >= 0 && i < bestAt {
			best, bestAt = k, i
		}
	}
	if best != "" {
		return e.at.with("params", best)
	}
	if len(written) > 0 {
		return e.at.with("params")
	}
	return e.at
}

// blameAt is blame, narrowed to the element of an axis that setting cb
// takes: the value at fault rather than the whole list.
func (e *entry) blameAt(err error, cb combo) keyPath {
	at := e.blame(err)
	for i, a := range e.axes {
		if len(at) == len(e.at)+2 && at[len(at)-1] == a.name && at[len(at)-2] == "params" {
			return at.with(cb.choice[i])
		}
	}
	return at
}

// wordIndex returns the index of the first occurrence of word in s that is
// not part of a longer word (letters, digits, underscore), or -1.
func wordIndex(s, word string) int {
	isWord := func(c byte) bool {
		return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	for from := 0; word != "" && from < len(s); {
		i := strings.Index(s[from:], word)
		if i < 0 {
			return -1
		}
		i += from
		end := i + len(word)
		if (i == 0 || !isWord(s[i-1])) && (end == len(s) || !isWord(s[end])) {
			return i
		}
		from = i + 1
	}
	return -1
}

// origin is where a point comes from, to explain duplicates: indexes of its
// model, experiment and policy entries.
// origin names where a point comes from: its model, experiment entry and
// policy entry, and the policy entry's combination (setting).
type origin struct{ model, exp, pol, setting int }

// expand checks every setting of every entry and returns the filtered
// points, reporting problems to c.
func (s *Sweep) expand(c *checker) []Point {
	total := float64(len(s.models)) * float64(len(s.chunks))
	var nexp, npol float64
	for i := range s.experiments {
		nexp += s.experiments[i].size()
	}
	for i := range s.policies {
		npol += s.policies[i].size()
	}
	if total *= nexp * npol; total > MaxPoints {
		c.errorf(nil, "the grid has %.0f points (%d models × %.0f experiment settings × %.0f policy settings × %d chunks), more than the limit of %d",
			total, len(s.models), nexp, npol, len(s.chunks), MaxPoints)
		return nil
	}

	expCombos := make([][]combo, len(s.experiments))
	exps := make([]experiments.Experiment, len(s.experiments))
	for j := range s.experiments {
		e := &s.experiments[j]
		exp, err := experiments.Lookup(e.name)
		if err != nil {
			c.errorf(e.at.with("name"), "%v", err)
			continue
		}
		exps[j] = exp
		for _, cb := range e.combos() {
			if cb.values, err = experiments.Resolve(exp, cb.raw); err == nil {
				// Ranges and forms one value can break (length = 0).
				err = experiments.Check(exp, cb.values)
			}
			if err != nil {
				c.errorf(e.blameAt(err, cb), "%v%s", err, e.describe(cb))
				continue
			}
			cb.run = experiments.ResolvePaths(exp, cb.values, s.Dir)
			expCombos[j] = append(expCombos[j], cb)
		}
	}
	polCombos := make([][]combo, len(s.policies))
	for k := range s.policies {
		e := &s.policies[k]
		spec, ok := policies.Lookup(e.name)
		if !ok {
			c.errorf(e.at.with("name"), "unknown policy %q", e.name)
			continue
		}
		for _, cb := range e.combos() {
			var err error
			if cb.values, err = spec.Resolve(cb.raw); err == nil {
				// Building the factory applies the policy's own checks;
				// the points keep it, so that it is built once.
				cb.factory, err = policies.New(e.name, cb.raw)
			}
			if err != nil {
				c.errorf(e.blame(err), "%v%s", err, e.describe(cb))
				continue
			}
			// An option only some backends compute (the official
			// baselines' scores) is refused when the sweep is planned, not
			// when it runs, unless the rules drop every point using it.
			cb.refused = policies.CheckBackend(e.name, cb.values, s.Backend.Name, s.Backend.Has)
			polCombos[k] = append(polCombos[k], cb)
		}
	}
	if len(c.errs) > 0 {
		return nil
	}
	s.exps, s.settings = exps, expCombos

	var all []Point
	var origins []origin
	seen := map[string]int{}
	for mi, m := range s.models {
		for ej, ecs := range expCombos {
			for _, ec := range ecs {
				for pk, pcs := range polCombos {
					for pi, pc := range pcs {
						for _, chunk := range s.chunks {
							p := Point{
								Model:            m,
								Experiment:       s.experiments[ej].name,
								ExperimentParams: cloneValues(ec.values),
								Policy:           s.policies[pk].name,
								Label:            s.policies[pk].label,
								PolicyParams:     cloneValues(pc.values),
								Chunk:            chunk,
								Backend:          s.Backend,
								Dir:              s.Dir,
								exp:              exps[ej],
								run:              cloneValues(ec.run),
								factory:          pc.factory,
							}
							var err error
							if p.Hash, err = p.hash(); err != nil {
								c.errorf(s.policies[pk].at, "%v", err)
								continue
							}
							o := origin{mi, ej, pk, pi}
							if first, dup := seen[p.Hash]; dup {
								s.duplicate(c, origins[first], o, ec, pc)
								continue
							}
							seen[p.Hash] = len(all)
							all = append(all, p)
							origins = append(origins, o)
						}
					}
				}
			}
		}
	}
	if len(c.errs) > 0 {
		return nil
	}
	if !s.checkRules(c, all) {
		return nil
	}
	var out []Point
	refused := map[[2]int]bool{} // policy entry and setting, reported once
	for i, p := range all {
		if !s.keep(p) {
			continue
		}
		o := origins[i]
		if cb := polCombos[o.pol][o.setting]; cb.refused != nil && !refused[[2]int{o.pol, o.setting}] {
			refused[[2]int{o.pol, o.setting}] = true
			e := &s.policies[o.pol]
			c.errorf(e.blameAt(cb.refused, cb), "%v%s", cb.refused, e.describe(cb))
		}
		out = append(out, p)
	}
	if len(refused) > 0 {
		return nil
	}
	if len(out) == 0 {
		at := keyPath{"include"}
		if len(s.include) == 0 {
			at = keyPath{"exclude"}
		}
		c.errorf(at, "the include and exclude rules leave no points")
	}
	return out
}

// duplicate reports that o gives the same point as first, at the entry
// where the two differ.
func (s *Sweep) duplicate(c *checker, first, o origin, ec, pc combo) {
	switch {
	case first.model != o.model:
		c.errorf(s.modelAt[o.model], "repeats %s: same model", s.modelAt[first.model])
	case first.exp != o.exp:
		e := &s.experiments[o.exp]
		c.errorf(e.at, "repeats a point of %s%s: same experiment and parameters, defaults included",
			s.experiments[first.exp].at, e.describe(ec))
	case first.pol != o.pol:
		e := &s.policies[o.pol]
		c.errorf(e.at, "repeats a point of %s (label %q)%s: same policy and parameters, defaults included",
			s.policies[first.pol].at, s.policies[first.pol].label, e.describe(pc))
	default:
		c.errorf(nil, "two points have the same parameters")
	}
}

// cloneValues copies v so that no two points share a map or a list.
func cloneValues(v params.Values) params.Values {
	out := make(params.Values, len(v))
	for k, x := range v {
		if ints, ok := x.([]int); ok {
			x = slices.Clone(ints)
		}
		out[k] = x
	}
	return out
}

// keep applies the include and exclude rules to p.
func (s *Sweep) keep(p Point) bool {
	flat := p.Params()
	if len(s.include) > 0 {
		in := false
		for _, r := range s.include {
			if r.matches(p, flat) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	for _, r := range s.exclude {
		if r.matches(p, flat) {
			return false
		}
	}
	return true
}

// matches reports whether every key of r matches p.
func (r rule) matches(p Point, flat map[string]any) bool {
	for _, k := range r.keys {
		want := r.m[k]
		var ok bool
		switch k {
		case "model":
			ok = matchString(want, p.Model.Name, cleanPath) || matchString(want, p.Model.AsWritten, cleanPath)
		case "policy":
			ok = matchString(want, p.Policy, nil) || matchString(want, p.Label, nil)
		case "experiment", "label", "backend":
			ok = matchString(want, flat[k].(string), nil)
		default:
			v, present := flat[k]
			ok = present && matchValue(v, want)
		}
		if !ok {
			return false
		}
	}
	return true
}

func cleanPath(s string) string { return filepath.ToSlash(filepath.Clean(s)) }

// matchString reports whether have is the string want or one of the list
// want; norm, when set, normalizes want's strings first.
func matchString(want any, have string, norm func(string) string) bool {
	if have == "" {
		return false
	}
	list, ok := want.([]any)
	if !ok {
		list = []any{want}
	}
	for _, x := range list {
		if s, ok := x.(string); ok {
			if norm != nil {
				s = norm(s)
			}
			if s == have {
				return true
			}
		}
	}
	return false
}

// kindOf returns the params kind of a resolved value.
func kindOf(v any) string {
	switch v.(type) {
	case int:
		return "int"
	case []int:
		return "ints"
	case float64:
		return "float"
	case bool:
		return "bool"
	}
	return "string"
}

// candidates returns the values a rule's value offers for a parameter of
// kind: the elements of a list (of lists, for "ints"), else the value.
func candidates(want any, kind string) []any {
	if list, ok := want.([]any); ok && (kind != "ints" || allLists(list)) {
		return list
	}
	return []any{want}
}

// matchValue reports whether the resolved value v is want or one of the
// list want.
func matchValue(v, want any) bool {
	kind := kindOf(v)
	for _, x := range candidates(want, kind) {
		if y, err := params.Convert(params.Param{Name: "rule", Kind: kind}, x); err == nil && formatValue(y) == formatValue(v) {
			return true
		}
	}
	return false
}

// checkRules reports rule keys that name nothing in the sweep and values
// that could never match.
func (s *Sweep) checkRules(c *checker, pts []Point) bool {
	kinds := map[string]map[string]bool{}
	for _, p := range pts {
		for k, v := range p.Params() {
			if kinds[k] == nil {
				kinds[k] = map[string]bool{}
			}
			kinds[k][kindOf(v)] = true
		}
	}
	names := map[string][]string{}
	for _, m := range s.models {
		names["model"] = append(names["model"], m.String())
	}
	for _, e := range s.experiments {
		names["experiment"] = append(names["experiment"], e.name)
	}
	for _, e := range s.policies {
		names["label"] = append(names["label"], e.label)
		names["policy"] = append(names["policy"], e.label)
		if !contains(names["policy"], e.name) {
			names["policy"] = append(names["policy"], e.name)
		}
	}
	names["backend"] = backend.SpecNames
	ok := true
	for _, r := range append(slices.Clip(s.include), s.exclude...) {
		for _, k := range r.keys {
			at, want := r.at.with(k), r.m[k]
			if _, isTable := want.(map[string]any); isTable {
				c.errorf(at, "want a value or a list of values, got a table (to name a prefixed parameter, quote it: \"%s.name\")", k)
				ok = false
				continue
			}
			if list, isList := want.([]any); isList && len(list) == 0 && !kinds[k]["ints"] {
				c.errorf(at, "empty list: matches nothing")
				ok = false
				continue
			}
			if known, categorical := names[k]; categorical {
				list, isList := want.([]any)
				if !isList {
					list = []any{want}
				}
				for i, x := range list {
					el := at
					if isList {
						el = at.with(i)
					}
					str, isString := x.(string)
					switch {
					case !isString:
						c.errorf(el, "want a string, got %s", tomlType(x))
						ok = false
					case k == "model" && !contains(known, cleanPath(str)) || k != "model" && !contains(known, str):
						c.errorf(el, "%q names no %s of this sweep (known: %s)", str, k, strings.Join(known, ", "))
						ok = false
					}
				}
				continue
			}
			ks, known := kinds[k]
			if !known {
				c.errorf(at, "unknown key: not a parameter of any experiment or policy of this sweep (keys: %s)", strings.Join(slices.Sorted(maps.Keys(kinds)), ", "))
				ok = false
				continue
			}
			if !convertsToAny(want, ks) {
				c.errorf(at, "%s can never match: want %s", formatRaw(want), strings.Join(slices.Sorted(maps.Keys(ks)), " or "))
				ok = false
			}
		}
	}
	return ok
}

// convertsToAny reports whether every candidate of want converts to one of
// kinds.
func convertsToAny(want any, kinds map[string]bool) bool {
	for kind := range kinds {
		good := true
		for _, x := range candidates(want, kind) {
			if _, err := params.Convert(params.Param{Name: "rule", Kind: kind}, x); err != nil {
				good = false
				break
			}
		}
		if good {
			return true
		}
	}
	return false
}

// formatRaw writes a decoded TOML value.
func formatRaw(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case []any:
		s := make([]string, len(v))
		for i, x := range v {
			s[i] = formatRaw(x)
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	return fmt.Sprint(v)
}
