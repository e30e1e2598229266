package model_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"kvcascade/policies"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
)

// golden is testdata/<model>/golden.json, written by tools/reference.
type golden struct {
	Prompts []struct {
		Text       string  `json:"text"`
		IDs        []int32 `json:"ids"`
		LogitsFile string  `json:"logits_file"`
		Shape      [2]int  `json:"shape"`
		Greedy     []int32 `json:"greedy"`
	} `json:"prompts"`
}

// fixtureDirs returns the model fixture directories and the embedded model
// (models/tiny), skipping when none has golden outputs.
func fixtureDirs(t testing.TB) []string {
	t.Helper()
	dirs, _ := filepath.Glob("testdata/*/golden.json")
	embedded, _ := filepath.Glob("../../models/*/golden.json")
	dirs = append(dirs, embedded...)
	if len(dirs) == 0 {
		t.Skip("no model fixtures in testdata (make them with tools/reference/make_fixtures.py)")
	}
	for i, d := range dirs {
		dirs[i] = filepath.Dir(d)
	}
	return dirs
}

func readGolden(t *testing.T, dir string) golden {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return g
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

func fullSession(t *testing.T, m *model.Model, chunk int) *model.Session {
	t.Helper()
	f, err := policies.New("full", nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := policies.NewCache(m.Backend(), f, policies.Shape{Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim}, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	return m.NewSession(c, chunk)
}

// TestParityLogits compares logits with the reference implementation for
// one-shot prefill, chunked prefill and token-by-token decoding.
func TestParityLogits(t *testing.T) {
	const tol = 1e-3
	for _, dir := range fixtureDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := model.Load(dir, cpu.New(0))
			if err != nil {
				t.Fatal(err)
			}
			g := readGolden(t, dir)
			for pi, p := range g.Prompts {
				want := readF32(t, filepath.Join(dir, p.LogitsFile))
				n, v := p.Shape[0], p.Shape[1]
				if n != len(p.IDs) || v != m.Vocab || len(want) != n*v {
					t.Fatalf("prompt %d: golden shape %v, %d ids, vocab %d, %d values", pi, p.Shape, len(p.IDs), m.Vocab, len(want))
				}
				for _, chunk := range []int{n, 16, 7, 1} {
					s := fullSession(t, m, chunk)
					got := make([]float32, 0, n*v)
					_, err := s.Prefill(context.Background(), p.IDs, func(_ int64, l []float32) error {
						got = append(got, l...)
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					var worst float64
					for i := range want {
						worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
					}
					if worst > tol {
						t.Errorf("prompt %d (%d tokens), chunk %d: max |Δlogit| = %.3g > %g", pi, n, chunk, worst, tol)
					} else if chunk == n {
						t.Logf("prompt %d (%d tokens): max |Δlogit| = %.2g", pi, n, worst)
					}
				}
			}
		})
	}
}

// TestParityGreedy checks greedy continuations token for token.
func TestParityGreedy(t *testing.T) {
	for _, dir := range fixtureDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := model.Load(dir, cpu.New(0))
			if err != nil {
				t.Fatal(err)
			}
			for pi, p := range readGolden(t, dir).Prompts {
				s := fullSession(t, m, 16)
				got, err := s.Generate(context.Background(), p.IDs, len(p.Greedy), nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(p.Greedy) {
					t.Fatalf("prompt %d: %d tokens, want %d", pi, len(got), len(p.Greedy))
				}
				for i := range got {
					if got[i] != p.Greedy[i] {
						t.Errorf("prompt %d: greedy %v, want %v", pi, got, p.Greedy)
						break
					}
				}
			}
		})
	}
}

// TestDecodeDoesNotAllocate checks the hot loop: once a bounded cache is
// full, decoding a token allocates nothing.
func TestDecodeDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops items on purpose; allocation counts mean nothing")
	}
	m, err := model.Load("testdata/llama", cpu.New(2))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sink", "cascade"} {
		params := map[string]any{"sinks": 2, "window": 16}
		if name == "cascade" {
			params = map[string]any{"sinks": 2, "size": 16, "cascades": 4}
		}
		f, err := policies.New(name, params)
		if err != nil {
			t.Fatal(err)
		}
		c, err := policies.NewCache(m.Backend(), f, policies.Shape{Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim}, backend.F32)
		if err != nil {
			t.Fatal(err)
		}
		s := m.NewSession(c, 8)
		ids := make([]int32, 40)
		for i := range ids {
			ids[i] = int32(i % m.Vocab)
		}
		if _, err := s.Prefill(context.Background(), ids, nil); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 40; i++ { // fill every cascade, warm the pools
			if _, err := s.Decode(int32(i)); err != nil {
				t.Fatal(err)
			}
		}
		allocs := testing.AllocsPerRun(20, func() {
			if _, err := s.Decode(3); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: decoding allocates %v times per token, want 0", name, allocs)
		}
		allocs = testing.AllocsPerRun(20, func() {
			if _, err := s.DecodeGreedy(3); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: greedy decoding allocates %v times per token, want 0", name, allocs)
		}
	}
}

// picker is a backend that picks greedy tokens itself, as the CUDA backend
// does on its device: here on the host, counting the rows it picks.
type picker struct {
	backend.Backend
	rows int
}

func (p *picker) Argmax(logits backend.Tensor, dst []int32) {
	v := logits.Shape()[1]
	host := make([]float32, backend.Numel(logits.Shape()))
	p.Read(logits, host)
	for r := range dst {
		dst[r] = model.Argmax(host[r*v : (r+1)*v])
	}
	p.rows += len(dst)
}

// TestDecodeGreedy checks that DecodeGreedy picks what Argmax picks from
// Decode's logits, on a backend without a picker and through one, and
// that it asks the picker when there is one.
func TestDecodeGreedy(t *testing.T) {
	pk := &picker{Backend: cpu.New(0)}
	for _, b := range []backend.Backend{cpu.New(0), pk} {
		m, err := model.Load("testdata/llama", b)
		if err != nil {
			t.Fatal(err)
		}
		prompt := []int32{1, 5, 9, 2, 7}
		ref, greedy := fullSession(t, m, 4), fullSession(t, m, 4)
		logits, err := ref.Prefill(context.Background(), prompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := greedy.Prefill(context.Background(), prompt, nil); err != nil {
			t.Fatal(err)
		}
		want := model.Argmax(logits)
		next := want
		for i := 0; i < 12; i++ {
			if logits, err = ref.Decode(want); err != nil {
				t.Fatal(err)
			}
			want = model.Argmax(logits)
			if next, err = greedy.DecodeGreedy(next); err != nil {
				t.Fatal(err)
			}
			if next != want {
				t.Fatalf("%T, step %d: DecodeGreedy %d, Argmax(Decode) %d", b, i, next, want)
			}
		}
	}
	if pk.rows != 12 {
		t.Errorf("the picker picked %d rows, want 12", pk.rows)
	}
}
