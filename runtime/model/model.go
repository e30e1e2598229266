// Package model is the Llama-family decoder (Llama 2/3, Qwen2, Mistral)
// written once against backend.Backend: RMSNorm, RoPE with scaling,
// grouped-query attention over a pluggable cache, SwiGLU MLP.
//
// A forward pass takes a chunk of S tokens. For every layer the chunk's
// queries, keys and values are computed, the layer's Cache says what the
// chunk attends to (cached keys, their RoPE positions, how to weight the
// attention mass it wants back), attention runs over [cache ; chunk] with a
// causal mask inside the chunk, and the chunk's keys and values plus the
// attention mass go back to the cache, whose eviction policy decides what
// stays. Prefill is a sequence of such chunks; decoding is S = 1.
package model

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"kvcascade/runtime/backend"
	"kvcascade/runtime/safetensors"
)

// Cache is what a layer attends to. policies.Cache implements it.
type Cache interface {
	// View returns the part of layer's cache that the next chunk of n
	// tokens attends to; promptEnd is the position one past the prompt
	// while a prompt is read, -1 while decoding.
	View(layer, n int, promptEnd int64) (*backend.View, error)
	// Update gives the layer the chunk's keys and values [n, Hkv·hd], before
	// RoPE, and the attention mass the view asked for (nil if none).
	Update(layer int, k, v backend.Tensor, mass []float32) error
}

// QueryCache is a Cache whose views may depend on the chunk's queries
// (policies that retrieve stored keys by their match with the queries).
// The session calls Query before each View.
type QueryCache interface {
	Cache
	// Query gives layer the queries [n, Hq·hd], before RoPE, of the chunk
	// whose View comes next.
	Query(layer int, q backend.Tensor) error
}

// RotaryCache is a Cache whose policies need the model's rotary position
// embedding, to rotate keys and recent queries to the positions they model
// (a score of the attention future queries will pay). NewSession hands it
// over before the first chunk.
type RotaryCache interface {
	Cache
	// SetRoPE gives the cache the RoPE inverse frequencies [hd/2], scaling
	// applied, and the factor on cos and sin, as backend.Attention takes
	// them: dimension i rotates with i + hd/2.
	SetRoPE(invFreq []float32, attnFactor float32)
}

// WindowCache is a Cache that says whether its views give every key and
// query its original position. A model with a sliding window
// (Config.SlidingWindow) measures the window in RoPE positions, so it runs
// past the window only on such a cache.
type WindowCache interface {
	Cache
	// OriginalPositions returns nil when every layer's views put keys and
	// queries at their original positions, and otherwise an error saying
	// which policy does not and why.
	OriginalPositions() error
}

// Model holds the weights of a decoder on a backend.
type Model struct {
	Config
	b          backend.Backend
	embed      backend.Tensor // [V, D]
	norm       backend.Tensor // [D]
	lmHead     backend.Tensor // [V, D]; the embedding when tied
	layers     []layer
	invFreq    []float32
	attnFactor float32
	fused      bool // every layer has wqkv and wgu
}

// layer holds one decoder layer's weights. The q, k and v projections live
// in one tensor wqkv, their rows one after the other, and gate and up in
// one tensor wgu, so that decoding runs one product for each (Session's
// forward); wq, wk, wv, gate and up are row slices of them, which prefill's
// chunks multiply by one at a time. A model built without fusion (tests
// only) has wqkv, bqkv and wgu nil and stand-alone tensors for the parts.
type layer struct {
	attnNorm, mlpNorm backend.Tensor // [D]
	wqkv, bqkv        backend.Tensor // [Hq·hd+2·Hkv·hd, D] and its bias [Hq·hd+2·Hkv·hd] or nil
	wq, wk, wv, wo    backend.Tensor // [Hq·hd, D], [Hkv·hd, D] ×2 (slices of wqkv), [D, Hq·hd]
	bq, bk, bv        backend.Tensor // biases (slices of bqkv) or nil
	wgu               backend.Tensor // [2F, D]: gate's rows, then up's
	gate, up, down    backend.Tensor // [F, D], [F, D] (slices of wgu), [D, F]
}

