package backend

import (
	"math"
	"testing"
)

func TestRoundF16(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, tt := range []struct {
		name    string
		in, out float32
	}{
		{"one", 1, 1},
		{"below half a step at 1", 1 + 1.0/4096, 1},
		{"tie at 1 goes to even (down)", 1 + 1.0/2048, 1},
		{"tie at 1+2⁻¹⁰ goes to even (up)", 1 + 3.0/2048, 1 + 1.0/512},
		{"above half a step", 1 + 1.0/2048 + 1.0/65536, 1 + 1.0/1024},
		{"negative", -1.5, -1.5},
		{"largest half", 65504, 65504},
		{"rounds down to the largest half", 65519, 65504},
		{"overflows", 65520, inf},
		{"negative overflow", -70000, -inf},
		{"smallest normal", 1.0 / 16384, 1.0 / 16384},
		{"smallest subnormal", 1.0 / (1 << 24), 1.0 / (1 << 24)},
		{"half the smallest subnormal ties to zero", 1.0 / (1 << 25), 0},
		{"three quarters of it rounds up", 3.0 / (1 << 26), 1.0 / (1 << 24)},
		{"subnormal tie to even", 3.0 / (1 << 25), 2.0 / (1 << 24)},
		{"an increment of 3e-8 vanishes", 2.9e-8, 0},
		{"inf", inf, inf},
	} {
		if got := RoundF16(tt.in); got != tt.out {
			t.Errorf("%s: RoundF16(%v) = %v, want %v", tt.name, tt.in, got, tt.out)
		}
	}
	if got := RoundF16(float32(math.NaN())); got == got {
		t.Errorf("RoundF16(NaN) = %v", got)
	}
}
