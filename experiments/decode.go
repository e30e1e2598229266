package experiments

import (
	"context"
	"math"
	"slices"

	"kvcascade/runtime/model"
)

// greedyRule says how greedy decoding ends.
type greedyRule struct {
	// Stop ends decoding after any of these tokens (kept in the output).
	Stop []int32
	// BanFirst are tokens the first new token may not be: their logits are
	// taken as −∞ for it, as Hugging Face's min_length = prompt + 1 does to
	// the end tokens.
	BanFirst []int32
}

// greedy prefills prompt and continues greedily for at most maxNew tokens
// under rule; it returns the new tokens. With no BanFirst it is
// sess.Generate.
func greedy(ctx context.Context, sess *model.Session, prompt []int32, maxNew int, rule greedyRule) ([]int32, error) {
	if len(rule.BanFirst) == 0 {
		return sess.Generate(ctx, prompt, maxNew, rule.Stop)
	}
	logits, err := sess.Prefill(ctx, prompt, nil)
	if err != nil {
		return nil, err
	}
	var out []int32
	for len(out) < maxNew {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if len(out) == 0 {
			logits = slices.Clone(logits)
			for _, id := range rule.BanFirst {
				if id >= 0 && int(id) < len(logits) {
					logits[id] = float32(math.Inf(-1))
				}
			}
		}
		next := model.Argmax(logits)
		out = append(out, next)
		if slices.Contains(rule.Stop, next) || len(out) == maxNew {
			break
		}
		if logits, err = sess.Decode(next); err != nil {
			return out, err
		}
	}
	return out, nil
}
