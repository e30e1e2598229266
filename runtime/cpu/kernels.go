package cpu

import "math"

// kernels holds the inner products of MatMul and Attention in two
// implementations: AVX2/FMA assembly (simd, amd64 only, chosen by New when
// the CPU has it) and plain Go, which every platform runs and the tests
// compare with it.
type kernels struct {
	simd bool
}

// matmulNT sets dst[i·n+j] = Σ_t x[i·k+t]·w[j·k+t] for rows i in [0, s) and
// columns j in [jlo, jhi): x is [s, k], w is [n, k], dst is [s, n], all
// row-major. Rows go in blocks that keep their part of x in cache while
// every column block of w passes over them.
func (kn kernels) matmulNT(dst, x, w []float32, s, n, k, jlo, jhi int) {
	if !kn.simd || k < 8 {
		for i := 0; i < s; i++ {
			xi := x[i*k : (i+1)*k]
			for j := jlo; j < jhi; j++ {
				dst[i*n+j] = dotGo(xi, w[j*k:(j+1)*k])
			}
		}
		return
	}
	k8, tail := k/8, k/8*8
	if s == 1 {
		var out [4]float32
		for j := jlo; j < jhi; j += 4 {
			c1, c2, c3 := min(j+1, jhi-1), min(j+2, jhi-1), min(j+3, jhi-1)
			dot1x4(k8, &x[0], &w[j*k], &w[c1*k], &w[c2*k], &w[c3*k], &out)
			for c := 0; c < 4 && j+c < jhi; c++ {
				v := out[c]
				for t := tail; t < k; t++ {
					v += x[t] * w[(j+c)*k+t]
				}
				dst[j+c] = v
			}
		}
		return
	}
	const rowBlock = 48 // rows of x kept in cache: 48·k floats
	var out [12]float32
	for i0 := 0; i0 < s; i0 += rowBlock {
		i1 := min(i0+rowBlock, s)
		for j := jlo; j < jhi; j += 4 {
			b0, b1 := &w[j*k], &w[min(j+1, jhi-1)*k]
			b2, b3 := &w[min(j+2, jhi-1)*k], &w[min(j+3, jhi-1)*k]
			for i := i0; i < i1; i += 3 {
				r1, r2 := min(i+1, i1-1), min(i+2, i1-1)
				dot3x4(k8, &x[i*k], &x[r1*k], &x[r2*k], b0, b1, b2, b3, &out)
				if tail == k && i+3 <= i1 && j+4 <= jhi {
					// A whole block and no tail: store it.
					for r := 0; r < 3; r++ {
						d := dst[(i+r)*n+j:][:4:4]
						d[0], d[1], d[2], d[3] = out[4*r], out[4*r+1], out[4*r+2], out[4*r+3]
					}
					continue
				}
				for r := 0; r < 3 && i+r < i1; r++ {
					for c := 0; c < 4 && j+c < jhi; c++ {
						v := out[4*r+c]
						for t := tail; t < k; t++ {
							v += x[(i+r)*k+t] * w[(j+c)*k+t]
						}
						dst[(i+r)*n+j+c] = v
					}
				}
			}
		}
	}
}

// dotGo is Σ a[t]·b[t] with four accumulators.
func dotGo(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	t := 0
	for ; t+4 <= len(a); t += 4 {
		s0 += a[t] * b[t]
		s1 += a[t+1] * b[t+1]
		s2 += a[t+2] * b[t+2]
		s3 += a[t+3] * b[t+3]
	}
	for ; t < len(a); t++ {
		s0 += a[t] * b[t]
	}
	return (s0 + s1) + (s2 + s3)
}

