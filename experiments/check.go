package experiments

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"kvcascade/datasets/longbench"
	"kvcascade/datasets/longtext"
	"kvcascade/datasets/passkey"
	"kvcascade/policies/params"
)

// checker is implemented by experiments whose parameters have ranges or
// forms that one value can break (length = 0, depth_bin = 9).
type checker interface {
	check(p params.Values) error
}

// pather is implemented by experiments with parameters that name files or
// folders.
type pather interface {
	// paths returns the names of those parameters.
	paths() []string
	// checkFiles opens and reads what they name (paths already resolved).
	checkFiles(p params.Values, files *Files) error
}

// Check checks a point's resolved parameters against what the experiment
// accepts, without opening anything: sweeps call it on every point when
// they are planned, and Run calls it again. Its errors read
// "experiment NAME: parameter KEY: …".
func Check(e Experiment, p params.Values) error {
	if c, ok := e.(checker); ok {
		return c.check(p)
	}
	return nil
}

// PathParams returns the names of e's parameters that name a file or a
// folder. A sweep file resolves a relative path written for one of them
// against its own folder (see ResolvePaths).
func PathParams(e Experiment) []string {
	if p, ok := e.(pather); ok {
		return p.paths()
	}
	return nil
}

// ResolvePaths returns a copy of p whose non-empty relative path parameters
// (PathParams) are joined to dir; values that name an embedded text
// ("embedded:NAME", longtext.IsEmbedded) are kept.
func ResolvePaths(e Experiment, p params.Values, dir string) params.Values {
	out := make(params.Values, len(p))
	for k, v := range p {
		out[k] = v
	}
	for _, k := range PathParams(e) {
		if s, ok := out[k].(string); ok && s != "" && !filepath.IsAbs(s) && !longtext.IsEmbedded(s) {
			out[k] = filepath.Join(dir, s)
		}
	}
	return out
}

// Files remembers the outcome of opening each file, so that a plan of many
// points that name one file reads it once. The zero value is ready for use;
// it is safe for concurrent use.
type Files struct {
	mu   sync.Mutex
	seen map[string]error
}

// once runs open for key the first time and returns its error every time.
func (f *Files) once(key string, open func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, ok := f.seen[key]; ok {
		return err
	}
	if f.seen == nil {
		f.seen = map[string]error{}
	}
	err := open()
	f.seen[key] = err
	return err
}

// CheckFiles opens and reads the files and folders a point names (its path
// parameters, resolved as ResolvePaths does) far enough to know that the
// point can use them: a word list has words, a text its first chunk, a
// LongBench file parses and holds one subset. files may be nil.
func CheckFiles(e Experiment, p params.Values, files *Files) error {
	pe, ok := e.(pather)
	if !ok {
		return nil
	}
	if files == nil {
		files = &Files{}
	}
	return pe.checkFiles(p, files)
}

// atLeast returns an error naming the parameter when v < lo.
func atLeast(owner, name string, v, lo int) error {
	if v < lo {
		return fmt.Errorf("experiment %s: parameter %s: must be at least %d, got %d", owner, name, lo, v)
	}
	return nil
}

func (x passkeyExp) check(p params.Values) error {
	for _, c := range []struct {
		name string
		lo   int
	}{{"length", 1}, {"depth_bin", 0}, {"samples", 1}, {"max_new", 1}} {
		if err := atLeast(x.Name(), c.name, p.Int(c.name), c.lo); err != nil {
			return err
		}
	}
	if b := p.Int("depth_bin"); b >= passkey.Bins {
		return fmt.Errorf("experiment passkey: parameter depth_bin: %d is outside 0..%d", b, passkey.Bins-1)
	}
	if _, err := passkey.ApplyTemplate(p.String("template"), ""); err != nil {
		return fmt.Errorf("experiment passkey: parameter template: %w", err)
	}
	return nil
}

func (passkeyExp) paths() []string { return []string{"words"} }

func (passkeyExp) checkFiles(p params.Values, files *Files) error {
	path := p.String("words")
	if path == "" {
		return nil // the embedded list
	}
	return files.once("words\x00"+path, func() error {
		if _, err := passkey.LoadWords(path); err != nil {
			return fmt.Errorf("experiment passkey: parameter words: %w", err)
		}
		return nil
	})
}

