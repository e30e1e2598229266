package longbench

import "testing"

// TestQuarterBudget pins the official per-sample budget,
// int(2 ** int(np.log2(n / 4) // 1)), on worked cases.
func TestQuarterBudget(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, 0}, {3, 0},
		{4, 1}, {7, 1}, {8, 2}, {15, 2}, {16, 4},
		// log2(4096/4) = 10 exactly: 1,024; one token less: 512.
		{4095, 512}, {4096, 1024}, {4097, 1024},
		{8191, 1024}, {8192, 2048},
		// a typical LongBench prompt: 30,000 tokens → 7,500 → 4,096
		{30000, 4096},
		// 65,370 tokens → 16,342 → 8,192
		{65370, 8192},
		{131071, 16384}, {131072, 32768},
	} {
		if got := QuarterBudget(c.n); got != c.want {
			t.Errorf("QuarterBudget(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}