// Load reads the model directory dir (config.json and safetensors weights)
// onto b.
func Load(dir string, b backend.Backend) (*Model, error) {
	return load(dir, b, true)
}

// load is Load, fusing each layer's projections when fuse is set (see
// layer).
func load(dir string, b backend.Backend, fuse bool) (*Model, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("model directory: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("model directory %s: not a directory", dir)
	}
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer set.Close()
	if err := checkWeights(dir, cfg, set); err != nil {
		return nil, err
	}
	return build(cfg, b, func(name string, shape []int) (backend.Tensor, error) {
		info, ok := set.Info(name)
		if !ok {
			return nil, fmt.Errorf("%s: tensor %s missing", dir, name)
		}
		if !slices.Equal(info.Shape, shape) {
			return nil, fmt.Errorf("%s: tensor %s has shape %v, config.json implies %v", dir, name, info.Shape, shape)
		}
		data, err := set.Float32(name, nil)
		if err != nil {
			return nil, err
		}
		for i, v := range data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%s: tensor %s element %d is %v", dir, name, i, v)
			}
		}
		return b.FromFloat32(data, shape...), nil
	}, set.Has, fuse)
}

// checkWeights compares the architecture of cfg with the headers of the
// weight files before anything is sized by it, so that a config.json
// claiming, say, a billion layers is refused with an error rather than
// allocating for them: every layer has at least nine tensors, and the
// weights must hold exactly num_hidden_layers layers. Each tensor's shape is
// then checked against cfg before its data is read (see Load).
func checkWeights(dir string, cfg *Config, set *safetensors.Set) error {
	const perLayer = 9 // two norms, four attention and three MLP projections
	if n := len(set.Names()); cfg.Layers > n/perLayer {
		return fmt.Errorf("%s: config.json has num_hidden_layers %d but the weight files hold only %d tensors, enough for %d layers at most",
			dir, cfg.Layers, n, n/perLayer)
	}
	layerNorm := func(i int) string { return fmt.Sprintf("model.layers.%d.input_layernorm.weight", i) }
	if !set.Has(layerNorm(cfg.Layers - 1)) {
		return fmt.Errorf("%s: config.json has num_hidden_layers %d but tensor %s is missing", dir, cfg.Layers, layerNorm(cfg.Layers-1))
	}
	if set.Has(layerNorm(cfg.Layers)) {
		return fmt.Errorf("%s: config.json has num_hidden_layers %d but the weights hold tensor %s of a further layer", dir, cfg.Layers, layerNorm(cfg.Layers))
	}
	return nil
}

