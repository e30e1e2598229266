package safetensors

import (
	"math"
	"path/filepath"
	"testing"
)

func TestHalfToFloat32(t *testing.T) {
	tests := []struct {
		half uint16
		want float32
	}{
		{0x0000, 0},
		{0x3c00, 1},
		{0xbc00, -1},
		{0xc000, -2},
		{0x3800, 0.5},
		{0x3555, 0.33325195},
		{0x7bff, 65504},
		{0xfbff, -65504},
		{0x0400, 0x1p-14},     // smallest normal, 6.1035156e-05
		{0x03ff, 0x1.ff8p-15}, // largest subnormal
		{0x0001, 0x1p-24},     // smallest subnormal, 5.960464e-08
		{0x8001, -0x1p-24},    // negative subnormal
		{0x0200, 0x1p-15},     // subnormal 2⁻¹⁵
		{0x7c00, float32(math.Inf(1))},
		{0xfc00, float32(math.Inf(-1))},
	}
	for _, tt := range tests {
		if got := halfToFloat32(tt.half); got != tt.want {
			t.Errorf("halfToFloat32(%#04x) = %g, want %g", tt.half, got, tt.want)
		}
	}
	if got := halfToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("halfToFloat32(0x8000) = %g, want -0", got)
	}
	for _, h := range []uint16{0x7c01, 0x7e00, 0xfe00, 0x7fff} {
		if got := halfToFloat32(h); !math.IsNaN(float64(got)) {
			t.Errorf("halfToFloat32(%#04x) = %g, want NaN", h, got)
		}
	}
}

// TestHalfRoundTrip checks every half value: widening to float32 and
// rounding back must give the same bits (NaNs only need to stay NaN), and
// the widened value must equal the one computed in float64 from the
// definition of binary16.
func TestHalfRoundTrip(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		f := halfToFloat32(h)
		exp := int(h>>10) & 0x1f
		mant := float64(h & 0x3ff)
		var want float64
		switch exp {
		case 0x1f:
			if h&0x3ff != 0 {
				if !math.IsNaN(float64(f)) || float32ToHalf(f)&0x7c00 != 0x7c00 || float32ToHalf(f)&0x3ff == 0 {
					t.Errorf("NaN %#04x: got %g, back %#04x", h, f, float32ToHalf(f))
				}
				continue
			}
			want = math.Inf(1)
		case 0:
			want = mant * math.Pow(2, -24)
		default:
			want = (1 + mant/1024) * math.Pow(2, float64(exp-15))
		}
		if h&0x8000 != 0 {
			want = -want
		}
		if float64(f) != want {
			t.Errorf("halfToFloat32(%#04x) = %g, want %g", h, f, want)
		}
		if back := float32ToHalf(f); back != h {
			t.Errorf("float32ToHalf(halfToFloat32(%#04x)) = %#04x", h, back)
		}
	}
}

func TestFloat32ToHalf(t *testing.T) {
	tests := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},
		{65519, 0x7bff},        // below the midpoint to 65536
		{65520, 0x7c00},        // midpoint, ties to even: infinity
		{1e6, 0x7c00},          // overflow
		{-1e6, 0xfc00},         // negative overflow
		{1 + 1.0/2048, 0x3c00}, // tie between 0x3c00 and 0x3c01: even
		{1 + 3.0/2048, 0x3c02}, // tie between 0x3c01 and 0x3c02: even
		{1 + 1.5/2048, 0x3c01}, // above the midpoint
		{0x1p-24, 0x0001},
		{0x1p-25, 0x0000}, // tie between 0 and 0x0001: even
		{math.Float32frombits(0x33000001), 0x0001}, // just above 2⁻²⁵
		{0x1.8p-24, 0x0002},                        // tie between 0x0001 and 0x0002: even
		{0x1.4p-24, 0x0001},                        // below the midpoint
		{1e-10, 0x0000},
		{-1e-10, 0x8000},
		{0x1p-14, 0x0400},
		{0x1.ffcp-15, 0x0400}, // midpoint above the largest subnormal: even
		{float32(math.Inf(1)), 0x7c00},
		{float32(math.Inf(-1)), 0xfc00},
		{math.Float32frombits(1), 0}, // float32 subnormal
	}
	for _, tt := range tests {
		if got := float32ToHalf(tt.in); got != tt.want {
			t.Errorf("float32ToHalf(%g) = %#04x, want %#04x", tt.in, got, tt.want)
		}
	}
	if got := float32ToHalf(float32(math.NaN())); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
		t.Errorf("float32ToHalf(NaN) = %#04x, not a NaN", got)
	}
}

