package policies

import (
	"fmt"
	"math"
)

// positions tells how a policy sets the RoPE positions of its view.
type positions bool

const (
	// cachePositions numbers the keys by their index in the attention order
	// and puts the chunk right after them: the paper's default.
	cachePositions positions = false
	// originalPositions gives every key its original position and the chunk
	// its own, Step.Start onwards.
	originalPositions positions = true
)

// positionsParam is the parameter every policy with eviction takes.
func positionsParam() Param {
	return Param{Name: "positions", Kind: "string", Default: "cache", Choices: []string{"cache", "original"},
		Doc: "RoPE positions: cache = index in the attention order (sinks first, chunk right after the view); original = original token positions"}
}

func positionsOf(v Values) positions { return positions(v.String("positions") == "original") }

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
