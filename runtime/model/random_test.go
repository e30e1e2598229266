package model_test

import (
	"context"
	"math"
	"slices"
	"testing"

	"kvcascade/policies"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
)

// randomLogits builds a seeded random model of the llama fixture's shape
// and returns its logits after a short prompt and one decoded token.
func randomLogits(t *testing.T, seed uint64) []float32 {
	t.Helper()
	cfg, err := model.LoadConfig("testdata/llama/config.json")
	if err != nil {
		t.Fatal(err)
	}
	b := cpu.New(1)
	m, err := model.NewRandom(cfg, b, seed)
	if err != nil {
		t.Fatal(err)
	}
	f, err := policies.New("full", nil)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := policies.NewCache(b, f, policies.Shape{Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim}, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Free()
	s := m.NewSession(cache, 4)
	defer s.Close()
	logits, err := s.Prefill(context.Background(), []int32{1, 5, 9, 2, 7, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if logits, err = s.Decode(model.Argmax(logits)); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(logits)
}

func TestNewRandomReproducible(t *testing.T) {
	a, b := randomLogits(t, 1), randomLogits(t, 1)
	if !slices.Equal(a, b) {
		t.Errorf("seed 1 gave different logits on two builds")
	}
	for i, v := range a {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("logit %d is %v", i, v)
		}
	}
	if c := randomLogits(t, 2); slices.Equal(a, c) {
		t.Errorf("seeds 1 and 2 gave the same logits")
	}
}

// TestFillNormal checks that the parallel fill draws the same numbers as a
// short (single-goroutine) one, that keys give different streams, and the
// moments of the result.
func TestFillNormal(t *testing.T) {
	const n = 1 << 20
	big := make([]float32, n)
	model.FillNormal(big, 42, 0, 1)
	small := make([]float32, 1000)
	model.FillNormal(small, 42, 0, 1)
	if !slices.Equal(big[:len(small)], small) {
		t.Fatal("a long fill and a short one differ in their first elements")
	}
	other := make([]float32, len(small))
	model.FillNormal(other, 43, 0, 1)
	if slices.Equal(other, small) {
		t.Error("keys 42 and 43 drew the same numbers")
	}
	var sum, sq, q4 float64
	for _, v := range big {
		z := float64(v)
		sum += z
		sq += z * z
		q4 += z * z * z * z
	}
	mean, m2, m4 := sum/n, sq/n, q4/n
	if math.Abs(mean) > 5e-3 || math.Abs(m2-1) > 5e-3 || math.Abs(m4-3) > 0.05 {
		t.Errorf("moments %.4f, %.4f, %.4f; want 0, 1, 3", mean, m2, m4)
	}
	shifted := make([]float32, len(small))
	model.FillNormal(shifted, 42, 1, 2)
	for i := range small {
		if want := 1 + 2*small[i]; math.Abs(float64(shifted[i]-want)) > 1e-6*(1+math.Abs(float64(want))) {
			t.Fatalf("mean 1, std 2: element %d is %v, want %v", i, shifted[i], want)
		}
	}
	if model.TensorKey(0, "a") == model.TensorKey(0, "b") || model.TensorKey(0, "a") == model.TensorKey(1, "a") {
		t.Error("TensorKey collides across names or seeds")
	}
}

func BenchmarkFillNormal(b *testing.B) {
	dst := make([]float32, 1<<22)
	b.SetBytes(4 << 22)
	for b.Loop() {
		model.FillNormal(dst, 7, 0, 1)
	}
}
