package model_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
	"kvcascade/runtime/safetensors"
	"kvcascade/runtime/tokenizer"
)

// tinyConfig is the config.json of the smallest model the fuzz seeds use:
// one layer, hidden size 4, two query heads over one KV head of 2.
const tinyConfig = `{"model_type": "llama", "vocab_size": 6, "hidden_size": 4, "intermediate_size": 6,
 "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 2,
 "rms_norm_eps": 1e-5, "bos_token_id": 4, "eos_token_id": 5, "tie_word_embeddings": true}`

// tinyTokenizer is a byte-level BPE tokenizer.json of six tokens.
const tinyTokenizer = `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3, "<s>": 4, "</s>": 5}, "merges": ["a b"]},
 "added_tokens": [{"id": 4, "content": "<s>", "special": true}, {"id": 5, "content": "</s>", "special": true}],
 "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [4], "tokens": ["<s>"]}}}}`

// tinyWeights returns the safetensors file of tinyConfig's model in dtype
// (F32 or BF16), or with layers layers.
func tinyWeights(tb testing.TB, dtype string, layers int) []byte {
	tb.Helper()
	const v, d, f, qd, kvd = 6, 4, 6, 4, 2
	var ts []safetensors.Tensor
	add := func(name string, shape ...int) {
		n := 1
		for _, s := range shape {
			n *= s
		}
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = float32(i%7)/7 - 0.4
		}
		data := safetensors.F32Bytes(vals)
		if dtype == "BF16" {
			data = safetensors.BF16Bytes(vals)
		}
		ts = append(ts, safetensors.Tensor{Name: name, DType: dtype, Shape: shape, Data: data})
	}
	add("model.embed_tokens.weight", v, d)
	add("model.norm.weight", d)
	for i := 0; i < layers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		add(p+"input_layernorm.weight", d)
		add(p+"post_attention_layernorm.weight", d)
		add(p+"self_attn.q_proj.weight", qd, d)
		add(p+"self_attn.k_proj.weight", kvd, d)
		add(p+"self_attn.v_proj.weight", kvd, d)
		add(p+"self_attn.o_proj.weight", d, qd)
		add(p+"mlp.gate_proj.weight", f, d)
		add(p+"mlp.up_proj.weight", f, d)
		add(p+"mlp.down_proj.weight", d, f)
	}
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, ts, nil); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzLoadModelDir loads whole model directories (config.json, one
// safetensors file and tokenizer.json) from fuzzed bytes: loading must
// never panic or abort, and never allocate much more than the files hold
// (a config.json may not size anything the weight files do not back).
func FuzzLoadModelDir(f *testing.F) {
	f.Add([]byte(tinyConfig), tinyWeights(f, "F32", 1), []byte(tinyTokenizer))
	f.Add([]byte(tinyConfig), tinyWeights(f, "BF16", 1), []byte(tinyTokenizer))
	f.Add(bytes.Replace([]byte(tinyConfig), []byte(`"num_hidden_layers": 1`), []byte(`"num_hidden_layers": 1000000000`), 1), tinyWeights(f, "F32", 1), []byte(`{}`))
	f.Add(bytes.Replace([]byte(tinyConfig), []byte(`"num_hidden_layers": 1`), []byte(`"num_hidden_layers": 2`), 1), tinyWeights(f, "F32", 2), []byte(`{"model": null}`))
	f.Add([]byte(`{}`), []byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '}, []byte(``))
	f.Fuzz(func(t *testing.T, config, weights, tok []byte) {
		dir := t.TempDir()
		for name, data := range map[string][]byte{"config.json": config, "model.safetensors": weights, "tokenizer.json": tok} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		input := uint64(len(config) + len(weights) + len(tok))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m, err := model.Load(dir, cpu.New(1))
		if err == nil && (m.Layers <= 0 || m.Vocab <= 0) {
			t.Fatalf("loaded a model of %d layers and vocabulary %d", m.Layers, m.Vocab)
		}
		_, _ = tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
		runtime.ReadMemStats(&after)
		// Weights are decoded to float32 (twice the bytes of BF16) and
		// copied to the backend; maps of the tokenizer cost tens of bytes
		// per input byte. A fixed allowance covers the backend and buffers.
		const perByte, fixed = 64, 4 << 20
		if got := after.TotalAlloc - before.TotalAlloc; got > perByte*input+fixed {
			t.Fatalf("loading %d bytes of model files allocated %d bytes (limit %d)", input, got, perByte*input+fixed)
		}
	})
}

// TestFuzzSeedsLoad checks that FuzzLoadModelDir starts from directories
// that load, so that the fuzzer explores past the first checks.
func TestFuzzSeedsLoad(t *testing.T) {
	for _, dtype := range []string{"F32", "BF16"} {
		dir := t.TempDir()
		for name, data := range map[string][]byte{"config.json": []byte(tinyConfig), "model.safetensors": tinyWeights(t, dtype, 1), "tokenizer.json": []byte(tinyTokenizer)} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := model.Load(dir, cpu.New(1)); err != nil {
			t.Errorf("%s seed: %v", dtype, err)
		}
		tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
		if err != nil {
			t.Fatalf("%s seed tokenizer: %v", dtype, err)
		}
		if ids := tok.Encode("abc", true); len(ids) < 2 || ids[0] != 4 {
			t.Errorf("seed tokenizer encodes abc as %v, want BOS 4 first", ids)
		}
	}
}
