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
// one layer, hidden size 4, two query heads over one KV head of 2, tied
// embeddings.
const tinyConfig = `{"model_type":"llama","vocab_size":6,"hidden_size":4,"intermediate_size":6,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"head_dim":2,"bos_token_id":4,"tie_word_embeddings":true}`

// tinyTokenizer is a BPE tokenizer.json of six tokens.
const tinyTokenizer = `{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"c":3,"<s>":4,"</s>":5},"merges":["a b"]}}`

// weightsSpec is what FuzzLoadModelDir varies in the weight files it
// writes: their architecture (which the fuzzed config.json may or may not
// match), their dtype and one tensor left out. Hostile headers themselves
// are runtime/safetensors' FuzzParseHeader's job; fuzzing the bytes of a
// whole file here would make every input kilobytes long, and the fuzzer
// would spend its time minimising them.
type weightsSpec struct {
	layers, vocab, hidden, inter int
	bf16                         bool
	drop                         int // index of the tensor to leave out; -1: none
}

// tinyWeights returns the safetensors file s describes (two query heads
// over one KV head of hidden/2).
func tinyWeights(tb testing.TB, s weightsSpec) []byte {
	tb.Helper()
	v, d, f := s.vocab, s.hidden, s.inter
	qd, kvd := d, d/2
	var ts []safetensors.Tensor
	index := 0 // of the tensor add is called for
	add := func(name string, shape ...int) {
		n := 1
		for _, x := range shape {
			n *= x
		}
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = float32(i%7)/7 - 0.4
		}
		data, dtype := safetensors.F32Bytes(vals), "F32"
		if s.bf16 {
			data, dtype = safetensors.BF16Bytes(vals), "BF16"
		}
		if index != s.drop {
			ts = append(ts, safetensors.Tensor{Name: name, DType: dtype, Shape: shape, Data: data})
		}
		index++
	}
	add("model.embed_tokens.weight", v, d)
	add("model.norm.weight", d)
	for i := 0; i < s.layers; i++ {
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

// tinySpec is the weights of tinyConfig.
var tinySpec = weightsSpec{layers: 1, vocab: 6, hidden: 4, inter: 6, drop: -1}

// FuzzLoadModelDir loads whole model directories (a fuzzed config.json and
// tokenizer.json beside weight files of a fuzzed small architecture):
// loading must never panic or abort, and never allocate much more than the
// files hold (a config.json may not size anything the weights do not back).
func FuzzLoadModelDir(f *testing.F) {
	f.Add([]byte(tinyConfig), []byte(tinyTokenizer), uint8(1), uint8(6), uint8(4), uint8(6), false, uint8(255))
	f.Add([]byte(tinyConfig), []byte(tinyTokenizer), uint8(1), uint8(6), uint8(4), uint8(6), true, uint8(255))
	f.Add(bytes.Replace([]byte(tinyConfig), []byte(`"num_hidden_layers":1`), []byte(`"num_hidden_layers":1000000000`), 1), []byte(`{}`), uint8(1), uint8(6), uint8(4), uint8(6), false, uint8(255))
	f.Add(bytes.Replace([]byte(tinyConfig), []byte(`"num_hidden_layers":1`), []byte(`"num_hidden_layers":2`), 1), []byte(`{"model":null}`), uint8(2), uint8(6), uint8(4), uint8(6), false, uint8(5))
	// One folder, rewritten by every input (inputs of a process run one at
	// a time), in memory where the system has a memory file system: writing
	// three files to disk costs more than loading them.
	dir := f.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if shm, err := os.MkdirTemp("/dev/shm", "kvcascade-fuzz-"); err == nil {
			dir = shm
			f.Cleanup(func() { os.RemoveAll(shm) })
		}
	}
	f.Fuzz(func(t *testing.T, config, tok []byte, layers, vocab, hidden, inter uint8, bf16 bool, drop uint8) {
		spec := weightsSpec{layers: int(layers % 5), vocab: 1 + int(vocab%16), hidden: 2 * (1 + int(hidden%8)), inter: 1 + int(inter%16), bf16: bf16, drop: int(drop)}
		if drop == 255 {
			spec.drop = -1
		}
		weights := tinyWeights(t, spec)
		for name, data := range map[string][]byte{"config.json": config, "model.safetensors": weights, "tokenizer.json": tok} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		input := uint64(len(config) + len(weights) + len(tok))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m, err := model.Load(dir, cpu.New(1))
		if err == nil && (m.Layers != spec.layers || m.Vocab != spec.vocab || m.Hidden != spec.hidden) {
			t.Fatalf("loaded %d layers, vocabulary %d, hidden size %d from weights of %+v", m.Layers, m.Vocab, m.Hidden, spec)
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
	for _, bf16 := range []bool{false, true} {
		spec := tinySpec
		spec.bf16 = bf16
		dir := t.TempDir()
		for name, data := range map[string][]byte{"config.json": []byte(tinyConfig), "model.safetensors": tinyWeights(t, spec), "tokenizer.json": []byte(tinyTokenizer)} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := model.Load(dir, cpu.New(1)); err != nil {
			t.Errorf("bf16 %v seed: %v", bf16, err)
		}
		tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
		if err != nil {
			t.Fatalf("seed tokenizer: %v", err)
		}
		if ids := tok.Encode("abc", false); len(ids) != 2 || ids[0] != 2 {
			t.Errorf("seed tokenizer encodes abc as %v, want [2 3]", ids)
		}
	}
}
