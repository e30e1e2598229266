//go:build !purego

package cpu

// hasAVX2FMA reports whether the CPU and the OS support AVX2 and FMA.
func hasAVX2FMA() bool

// dot3x4 sets out[4r+c] = Σ_{t<8·k8} ar[t]·bc[t] (AVX2 and FMA).
//
//go:noescape
func dot3x4(k8 int, a0, a1, a2, b0, b1, b2, b3 *float32, out *[12]float32)

// dot1x4 sets out[c] = Σ_{t<8·k8} a[t]·bc[t] (AVX2 and FMA).
//
//go:noescape
func dot1x4(k8 int, a, b0, b1, b2, b3 *float32, out *[4]float32)

// axpy3x32 sets cr[0:32] = Σ_{j<k} ar[j]·b[j·ldb : j·ldb+32] for r = 0, 1, 2
// (AVX2 and FMA; ldb in elements).
//
//go:noescape
func axpy3x32(k int, a0, a1, a2, b *float32, ldb int, c0, c1, c2 *float32)

// expShiftSum sets x[j] = e^(scale·(x[j]−m)) for j < 8·n8 and returns their
// sum (AVX2 and FMA; c is expConsts; arguments below −87 give e^−87).
//
//go:noescape
func expShiftSum(x *float32, n8 int, m, scale float32, c *[13][8]float32) float32

// max8 returns the largest of x[0 : 8·n8], n8 ≥ 1 (AVX).
//
//go:noescape
func max8(x *float32, n8 int) float32

// swiglu8 sets dst[i] = gate[i]·up[i] / (1 + e^−gate[i]) for i < 8·n8 (AVX2
// and FMA; c is expConsts; e^−gate is clamped to [e^−87, e^88]).
//
//go:noescape
func swiglu8(dst, gate, up *float32, n8 int, c *[13][8]float32)
