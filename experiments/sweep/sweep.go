// Package sweep reads sweep files: TOML that names models, experiments,
// cache policies and grids of their parameters, and expands them into the
// points a run measures, each with a stable hash of its resolved parameters.
//
// Everything is checked before anything runs: syntax, unknown keys, types,
// experiment and policy names, parameter values (through the experiments'
// and policies' own specs, on every point of the grid) and include/exclude
// rules. Problems are reported as FILE:LINE:COL: message, all of them at
// once where practical. configs/README.md documents the format.
package sweep

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"kvcascade/experiments"
	"kvcascade/runtime/backend"
)

// DefaultChunk is the prefill chunk, in tokens, when a sweep names none.
const DefaultChunk = 512

// DefaultBackend is the backend when a sweep names none.
const DefaultBackend = "cpu"

// MaxPoints bounds the points a sweep may expand to before filtering, so
// that a typo in a grid fails fast instead of filling memory.
const MaxPoints = 100_000

// The keys each table of a sweep file takes.
var (
	topKeys        = []string{"name", "db", "out", "backend", "chunk", "model", "experiment", "policy", "include", "exclude"}
	modelKeys      = []string{"path", "name"}
	experimentKeys = []string{"name", "params"}
	policyKeys     = []string{"name", "label", "params"}
)

// maxErrors bounds the problems reported for one file.
const maxErrors = 50

// Sweep is a checked sweep file and its plan: the points of its grid,
// expanded once by Parse, which Points hands out as copies. A Sweep is not
// changed after Parse; its fields are read-only.
type Sweep struct {
	// Name names the sweep in the results database.
	Name string
	// File is the file name given to Parse (or Load); errors start with it.
	File string
	// Text is the file's contents.
	Text string
	// Dir is the folder relative paths are resolved against, for every key
	// (model paths and experiments' file parameters): the file's folder.
	Dir string
	// DB is the default results database and Out the default folder for
	// figures and reports, as written ("" when not set); relative paths are
	// relative to the working directory, like the CLI's flags.
	DB, Out string
	// Backend is the backend the points run on, with its options: the
	// top-level backend name or [backend] table.
	Backend backend.Spec

	chunks      []int
	models      []ModelRef
	modelAt     []keyPath
	experiments []entry
	policies    []entry
	include     []rule
	exclude     []rule
	// points is the plan: the grid expanded once, by Parse. Points hands
	// out copies. exps are the experiments the entries name and settings
	// their checked settings (paths resolved), before the include and
	// exclude rules, which CheckFiles opens.
	points   []Point
	exps     []experiments.Experiment
	settings [][]combo
}

// ModelRef identifies the model of a point: a Hugging Face model directory
// (Path) or a model embedded in kvcascade (Name); exactly one is set.
type ModelRef struct {
	// Path is the model directory: absolute, or joined to the sweep file's
	// folder. "" when Name is set.
	Path string
	// Name is the embedded model's name; "" when Path is set.
	Name string
	// AsWritten is the path as the file writes it, cleaned, with forward
	// slashes. Hashes use it, so moving a sweep folder keeps them.
	AsWritten string
}

// String returns the model's name, or its path as written.
func (m ModelRef) String() string {
	if m.Name != "" {
		return m.Name
	}
	return m.AsWritten
}

// Error is one problem in a sweep file.
type Error struct {
	File      string
	Line, Col int
	// Key is the key the problem is about, as experiment[0].params.length
	// (arrays of tables counted from 0); "" for syntax errors and problems
	// of the whole file.
	Key string
	Msg string
}

// Error returns FILE:LINE:COL: KEY: MSG.
func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Col, e.Key, e.Msg)
}

// Load reads and checks the sweep file at path.
func Load(path string) (*Sweep, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load sweep: %w", err)
	}
	return Parse(data, path)
}

