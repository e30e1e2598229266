package policies

import (
	"math"
	"slices"
	"strings"
	"testing"

	"kvcascade/runtime/backend"
)

// planOnly plans a chunk of n tokens and returns the view.
func planOnly(p Policy, start int64, n int) *backend.View {
	var v backend.View
	p.Plan(Step{Start: start, N: n, PromptEnd: -1}, &v)
	return &v
}

// TestReferenceRefusesMisalignedCache: the official kernel needs sinks +
// size to be a multiple of 64, and the error says why.
func TestReferenceRefusesMisalignedCache(t *testing.T) {
	_, err := New("cascade", map[string]any{"sinks": 4, "size": 256, "cascades": 4, "scoring": "reference"})
	if err == nil || !strings.Contains(err.Error(), "scoring") || !strings.Contains(err.Error(), "multiple of 64") {
		t.Errorf("sinks + size = 260: err = %v", err)
	}
	if _, err := New("cascade", map[string]any{"sinks": 4, "size": 252, "cascades": 4, "scoring": "reference"}); err != nil {
		t.Errorf("sinks + size = 256: %v", err)
	}
}

// noRefBackend is a backend whose attention does not compute
// MassFlashReference, as the CUDA one.
type noRefBackend struct{ backend.Backend }

func (noRefBackend) Name() string { return "cuda" }

