package report

import (
	"fmt"

	"kvcascade/plots"
)

// budget returns the key/value slots per head a bounded policy keeps (or,
// for BigBird, which keeps everything, the keys each chunk attends to), and
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
	case policy == "bigbird":
		return fmt.Sprintf("%s (attends to %d)", name, b)
	case policy == "truncated":
		return fmt.Sprintf("%s (%d prompt tokens)", name, b)
	}
	return fmt.Sprintf("%s (%d slots)", name, b)
}