// Parse checks a sweep file's contents; filename names it in errors and its
// folder is where relative model paths start. The error, if any, joins one
// *Error per problem, sorted by position.
func Parse(data []byte, filename string) (*Sweep, error) {
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		e := &Error{File: filename, Line: 1, Col: 1, Msg: err.Error()}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			// The byte offset is exact where the parser's line number may
			// already count the next line.
			at := lineCol(data, pe.Position.Start)
			e.Line, e.Col, e.Msg = at.line, at.col, pe.Message
		}
		return nil, e
	}
	c := &checker{file: filename, loc: newLocator(data)}
	s := &Sweep{File: filename, Text: string(data), Dir: filepath.Dir(filename)}
	c.sweep(s, doc)
	// Expanding checks every setting of the entries read without problems
	// against the policies' own rules and, when the whole file is good so
	// far, duplicate points and the include/exclude rules.
	s.points = s.expand(c)
	if err := c.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// checker collects the problems of one file.
type checker struct {
	file string
	loc  *locator
	errs []*Error
	seen map[string]bool
}

// errorf records a problem about the key at p.
func (c *checker) errorf(p keyPath, format string, a ...any) {
	at := c.loc.find(p)
	e := &Error{File: c.file, Line: at.line, Col: at.col, Key: p.String(), Msg: fmt.Sprintf(format, a...)}
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	if k := e.Error(); !c.seen[k] {
		c.seen[k] = true
		c.errs = append(c.errs, e)
	}
}