// build creates the model, fetching each tensor by its Hugging Face name.
// When fuse is set each layer's q, k and v projections, and its gate and
// up projections, are copied into one tensor each as soon as the layer is
// loaded (see layer), so that no more than one layer's parts are ever
// stored twice.
func build(cfg *Config, b backend.Backend, get func(name string, shape []int) (backend.Tensor, error), has func(string) bool, fuse bool) (*Model, error) {
	m := &Model{Config: *cfg, b: b, invFreq: cfg.InvFreq(), attnFactor: 1, fused: fuse}
	d, f, hd := cfg.Hidden, cfg.Intermediate, cfg.HeadDim
	qd, kvd := cfg.Heads*hd, cfg.KVHeads*hd
	var err error
	load := func(dst *backend.Tensor, name string, shape ...int) {
		if err == nil {
			*dst, err = get(name, shape)
		}
	}
	load(&m.embed, "model.embed_tokens.weight", cfg.Vocab, d)
	load(&m.norm, "model.norm.weight", d)
	switch {
	case has("lm_head.weight"):
		load(&m.lmHead, "lm_head.weight", cfg.Vocab, d)
	case cfg.TieEmbeddings:
		m.lmHead = m.embed
	default:
		if err == nil {
			err = fmt.Errorf("tensor lm_head.weight missing and tie_word_embeddings is false")
		}
	}
	m.layers = make([]layer, cfg.Layers)
	for i := range m.layers {
		l := &m.layers[i]
		p := fmt.Sprintf("model.layers.%d.", i)
		load(&l.attnNorm, p+"input_layernorm.weight", d)
		load(&l.mlpNorm, p+"post_attention_layernorm.weight", d)
		load(&l.wq, p+"self_attn.q_proj.weight", qd, d)
		load(&l.wk, p+"self_attn.k_proj.weight", kvd, d)
		load(&l.wv, p+"self_attn.v_proj.weight", kvd, d)
		load(&l.wo, p+"self_attn.o_proj.weight", d, qd)
		if cfg.AttentionBias {
			load(&l.bq, p+"self_attn.q_proj.bias", qd)
			load(&l.bk, p+"self_attn.k_proj.bias", kvd)
			load(&l.bv, p+"self_attn.v_proj.bias", kvd)
		}
		load(&l.gate, p+"mlp.gate_proj.weight", f, d)
		load(&l.up, p+"mlp.up_proj.weight", f, d)
		load(&l.down, p+"mlp.down_proj.weight", d, f)
		if err == nil && fuse {
			l.fuse(b)
		}
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// fuse moves the layer's q, k, v projections (and their biases) into wqkv
// (and bqkv), its gate and up projections into wgu, and points the parts
// at their rows.
func (l *layer) fuse(b backend.Backend) {
	var parts []backend.Tensor
	l.wqkv, parts = fuseRows(b, l.wq, l.wk, l.wv)
	l.wq, l.wk, l.wv = parts[0], parts[1], parts[2]
	if l.bq != nil {
		l.bqkv, parts = fuseRows(b, l.bq, l.bk, l.bv)
		l.bq, l.bk, l.bv = parts[0], parts[1], parts[2]
	}
	l.wgu, parts = fuseRows(b, l.gate, l.up)
	l.gate, l.up = parts[0], parts[1]
}

// fuseRows returns a tensor holding the rows of parts (tensors of one
// dtype whose shapes differ at most in the outermost dimension) one after
// the other, and a slice of it for each part in its place. The parts are
// freed.
func fuseRows(b backend.Backend, parts ...backend.Tensor) (backend.Tensor, []backend.Tensor) {
	inner := parts[0].Shape()[1:]
	width := backend.Numel(inner) // elements of a row
	rows := 0
	for _, p := range parts {
		rows += p.Shape()[0]
	}
	fused := b.New(parts[0].DType(), append([]int{rows}, inner...)...)
	views := make([]backend.Tensor, len(parts))
	lo := 0
	for i, p := range parts {
		n := p.Shape()[0]
		views[i] = b.Slice(fused, lo, lo+n)
		// CopySlots copies slots of [heads, slots, hd] storage: here one
		// head whose slots are the part's rows.
		b.CopySlots(b.Reshape(views[i], 1, n, width), b.Reshape(p, 1, n, width), n)
		b.Free(p)
		lo += n
	}
	return fused, views
}

// Backend returns the backend the model lives on.
func (m *Model) Backend() backend.Backend { return m.b }

// Params returns the number of parameters of the architecture (a Model
// has it through its embedded Config).
func (c *Config) Params() int64 {
	d, hd := int64(c.Hidden), int64(c.HeadDim)
	perLayer := 2*d + d*int64(c.Heads)*hd*2 + 2*d*int64(c.KVHeads)*hd + 3*d*int64(c.Intermediate)
	n := int64(c.Layers)*perLayer + int64(c.Vocab)*d + d
	if !c.TieEmbeddings {
		n += int64(c.Vocab) * d
	}
	return n
}
