package model_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/policies"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
	"kvcascade/runtime/safetensors"
)

// The policies' Cache tells a windowed model whether its positions are the
// tokens' own.
var _ model.WindowCache = (*policies.Cache)(nil)

// reference is an independent float64 forward pass of a Mistral model
// (Llama architecture, default RoPE, optional sliding window), written from
// the model's definition rather than from the runtime's code, so that the
// window can be checked where no transformers is at hand.
type reference struct {
	cfg struct {
		Hidden       int     `json:"hidden_size"`
		Inter        int     `json:"intermediate_size"`
		Layers       int     `json:"num_hidden_layers"`
		Heads        int     `json:"num_attention_heads"`
		KVHeads      int     `json:"num_key_value_heads"`
		HeadDim      int     `json:"head_dim"`
		Eps          float64 `json:"rms_norm_eps"`
		Theta        float64 `json:"rope_theta"`
		Vocab        int     `json:"vocab_size"`
		ModelType    string  `json:"model_type"`
		RopeScaling  any     `json:"rope_scaling"`
		TieEmbedding bool    `json:"tie_word_embeddings"`
	}
	w map[string][]float64
}

func newReference(t *testing.T, dir string) *reference {
	t.Helper()
	r := &reference{w: map[string][]float64{}}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &r.cfg); err != nil {
		t.Fatal(err)
	}
	if r.cfg.ModelType != "mistral" || r.cfg.RopeScaling != nil || r.cfg.TieEmbedding {
		t.Fatalf("reference: %s, rope_scaling %v, tied %v: only untied Mistral with default RoPE", r.cfg.ModelType, r.cfg.RopeScaling, r.cfg.TieEmbedding)
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	for _, name := range set.Names() {
		f, err := set.Float32(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]float64, len(f))
		for i, x := range f {
			v[i] = float64(x)
		}
		r.w[name] = v
	}
	return r
}

// linear returns x·Wᵀ for W [out, in] of the named weight.
func (r *reference) linear(name string, x []float64, out int) []float64 {
	w := r.w[name+".weight"]
	in := len(x)
	y := make([]float64, out)
	for o := range y {
		var s float64
		for i, xi := range x {
			s += w[o*in+i] * xi
		}
		y[o] = s
	}
	return y
}

func (r *reference) rmsNorm(name string, x []float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+r.cfg.Eps)
	w := r.w[name+".weight"]
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = w[i] * v * inv
	}
	return y
}

// rope rotates each head of x [H·hd] to position pos, pairing dimension i
// with i + hd/2 (rotate_half).
func (r *reference) rope(x []float64, heads int, pos int) {
	hd := r.cfg.HeadDim
	for h := 0; h < heads; h++ {
		v := x[h*hd : (h+1)*hd]
		for i := 0; i < hd/2; i++ {
			ang := float64(pos) * math.Pow(r.cfg.Theta, -float64(2*i)/float64(hd))
			c, s := math.Cos(ang), math.Sin(ang)
			a, b := v[i], v[i+hd/2]
			v[i], v[i+hd/2] = a*c-b*s, b*c+a*s
		}
	}
}

