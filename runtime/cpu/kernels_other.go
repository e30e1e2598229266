//go:build !amd64 || purego

package cpu

// hasAVX2FMA is false where the assembly kernels are not built (another
// architecture, or the purego build tag).
func hasAVX2FMA() bool { return false }

func dot3x4(k8 int, a0, a1, a2, b0, b1, b2, b3 *float32, out *[12]float32) {
	panic("cpu: dot3x4 without assembly")
}

func dot1x4(k8 int, a, b0, b1, b2, b3 *float32, out *[4]float32) {
	panic("cpu: dot1x4 without assembly")
}

func axpy3x32(k int, a0, a1, a2, b *float32, ldb int, c0, c1, c2 *float32) {
	panic("cpu: axpy3x32 without assembly")
}

func expShiftSum(x *float32, n8 int, m, scale float32, c *[13][8]float32) float32 {
	panic("cpu: expShiftSum without assembly")
}

func max8(x *float32, n8 int) float32 { panic("cpu: max8 without assembly") }

func swiglu8(dst, gate, up *float32, n8 int, c *[13][8]float32) {
	panic("cpu: swiglu8 without assembly")
}
