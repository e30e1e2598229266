package policies

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"kvcascade/runtime/backend"
)

// BenchmarkCascadeUpdate measures Plan+Commit of the paper's passkey set-up
// (65,536 cascade slots in 8 cascades, 64 sinks, 8 KV heads, chunks of
// 4,096) once the cache is full, with random mass; it reports the cost per
// token per KV head. Group 4 is Llama 3 8B (32 query heads), group 1 has no
// reduction to do.
func BenchmarkCascadeUpdate(b *testing.B) {
	const size, chunk, kvHeads = 65536, 4096, 8
	for _, group := range []int{1, 4} {
		b.Run(fmt.Sprintf("group=%d", group), func(b *testing.B) {
			s := Shape{Layers: 1, QHeads: kvHeads * group, KVHeads: kvHeads, HeadDim: 128}
			f, err := New("cascade", map[string]any{"sinks": 64, "size": size, "cascades": 8})
			if err != nil {
				b.Fatal(err)
			}
			p, err := f.NewLayer(0, s)
			if err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			mass := make([]float32, s.QHeads*(64+size+chunk))
			for i := range mass {
				mass[i] = r.Float32() * 1e-3
			}
			place := make([]int32, kvHeads*chunk)
			var ctx backend.View
			var seen int64
			step := func() {
				p.Reserve(chunk)
				p.Plan(Step{Start: seen, N: chunk, PromptEnd: -1}, &ctx)
				p.Commit(mass[:s.QHeads*(ctx.ViewLen+chunk)], place)
				seen += chunk
			}
			for seen < 2*size { // full, and past eager fill
				step()
			}
			chunks := 0
			for b.Loop() {
				step()
				chunks++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(chunks*chunk*kvHeads), "ns/token/head")
		})
	}
}

// BenchmarkBigbirdPattern measures what hip_bigbird's device variant does
// on the host per layer and decoding step at its default budget (2,048:
// 16 sinks, a window of 1,024, 512 random blocks of 2 per KV head) after
// 32,768 tokens, for 8 KV heads: the seeded draw of every head's blocks and
// their starts.
func BenchmarkBigbirdPattern(b *testing.B) {
	s := Shape{Layers: 1, QHeads: 32, KVHeads: 8, HeadDim: 128}
	p := &bigbird{c: hipBigbirdConfig(2048, 16, 2, 0), s: s, seen: 32768}
	for range b.N {
		v := p.pattern(Step{Start: p.seen, N: 1, PromptEnd: -1})
		if len(v.Blocks) != 8*512 {
			b.Fatalf("%d block starts", len(v.Blocks))
		}
	}
}

// BenchmarkLogsearchDecode measures what logsearch does on the host per
// layer and decoding step at the Llama-3.1-8B shape (32 query heads, 8 KV
// heads, head dim 128) after N tokens of random keys, with the set-up of
// the GPU curve in docs/design.md (64 sinks, a window of 8,192, blocks of
// 64, top 64, beam 64): the search of every KV head's index with the
// step's query, the view's slot lists, and the new key into the index.
func BenchmarkLogsearchDecode(b *testing.B) {
	const chunk = 4096
	s := Shape{Layers: 1, QHeads: 32, KVHeads: 8, HeadDim: 128}
	for _, n := range []int{65536, 262144} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			f, err := New("logsearch", map[string]any{"sinks": 64, "window": 8192, "block": 64, "topk": 64, "beam": 64})
			if err != nil {
				b.Fatal(err)
			}
			pl, err := f.NewLayer(0, s)
			if err != nil {
				b.Fatal(err)
			}
			p := pl.(searcher)
			r := rand.New(rand.NewPCG(3, 4))
			keys := make([]float32, chunk*s.KVHeads*s.HeadDim)
			place := make([]int32, s.KVHeads*chunk)
			var view backend.View
			var seen int64
			step := func(m int) {
				for i := range keys[:m*s.KVHeads*s.HeadDim] {
					keys[i] = float32(r.NormFloat64())
				}
				p.Reserve(m)
				p.Plan(Step{Start: seen, N: m, PromptEnd: -1}, &view)
				p.observeKeys(keys[:m*s.KVHeads*s.HeadDim])
				p.Commit(nil, place[:s.KVHeads*m])
				seen += int64(m)
			}
			for seen < int64(n) {
				step(chunk)
			}
			q := make([]float32, s.QHeads*s.HeadDim)
			for b.Loop() {
				for i := range q {
					q[i] = float32(r.NormFloat64())
				}
				p.setQuery(q)
				step(1)
			}
		})
	}
}