// err returns the problems sorted by position, at most maxErrors of them.
func (c *checker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	sort.SliceStable(c.errs, func(i, j int) bool {
		a, b := c.errs[i], c.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	var errs []error
	for i, e := range c.errs {
		if i == maxErrors {
			errs = append(errs, fmt.Errorf("%s: %d more problems not shown", c.file, len(c.errs)-maxErrors))
			break
		}
		errs = append(errs, e)
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// table is a TOML table and where it is.
type table struct {
	at keyPath
	m  map[string]any
}

// entry is one [[experiment]] or [[policy]].
type entry struct {
	at    keyPath
	name  string
	label string // policies only: the display name, unique
	// fixed are the parameters written with a single value; axes those
	// written as a list of values. Both hold converted values.
	fixed map[string]any
	axes  []axis
}

// axis is a parameter written as a list of values: one point per value.
type axis struct {
	name   string
	at     keyPath
	values []any
}

// rule is one [[include]] or [[exclude]] table.
type rule struct {
	at   keyPath
	keys []string // sorted
	m    map[string]any
}

func (c *checker) sweep(s *Sweep, doc map[string]any) {
	root := table{m: doc}
	c.known(root, topKeys...)
	if name, ok := c.str(root, "name", true); ok {
		s.Name = name
	}
	s.DB, _ = c.str(root, "db", false)
	s.Out, _ = c.str(root, "out", false)
	s.Backend = c.backend(root)
	s.chunks = c.chunks(doc)
	for _, t := range c.tables(doc, "model", true) {
		if m, ok := c.model(t, s.Dir); ok {
			s.models = append(s.models, m)
			s.modelAt = append(s.modelAt, t.at)
		}
	}
	for _, t := range c.tables(doc, "experiment", true) {
		if e, ok := c.experiment(t); ok {
			s.experiments = append(s.experiments, e)
		}
	}
	labels := map[string]keyPath{}
	for _, t := range c.tables(doc, "policy", true) {
		p, ok := c.policy(t)
		if p.label == "" {
			continue
		}
		if first, dup := labels[p.label]; dup {
			at := t.at.with("label")
			if _, written := t.m["label"]; !written {
				at = t.at
			}
			c.errorf(at, "label %q is already used by %s; give each policy a unique label", p.label, first)
			continue
		}
		labels[p.label] = t.at
		if ok {
			s.policies = append(s.policies, p)
		}
	}
	for _, t := range c.tables(doc, "include", false) {
		s.include = append(s.include, c.rule(t))
	}
	for _, t := range c.tables(doc, "exclude", false) {
		s.exclude = append(s.exclude, c.rule(t))
	}
}

// known reports the keys of t not in names.
func (c *checker) known(t table, names ...string) {
	for _, k := range slices.Sorted(maps.Keys(t.m)) {
		if !contains(names, k) {
			where := "at the top level"
			if len(t.at) > 0 {
				where = "in " + t.at.String()
			}
			c.errorf(t.at.with(k), "unknown key %s (known: %s)", where, strings.Join(names, ", "))
		}
	}
}

// str returns the string at key of t; ok is false when it is missing or not
// a string, which is reported when required or wrong.
func (c *checker) str(t table, key string, required bool) (s string, ok bool) {
	v, present := t.m[key]
	if !present {
		if required {
			c.missing(t, key)
		}
		return "", false
	}
	s, ok = v.(string)
	if !ok {
		c.errorf(t.at.with(key), "want a string, got %s", tomlType(v))
		return "", false
	}
	if s == "" {
		c.errorf(t.at.with(key), "must not be empty")
		return "", false
	}
	return s, true
}

func (c *checker) missing(t table, key string) {
	if len(t.at) == 0 {
		c.errorf(keyPath{key}, "missing required key")
		return
	}
	c.errorf(t.at, "missing required key %q", key)
}

// tables returns the tables at key of doc: an array of tables ([[key]] or
// key = [{…}, …]) or a single table ([key]).
func (c *checker) tables(doc map[string]any, key string, required bool) []table {
	at := keyPath{key}
	switch v := doc[key].(type) {
	case nil:
		if required {
			c.errorf(at, "missing: the sweep needs at least one [[%s]]", key)
		}
		return nil
	case map[string]any:
		return []table{{at, v}}
	case []map[string]any:
		ts := make([]table, len(v))
		for i, m := range v {
			ts[i] = table{at.with(i), m}
		}
		return ts
	case []any:
		var ts []table
		for i, x := range v {
			m, ok := x.(map[string]any)
			if !ok {
				c.errorf(at.with(i), "want a table, got %s", tomlType(x))
				continue
			}
			ts = append(ts, table{at.with(i), m})
		}
		if len(v) == 0 && required {
			c.errorf(at, "must not be empty: the sweep needs at least one [[%s]]", key)
		}
		return ts
	default:
		c.errorf(at, "want [[%s]] tables, got %s", key, tomlType(v))
		return nil
	}
}

func (c *checker) chunks(doc map[string]any) []int {
	at := keyPath{"chunk"}
	v, ok := doc["chunk"]
	if !ok {
		return []int{DefaultChunk}
	}
	list, isList := v.([]any)
	if !isList {
		list = []any{v}
	} else if len(list) == 0 {
		c.errorf(at, "empty list: a grid axis needs at least one value")
		return nil
	}
	var out []int
	for i, x := range list {
		el := at
		if isList {
			el = at.with(i)
		}
		n, err := toInt(x)
		switch {
		case err != nil:
			c.errorf(el, "%v", err)
		case n < 1:
			c.errorf(el, "must be at least 1 token, got %d", n)
		case containsInt(out, n):
			c.errorf(el, "%d repeats an earlier value", n)
		default:
			out = append(out, n)
		}
	}
	return out
}

func (c *checker) model(t table, dir string) (ModelRef, bool) {
	c.known(t, modelKeys...)
	_, hasPath := t.m["path"]
	_, hasName := t.m["name"]
	switch {
	case hasPath && hasName:
		c.errorf(t.at.with("name"), "set path or name, not both")
		return ModelRef{}, false
	case !hasPath && !hasName:
		c.errorf(t.at, "missing path (a model directory) or name (an embedded model)")
		return ModelRef{}, false
	case hasName:
		name, ok := c.str(t, "name", true)
		return ModelRef{Name: name}, ok
	}
	p, ok := c.str(t, "path", true)
	if !ok {
		return ModelRef{}, false
	}
	m := ModelRef{AsWritten: filepath.ToSlash(filepath.Clean(p)), Path: filepath.Clean(p)}
	if !filepath.IsAbs(m.Path) {
		m.Path = filepath.Join(dir, m.Path)
	}
	return m, true
}

// tomlType names the TOML type of a decoded value.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a datetime"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsInt(list []int, n int) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}
