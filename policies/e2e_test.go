package policies_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"kvcascade/policies"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
)

// The end-to-end tests run every policy through runtime/model on the tiny
// random fixture models of runtime/model/testdata, with prompts longer than
// the caches.

// fixtures are the model directories under runtime/model/testdata: Llama
// (GQA 4/2, llama3 RoPE scaling), Qwen2 (attention biases, tied
// embeddings) and Mistral (GQA 8/2).
var fixtures = []string{"llama", "qwen2", "mistral"}

// logitTol is the largest |Δlogit| allowed between runs that must agree.
const logitTol = 1e-4

func loadFixture(t *testing.T, name string) *model.Model {
	t.Helper()
	dir := filepath.Join("..", "runtime", "model", "testdata", name)
	m, err := model.Load(dir, cpu.New(0))
	if err != nil {
		t.Fatalf("load fixture %s: %v", name, err)
	}
	return m
}

func shapeOf(m *model.Model) policies.Shape {
	return policies.Shape{Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim}
}

// newSession returns a session of m over a fresh cache of the named policy;
// both are released when the test ends.
func newSession(t *testing.T, m *model.Model, name string, params map[string]any, chunk int) (*model.Session, *policies.Cache, policies.Factory) {
	t.Helper()
	f, err := policies.New(name, params)
	if err != nil {
		t.Fatalf("policies.New(%s, %v): %v", name, params, err)
	}
	c, err := policies.NewCache(m.Backend(), f, shapeOf(m), backend.F32)
	if err != nil {
		t.Fatalf("NewCache(%s): %v", name, err)
	}
	s := m.NewSession(c, chunk)
	t.Cleanup(func() {
		s.Close()
		c.Free()
	})
	return s, c, f
}

// randomIDs draws n token ids uniformly from [0, vocab).
func randomIDs(n, vocab int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 0x65326574657374))
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	return ids
}

// prefillLogits reads prompt through s in its chunks and returns a copy of
// the logits of every position: [len(prompt)][V].
func prefillLogits(t *testing.T, s *model.Session, prompt []int32, vocab int) [][]float32 {
	t.Helper()
	var rows [][]float32
	_, err := s.Prefill(context.Background(), prompt, func(_ int64, logits []float32) error {
		for i := 0; i < len(logits); i += vocab {
			rows = append(rows, slices.Clone(logits[i:i+vocab]))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("prefill: %v", err)
	}
	if len(rows) != len(prompt) {
		t.Fatalf("prefill returned logits for %d positions, want %d", len(rows), len(prompt))
	}
	return rows
}

// decodeLogits feeds prompt one token at a time through Decode (the
// decoding path, promptEnd −1) and returns the logits of every position.
func decodeLogits(t *testing.T, s *model.Session, prompt []int32) [][]float32 {
	t.Helper()
	rows := make([][]float32, len(prompt))
	for i, id := range prompt {
		l, err := s.Decode(id)
		if err != nil {
			t.Fatalf("decode token %d: %v", i, err)
		}
		rows[i] = slices.Clone(l)
	}
	return rows
}

// maxDiff returns the largest |got−want| over all positions and the
// position where it occurs.
func maxDiff(got, want [][]float32) (worst float64, at int) {
	for p := range want {
		for i := range want[p] {
			if d := math.Abs(float64(got[p][i] - want[p][i])); d > worst || math.IsNaN(d) {
				worst, at = d, p
			}
		}
	}
	return worst, at
}

func checkClose(t *testing.T, what string, got, want [][]float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d positions, want %d", what, len(got), len(want))
	}
	if worst, at := maxDiff(got, want); worst > logitTol || math.IsNaN(worst) {
		t.Errorf("%s: max |Δlogit| = %.3g at position %d, want ≤ %g", what, worst, at, logitTol)
	} else {
		t.Logf("%s: max |Δlogit| = %.2g", what, worst)
	}
}

// runWith returns the logits of every position of prompt on a fresh cache
// of the named policy, read in chunks of chunk tokens, or token by token
// through Decode when decode is set.
func runWith(t *testing.T, m *model.Model, name string, params map[string]any, chunk int, decode bool, prompt []int32) ([][]float32, *policies.Cache) {
	t.Helper()
	s, c, _ := newSession(t, m, name, params, chunk)
	if decode {
		return decodeLogits(t, s, prompt), c
	}
	return prefillLogits(t, s, prompt, m.Vocab), c
}

// TestE2EFullChunking checks that the full cache gives the logits of the
// uncached forward pass (the whole prompt in one chunk, which attends only
// to itself) whether the prompt is read in chunks of 16, one token at a
// time as a prompt, or one token at a time through Decode.
func TestE2EFullChunking(t *testing.T) {
	const n = 100
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			m := loadFixture(t, fx)
			prompt := randomIDs(n, m.Vocab, 1)
			want, _ := runWith(t, m, "full", nil, n, false, prompt)
			for _, tc := range []struct {
				name   string
				chunk  int
				decode bool
			}{
				{"chunk16", 16, false},
				{"chunk1", 1, false},
				{"decode", 1, true},
			} {
				got, c := runWith(t, m, "full", nil, tc.chunk, tc.decode, prompt)
				checkClose(t, tc.name, got, want)
				if held := len(c.Held(m.Layers-1, 0)); held != n {
					t.Errorf("%s: full holds %d tokens after %d", tc.name, held, n)
				}
			}
		})
	}
}

