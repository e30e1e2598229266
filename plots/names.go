package plots

import "strings"

// displayNames are the names figures give the registered policies, in the
// papers' spelling.
var displayNames = map[string]string{
	"cascade":   "Cascade",
	"sink":      "StreamingLLM",
	"h2o":       "H2O",
	"snapkv":    "SnapKV",
	"bigbird":   "BigBird",
	"full":      "Full attention",
	"truncated": "Truncated",
	"adakv":     "Ada-KV",
	"pyramidkv": "PyramidKV",
	"quest":     "Quest",
	"duo":       "DuoAttention",
	"logsearch": "LogSearch",
	"tova":      "TOVA",
	"knorm":     "KNorm",
	"random":    "Random",

	"hip_bigbird":        "BigBird (HiP)",
	"expected_attention": "Expected Attention",
}

// DisplayName returns the name figures give the policy registered as id
// ("sink" → "StreamingLLM", "full" → "Full attention"); any other name is
// returned unchanged.
func DisplayName(id string) string {
	if d, ok := displayNames[id]; ok {
		return d
	}
	return id
}

// policyID returns the registered policy a series name stands for: the
// id itself ("cascade"), or a display name alone or followed by a
// parenthesised detail ("Cascade (260 slots)"). It returns "" for any other
// name.
func policyID(name string) string {
	if _, ok := displayNames[name]; ok {
		return name
	}
	for id, d := range displayNames {
		if name == d { // a display name that holds a parenthesis itself
			return id
		}
	}
	base, _, _ := strings.Cut(name, " (")
	for id, d := range displayNames {
		if base == d {
			return id
		}
	}
	return ""
}
