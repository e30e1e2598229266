package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"kvcascade/runtime/backend"
)

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// naiveAttention is the textbook definition, in float64, used to check
// Backend.Attention: RoPE by position, softmax over view ∪ causal chunk.
func naiveAttention(a *backend.Attention, q, k, v, ck, cv []float32, capacity int) (out, mass []float64) {
	hd, hq, hkv := a.HeadDim, a.QHeads, a.KVHeads
	group, l := hq/hkv, a.View.ViewLen
	s := len(q) / (hq * hd)
	n := l + s
	rot := func(x []float32, pos int) []float64 {
		half := hd / 2
		r := make([]float64, hd)
		for i := 0; i < half; i++ {
			ang := float64(float32(pos) * a.InvFreq[i])
			c, sn := math.Cos(ang), math.Sin(ang)
			r[i] = float64(x[i])*c - float64(x[i+half])*sn
			r[i+half] = float64(x[i+half])*c + float64(x[i])*sn
		}
		return r
	}
	out = make([]float64, s*hq*hd)
	mass = make([]float64, hq*n)
	for qh := 0; qh < hq; qh++ {
		h := qh / group
		qp := int(a.View.QueryPos[h])
		for i := 0; i < s; i++ {
			qr := rot(q[(i*hq+qh)*hd:(i*hq+qh+1)*hd], qp+i)
			var keys, vals [][]float64
			var idx []int
			for j := 0; j < l; j++ {
				slot := a.View.Slots[h*l+j]
				if slot < 0 {
					continue
				}
				off := (h*capacity + int(slot)) * hd
				keys = append(keys, rot(ck[off:off+hd], int(a.View.Pos[h*l+j])))
				vv := make([]float64, hd)
				for d := range vv {
					vv[d] = float64(cv[off+d])
				}
				vals = append(vals, vv)
				idx = append(idx, j)
			}
			for j := 0; j <= i; j++ {
				keys = append(keys, rot(k[(j*hkv+h)*hd:(j*hkv+h+1)*hd], qp+j))
				vv := make([]float64, hd)
				for d := range vv {
					vv[d] = float64(v[(j*hkv+h)*hd+d])
				}
				vals = append(vals, vv)
				idx = append(idx, l+j)
			}
			sc := make([]float64, len(keys))
			m := math.Inf(-1)
			for j, kr := range keys {
				for d := range kr {
					sc[j] += qr[d] * kr[d]
				}
				sc[j] *= float64(a.Scale)
				m = math.Max(m, sc[j])
			}
			var sum float64
			for j := range sc {
				sc[j] = math.Exp(sc[j] - m)
				sum += sc[j]
			}
			for j := range sc {
				p := sc[j] / sum
				for d := 0; d < hd; d++ {
					out[(i*hq+qh)*hd+d] += p * vals[j][d]
				}
				if a.View.QueryWeights != nil {
					mass[qh*n+idx[j]] += float64(a.View.QueryWeights[i]) * p
				}
			}
		}
	}
	return out, mass
}

