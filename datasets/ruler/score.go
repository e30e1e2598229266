package ruler

import "strings"

// Postprocess cleans a prediction as RULER's evaluation does: surrounding
// white space is trimmed and every control character (U+0000 to U+001F)
// becomes a newline.
func Postprocess(pred string) string {
	pred = strings.TrimSpace(pred)
	pred = strings.Map(func(r rune) rune {
		if r < 0x20 {
			return '\n'
		}
		return r
	}, pred)
	return strings.TrimSpace(pred)
}

// StringMatchAll is RULER's string_match_all for one sample: the fraction
// of refs found in pred, case-insensitive; 0 when refs is empty.
func StringMatchAll(pred string, refs []string) float64 {
	if len(refs) == 0 {
		return 0
	}
	p := strings.ToLower(pred)
	found := 0
	for _, r := range refs {
		if strings.Contains(p, strings.ToLower(r)) {
			found++
		}
	}
	return float64(found) / float64(len(refs))
}

// StringMatchPart is RULER's string_match_part for one sample: 1 when any
// of refs is found in pred, case-insensitive, else 0.
func StringMatchPart(pred string, refs []string) float64 {
	p := strings.ToLower(pred)
	for _, r := range refs {
		if strings.Contains(p, strings.ToLower(r)) {
			return 1
		}
	}
	return 0
}

// Score returns the task's score of one prediction in [0, 1], after
// Postprocess; RULER reports the mean over samples times 100.
func (t Task) Score(pred string, refs []string) float64 {
	pred = Postprocess(pred)
	if t.Metric == MatchPart {
		return StringMatchPart(pred, refs)
	}
	return StringMatchAll(pred, refs)
}
