package policies

import (
	"math"
	"slices"
	"testing"
)

// TestRoPEMean: the mean rotation over one position is the rotation to it,
// and over several the mean of the rotated vectors.
func TestRoPEMean(t *testing.T) {
	r := testRoPE(8)
	x := []float32{1, -2, 3, 0.5, -1, 2, 0.25, 4}
	c, s := make([]float32, 4), make([]float32, 4)
	got, want := make([]float32, 8), make([]float32, 8)
	for _, n := range []int{1, 5} {
		r.mean(c, s, 37, n)
		applyMean(got, x, c, s)
		clear(want)
		one := make([]float32, 8)
		for p := int64(37); p < 37+int64(n); p++ {
			r.rotate(one, x, p)
			for d := range want {
				want[d] += one[d] / float32(n)
			}
		}
		for d := range got {
			if math.Abs(float64(got[d]-want[d])) > 1e-5 {
				t.Fatalf("n = %d: mean rotation gives %v, mean of rotations %v", n, got, want)
			}
		}
	}
}

// TestExpectedScore checks the score against the formula written out
// densely, without RoPE: logit μ·k/√d + ½·kᵀΣk/d, softmax over the held
// keys, averaged over the group, times the value norm.
func TestExpectedScore(t *testing.T) {
	s := Shape{Layers: 1, QHeads: 2, KVHeads: 1, HeadDim: 4}
	l := newLayer(t, "expected_attention", map[string]any{"budget": 5, "queries": 3, "future": 1}, s)
	p := l.(*expected)
	q := []float32{ // three queries of two heads
		1, 0, 2, -1, 0.5, 0.5, 0, 1,
		0, 1, 1, 0, -0.5, 1, 0, 2,
		2, 1, 0, 0, 0, -1, 1, 1,
	}
	p.observeQueries(q)
	keys := []float32{1, 2, 0, -1, 0, 1, 1, 1, -1, 0, 2, 0, 0.5, 0.5, -0.5, 1, 2, 0, 0, 1, 1, 1, 1, 1}
	vals := []float32{1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0, 1, 1, 1, 1, 0, 0, 0, 0.5, 2, 0, 0, 0}
	for j := range 6 {
		p.lists[0].add(int64(j), -1, 0)
		p.held[0] = append(p.held[0], keys[j*4:(j+1)*4]...)
		v := vals[j*4 : (j+1)*4]
		p.vn[0] = append(p.vn[0], float32(math.Sqrt(float64(dot(v, v)))))
	}
	p.score(0)
	want := make([]float64, 6)
	for qh := range 2 {
		var mu [4]float64
		for i := range 3 {
			for d := range 4 {
				mu[d] += float64(q[i*8+qh*4+d]) / 3
			}
		}
		var cov [4][4]float64
		for i := range 3 {
			for a := range 4 {
				for b := range 4 {
					cov[a][b] += (float64(q[i*8+qh*4+a]) - mu[a]) * (float64(q[i*8+qh*4+b]) - mu[b]) / 3
				}
			}
		}
		logit := make([]float64, 6)
		var sum float64
		for j := range 6 {
			k := keys[j*4 : (j+1)*4]
			var m, c float64
			for a := range 4 {
				m += mu[a] * float64(k[a])
				for b := range 4 {
					c += float64(k[a]) * cov[a][b] * float64(k[b])
				}
			}
			logit[j] = math.Exp(m/2 + c/8)
			sum += logit[j]
		}
		for j := range 6 {
			want[j] += logit[j] / sum / 2
		}
	}
	for j := range 6 {
		want[j] *= float64(p.vn[0][j])
		if got := p.lists[0].score[j]; math.Abs(float64(got)-want[j]) > 1e-5 {
			t.Errorf("token %d: score %v, want %v", j, got, want[j])
		}
	}
}

// TestExpectedKeepsWhatQueriesLookFor: recent queries that all point one
// way keep the keys that point that way, whatever their age.
func TestExpectedKeepsWhatQueriesLookFor(t *testing.T) {
	s := Shape{Layers: 1, QHeads: 2, KVHeads: 1, HeadDim: 4}
	h := newHarness(t, "expected_attention", map[string]any{"budget": 8, "vnorm": false, "queries": 4, "future": 1, "covariance": false}, s)
	p := h.p.(*expected)
	p.setRoPE(rope{}) // no rotation: the direction alone decides
	for h.seen < 200 {
		n := 5
		step := Step{Start: h.seen, N: n, PromptEnd: -1}
		p.Reserve(n)
		p.Plan(step, &h.ctx)
		qs := make([]float32, n*8)
		for i := range n {
			copy(qs[i*8:], []float32{4, 0, 0, 0, 4, 0, 0, 0})
		}
		p.observeQueries(qs)
		ks := make([]float32, n*4)
		for i := range n {
			t := step.Start + int64(i)
			ks[i*4+1] = 1 // most keys point elsewhere
			if t%50 == 7 {
				ks[i*4] = 3 // these point where the queries look
			}
		}
		p.observeKeys(ks)
		place := make([]int32, n)
		p.Commit(nil, place)
		h.seen += int64(n)
	}
	if got := p.Held(0, nil); !slices.Contains(got, 7) || !slices.Contains(got, 57) || !slices.Contains(got, 157) {
		t.Errorf("held %v, want 7, 57 and 157 among them", got)
	}
}

// TestNewPoliciesTakeRatio: adakv and expected_attention resolve a ratio
// per prompt like every bounded policy.
func TestNewPoliciesTakeRatio(t *testing.T) {
	for _, name := range []string{"adakv", "ada_snapkv", "expected_attention"} {
		f, err := New(name, map[string]any{"ratio": 0.25})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		g, err := f.(RatioFactory).ForPrompt(1000)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p, err := g.NewLayer(0, gqa)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var b int
		switch x := p.(type) {
		case *adakv:
			b = x.c.budget
		case *expected:
			b = x.c.budget
		}
		if b != 250 {
			t.Errorf("%s: ratio 0.25 of 1000 tokens gives budget %d, want 250", name, b)
		}
	}
}
