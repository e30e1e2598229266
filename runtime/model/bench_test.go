package model_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"kvcascade/policies"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
)

// bench100M is a ~125M-parameter Llama shape (GQA 12/4, hidden 768).
func bench100M(tb testing.TB) *model.Model {
	cfg := &model.Config{
		ModelType: "llama", Vocab: 32000, Hidden: 768, Intermediate: 2048, Layers: 12,
		Heads: 12, KVHeads: 4, HeadDim: 64, RMSNormEps: 1e-5, RopeTheta: 500000,
		Rope: model.RopeScaling{Type: "default", Factor: 1},
	}
	m, err := model.NewRandom(cfg, cpu.New(0), 1)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func newFullSession(tb testing.TB, m *model.Model, chunk int) *model.Session {
	f, err := policies.New("full", nil)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := policies.NewCache(m.Backend(), f, policies.Shape{Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim}, backend.F32)
	if err != nil {
		tb.Fatal(err)
	}
	return m.NewSession(c, chunk)
}

func randomTokens(n, vocab int) []int32 {
	rng := rand.New(rand.NewPCG(7, 8))
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	return ids
}

// BenchmarkPrefill reports prefill tokens/s of a 512-token prompt in chunks
// of 256 on the ~100M model with the full cache.
func BenchmarkPrefill(b *testing.B) {
	m := bench100M(b)
	ids := randomTokens(512, m.Vocab)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := newFullSession(b, m, 256)
		if _, err := s.Prefill(context.Background(), ids, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(ids)*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkDecode reports decode tokens/s after a 512-token prompt.
func BenchmarkDecode(b *testing.B) {
	m := bench100M(b)
	s := newFullSession(b, m, 256)
	if _, err := s.Prefill(context.Background(), randomTokens(512, m.Vocab), nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Decode(int32(i % m.Vocab)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
