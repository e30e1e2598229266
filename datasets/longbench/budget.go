package longbench

import "math/bits"

// QuarterSinks is the number of tokens the cascade paper's LongBench runs add
// to a quarter budget: the cascade's sink tokens, and the extra tokens its
// truncated full-attention baseline keeps.
const QuarterSinks = 64

// QuarterBudget returns the cache budget the cascade paper's LongBench runs
// give a prompt of n tokens: the largest power of two not above n/4, that is
// 2^⌊log2(n/4)⌋ (LongBench-timber, branch cascade, pred.py:255, and :178 for
// the truncated baseline, which keeps QuarterBudget(n) + QuarterSinks
// tokens). It is 0 for n < 4, where the official int(2 ** …) of a negative
// power would also be 0.
func QuarterBudget(n int) int {
	if n < 4 {
		return 0
	}
	q := uint(n / 4)
	return 1 << (bits.Len(q) - 1)
}
