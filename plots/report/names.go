package report

import (
	"fmt"

	"kvcascade/plots"
)

// budget returns the key/value slots per head a bounded policy keeps (or,
// for BigBird and Quest, which keep everything, the keys each chunk attends
// to; for duo, a streaming head's slots), and
// false for a policy without one (full attention) or parameters it cannot
// read.
func budget(policy string, params map[string]any) (int, bool) {
	get := func(keys ...string) (int, bool) {
		sum := 0
		for _, k := range keys {
			v, ok := num(params[k])
			if !ok {
				return 0, false
			}
			sum += int(v)
		}
		return sum, true
	}
	switch policy {
	case "cascade":
		return get("sinks", "size")
	case "sink":
		return get("sinks", "window")
	case "h2o":
		return get("heavy", "recent")
	case "snapkv", "adakv", "expected_attention":
		return get("budget")
	case "truncated":
		return get("keep")
	case "bigbird":
		g, ok1 := get("global", "window")
		rb, ok2 := num(params["random_blocks"])
		bl, ok3 := num(params["block"])
		return g + int(rb)*int(bl), ok1 && ok2 && ok3
	case "quest":
		sw, ok1 := get("sinks", "window")
		k, ok2 := num(params["topk"])
		pg, ok3 := num(params["page"])
		return sw + (int(k)+1)*int(pg), ok1 && ok2 && ok3
	case "duo":
		return get("sinks", "window")
	}
	return 0, false
}

// policyLabel is how figures and tables name a policy: its display name
// and budget, "Cascade (260 slots)", "BigBird (attends to 260)", "Full
// attention".
func policyLabel(policy string, params map[string]any) string {
	name := plots.DisplayName(policy)
	b, ok := budget(policy, params)
	switch {
	case !ok:
		return name
	case policy == "bigbird" || policy == "quest":
		return fmt.Sprintf("%s (attends to %d)", name, b)
	case policy == "duo":
		return fmt.Sprintf("%s (%d slots per streaming head)", name, b)
	case policy == "truncated":
		return fmt.Sprintf("%s (%d prompt tokens)", name, b)
	}
	return fmt.Sprintf("%s (%d slots)", name, b)
}
