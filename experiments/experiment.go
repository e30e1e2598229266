// Package experiments holds the measurements kvcascade runs: passkey
// retrieval, streaming perplexity, LongBench, RULER, latency and memory.
// Each takes a model, a cache policy and its own parameters and returns
// structured records — aggregated metrics and per-sample rows — for the
// results store.
package experiments

import (
	"context"
	"encoding/json"
	"fmt"
	"kvcascade/plots/figure"
	"sort"
	"strings"

	"kvcascade/policies"
	"kvcascade/policies/params"
	"kvcascade/runtime/model"
)

// Tokenizer is the part of a tokenizer experiments use;
// runtime/tokenizer.Tokenizer implements it.
type Tokenizer interface {
	Encode(text string, addSpecial bool) []int32
	Decode(ids []int32, skipSpecial bool) string
}

// Env is what an experiment point runs on.
type Env struct {
	Model     *model.Model
	Tokenizer Tokenizer
	// Policy makes the cache of every sequence the experiment runs.
	Policy policies.Factory
	// PolicyName and PolicyParams, when PolicyName is not empty, are the
	// registered name and the raw parameters Policy was built from. They are
	// the hook through which an experiment that sizes the cache per sample
	// (longbench with budget = "quarter") rebuilds the policy with some
	// parameters replaced; see Env.PolicyWith.
	PolicyName   string
	PolicyParams map[string]any
	// Chunk is the prefill chunk size in tokens.
	Chunk int
	// Progress, when not nil, is told how much of the point is done.
	Progress func(done, total int)
	// Calibrations, when not nil, are the calibration runs already made on
	// Model, shared by the points that run on it (see calibrated); nil
	// starts an empty memo of this Env's own.
	Calibrations *Calibrations
}

// NewCache returns an empty cache of the point's policy.
func (e *Env) NewCache() (*policies.Cache, error) { return e.newCacheOf(e.Policy) }

// Prompt applies the policy's prompt cut (truncated baseline), if any.
func (e *Env) Prompt(ids []int32) []int32 {
	if c, ok := e.Policy.(policies.PromptCutter); ok {
		return c.CutPrompt(ids)
	}
	return ids
}

// ForPrompt returns the point's policy for prompt and the prompt as that
// policy has the model see it (cut, for the truncated baseline). A policy
// given as a `ratio` of the prompt is resolved here to budget =
// round(ratio · len(prompt)), which budget returns (0 otherwise).
func (e *Env) ForPrompt(prompt []int32) (f policies.Factory, ids []int32, budget int, err error) {
	f = e.Policy
	if r, ok := f.(policies.RatioFactory); ok {
		budget = r.Budget(len(prompt))
		if f, err = r.ForPrompt(len(prompt)); err != nil {
			return nil, nil, 0, err
		}
	}
	if c, ok := f.(policies.PromptCutter); ok {
		prompt = c.CutPrompt(prompt)
	}
	return f, prompt, budget, nil
}

// PolicyWith returns the point's policy rebuilt with the parameters of
// override replacing those it was built with (the others unchanged). It
// needs PolicyName; without it, it is an error.
func (e *Env) PolicyWith(override map[string]any) (policies.Factory, error) {
	if e.PolicyName == "" {
		return nil, fmt.Errorf("the policy's name and parameters are unknown, so it cannot be resized per sample")
	}
	merged := make(map[string]any, len(e.PolicyParams)+len(override))
	for k, v := range e.PolicyParams {
		merged[k] = v
	}
	for k, v := range override {
		merged[k] = v
	}
	return policies.New(e.PolicyName, merged)
}

// newCacheOf returns an empty cache of the policy f, calibrated on the
// model first where it asks for that (policies.Calibrator).
func (e *Env) newCacheOf(f policies.Factory) (*policies.Cache, error) {
	f, err := e.calibrated(context.Background(), f)
	if err != nil {
		return nil, err
	}
	m := e.Model
	return policies.NewCache(m.Backend(), f, policies.Shape{
		Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim,
	}, m.Backend().DType())
}

func (e *Env) progress(done, total int) {
	if e.Progress != nil {
		e.Progress(done, total)
	}
}

// Metric is one aggregated number of a point.
type Metric struct {
	Name  string
	Value float64
	Unit  string
}

// Result is what one experiment point produced.
type Result struct {
	Metrics []Metric
	// Samples are per-sample records (one JSON object each).
	Samples []json.RawMessage
}

func (r *Result) metric(name string, value float64, unit string) {
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: value, Unit: unit})
}

func (r *Result) sample(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode sample: %w", err)
	}
	r.Samples = append(r.Samples, b)
	return nil
}

// Experiment is one kind of measurement.
type Experiment interface {
	// Name is the registered name ("passkey", "perplexity", …).
	Name() string
	// Doc is a one-line description.
	Doc() string
	// Params describes the parameters Run takes.
	Params() []params.Param
	// Figures are the kinds of figure the report draws from its points.
	Figures() []figure.Kind
	// Run measures one point. It stops early with ctx's error when ctx is
	// cancelled.
	Run(ctx context.Context, env *Env, p params.Values) (*Result, error)
}

// All returns every experiment, sorted by name.
func All() []Experiment {
	all := []Experiment{passkeyExp{}, perplexity{}, longbenchExp{}, latency{}, memory{}, rulerExp{}}
	sort.Slice(all, func(i, j int) bool { return all[i].Name() < all[j].Name() })
	return all
}

// Lookup returns the named experiment.
func Lookup(name string) (Experiment, error) {
	var names []string
	for _, e := range All() {
		if e.Name() == name {
			return e, nil
		}
		names = append(names, e.Name())
	}
	return nil, fmt.Errorf("unknown experiment %q (known: %s)", name, strings.Join(names, ", "))
}

// Resolve checks raw parameters against the experiment's and fills defaults.
func Resolve(e Experiment, raw map[string]any) (params.Values, error) {
	return params.Resolve("experiment "+e.Name(), e.Params(), raw)
}

// Declared returns what the experiment name declares: its parameters' names,
// in order, and the kinds of figure it draws, as strings; ok is false for
// an unknown name. Results databases written before experiment and policy
// parameters were stored apart are split with it (results.Options).
func Declared(name string) (params, figures []string, ok bool) {
	e, err := Lookup(name)
	if err != nil {
		return nil, nil, false
	}
	for _, p := range e.Params() {
		params = append(params, p.Name)
	}
	return params, figure.Strings(e.Figures()), true
}
