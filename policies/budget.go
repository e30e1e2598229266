package policies

import (
	"fmt"
	"math"
)

// The budget vocabulary. Every bounded policy takes `budget`, the key/value
// slots per KV head it may hold (sinks, windows and scored tokens
// together; for the sparse-view bigbirds, the keys each chunk attends to;
// for truncated, the prompt tokens kept), or `ratio`, the fraction of the
// prompt kept, which becomes budget = round(ratio · prompt tokens) once the
// prompt length is known (RatioFactory). A policy splits its budget over
// its own keys by a documented default (its Spec's split); any of those keys
// given explicitly overrides its share, and the rest takes what is left.
// When every share is given and they do not add up to the budget, that is
// an error. Neither budget nor ratio has a default where the policy did not
// already have a budget parameter, so a policy configured without them
// resolves to exactly the parameters, and the sweep hash, it had before.

// Budget and ratio parameter names.
const (
	budgetKey = "budget"
	ratioKey  = "ratio"
)

// budgetParam is the optional budget of a policy whose own keys split it.
func budgetParam(split string) Param {
	return Param{Name: budgetKey, Kind: "int",
		Doc: "key/value slots per KV head, sinks included (unset: the policy's own keys decide); split: " + split}
}

// ratioParam is the optional fraction of the prompt a bounded policy keeps.
func ratioParam() Param {
	return Param{Name: ratioKey, Kind: "float",
		Doc: "fraction of the prompt kept, in (0, 1]: budget = round(ratio · prompt tokens), resolved per prompt " +
			"(an error where a run has no prompt, e.g. streaming perplexity)"}
}

// splitFunc sets a bounded policy's own keys in v from budget b ≥ 1; set
// names the keys the user gave, which it must keep or reject.
type splitFunc func(b int, set map[string]bool, v Values) error

// splitTwo splits b over keys a and c: a keeps its value and c takes the
// rest, unless only c is set, in which case a takes the rest. share, if
// not nil, gives a's share when a is not set (instead of its default).
func splitTwo(policy, a, c string, share func(b int) int) splitFunc {
	return func(b int, set map[string]bool, v Values) error {
		switch {
		case set[a] && set[c]:
			if v.Int(a)+v.Int(c) != b {
				return paramError(policy, budgetKey, "%d ≠ %s (%d) + %s (%d): give budget or both, not all three",
					b, a, v.Int(a), c, v.Int(c))
			}
		case set[c]:
			v[a] = b - v.Int(c)
		default:
			if !set[a] && share != nil {
				v[a] = share(b)
			}
			v[c] = b - v.Int(a)
		}
		if v.Int(a) < 0 || v.Int(c) < 0 {
			return paramError(policy, budgetKey, "%d slots cannot hold %s = %d and %s = %d", b, a, v.Int(a), c, v.Int(c))
		}
		return nil
	}
}

// cascadeMinSinks is the sinks the cascade's budget split starts from: the
// paper's 64 where the budget is large enough to spare them (≥ 1024 slots),
// StreamingLLM's 4 below.
func cascadeMinSinks(b int) int {
	if b >= 1024 {
		return 64
	}
	return 4
}

// splitCascade splits b into sinks + size: size is the largest multiple of
// cascades at most b − cascadeMinSinks(b) and sinks take the rest, so the
// budget is used exactly; an explicit sinks or size takes its value and
// the other the rest, which for size must be a multiple of cascades.
func splitCascade(b int, set map[string]bool, v Values) error {
	const name = "cascade"
	c := v.Int("cascades")
	if c < 1 {
		return paramError(name, "cascades", "must be at least 1, got %d", c)
	}
	switch {
	case set["sinks"] && set["size"]:
		if v.Int("sinks")+v.Int("size") != b {
			return paramError(name, budgetKey, "%d ≠ sinks (%d) + size (%d): give budget or both, not all three",
				b, v.Int("sinks"), v.Int("size"))
		}
	case set["size"]:
		v["sinks"] = b - v.Int("size")
	case set["sinks"]:
		v["size"] = b - v.Int("sinks")
		if v.Int("size")%c != 0 {
			return paramError(name, budgetKey, "budget %d − sinks %d = %d is not a multiple of cascades (%d)",
				b, v.Int("sinks"), v.Int("size"), c)
		}
	default:
		size := (b - cascadeMinSinks(b)) / c * c
		v["size"], v["sinks"] = size, b-size
	}
	if v.Int("sinks") < 0 || v.Int("size") < c {
		return paramError(name, budgetKey, "%d slots cannot hold sinks = %d and size = %d over %d cascades",
			b, v.Int("sinks"), v.Int("size"), c)
	}
	return nil
}

// splitBigbird splits the keys a chunk sees, b = global + window +
// random_blocks·block: global keeps its value, a quarter of the rest goes
// to whole random blocks and the window takes what is left. An explicit
// window or random_blocks keeps its value and the window, or the blocks
// (rounded down), take the rest; both given must use the budget to within
// a block.
func splitBigbird(b int, set map[string]bool, v Values) error {
	const name = "bigbird"
	g, block := v.Int("global"), v.Int("block")
	if block < 1 {
		return paramError(name, "block", "must be at least 1, got %d", block)
	}
	r := b - g
	switch {
	case set["window"] && set["random_blocks"]:
		if used := g + v.Int("window") + v.Int("random_blocks")*block; used > b || b-used >= block {
			return paramError(name, budgetKey, "%d ≠ global + window + random_blocks·block = %d: give budget or those, not all",
				b, g+v.Int("window")+v.Int("random_blocks")*block)
		}
	case set["window"]:
		v["random_blocks"] = (r - v.Int("window")) / block
	case set["random_blocks"]:
		v["window"] = r - v.Int("random_blocks")*block
	default:
		v["random_blocks"] = r / 4 / block
		v["window"] = r - v.Int("random_blocks")*block
	}
	if r < 0 || v.Int("window") < 0 || v.Int("random_blocks") < 0 {
		return paramError(name, budgetKey, "%d keys cannot hold global = %d, window = %d and %d blocks of %d",
			b, g, v.Int("window"), v.Int("random_blocks"), block)
	}
	return nil
}