// TestE2ESnapkvQueryHeadUncut checks snapkv's select = "query_head" through
// the model where it compresses nothing (budget above the prompt): every
// query head's view row holds the whole prompt, and the logits are full
// attention's.
func TestE2ESnapkvQueryHeadUncut(t *testing.T) {
	const n = 100
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			m := loadFixture(t, fx)
			prompt := randomIDs(n, m.Vocab, 2)
			want, _ := runWith(t, m, "full", nil, 16, false, prompt)
			for _, pos := range []string{"cache", "original"} {
				got, c := runWith(t, m, "snapkv", map[string]any{"budget": 1000, "select": "query_head", "positions": pos}, 16, false, prompt)
				checkClose(t, "snapkv query_head, positions "+pos, got, want)
				if held := len(c.Held(m.Layers-1, 0)); held != n {
					t.Errorf("positions %s: holds %d tokens after %d", pos, held, n)
				}
			}
		})
	}
}

// TestE2ESinkWideWindow checks that sink with a window at least as long as
// the sequence evicts nothing and so equals full: its cache-relative
// positions are then the original positions.
func TestE2ESinkWideWindow(t *testing.T) {
	const n = 100
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			m := loadFixture(t, fx)
			prompt := randomIDs(n, m.Vocab, 2)
			want, _ := runWith(t, m, "full", nil, n, false, prompt)
			for _, window := range []int{n, 128} {
				for _, chunk := range []int{16, 1} {
					params := map[string]any{"sinks": 4, "window": window}
					got, c := runWith(t, m, "sink", params, chunk, false, prompt)
					checkClose(t, fmt.Sprintf("window %d, chunk %d", window, chunk), got, want)
					if held := c.Held(0, 0); len(held) != n || held[n-1] != n-1 {
						t.Errorf("window %d, chunk %d: sink holds %d tokens, want all %d", window, chunk, len(held), n)
					}
				}
			}
		})
	}
}

// TestE2ECascadeOneIsSink checks that a cascade with a single cascade is a
// ring buffer of the most recent size tokens behind the sinks, which is
// sink with window = size: the same logits at every position of a prompt
// three times longer than the cache, and the same tokens held.
func TestE2ECascadeOneIsSink(t *testing.T) {
	const sinks, size = 4, 28
	const n = 3 * (sinks + size)
	for _, fx := range fixtures {
		t.Run(fx, func(t *testing.T) {
			m := loadFixture(t, fx)
			prompt := randomIDs(n, m.Vocab, 3)
			for _, pos := range []string{"cache", "original"} {
				for _, chunk := range []int{16, 1} {
					what := fmt.Sprintf("positions %s, chunk %d", pos, chunk)
					want, sc := runWith(t, m, "sink", map[string]any{"sinks": sinks, "window": size, "positions": pos}, chunk, false, prompt)
					got, cc := runWith(t, m, "cascade", map[string]any{"sinks": sinks, "size": size, "cascades": 1, "positions": pos}, chunk, false, prompt)
					checkClose(t, what, got, want)
					for l := 0; l < m.Layers; l++ {
						for h := 0; h < m.KVHeads; h++ {
							if g, w := cc.Held(l, h), sc.Held(l, h); !slices.Equal(g, w) {
								t.Errorf("%s: layer %d head %d: cascade holds %v, sink %v", what, l, h, g, w)
							}
						}
					}
				}
			}
		})
	}
}