func TestFloat32ToBF16(t *testing.T) {
	tests := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3f80},
		{-2, 0xc000},
		{math.Float32frombits(0x3f808000), 0x3f80}, // tie: even
		{math.Float32frombits(0x3f818000), 0x3f82}, // tie: even
		{math.Float32frombits(0x3f808001), 0x3f81}, // above the midpoint
		{math.Float32frombits(0x3f807fff), 0x3f80}, // below the midpoint
		{math.MaxFloat32, 0x7f80},                  // rounds up to infinity
		{float32(math.Inf(-1)), 0xff80},
		{math.Float32frombits(0x00000001), 0x0000},
	}
	for _, tt := range tests {
		if got := float32ToBF16(tt.in); got != tt.want {
			t.Errorf("float32ToBF16(%g) = %#04x, want %#04x", tt.in, got, tt.want)
		}
	}
	for _, nan := range []uint32{0x7fc00000, 0x7f800001, 0xff800001} {
		got := float32ToBF16(math.Float32frombits(nan))
		if got&0x7f80 != 0x7f80 || got&0x7f == 0 {
			t.Errorf("float32ToBF16(%#08x) = %#04x, not a NaN", nan, got)
		}
	}
}

// TestBF16ToFloat32 checks the four-at-a-time loop and its tail against the
// definition, for every length up to 9.
func TestBF16ToFloat32(t *testing.T) {
	for n := range 10 {
		src := make([]byte, 2*n)
		for i := range src {
			src[i] = byte(37*i + 11)
		}
		dst := make([]float32, n)
		bf16ToFloat32(dst, src)
		for i, got := range dst {
			want := uint32(src[2*i])<<16 | uint32(src[2*i+1])<<24
			if math.Float32bits(got) != want {
				t.Errorf("n=%d: dst[%d] = %#08x, want %#08x", n, i, math.Float32bits(got), want)
			}
		}
	}
}

func TestDecodeFloat32Reuse(t *testing.T) {
	src := F32Bytes([]float32{1, 2, 3})
	dst := make([]float32, 1, 8)
	got, err := decodeFloat32("F32", src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || &got[0] != &dst[:1][0] {
		t.Errorf("decodeFloat32 did not reuse dst: len %d", len(got))
	}
	got, err = decodeFloat32("F32", src, make([]float32, 0, 2))
	if err != nil || len(got) != 3 || got[2] != 3 {
		t.Errorf("decodeFloat32 with short dst = %v, %v", got, err)
	}
	if _, err := decodeFloat32("I32", src, nil); err == nil {
		t.Error("decodeFloat32(I32) succeeded")
	}
}

// BenchmarkFloat32BF16 converts a BF16 tensor of 16M elements, 32 MiB,
// read from a mapped file, into a reused buffer.
func BenchmarkFloat32BF16(b *testing.B) {
	const n = 16 << 20
	values := make([]float32, n)
	for i := range values {
		values[i] = float32(i%1000) / 7
	}
	dir := b.TempDir()
	writeFile(b, filepath.Join(dir, "model.safetensors"), []Tensor{
		{Name: "w", DType: "BF16", Shape: []int{n / 4096, 4096}, Data: BF16Bytes(values)},
	}, nil)
	s, err := OpenDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	dst := make([]float32, n)
	b.SetBytes(2 * n)
	for b.Loop() {
		if dst, err = s.Float32("w", dst); err != nil {
			b.Fatal(err)
		}
	}
}
