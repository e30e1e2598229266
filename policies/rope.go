package policies

import "math"

// rope is the model's rotary position embedding as a policy that models
// future attention needs it (expected_attention): the inverse frequencies
// [hd/2], scaling applied, and the factor on cos and sin, as
// backend.Attention takes them. Dimension i rotates with i + hd/2. The zero
// rope rotates nothing.
type rope struct {
	invFreq []float32
	factor  float32
}

// roped is implemented by the layer policies that need the model's RoPE;
// Cache.SetRoPE hands it to them.
type roped interface {
	setRoPE(r rope)
}

// rotate sets dst [hd] to x rotated to position pos.
func (r rope) rotate(dst, x []float32, pos int64) {
	if len(r.invFreq) == 0 {
		copy(dst, x)
		return
	}
	h := len(r.invFreq)
	for i, f := range r.invFreq {
		a := float64(float32(pos) * f)
		c, s := float32(math.Cos(a))*r.factor, float32(math.Sin(a))*r.factor
		x1, x2 := x[i], x[i+h]
		dst[i] = x1*c - x2*s
		dst[i+h] = x2*c + x1*s
	}
}

// mean sets c and s [hd/2] to the cos and sin of the rotation averaged
// over positions [from, from+n): the mean of the rotation matrices, which
// applyMean applies. The zero rope gives the identity.
func (r rope) mean(c, s []float32, from int64, n int) {
	if len(r.invFreq) == 0 {
		for i := range c {
			c[i], s[i] = 1, 0
		}
		return
	}
	for i, f := range r.invFreq {
		var sc, ss float64
		for p := from; p < from+int64(n); p++ {
			a := float64(float32(p) * f)
			sc += math.Cos(a)
			ss += math.Sin(a)
		}
		c[i] = float32(sc/float64(n)) * r.factor
		s[i] = float32(ss/float64(n)) * r.factor
	}
}

// applyMean sets dst [hd] to x under the mean rotation c, s [hd/2] (see
// mean).
func applyMean(dst, x, c, s []float32) {
	h := len(c)
	for i := range c {
		x1, x2 := x[i], x[i+h]
		dst[i] = x1*c[i] - x2*s[i]
		dst[i+h] = x2*c[i] + x1*s[i]
	}
}

// SetRoPE gives the policies that model future queries (expected_attention)
// the model's RoPE: inverse frequencies [hd/2], scaling applied, and the
// factor on cos and sin. It implements model.RotaryCache; a session calls
// it before the first chunk.
func (c *Cache) SetRoPE(invFreq []float32, attnFactor float32) {
	r := rope{invFreq: append([]float32(nil), invFreq...), factor: attnFactor}
	for l := range c.layers {
		if p, ok := c.layers[l].p.(roped); ok {
			p.setRoPE(r)
		}
	}
}