// logits returns the logits [n, V] of every position of ids, each query i
// attending to keys j with i − window < j ≤ i (every j ≤ i when window is 0).
func (r *reference) logits(ids []int32, window int) [][]float64 {
	c := r.cfg
	D, hd, hq, hkv := c.Hidden, c.HeadDim, c.Heads, c.KVHeads
	n := len(ids)
	x := make([][]float64, n)
	emb := r.w["model.embed_tokens.weight"]
	for i, id := range ids {
		x[i] = append([]float64(nil), emb[int(id)*D:int(id+1)*D]...)
	}
	for l := 0; l < c.Layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		q, k, v := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for i := range x {
			h := r.rmsNorm(p+"input_layernorm", x[i])
			q[i] = r.linear(p+"self_attn.q_proj", h, hq*hd)
			k[i] = r.linear(p+"self_attn.k_proj", h, hkv*hd)
			v[i] = r.linear(p+"self_attn.v_proj", h, hkv*hd)
			r.rope(q[i], hq, i)
			r.rope(k[i], hkv, i)
		}
		for i := range x {
			att := make([]float64, hq*hd)
			for qh := 0; qh < hq; qh++ {
				kh := qh / (hq / hkv)
				lo := 0
				if window > 0 {
					lo = max(0, i-window+1)
				}
				scores := make([]float64, i+1-lo)
				m := math.Inf(-1)
				for j := lo; j <= i; j++ {
					var s float64
					for d := 0; d < hd; d++ {
						s += q[i][qh*hd+d] * k[j][kh*hd+d]
					}
					scores[j-lo] = s / math.Sqrt(float64(hd))
					m = math.Max(m, scores[j-lo])
				}
				var sum float64
				for jj := range scores {
					scores[jj] = math.Exp(scores[jj] - m)
					sum += scores[jj]
				}
				for j := lo; j <= i; j++ {
					pj := scores[j-lo] / sum
					for d := 0; d < hd; d++ {
						att[qh*hd+d] += pj * v[j][kh*hd+d]
					}
				}
			}
			o := r.linear(p+"self_attn.o_proj", att, D)
			for d := range o {
				x[i][d] += o[d]
			}
			h := r.rmsNorm(p+"post_attention_layernorm", x[i])
			g := r.linear(p+"mlp.gate_proj", h, c.Inter)
			u := r.linear(p+"mlp.up_proj", h, c.Inter)
			for f := range g {
				g[f] = g[f] / (1 + math.Exp(-g[f])) * u[f]
			}
			dn := r.linear(p+"mlp.down_proj", g, D)
			for d := range dn {
				x[i][d] += dn[d]
			}
		}
	}
	out := make([][]float64, n)
	for i := range x {
		out[i] = r.linear("lm_head", r.rmsNorm("model.norm", x[i]), c.Vocab)
	}
	return out
}