// TestReferenceRefusedWithoutReferenceMass: a cache with reference scoring
// on a backend that cannot compute its mass is refused when it is made.
func TestReferenceRefusedWithoutReferenceMass(t *testing.T) {
	f, err := New("cascade", map[string]any{"sinks": 4, "size": 60, "cascades": 2, "scoring": "reference"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewCache(noRefBackend{}, f, one, backend.F32)
	if err == nil || !strings.Contains(err.Error(), "cpu backend only") || !strings.Contains(err.Error(), "cuda") {
		t.Errorf("err = %v", err)
	}
}

// TestFlashQueryWeights: the kernel weighs query q by (1−β)·β^(63 − q mod
// 64) over the chunk padded to a multiple of 64, and single-token chunks
// (the official eager path) keep the exact weights.
func TestFlashQueryWeights(t *testing.T) {
	p := newCascadeLayer(t, map[string]any{"sinks": 4, "size": 60, "cascades": 2, "scoring": "reference"}, one)
	v := planOnly(p, 0, 100)
	if v.MassMode != backend.MassFlashReference || len(v.QueryWeights) != 128 {
		t.Fatalf("mass mode %v, %d weights; want flash reference, 128", v.MassMode, len(v.QueryWeights))
	}
	const beta = 0.9999
	for q, w := range v.QueryWeights {
		want := (1 - beta) * math.Pow(beta, float64(63-q%64))
		if math.Abs(float64(w)-want) > 3e-6*want { // float32 exp2(k·log2 β), as the kernel
			t.Errorf("weight %d = %v, want %v", q, w, want)
		}
	}
	if v.QueryWeights[64] != v.QueryWeights[0] || v.QueryWeights[63] != float32(1-beta) {
		t.Errorf("weights not 64-periodic: w0 %v w64 %v w63 %v", v.QueryWeights[0], v.QueryWeights[64], v.QueryWeights[63])
	}
	p.Commit(nil, make([]int32, 100))
	if v := planOnly(p, 100, 1); v.MassMode != backend.MassExact || len(v.QueryWeights) != 1 || v.QueryWeights[0] != float32(1-beta) {
		t.Errorf("decoding: mass mode %v, weights %v", v.MassMode, v.QueryWeights)
	}
}

// TestFlashLayoutAndSlotOffset follows one chunk by hand with sinks = 4 and
// two cascades of 30 entries (4 + 60 = 64). The first chunk of 64 tokens
// fills the sinks and the cascades; the second chunk's view is laid out as
// the kernel's keys: sinks, then the 60 storage entries (cascade i's entry
// e at 4 + 30·i + e), each key at the position it has in the
// attention-order view. Its mass credits storage entry k with key k of
// that layout: entries 0…3 with the sinks' mass, entry 4 with entry 0's, …,
// and the mass of entries 56…59 is lost.
func TestFlashLayoutAndSlotOffset(t *testing.T) {
	params := map[string]any{"sinks": 4, "size": 60, "cascades": 2, "scoring": "reference"}
	ref := newCascadeLayer(t, params, one)
	ex := newCascadeLayer(t, map[string]any{"sinks": 4, "size": 60, "cascades": 2}, one)
	for _, p := range []Policy{ref, ex} {
		v := planOnly(p, 0, 64)
		p.Commit(make([]float32, v.ViewLen+64), make([]int32, 64))
	}
	vr, ve := planOnly(ref, 64, 2), planOnly(ex, 64, 2)
	if vr.ViewLen != 64 || ve.ViewLen != 64 {
		t.Fatalf("view lengths %d (reference), %d (exact), want 64", vr.ViewLen, ve.ViewLen)
	}
	posOf := map[int32]int32{} // slot → position in the attention-order view
	for j, s := range ve.Slots {
		posOf[s] = ve.Pos[j]
	}
	for j := 0; j < 64; j++ {
		s := vr.Slots[j]
		if want, ok := posOf[s]; !ok || vr.Pos[j] != want {
			t.Errorf("reference key %d: slot %d at %d, want the exact view's position %d", j, s, vr.Pos[j], want)
		}
		if j >= 4 {
			e := j - 4
			if got := ref.slot[e]; got != s {
				t.Errorf("reference key %d is slot %d, want storage entry %d's slot %d", j, s, e, got)
			}
		}
	}
	if vr.QueryPos[0] != ve.QueryPos[0] {
		t.Errorf("query position %d, want %d", vr.QueryPos[0], ve.QueryPos[0])
	}
	// mass: key j of the layout gets 1 + j (float16-exact), the chunk 0;
	// every score is 0 before (the first chunk's mass was 0)
	mass := make([]float32, 66)
	for j := 0; j < 64; j++ {
		mass[j] = float32(1 + j)
	}
	ref.Commit(mass, make([]int32, 2))
	// Token 64 (eager) rotates both cascades: cascade 0's entry 0 takes 64
	// and its token moves to cascade 1's entry 30, whose token is dropped.
	// Token 65 takes cascade 0's entry 1; that entry's token, not accepted
	// by cascade 1, competes with entry 30's and wins (2 ≥ 1). Every other
	// entry k keeps its token, aged with key k's mass, 1 + k — its own
	// would have been key 4 + k's.
	for k := 0; k < 60; k++ {
		want := float32(1 + k)
		switch k {
		case 0, 1:
			want = 0 // tokens 64 and 65, scored by the chunk's mass
		case 30:
			want = 2 // entry 1's token, credited with sink 1's mass
		}
		if ref.score[k] != want {
			t.Errorf("entry %d: score %v, want %v", k, ref.score[k], want)
		}
	}
}

// TestFloat16TiesGoToTheCarriedToken: with sinks = 0 (no slot offset) and
// two cascades of 32, the first chunk of 64 tokens gives every token score
// 1/2, so cascade 0 holds 32…63 and cascade 1 0…31. In the second chunk
// (64, 65) token 32's key gets an extra 1e−6 of mass. Token 64 moves 32 to
// cascade 1's newest entry; token 65 moves 33 on, which cascade 1 does not
// accept, so 33 competes with 32. Exactly, 32's β²/2 + 1e−6 beats 33's
// β²/2 and 33 is dropped; in float16 both are 1/2 (the increment and the
// decay vanish) and the tie goes to the carried token, 33.
func TestFloat16TiesGoToTheCarriedToken(t *testing.T) {
	for _, tt := range []struct {
		scoring       string
		kept, dropped int64
	}{
		{"exact", 32, 33},
		{"reference", 33, 32},
	} {
		t.Run(tt.scoring, func(t *testing.T) {
			p := newCascadeLayer(t, map[string]any{"sinks": 0, "size": 64, "cascades": 2, "scoring": tt.scoring}, one)
			v := planOnly(p, 0, 64)
			mass := make([]float32, v.ViewLen+64)
			for i := range 64 {
				mass[v.ViewLen+i] = 0.5
			}
			place := make([]int32, 64)
			p.Commit(mass, place)
			v = planOnly(p, 64, 2)
			mass = make([]float32, v.ViewLen+2)
			mass[v.ViewLen], mass[v.ViewLen+1] = 0.5, 0.5
			found := false
			for j, s := range v.Slots {
				if s == place[32] {
					mass[j], found = 1e-6, true
				}
			}
			if !found {
				t.Fatal("token 32 not in the view")
			}
			p.Commit(mass, make([]int32, 2))
			held := p.Held(0, nil)
			if !slices.Contains(held, tt.kept) || slices.Contains(held, tt.dropped) {
				t.Errorf("held %v: want %d kept and %d dropped", held, tt.kept, tt.dropped)
			}
		})
	}
}