// policyCase is one configured policy of TestE2EPolicies.
type policyCase struct {
	name   string
	params map[string]any
	// budget is the most tokens a KV head may hold after seen tokens, of
	// which prompt (after any cut) were the prompt and decoded were
	// generated; nil: every token seen is held.
	budget func(seen int64, prompt, decoded int) int
	// fixed: once every head holds budget tokens the cache stays full, and
	// Cache.Bytes stops changing after one more pass.
	fixed bool
}

var policyCases = []policyCase{
	{"cascade", map[string]any{"sinks": 4, "size": 32, "cascades": 4}, constant(4 + 32), true},
	{"sink", map[string]any{"sinks": 4, "window": 32}, constant(4 + 32), true},
	{"h2o", map[string]any{"heavy": 16, "recent": 16}, constant(16 + 16), true},
	{"expected_attention", map[string]any{"budget": 36, "sinks": 4, "window": 8, "queries": 16, "future": 64}, constant(36), true},
	// snapkv keeps the whole prompt until its last chunk, then budget
	// tokens, and appends what it decodes
	{"snapkv", map[string]any{"window": 8, "budget": 32, "kernel": 5}, func(seen int64, prompt, decoded int) int {
		if seen < int64(prompt) {
			return int(seen)
		}
		return 32 + decoded
	}, false},
	// the official variants: h2o's per-query group max, snapkv selecting
	// per query head, whose KV heads store the union of their query
	// heads' 8 + the window's 4 (the fixtures have at most 4 query heads
	// per KV head)
	{"h2o", map[string]any{"heavy": 16, "recent": 16, "reduction": "query_max"}, constant(16 + 16), true},
	{"snapkv", map[string]any{"window": 4, "budget": 12, "kernel": 5, "pooling": "avg", "select": "query_head"}, func(seen int64, prompt, decoded int) int {
		if seen < int64(prompt) {
			return int(seen)
		}
		return 4*8 + 4 + decoded
	}, false},
	// pyramidkv's first layer keeps up to 2·(12 − 4) = 16 scored tokens per
	// query head
	{"pyramidkv", map[string]any{"window": 4, "budget": 12, "kernel": 5, "select": "query_head"}, func(seen int64, prompt, decoded int) int {
		if seen < int64(prompt) {
			return int(seen)
		}
		return 4*16 + 4 + decoded
	}, false},
	{"bigbird", map[string]any{"global": 4, "window": 16, "random_blocks": 2, "block": 4}, nil, false},
	{"truncated", map[string]any{"keep": 32}, nil, false},
	{"full", nil, nil, false},
	// logsearch keeps every token (its working set is fixed, its storage not)
	{"logsearch", map[string]any{"sinks": 4, "window": 16, "block": 4, "topk": 2}, nil, false},
}

// constant is the budget of a policy that holds at most n tokens per head.
func constant(n int) func(int64, int, int) int { return func(int64, int, int) int { return n } }

// TestE2EPolicies runs every policy over prompts longer than its cache,
// then decodes 8 tokens greedily: no errors, finite logits, no head holding
// more than the policy's budget (or, for the policies that keep
// everything, exactly the tokens seen), and for the bounded policies cache
// memory that stops changing once the cache is full.
func TestE2EPolicies(t *testing.T) {
	const n, decode = 100, 8
	for _, fx := range fixtures {
		m := loadFixture(t, fx)
		for _, pc := range policyCases {
			for _, chunk := range []int{16, 1} {
				t.Run(fmt.Sprintf("%s/%s/chunk%d", fx, pc.name, chunk), func(t *testing.T) {
					s, c, f := newSession(t, m, pc.name, pc.params, chunk)
					prompt := randomIDs(n, m.Vocab, 4)
					if cut, ok := f.(policies.PromptCutter); ok {
						prompt = cut.CutPrompt(prompt)
					}
					r := &policyRun{t: t, m: m, c: c, pc: pc, prompt: len(prompt), fixedAt: -1}
					logits, err := s.Prefill(context.Background(), prompt, func(start int64, logits []float32) error {
						seen := start + int64(len(logits)/m.Vocab)
						r.check(fmt.Sprintf("prefill, %d tokens seen", seen), seen, logits)
						return nil
					})
					if err != nil {
						t.Fatalf("prefill: %v", err)
					}
					for r.decoded < decode {
						r.decoded++
						if logits, err = s.Decode(model.Argmax(logits)); err != nil {
							t.Fatalf("decode step %d: %v", r.decoded, err)
						}
						r.check(fmt.Sprintf("decode step %d", r.decoded), s.Seen(), logits)
					}
					if pc.fixed && r.fixedAt < 0 {
						t.Errorf("no pass ran over a full cache: %d prompt tokens, budget %d", len(prompt), pc.budget(0, 0, 0))
					}
				})
			}
		}
	}
}

