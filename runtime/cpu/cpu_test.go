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
// Backend.Attention: RoPE by position, softmax over view ∪ causal chunk,
// a view row per query head when View.PerQueryHead, and the mass of
// View.MassMode MassExact or MassGroupMax.
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
	probs := make([][]float64, hq*s) // [Hq·S][L+S]
	for qh := 0; qh < hq; qh++ {
		h := qh / group // KV head
		vh := h         // view row
		if a.View.PerQueryHead {
			vh = qh
		}
		qp := int(a.View.QueryPos[vh])
		for i := 0; i < s; i++ {
			qr := rot(q[(i*hq+qh)*hd:(i*hq+qh+1)*hd], qp+i)
			var keys, vals [][]float64
			var idx []int
			for j := 0; j < l; j++ {
				slot := a.View.Slots[vh*l+j]
				if slot < 0 {
					continue
				}
				off := (h*capacity + int(slot)) * hd
				keys = append(keys, rot(ck[off:off+hd], int(a.View.Pos[vh*l+j])))
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
			probs[qh*s+i] = make([]float64, n)
			for j := range sc {
				p := sc[j] / sum
				probs[qh*s+i][idx[j]] = p
				for d := 0; d < hd; d++ {
					out[(i*hq+qh)*hd+d] += p * vals[j][d]
				}
				if a.View.QueryWeights != nil && a.View.MassMode == backend.MassExact {
					mass[qh*n+idx[j]] += float64(a.View.QueryWeights[i]) * p
				}
			}
		}
	}
	if a.View.QueryWeights != nil && a.View.MassMode == backend.MassGroupMax {
		for qh := 0; qh < hq; qh++ {
			g0 := qh / group * group
			for i := 0; i < s; i++ {
				for j := 0; j < n; j++ {
					var m float64
					for g := g0; g < g0+group; g++ {
						m = math.Max(m, probs[g*s+i][j])
					}
					mass[qh*n+j] += float64(a.View.QueryWeights[i]) * m
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
		perQuery, groupMax     bool
	}{
		{"empty cache", 4, 2, 8, 5, 0, 0, false, false, false},
		{"gqa with view", 4, 2, 8, 3, 6, 10, false, false, false},
		{"mha decode", 2, 2, 16, 1, 9, 12, false, false, false},
		{"padding slots", 6, 3, 8, 4, 5, 8, true, false, false},
		{"tiny shape chunk", 8, 2, 32, 7, 40, 50, true, false, false},
		{"tiny shape decode", 8, 2, 32, 1, 70, 80, false, false, false},
		{"two queries with padding", 4, 2, 32, 2, 33, 40, true, false, false},
		{"head dim 64 across 32 keys", 4, 1, 64, 5, 31, 40, true, false, false},
		{"head dim 24", 2, 1, 24, 4, 9, 12, false, false, false},
		{"group max", 6, 2, 8, 4, 5, 8, true, false, true},
		{"group max decode", 8, 2, 32, 1, 40, 50, false, false, true},
		{"group max mha", 2, 2, 16, 3, 9, 12, false, false, true},
		{"per query head", 6, 2, 8, 4, 5, 8, true, true, false},
		{"per query head decode", 8, 2, 32, 1, 40, 50, false, true, false},
		{"per query head, group max", 4, 1, 16, 5, 9, 12, true, true, true},
	}
	for _, c := range cases {
		for _, simd := range kernelPaths() {
			t.Run(fmt.Sprintf("%s/simd=%v", c.name, simd), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(1, 2))
				b := New(2)
				b.kern.simd = simd
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
				a.View.PerQueryHead = c.perQuery
				if c.groupMax {
					a.View.MassMode = backend.MassGroupMax
				}
				rows := c.hkv
				if c.perQuery {
					rows = c.hq
				}
				for h := 0; h < rows; h++ {
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
}

// kernelPaths lists the kernel implementations this machine can run: plain
// Go always, the assembly where the CPU has AVX2 and FMA.
func kernelPaths() []bool {
	if hasAVX2FMA() {
		return []bool{false, true}
	}
	return []bool{false}
}

func TestMatMul(t *testing.T) {
	shapes := []struct{ s, n, k int }{
		{1, 13, 29}, {3, 13, 29}, {17, 13, 29}, // k below and off a multiple of 8
		{1, 64, 256}, {2, 7, 256}, {4, 5, 40}, {50, 33, 37}, {100, 9, 688},
		{1, 3, 16}, {5, 1, 8}, {2, 6, 3},
	}
	for _, simd := range kernelPaths() {
		for _, sh := range shapes {
			rng := rand.New(rand.NewPCG(3, 4))
			b := New(2)
			b.kern.simd = simd
			s, n, k := sh.s, sh.n, sh.k
			x, w, bias := randSlice(rng, s*k), randSlice(rng, n*k), randSlice(rng, n)
			dst := b.New(backend.F32, s, n)
			b.MatMul(dst, Wrap(x, s, k), Wrap(w, n, k), Wrap(bias, n))
			for r := 0; r < s; r++ {
				for j := 0; j < n; j++ {
					want := float64(bias[j])
					for i := 0; i < k; i++ {
						want += float64(x[r*k+i]) * float64(w[j*k+i])
					}
					if got := dst.(*Tensor).data[r*n+j]; math.Abs(float64(got)-want) > 1e-4*math.Sqrt(float64(k)) {
						t.Fatalf("simd=%v s=%d n=%d k=%d: [%d,%d] = %v, want %v", simd, s, n, k, r, j, got, want)
					}
				}
			}
		}
	}
}

func TestExpf(t *testing.T) {
	worst := 0.0
	for x := float32(-90); x <= 0; x += 0.001 {
		got, want := float64(expf(x)), math.Exp(float64(x))
		if x < -87 {
			if got != 0 {
				t.Fatalf("expf(%v) = %v, want 0 below -87", x, got)
			}
			continue
		}
		worst = max(worst, math.Abs(got-want)/want)
	}
	if worst > 3e-7 {
		t.Errorf("expf: worst relative error %.3g, want ≤ 3e-7 (2 ulp)", worst)
	}
	if expf(0) != 1 {
		t.Errorf("expf(0) = %v, want 1", expf(0))
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
// ~100M-parameter Llama layer (hidden 768, MLP 2048), with the assembly
// kernels (simd=true, where the CPU has them) and in plain Go.
func BenchmarkMatMul(bm *testing.B) {
	for _, simd := range kernelPaths() {
		for _, s := range []int{1, 128, 512} {
			bm.Run(fmt.Sprintf("simd=%v/S=%d", simd, s), func(bm *testing.B) {
				rng := rand.New(rand.NewPCG(5, 6))
				b := New(0)
				b.kern.simd = simd
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
}

// BenchmarkAttention measures one layer's attention at the tiny model's
// shape (8 query heads over 2 KV heads of 32): a 256-token chunk over a
// 260-slot view (a bounded policy) and over 3,840 cached tokens (full
// attention at 4,096), and one decoded token over 4,096; GFLOP/s counts
// the two products' causal multiply-adds.
func BenchmarkAttention(bm *testing.B) {
	const hq, hkv, hd = 8, 2, 32
	for _, simd := range kernelPaths() {
		for _, sh := range []struct{ s, l int }{{256, 260}, {256, 3840}, {1, 4096}} {
			bm.Run(fmt.Sprintf("simd=%v/S=%d/L=%d", simd, sh.s, sh.l), func(bm *testing.B) {
				rng := rand.New(rand.NewPCG(7, 8))
				b := New(0)
				b.kern.simd = simd
				s, l := sh.s, sh.l
				inv := make([]float32, hd/2)
				for i := range inv {
					inv[i] = float32(1 / math.Pow(10000, float64(2*i)/float64(hd)))
				}
				a := &backend.Attention{
					Out: b.New(backend.F32, s, hq*hd), Q: Wrap(randSlice(rng, s*hq*hd), s, hq*hd),
					K: Wrap(randSlice(rng, s*hkv*hd), s, hkv*hd), V: Wrap(randSlice(rng, s*hkv*hd), s, hkv*hd),
					HeadDim: hd, QHeads: hq, KVHeads: hkv, Scale: float32(1 / math.Sqrt(hd)),
					InvFreq: inv, AttnFactor: 1, Mass: make([]float32, hq*(l+s)),
				}
				a.View.K, a.View.V = Wrap(randSlice(rng, hkv*l*hd), hkv, l, hd), Wrap(randSlice(rng, hkv*l*hd), hkv, l, hd)
				a.View.ViewLen = l
				for h := 0; h < hkv; h++ {
					for j := 0; j < l; j++ {
						a.View.Slots = append(a.View.Slots, int32(j))
						a.View.Pos = append(a.View.Pos, int32(j))
					}
					a.View.QueryPos = append(a.View.QueryPos, int32(l))
				}
				for i := 0; i < s; i++ {
					a.View.QueryWeights = append(a.View.QueryWeights, 1)
				}
				bm.ResetTimer()
				for i := 0; i < bm.N; i++ {
					b.Attention(a)
				}
				keys := float64(s*l + s*(s+1)/2) // causal query-key pairs
				flops := 2 * 2 * keys * hd * hq * float64(bm.N)
				bm.ReportMetric(flops/bm.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func TestExpRowAndMax(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, simd := range kernelPaths() {
		kn := kernels{simd: simd}
		for _, n := range []int{1, 7, 8, 9, 33, 517} {
			x := randSlice(rng, n)
			for i := range x {
				x[i] *= 40
			}
			x[n/2] = float32(math.Inf(-1))
			want := math.Inf(-1)
			for _, v := range x {
				want = max(want, float64(v))
			}
			m := kn.maxRow(x)
			if float64(m) != want {
				t.Fatalf("simd=%v n=%d: maxRow = %v, want %v", simd, n, m, want)
			}
			orig := append([]float32(nil), x...)
			sum := kn.expRow(x, m, 0.5)
			var wantSum float64
			for i, v := range orig {
				e := math.Exp(float64(0.5 * (v - m))) // the argument as float32 computes it
				wantSum += e
				if math.Abs(float64(x[i])-e) > 1e-6*e+1e-30 {
					t.Fatalf("simd=%v n=%d: exp[%d] = %v, want %v", simd, n, i, x[i], e)
				}
			}
			if math.Abs(float64(sum)-wantSum) > 1e-5*wantSum {
				t.Fatalf("simd=%v n=%d: sum = %v, want %v", simd, n, sum, wantSum)
			}
		}
	}
}

func TestSwiGLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, simd := range kernelPaths() {
		b := New(2)
		b.kern.simd = simd
		for _, n := range []int{1, 7, 8, 9, 100, 1000} {
			gate, up := randSlice(rng, n), randSlice(rng, n)
			for i := range gate {
				gate[i] *= 8
			}
			gate[0] = -100 // e^100 beyond float32: silu is −0
			if n > 1 {
				gate[1] = 100
			}
			dst := b.New(backend.F32, n)
			b.SwiGLU(dst, Wrap(gate, n), Wrap(up, n))
			for i, got := range dst.(*Tensor).data {
				x := float64(gate[i])
				want := x / (1 + math.Exp(-x)) * float64(up[i])
				if math.Abs(float64(got)-want) > 1e-6*math.Abs(want)+1e-30 {
					t.Fatalf("simd=%v n=%d: swiglu[%d] (gate %v) = %v, want %v", simd, n, i, gate[i], got, want)
				}
			}
		}
	}
}

// TestGroupMaxMassByHand works out MassGroupMax on two query heads of one
// KV head, head dim 2 and no rotation: a view key K = (1, 0) and two
// chunk keys of zeros. Query 0 sees K and chunk key 0, query 1 all three.
// Head A's queries give K the logits ln 3 and 0 (p = 3/4, then 1/3),
// head B's 0 and ln 4 (p = 1/2, then 2/3). Per query the larger, summed:
// K gets 3/4 + 2/3 = 17/12, where the larger of the heads' sums (13/12,
// 14/12) is 14/12; chunk key 0 gets max(1/4, 1/2) + max(1/3, 1/6) = 5/6
// and chunk key 1 max(1/3, 1/6) = 1/3. Both heads' rows hold the group's.
func TestGroupMaxMassByHand(t *testing.T) {
	b := New(2)
	ln3, ln4 := float32(math.Log(3)), float32(math.Log(4))
	q := []float32{ // [S=2, Hq=2 · hd=2]
		ln3, 0, 0, 0, // query 0: head A, head B
		0, 0, ln4, 0, // query 1
	}
	a := &backend.Attention{
		Out: b.New(backend.F32, 2, 4), Q: Wrap(q, 2, 4),
		K: Wrap(make([]float32, 4), 2, 2), V: Wrap(make([]float32, 4), 2, 2),
		HeadDim: 2, QHeads: 2, KVHeads: 1, Scale: 1, InvFreq: []float32{0}, AttnFactor: 1,
		Mass: make([]float32, 2*3),
	}
	a.View = backend.View{
		K: Wrap([]float32{1, 0}, 1, 1, 2), V: Wrap([]float32{0, 0}, 1, 1, 2),
		ViewLen: 1, Slots: []int32{0}, Pos: []int32{0}, QueryPos: []int32{1},
		QueryWeights: []float32{1, 1}, MassMode: backend.MassGroupMax,
	}
	b.Attention(a)
	want := []float64{17.0 / 12, 5.0 / 6, 1.0 / 3, 17.0 / 12, 5.0 / 6, 1.0 / 3}
	for i, w := range want {
		if math.Abs(float64(a.Mass[i])-w) > 1e-6 {
			t.Fatalf("mass %v, want %v", a.Mass, want)
		}
	}
}

func TestReshape(t *testing.T) {
	b := New(1)
	data := make([]float32, 24)
	for i := range data {
		data[i] = float32(i)
	}
	base := func() backend.Tensor { return b.FromFloat32(data, 4, 6) }
	cases := []struct {
		name  string
		view  func(x backend.Tensor) backend.Tensor
		shape []int
		first int // index into data of the view's first element
	}{
		{"whole to 3-D", func(x backend.Tensor) backend.Tensor { return b.Reshape(x, 2, 3, 4) }, []int{2, 3, 4}, 0},
		{"whole to 1-D", func(x backend.Tensor) backend.Tensor { return b.Reshape(x, 24) }, []int{24}, 0},
		{"reshape of a slice", func(x backend.Tensor) backend.Tensor { return b.Reshape(b.Slice(x, 1, 3), 1, 3, 4) }, []int{1, 3, 4}, 6},
		{"slice of a reshape", func(x backend.Tensor) backend.Tensor { return b.Slice(b.Reshape(x, 24), 5, 11) }, []int{6}, 5},
		{"slice of a reshape of a slice", func(x backend.Tensor) backend.Tensor {
			return b.Reshape(b.Slice(b.Reshape(b.Slice(x, 2, 4), 12), 3, 9), 1, 6)
		}, []int{1, 6}, 15},
		{"empty", func(x backend.Tensor) backend.Tensor { return b.Reshape(b.Slice(x, 2, 2), 0, 5) }, []int{0, 5}, 12},
	}
	for _, c := range cases {
		x := base()
		v := c.view(x)
		if sh := v.Shape(); fmt.Sprint(sh) != fmt.Sprint(c.shape) {
			t.Errorf("%s: shape %v, want %v", c.name, sh, c.shape)
			continue
		}
		n := backend.Numel(c.shape)
		got := make([]float32, n)
		b.Read(v, got)
		for i, g := range got {
			if g != data[c.first+i] {
				t.Fatalf("%s: element %d = %v, want %v", c.name, i, g, data[c.first+i])
			}
		}
		// Views share storage: a write through the view shows in the
		// tensor, and one through the tensor in the view.
		if n > 0 {
			tensor(v).data[n-1] = -1
			if w := tensor(x).data[c.first+n-1]; w != -1 {
				t.Errorf("%s: write through the view reads %v in the tensor", c.name, w)
			}
			tensor(x).data[c.first] = -2
			b.Read(v, got)
			if got[0] != -2 {
				t.Errorf("%s: write through the tensor reads %v in the view", c.name, got[0])
			}
		}
	}
	bad := []struct {
		name  string
		shape []int
	}{
		{"too few elements", []int{5, 4}},
		{"too many elements", []int{5, 5}},
		{"negative dimensions", []int{-4, -6}},
		{"no dimension", nil},
	}
	for _, c := range bad {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Reshape of [4 6] to %v did not panic", c.name, c.shape)
				}
			}()
			b.Reshape(base(), c.shape...)
		}()
	}
}

// TestCopyRows checks CopyRows' copies, skips and its panic on a
// destination row named twice in a head, and that it allocates nothing.
func TestCopyRows(t *testing.T) {
	b := New(1)
	vals := make([]float32, 16)
	for i := range vals {
		vals[i] = float32(i)
	}
	src := b.FromFloat32(vals, 2, 4, 2) // [hkv, rows, hd]
	dst := b.New(backend.F32, 2, 3, 2)
	dstRows, srcRows := []int32{2, 0, -1, 1, 2, 0}, []int32{3, 1, 2, 0, -1, 2}
	b.CopyRows(dst, src, dstRows, srcRows)
	got := make([]float32, 12)
	b.Read(dst, got)
	want := []float32{2, 3, 0, 0, 6, 7 /* head 1 */, 12, 13, 8, 9, 0, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("after CopyRows: %v, want %v", got, want)
		}
	}
	if n := testing.AllocsPerRun(10, func() { b.CopyRows(dst, src, dstRows, srcRows) }); n != 0 {
		t.Errorf("CopyRows allocates %v times a call, want 0", n)
	}
	defer func() {
		if recover() == nil {
			t.Error("CopyRows naming row 1 of head 0 twice did not panic")
		}
	}()
	b.CopyRows(dst, src, []int32{1, 1, 0, 2}, []int32{0, 1, 0, 1})
}
