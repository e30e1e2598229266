package cpu

import (
	"math"
	"testing"

	"kvcascade/runtime/backend"
)

// flashCall is one MassFlashReference attention of one head (hd = 2, RoPE
// off, scale 1) whose logits are set by hand: query row i is q[i], view key j
// is viewK[j] (nil: a padding slot), chunk key i is chunkK[i].
func flashCall(t *testing.T, q, chunkK [][2]float32, viewK [][]float32, weights []float32) []float32 {
	t.Helper()
	b := New(1)
	s, l := len(q), len(viewK)
	flat := func(rows [][2]float32) []float32 {
		out := make([]float32, 0, 2*len(rows))
		for _, r := range rows {
			out = append(out, r[0], r[1])
		}
		return out
	}
	a := &backend.Attention{
		Out: b.New(backend.F32, s, 2), Q: Wrap(flat(q), s, 2),
		K: Wrap(flat(chunkK), s, 2), V: Wrap(make([]float32, 2*s), s, 2),
		HeadDim: 2, QHeads: 1, KVHeads: 1, Scale: 1,
		InvFreq: []float32{0}, AttnFactor: 1, Mass: make([]float32, l+s),
	}
	a.View.ViewLen = l
	if l > 0 {
		ck := make([]float32, 2*l)
		for j, k := range viewK {
			a.View.Slots = append(a.View.Slots, -1)
			a.View.Pos = append(a.View.Pos, int32(j))
			if k != nil {
				a.View.Slots[j] = int32(j)
				copy(ck[2*j:], k)
			}
		}
		a.View.K, a.View.V = Wrap(ck, 1, l, 2), Wrap(make([]float32, 2*l), 1, l, 2)
	}
	a.View.QueryPos = []int32{int32(l)}
	a.View.QueryWeights = weights
	a.View.MassMode = backend.MassFlashReference
	b.Attention(a)
	return a.Mass
}

// TestFlashMassRunningNormalisation works the official kernel's scan by
// hand: 64 view keys (two key blocks of 32) of which only 0 (logit ln 3) and
// 40 (logit 0) are not padding, then 2 chunk keys (logit 0), padded to 128
// keys, nb = 4 blocks. Query row 0 credits each key exp(s − m)/(l·(1 +
// (nb−b−1)/(b+1))) with the running max m and denominator l after block b:
// view 0: 1/(1·4) = 1/4; view 40: (1/3)/((4/3)·2) = 1/8; chunk 0:
// (1/3)/((5/3)·4/3) = 3/20 — where the softmax gives 3/5, 1/5 and 1/5. A
// padded query row (5) has logit 0 for every key it sees: view 0 (1/(1·4)),
// view 40 (1/(2·2)) and the chunk and padding keys 0…5 of block 2, each
// 1/(8·4/3) = 3/32.
func TestFlashMassRunningNormalisation(t *testing.T) {
	view := make([][]float32, 64)
	view[0] = []float32{float32(math.Log(3)), 0}
	view[40] = []float32{0, 0}
	q := [][2]float32{{1, 0}, {1, 0}}
	chunk := [][2]float32{{0, 0}, {0, 0}}
	for _, tt := range []struct {
		name   string
		row    int
		want   map[int]float64 // key of [view ; chunk] → mass
		others float64
	}{
		{"query row 0", 0, map[int]float64{0: 0.25, 40: 0.125, 64: 0.15, 65: 0}, 0},
		{"padded query row 5", 5, map[int]float64{0: 0.25, 40: 0.25, 64: 3.0 / 32, 65: 3.0 / 32}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := make([]float32, 64)
			w[tt.row] = 1
			mass := flashCall(t, q, chunk, view, w)
			for j, m := range mass {
				want, ok := tt.want[j]
				if !ok {
					want = tt.others
				}
				// float32 arithmetic and the kernel's 1e−6 stay far inside
				// a float16 step, so the rounded value is exact
				if m != backend.RoundF16(float32(want)) {
					t.Errorf("mass[%d] = %v, want float16(%v) = %v", j, m, want, backend.RoundF16(float32(want)))
				}
			}
		})
	}
}

// TestFlashMassFloat16Accumulation checks that each query block's credits
// are rounded to float16 and added to a float16 sum: 65 queries (two query
// blocks) over 65 chunk keys with logit 0 (zero keys), so 128 keys, nb = 4.
// Row 0 (weight 1 + 2⁻¹¹) credits key 0 just under 1/4 + 2⁻¹³, float16
// 1/4; row 64 (weight 2⁻⁶, the second block) credits key 0
// 2⁻⁶/(32·4) = 2⁻¹³, half a float16 step at 1/4: 1/4 + 2⁻¹³ rounds to
// even, 1/4. Summed before rounding the two would give 1/4 + 2⁻¹².
func TestFlashMassFloat16Accumulation(t *testing.T) {
	q := make([][2]float32, 65)
	chunk := make([][2]float32, 65)
	w := make([]float32, 128)
	w[0], w[64] = 1+1.0/2048, 1.0/64
	mass := flashCall(t, q, chunk, nil, w)
	if mass[0] != 0.25 {
		t.Errorf("mass[0] = %v, want 0.25 (float16 sums of float16 block sums); the unrounded sum is %v", mass[0], 0.25+1.0/4096)
	}
	// key 64: row 64 only, block 2 of 4: 2⁻⁶/(65·(1 + 1/3))
	if want := backend.RoundF16(float32(1.0 / 64 * 3 / 260)); mass[64] != want {
		t.Errorf("mass[64] = %v, want %v", mass[64], want)
	}
}

// TestFlashMassRefusesMisalignedView: a view length that is not a multiple
// of 64 would misplace the kernel's causal mask; the CPU refuses it.
func TestFlashMassRefusesMisalignedView(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a view of 3 keys")
		}
	}()
	flashCall(t, [][2]float32{{1, 0}, {1, 0}}, [][2]float32{{0, 0}, {0, 0}}, make([][]float32, 3), make([]float32, 64))
}