// policyRun checks one run of TestE2EPolicies after every forward pass.
type policyRun struct {
	t       *testing.T
	m       *model.Model
	c       *policies.Cache
	pc      policyCase
	prompt  int   // prompt tokens after any cut
	decoded int   // tokens decoded so far
	fixedAt int64 // tokens seen after the first pass over a full cache, -1 before
	bytes   int64 // Cache.Bytes then
	wasFull bool  // every head held its budget after the previous pass
}

func (r *policyRun) check(when string, seen int64, logits []float32) {
	t, m := r.t, r.m
	t.Helper()
	for i, v := range logits {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("%s: logit %d of row %d is %v", when, i%m.Vocab, i/m.Vocab, v)
		}
	}
	full := true
	for l := 0; l < m.Layers; l++ {
		for h := 0; h < m.KVHeads; h++ {
			held := r.c.Held(l, h)
			if r.pc.budget == nil {
				if int64(len(held)) != seen {
					t.Fatalf("%s: layer %d head %d holds %d tokens, want all %d seen", when, l, h, len(held), seen)
				}
				continue
			}
			b := r.pc.budget(seen, r.prompt, r.decoded)
			if len(held) > b {
				t.Fatalf("%s: layer %d head %d holds %d tokens, budget %d", when, l, h, len(held), b)
			}
			full = full && len(held) == b
			for i := range held {
				if held[i] < 0 || held[i] >= seen || slices.Contains(held[:i], held[i]) {
					t.Fatalf("%s: layer %d head %d holds positions %v after %d tokens", when, l, h, held, seen)
				}
			}
		}
	}
	if !r.pc.fixed {
		return
	}
	// Bytes counts the policies' scratch, which is sized by the view plus
	// the chunk, so it settles on the first pass that attends to a full
	// cache; from then on nothing may change.
	switch b := r.c.Bytes(); {
	case r.wasFull && !full:
		t.Fatalf("%s: the cache was full and is no longer", when)
	case r.fixedAt >= 0 && b != r.bytes:
		t.Fatalf("%s: cache holds %d bytes, %d after the first pass over a full cache (%d tokens seen)", when, b, r.bytes, r.fixedAt)
	case r.fixedAt < 0 && r.wasFull:
		r.fixedAt, r.bytes = seen, b
	}
	r.wasFull = full
}

// TestE2ECascadeGQA checks on the Llama fixture (4 query heads over 2 KV
// heads) that the KV heads of a cascade cache, which each reduce the
// attention of their own query heads, hold the same number of tokens after
// every pass, and with homogeneous the same tokens.
func TestE2ECascadeGQA(t *testing.T) {
	const n, decode = 100, 8
	m := loadFixture(t, "llama")
	if m.Heads == m.KVHeads || m.KVHeads < 2 {
		t.Fatalf("llama fixture has %d query heads over %d KV heads, want grouped-query attention", m.Heads, m.KVHeads)
	}
	for _, homogeneous := range []bool{false, true} {
		for _, chunk := range []int{16, 1} {
			t.Run(fmt.Sprintf("homogeneous=%v/chunk%d", homogeneous, chunk), func(t *testing.T) {
				params := map[string]any{"sinks": 4, "size": 32, "cascades": 4, "homogeneous": homogeneous}
				s, c, _ := newSession(t, m, "cascade", params, chunk)
				differ := false
				check := func(when string) {
					t.Helper()
					for l := 0; l < m.Layers; l++ {
						first := c.Held(l, 0)
						for h := 1; h < m.KVHeads; h++ {
							held := c.Held(l, h)
							if len(held) != len(first) {
								t.Fatalf("%s: layer %d: KV head %d holds %d tokens, head 0 holds %d", when, l, h, len(held), len(first))
							}
							if slices.Equal(held, first) {
								continue
							}
							if homogeneous {
								t.Fatalf("%s: layer %d: homogeneous KV heads hold different tokens: head 0 %v, head %d %v", when, l, first, h, held)
							}
							differ = true
						}
					}
				}
				prompt := randomIDs(n, m.Vocab, 5)
				logits, err := s.Prefill(context.Background(), prompt, func(start int64, logits []float32) error {
					check(fmt.Sprintf("prefill, %d tokens seen", start+int64(len(logits)/m.Vocab)))
					return nil
				})
				if err != nil {
					t.Fatalf("prefill: %v", err)
				}
				for i := range decode {
					if logits, err = s.Decode(model.Argmax(logits)); err != nil {
						t.Fatalf("decode step %d: %v", i+1, err)
					}
					check(fmt.Sprintf("decode step %d", i+1))
				}
				// Without homogeneous the heads choose by their own scores; on
				// this fixture they do keep different tokens, so the equal
				// counts above are not equal sets in disguise.
				if !homogeneous && !differ {
					t.Errorf("the KV heads always held the same tokens: the per-head choice was not exercised")
				}
			})
		}
	}
}