// mulRows sets c[r][0:w] = Σ_{j<k} a[r][j]·b[j·ldb : j·ldb+w] for the first m
// (1 to 3) rows r: a [m, ≥k] times b [k, ≥w] with row stride ldb. The
// entries of a[r] may be zero beyond a row's own length; rows past m are
// ignored.
func (kn kernels) mulRows(m, k int, a [3][]float32, b []float32, ldb, w int, c [3][]float32) {
	if k == 0 {
		for r := 0; r < m; r++ {
			clear(c[r][:w])
		}
		return
	}
	if kn.simd && w%32 == 0 {
		for r := m; r < 3; r++ { // repeat the last row: the same values written twice
			a[r], c[r] = a[m-1], c[m-1]
		}
		for col := 0; col < w; col += 32 {
			axpy3x32(k, &a[0][0], &a[1][0], &a[2][0], &b[col], ldb, &c[0][col], &c[1][col], &c[2][col])
		}
		return
	}
	for r := 0; r < m; r++ {
		cr := c[r][:w]
		clear(cr)
		for j, v := range a[r][:k] {
			if v == 0 {
				continue
			}
			for t, bv := range b[j*ldb : j*ldb+w] {
				cr[t] += v * bv
			}
		}
	}
}

// expf returns e^x in float32 for x ≤ 0 (the shifted scores of a softmax),
// within 2 ulp: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor series
// to degree 7, and 2ⁿ put into the exponent. It returns 0 below -87, where
// e^x leaves the normal float32 range.
func expf(x float32) float32 {
	if x < -87 {
		return 0
	}
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375 // ln 2 split so that n·ln2hi is exact
		ln2lo = -2.12194440e-4
	)
	n := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - n*ln2hi - n*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// expConsts are the vector exp's constants, each repeated in the 8 lanes
// of a vector: the lower clamp, log₂e, ln 2 in two parts, 1/7! … 1/2!, 1,
// the exponent bias (as int32 bits) and the upper clamp.
var expConsts = func() (c [13][8]float32) {
	vals := [13]float32{-87, 1.44269504088896341, 0.693359375, -2.12194440e-4,
		1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 1.0 / 2, 1,
		math.Float32frombits(127), 88}
	for i := range c {
		for l := range c[i] {
			c[i][l] = vals[i]
		}
	}
	return c
}()

// swiglu sets dst[i] = silu(gate[i])·up[i] = gate[i]·up[i] / (1 + e^−gate[i]).
func (kn kernels) swiglu(dst, gate, up []float32) {
	t := 0
	if kn.simd && len(dst) >= 8 {
		swiglu8(&dst[0], &gate[0], &up[0], len(dst)/8, &expConsts)
		t = len(dst) / 8 * 8
	}
	for i := t; i < len(dst); i++ {
		x := gate[i]
		// sigmoid(x) with expf's argument ≤ 0 on both sides.
		var sig float32
		if x >= 0 {
			sig = 1 / (1 + expf(-x))
		} else {
			e := expf(x)
			sig = e / (1 + e)
		}
		dst[i] = x * sig * up[i]
	}
}

// maxRow returns the largest of x (len(x) ≥ 1).
func (kn kernels) maxRow(x []float32) float32 {
	m := float32(math.Inf(-1))
	t := 0
	if kn.simd && len(x) >= 8 {
		m = max8(&x[0], len(x)/8)
		t = len(x) / 8 * 8
	}
	for _, v := range x[t:] {
		m = max(m, v)
	}
	return m
}

// expRow sets x[j] = e^(scale·(x[j]−m)) and returns their sum; m is at
// least every x[j] (scale > 0). Entries of −Inf give 0 in plain Go and
// e^−87 (1.6e-38) in the assembly.
func (kn kernels) expRow(x []float32, m, scale float32) float32 {
	var sum float32
	t := 0
	if kn.simd && len(x) >= 8 {
		sum = expShiftSum(&x[0], len(x)/8, m, scale, &expConsts)
		t = len(x) / 8 * 8
	}
	for j := t; j < len(x); j++ {
		e := expf(scale * (x[j] - m))
		x[j] = e
		sum += e
	}
	return sum
}