func (x perplexity) check(p params.Values) error {
	if p.String("text") == "" {
		return fmt.Errorf("experiment perplexity: parameter text: required (a text file, a folder of .txt books or a .jsonl file)")
	}
	least := 2
	if p.String("books") == booksEach {
		least = 0 // 0 reads every book whole
	}
	if err := atLeast(x.Name(), "tokens", p.Int("tokens"), least); err != nil {
		return err
	}
	return atLeast(x.Name(), "checkpoints", p.Int("checkpoints"), 1)
}

func (perplexity) paths() []string { return []string{"text"} }

func (perplexity) checkFiles(p params.Values, files *Files) error {
	path, field := p.String("text"), p.String("field")
	return files.once("text\x00"+path+"\x00"+field, func() error {
		corpus, err := longtext.Open(path, longtext.Options{Field: field, ChunkBytes: 64 << 10})
		if err != nil {
			return fmt.Errorf("experiment perplexity: parameter text: %w", err)
		}
		for _, err := range corpus.Chunks() {
			if err != nil {
				return fmt.Errorf("experiment perplexity: parameter text: %w", err)
			}
			return nil // the first chunk reads
		}
		return fmt.Errorf("experiment perplexity: parameter text: %s holds no text", path)
	})
}

func (x longbenchExp) check(p params.Values) error {
	if p.String("data") == "" {
		return fmt.Errorf("experiment longbench: parameter data: required (a LongBench jsonl file)")
	}
	if name := p.String("subset"); name != "" {
		if _, ok := longbench.Lookup(name); !ok {
			return fmt.Errorf("experiment longbench: parameter subset: unknown subset %q", name)
		}
	}
	for _, k := range []string{"max_prompt", "limit", "max_new"} {
		if err := atLeast(x.Name(), k, p.Int(k), 0); err != nil {
			return err
		}
	}
	return nil
}

func (longbenchExp) paths() []string { return []string{"data"} }

func (longbenchExp) checkFiles(p params.Values, files *Files) error {
	path, subset := p.String("data"), p.String("subset")
	return files.once("longbench\x00"+path+"\x00"+subset, func() error {
		samples, err := longbench.ReadFile(path)
		if err != nil {
			return fmt.Errorf("experiment longbench: parameter data: %w", err)
		}
		_, err = longbenchSubset(path, samples, subset)
		return err
	})
}

// longbenchSubset returns the subset whose task (template, metric) the
// samples of a LongBench file are run with: the subset parameter when it is
// set, else the file's dataset field. A file without samples, one that mixes
// subsets or names an unknown one is an error.
func longbenchSubset(path string, samples []longbench.Sample, subset string) (string, error) {
	if len(samples) == 0 {
		return "", fmt.Errorf("experiment longbench: parameter data: %s has no samples", path)
	}
	var names []string
	for _, s := range samples {
		if s.Dataset != "" && !slices.Contains(names, s.Dataset) {
			names = append(names, s.Dataset)
		}
	}
	if len(names) > 1 {
		return "", fmt.Errorf("experiment longbench: parameter data: %s mixes %d subsets (%s); give each subset's file on its own, as LongBench ships them",
			path, len(names), strings.Join(names, ", "))
	}
	name := subset
	switch {
	case name == "" && len(names) == 0:
		return "", fmt.Errorf("experiment longbench: parameter subset: %s has no dataset field; name the subset", path)
	case name == "":
		name = names[0]
	}
	if _, ok := longbench.Lookup(name); !ok {
		return "", fmt.Errorf("experiment longbench: parameter subset: unknown subset %q (from %s)", name, path)
	}
	return name, nil
}

func (x latency) check(p params.Values) error {
	if err := atLeast(x.Name(), "length", p.Int("length"), 1); err != nil {
		return err
	}
	return atLeast(x.Name(), "decode_tokens", p.Int("decode_tokens"), 0)
}

func (x memory) check(p params.Values) error {
	if err := atLeast(x.Name(), "length", p.Int("length"), 1); err != nil {
		return err
	}
	return atLeast(x.Name(), "checkpoints", p.Int("checkpoints"), 1)
}