// windowedFixture copies the Mistral fixture into a temporary folder with
// config.json's sliding_window set to w.
func windowedFixture(t *testing.T, w int) string {
	t.Helper()
	src, dst := "testdata/mistral", t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "config.json" {
			var cfg map[string]any
			if err := json.Unmarshal(data, &cfg); err != nil {
				t.Fatal(err)
			}
			cfg["sliding_window"] = w
			if data, err = json.Marshal(cfg); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func worstDiff(got []float32, want [][]float64) (float64, int) {
	worst, at := 0.0, -1
	v := len(want[0])
	for i, row := range want {
		for j, w := range row {
			if d := math.Abs(float64(got[i*v+j]) - w); d > worst {
				worst, at = d, i
			}
		}
	}
	return worst, at
}

// windowSession runs the Mistral model through a cache of the named policy.
func windowSession(t *testing.T, m *model.Model, policy string, params map[string]any, chunk int) *model.Session {
	t.Helper()
	f, err := policies.New(policy, params)
	if err != nil {
		t.Fatal(err)
	}
	c, err := policies.NewCache(m.Backend(), f, policies.Shape{Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim}, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Free)
	s := m.NewSession(c, chunk)
	t.Cleanup(s.Close)
	return s
}

// TestSlidingWindow runs the Mistral fixture with sliding_window = 16 over
// prompts of 39 and 98 tokens. transformers is not needed: a float64
// reference forward pass, checked first against the fixture's transformers
// logits without a window, gives the windowed logits. The runtime must
// match them in chunked prefill and in decoding, through full attention and
// through a cascade large enough to keep every token at its original
// position, and the window must change the logits.
func TestSlidingWindow(t *testing.T) {
	const (
		window = 16
		tol    = 1e-3
	)
	src := "testdata/mistral"
	g := readGolden(t, src)
	ref := newReference(t, src)
	for pi, p := range g.Prompts {
		want := readF32(t, filepath.Join(src, p.LogitsFile))
		if worst, at := worstDiff(want, ref.logits(p.IDs, 0)); worst > tol {
			t.Fatalf("prompt %d: the float64 reference differs from transformers by %.3g at position %d", pi, worst, at)
		}
	}
	m, err := model.Load(windowedFixture(t, window), cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	if m.SlidingWindow != window {
		t.Fatalf("SlidingWindow %d, want %d", m.SlidingWindow, window)
	}
	runs := []struct {
		policy string
		params map[string]any
	}{
		{"full", nil},
		{"cascade", map[string]any{"sinks": 4, "size": 128, "cascades": 1, "positions": "original"}},
	}
	for pi, p := range g.Prompts {
		n := len(p.IDs)
		if n <= window {
			continue
		}
		want := ref.logits(p.IDs, window)
		if worst, _ := worstDiff(readF32(t, filepath.Join(src, p.LogitsFile)), want); worst < 100*tol {
			t.Fatalf("prompt %d: the window changes the logits by only %.3g", pi, worst)
		}
		for _, r := range runs {
			for _, chunk := range []int{n, 7, 1} {
				s := windowSession(t, m, r.policy, r.params, chunk)
				var got []float32
				if _, err := s.Prefill(context.Background(), p.IDs, func(_ int64, l []float32) error {
					got = append(got, l...)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if worst, at := worstDiff(got, want); worst > tol {
					t.Errorf("prompt %d (%d tokens), %s, chunk %d: max |Δlogit| = %.3g > %g at position %d", pi, n, r.policy, chunk, worst, tol, at)
				}
			}
			// Prefill the first half, decode the rest token by token.
			s := windowSession(t, m, r.policy, r.params, 5)
			half := n / 2
			last, err := s.Prefill(context.Background(), p.IDs[:half], nil)
			if err != nil {
				t.Fatal(err)
			}
			got := append([]float32(nil), last...)
			for _, id := range p.IDs[half : n-1] {
				l, err := s.Decode(id)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, l...)
			}
			if worst, at := worstDiff(got, want[half-1:n-1]); worst > tol {
				t.Errorf("prompt %d, %s, decoding: max |Δlogit| = %.3g > %g at position %d", pi, r.policy, worst, tol, half-1+at)
			}
		}
	}
}

// windowless is a backend whose Attention does not apply a sliding window.
type windowless struct{ backend.Backend }

// TestSlidingWindowRefused: a policy that numbers keys by their place in
// the cache, or a backend that does not mask by window, refuses to run a
// windowed model past its window, and runs it up to there.
func TestSlidingWindowRefused(t *testing.T) {
	const window = 16
	dir := windowedFixture(t, window)
	m, err := model.Load(dir, cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	wl, err := model.Load(dir, windowless{cpu.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	ids := readGolden(t, "testdata/mistral").Prompts[1].IDs
	tests := []struct {
		m      *model.Model
		policy string
		params map[string]any
		want   string
	}{
		{m, "sink", map[string]any{"sinks": 2, "window": 8}, `policy sink (layer 0) puts keys at their places in the cache, not at their original positions; set positions = "original"`},
		{m, "h2o", map[string]any{"heavy": 4, "recent": 4}, `policy h2o (layer 0)`},
		{wl, "full", nil, "sliding window of 16 tokens (sliding_window), which the cpu backend does not apply; the sequence has reached 21 tokens"},
	}
	for _, tt := range tests {
		s := windowSession(t, tt.m, tt.policy, tt.params, 7)
		if _, err := s.Prefill(context.Background(), ids[:14], nil); err != nil {
			t.Fatalf("%s: within the window: %v", tt.policy, err)
		}
		_, err := s.Prefill(context.Background(), ids[14:30], nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: past the window: %v, want an error containing %q", tt.policy, err, tt.want)
		}
	}
	s := windowSession(t, m, "sink", map[string]any{"sinks": 2, "window": 8, "positions": "original"}, 7)
	if _, err := s.Prefill(context.Background(), ids, nil); err != nil {
		t.Errorf("sink with original positions: %v", err)
	}
}