// TestE2EAdakvPool: adakv with a safeguard of 1 holds snapkv's tokens, in
// one pool of slots per layer instead of per-head storage, and the CPU
// backend's pooled attention gives the same logits; with the default
// safeguard heads hold different numbers of tokens in a pool of KV heads ×
// budget slots. A backend that cannot address a pool is refused when the
// cache is made.
func TestE2EAdakvPool(t *testing.T) {
	m := loadFixture(t, "llama")
	prompt := randomIDs(100, m.Vocab, 4)
	params := map[string]any{"window": 4, "kernel": 3, "budget": 24}
	want, _ := runWith(t, m, "snapkv", params, 16, true, prompt)
	pooled := map[string]any{"window": 4, "kernel": 3, "budget": 24, "safeguard": 1.0}
	got, _ := runWith(t, m, "adakv", pooled, 16, true, prompt)
	checkClose(t, "adakv safeguard 1 vs snapkv", got, want)

	_, c := runWith(t, m, "adakv", map[string]any{"window": 4, "budget": 24}, 16, false, prompt)
	for l := range m.Layers {
		total := 0
		for h := range m.KVHeads {
			total += len(c.Held(l, h))
		}
		if total != 24*m.KVHeads {
			t.Errorf("layer %d: heads hold %d tokens, want %d", l, total, 24*m.KVHeads)
		}
	}

	f, err := policies.New("adakv", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policies.NewCache(noPool{m.Backend()}, f, shapeOf(m), backend.F32); err == nil {
		t.Error("a backend without pooled storage was accepted")
	}
}

// noPool is a backend that does not address pooled storage.
type noPool struct{ backend.Backend }

// TestCacheReserve: Reserve(n) makes room for n more tokens up front, so
// that n decoding steps of a cache whose storage grows with the stream
// leave its memory as it was, and the logits are those of a cache that
// grew as it went. (full: its memory is its storage alone; logsearch's
// index grows with every block as well.)
func TestCacheReserve(t *testing.T) {
	m := loadFixture(t, "llama")
	ids := randomIDs(40, m.Vocab, 3)
	for _, tc := range []struct {
		name   string
		params map[string]any
	}{
		{"full", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			decode := func(reserve bool) ([]float32, int64, int64) {
				s, c, _ := newSession(t, m, tc.name, tc.params, 16)
				logits, err := s.Prefill(context.Background(), ids[:32], nil) // storage: exactly 32 slots
				if err != nil {
					t.Fatal(err)
				}
				if reserve {
					c.Reserve(8)
				}
				before := c.Bytes()
				last := logits
				for _, id := range ids[32:] {
					if last, err = s.Decode(id); err != nil {
						t.Fatal(err)
					}
				}
				return slices.Clone(last), before, c.Bytes()
			}
			want, grownBefore, grownAfter := decode(false)
			got, before, after := decode(true)
			if grownAfter <= grownBefore {
				t.Fatalf("without Reserve the storage did not grow while decoding (%d → %d bytes): the test shows nothing", grownBefore, grownAfter)
			}
			if after != before {
				t.Errorf("after Reserve(8), 8 decoding steps changed the cache's memory from %d to %d bytes", before, after)
			}
			if !slices.Equal(got, want) {
				t.Error("decoding after Reserve gave other logits than decoding while the storage grew")
			}
		})
	}
}
