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