// splitOne gives the whole budget to one key.
func splitOne(policy, key string) splitFunc {
	return func(b int, set map[string]bool, v Values) error {
		if set[key] && v.Int(key) != b {
			return paramError(policy, budgetKey, "%d ≠ %s (%d): give one of them", b, key, v.Int(key))
		}
		v[key] = b
		return nil
	}
}

// resolveBudget applies the budget vocabulary to v, resolved from raw: it
// checks budget and ratio, drops the keys a ratio leaves open and splits a
// budget.
func (s Spec) resolveBudget(raw map[string]any, v Values) error {
	if !s.Bounded {
		return nil
	}
	_, hasB := raw[budgetKey]
	_, hasR := raw[ratioKey]
	if hasB && hasR {
		return paramError(s.Name, ratioKey, "give budget or ratio, not both")
	}
	if hasR {
		if r := v.Float(ratioKey); !(r > 0 && r <= 1) {
			return paramError(s.Name, ratioKey, "must lie in (0, 1], got %v", r)
		}
		// What the budget decides stays open until the prompt is known;
		// RatioFactory.ForPrompt resolves it with the keys given here.
		for _, k := range append([]string{budgetKey}, s.SplitKeys...) {
			if _, given := raw[k]; !given {
				delete(v, k)
			}
		}
		return nil
	}
	if !v.Has(budgetKey) {
		return nil
	}
	if b := v.Int(budgetKey); b < 1 || b > maxSlots {
		return paramError(s.Name, budgetKey, "must lie in [1, %d], got %d", maxSlots, b)
	}
	if s.split == nil {
		return nil
	}
	set := map[string]bool{}
	for _, k := range s.SplitKeys {
		_, set[k] = raw[k]
	}
	return s.split(v.Int(budgetKey), set, v)
}

// RatioFactory is the factory of a policy given a `ratio` instead of a
// budget. It makes no layers itself: an experiment that knows its prompt
// resolves it with ForPrompt.
type RatioFactory interface {
	Factory
	// ForPrompt returns the policy for a prompt of n tokens, with budget =
	// Budget(n).
	ForPrompt(n int) (Factory, error)
	// Budget returns round(ratio · n), at least 1.
	Budget(n int) int
}

type ratioFactory struct {
	spec  Spec
	ratio float64
	v     Values // resolved, without budget or the keys it splits into
}

func (f ratioFactory) Name() string { return f.spec.Name }

func (f ratioFactory) NewLayer(int, Shape) (Policy, error) {
	return nil, fmt.Errorf("policy %s: ratio = %v is a fraction of the prompt, and this run has no prompt length "+
		"to resolve it against (streaming perplexity, latency and memory have none): give budget instead", f.spec.Name, f.ratio)
}

func (f ratioFactory) Budget(n int) int { return max(1, int(math.Round(f.ratio*float64(n)))) }

func (f ratioFactory) ForPrompt(n int) (Factory, error) {
	raw := make(map[string]any, len(f.v))
	for k, x := range f.v {
		raw[k] = x
	}
	delete(raw, ratioKey)
	raw[budgetKey] = f.Budget(n)
	fac, err := New(f.spec.Name, raw)
	if err != nil {
		return nil, fmt.Errorf("ratio %v of %d prompt tokens (budget %d): %w", f.ratio, n, f.Budget(n), err)
	}
	return fac, nil
}

// addVocabulary gives the policies that predate the budget vocabulary their
// aliases and budget split. (New policies declare theirs in their specs.)
func addVocabulary(s *Spec) {
	two := func(a, c string, share func(int) int, doc string) {
		s.Bounded, s.SplitKeys, s.split, s.splitDoc = true, []string{a, c}, splitTwo(s.Name, a, c, share), doc
	}
	switch s.Name {
	case "full":
		s.Aliases = []string{"no_press", "fullkv"}
	case "truncated":
		s.Bounded, s.SplitKeys, s.split, s.splitDoc = true, []string{"keep"}, splitOne(s.Name, "keep"), "all of it to keep"
	case "cascade":
		s.Aliases = []string{"cascading"}
		s.Bounded, s.SplitKeys, s.split = true, []string{"sinks", "size"}, splitCascade
		s.splitDoc = "size is the largest multiple of cascades ≤ budget − 64 (budget ≥ 1024) or − 4 (below), sinks the rest"
	case "sink":
		s.Aliases = []string{"streaming_llm", "streamingllm"}
		two("sinks", "window", nil, "sinks as set (default 4), window the rest")
	case "h2o":
		s.Aliases = []string{"heavy_hitter"}
		two("heavy", "recent", func(b int) int { return b / 2 }, "heavy ⌊budget/2⌋, recent the rest")
	case "snapkv":
		s.Bounded = true
	case "bigbird":
		s.Bounded, s.SplitKeys, s.split = true, []string{"window", "random_blocks"}, splitBigbird
		s.splitDoc = "keys a chunk sees: global as set, ⌊(budget − global)/4⌋ in whole random blocks, window the rest"
	case "hip_bigbird":
		two("sinks", "window", nil, "keys a chunk sees: sinks as set (default 16), window (half sliding, half random) the rest")
	}
}