func TestAttentionMatchesNaive(t *testing.T) {
	cases := []struct {
		name                   string
		hq, hkv, hd, s, l, cap int
		pad                    bool
	}{
		{"empty cache", 4, 2, 8, 5, 0, 0, false},
		{"gqa with view", 4, 2, 8, 3, 6, 10, false},
		{"mha decode", 2, 2, 16, 1, 9, 12, false},
		{"padding slots", 6, 3, 8, 4, 5, 8, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			b := New(2)
			q := randSlice(rng, c.s*c.hq*c.hd)
			k := randSlice(rng, c.s*c.hkv*c.hd)
			v := randSlice(rng, c.s*c.hkv*c.hd)
			inv := make([]float32, c.hd/2)
			for i := range inv {
				inv[i] = float32(1 / math.Pow(10000, float64(2*i)/float64(c.hd)))
			}
			a := &backend.Attention{
				Out: b.New(backend.F32, c.s, c.hq*c.hd), Q: Wrap(q, c.s, c.hq*c.hd),
				K: Wrap(k, c.s, c.hkv*c.hd), V: Wrap(v, c.s, c.hkv*c.hd),
				HeadDim: c.hd, QHeads: c.hq, KVHeads: c.hkv, Scale: float32(1 / math.Sqrt(float64(c.hd))),
				InvFreq: inv, AttnFactor: 1, Mass: make([]float32, c.hq*(c.l+c.s)),
			}
			var ck, cv []float32
			if c.cap > 0 {
				ck, cv = randSlice(rng, c.hkv*c.cap*c.hd), randSlice(rng, c.hkv*c.cap*c.hd)
				a.View.K, a.View.V = Wrap(ck, c.hkv, c.cap, c.hd), Wrap(cv, c.hkv, c.cap, c.hd)
			}
			a.View.ViewLen = c.l
			for h := 0; h < c.hkv; h++ {
				perm := rng.Perm(c.cap)
				for j := 0; j < c.l; j++ {
					slot := int32(perm[j])
					if c.pad && j%3 == 1 {
						slot = -1
					}
					a.View.Slots = append(a.View.Slots, slot)
					a.View.Pos = append(a.View.Pos, int32(3*j+h))
				}
				a.View.QueryPos = append(a.View.QueryPos, int32(3*c.l+h))
			}
			for i := 0; i < c.s; i++ {
				a.View.QueryWeights = append(a.View.QueryWeights, float32(i+1)/float32(c.s))
			}
			b.Attention(a)
			wantOut, wantMass := naiveAttention(a, q, k, v, ck, cv, c.cap)
			got := a.Out.(*Tensor).data
			for i := range got {
				if math.Abs(float64(got[i])-wantOut[i]) > 1e-4 {
					t.Fatalf("out[%d] = %v, want %v", i, got[i], wantOut[i])
				}
			}
			for i := range a.Mass {
				if math.Abs(float64(a.Mass[i])-wantMass[i]) > 1e-5 {
					t.Fatalf("mass[%d] = %v, want %v", i, a.Mass[i], wantMass[i])
				}
			}
		})
	}
}

func TestMatMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	b := New(2)
	for _, s := range []int{1, 3, 17} {
		n, k := 13, 29
		x, w, bias := randSlice(rng, s*k), randSlice(rng, n*k), randSlice(rng, n)
		dst := b.New(backend.F32, s, n)
		b.MatMul(dst, Wrap(x, s, k), Wrap(w, n, k), Wrap(bias, n))
		for r := 0; r < s; r++ {
			for j := 0; j < n; j++ {
				want := float64(bias[j])
				for i := 0; i < k; i++ {
					want += float64(x[r*k+i]) * float64(w[j*k+i])
				}
				if got := dst.(*Tensor).data[r*n+j]; math.Abs(float64(got)-want) > 1e-4 {
					t.Fatalf("s=%d [%d,%d] = %v, want %v", s, r, j, got, want)
				}
			}
		}
	}
}

func TestScatterLastWins(t *testing.T) {
	b := New(1)
	dst := b.New(backend.F32, 2, 3, 1)
	src := Wrap([]float32{1, 10, 2, 20}, 2, 2) // [S=2, Hkv·hd=2]
	b.Scatter(dst, src, []int32{0, 0, -1, 2})  // head 0: both rows to slot 0; head 1: row 1 to slot 2
	want := []float32{2, 0, 0, 0, 0, 20}
	for i, v := range dst.(*Tensor).data {
		if v != want[i] {
			t.Fatalf("storage %v, want %v", dst.(*Tensor).data, want)
		}
	}
}

// BenchmarkMatMul measures GFLOP/s of the prefill and decode products of a
// ~100M-parameter Llama layer (hidden 768, MLP 2048).
func BenchmarkMatMul(bm *testing.B) {
	for _, s := range []int{1, 128, 512} {
		bm.Run(fmt.Sprintf("S=%d", s), func(bm *testing.B) {
			rng := rand.New(rand.NewPCG(5, 6))
			b := New(0)
			n, k := 2048, 768
			x, w := Wrap(randSlice(rng, s*k), s, k), Wrap(randSlice(rng, n*k), n, k)
			dst := b.New(backend.F32, s, n)
			bm.ResetTimer()
			for i := 0; i < bm.N; i++ {
				b.MatMul(dst, x, w, nil)
			}
			flops := 2 * float64(s*n*k) * float64(bm.N)
			bm.ReportMetric(flops/bm.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
