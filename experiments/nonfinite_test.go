package experiments_test

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/experiments"
	"kvcascade/policies"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
	"kvcascade/runtime/safetensors"
)

// overflowEnv returns an environment on a copy of the fixture whose final
// norm weights are 3.4e38: finite, so the model loads, but every logit
// overflows to ±Inf or NaN.
func overflowEnv(t *testing.T) *experiments.Env {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"config.json", "tokenizer.json"} {
		data, err := os.ReadFile(filepath.Join(fixtureDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := safetensors.Open(filepath.Join(fixtureDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []safetensors.Tensor
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		data, err := f.Bytes(name)
		if err != nil {
			t.Fatal(err)
		}
		data = append([]byte(nil), data...)
		if name == "model.norm.weight" {
			for i := 0; i+4 <= len(data); i += 4 {
				binary.LittleEndian.PutUint32(data[i:], math.Float32bits(3.4e38))
			}
		}
		ts = append(ts, safetensors.Tensor{Name: name, DType: info.DType, Shape: info.Shape, Data: data})
	}
	out, err := os.Create(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := safetensors.Write(out, ts, nil); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(dir, cpu.New(1))
	if err != nil {
		t.Fatal(err)
	}
	_, tok := loadFixture(t)
	pol, err := policies.New("full", nil)
	if err != nil {
		t.Fatal(err)
	}
	return &experiments.Env{Model: m, Tokenizer: tok, Policy: pol, Chunk: 16}
}

// TestNonFiniteLogitsFailThePoint runs every generating experiment on a
// model whose logits overflow: each must fail naming the non-finite logits,
// the generation step and where they first appeared, instead of scoring
// the argmax of NaN (token 0) as an answer.
func TestNonFiniteLogitsFailThePoint(t *testing.T) {
	trec := writeFile(t, "trec.jsonl", `{"input": "Who built the mill?", "context": "Question: Who founded the city?\nType: Human being", "answers": ["Human being"], "all_classes": ["Human being", "Location"], "length": 9, "dataset": "trec", "language": "en", "_id": "a"}`+"\n")
	cases := []struct {
		exp  string
		raw  map[string]any
		want []string
	}{
		{"passkey", map[string]any{"length": passkeyLength, "samples": 2, "words": passkeyWords(t), "max_new": 4},
			[]string{"sample 0", "generation step 0", "non-finite logits", "model.norm output"}},
		{"longbench", map[string]any{"data": trec},
			[]string{"trec.jsonl line 1", "generation step 0", "non-finite logits", "model.norm output"}},
		{"perplexity", map[string]any{"text": writeFile(t, "text.txt", strings.Repeat("the mill by the river turns ", 20)), "tokens": 40},
			[]string{"non-finite logits", "model.norm output"}},
		{"latency", map[string]any{"length": 32, "decode_tokens": 4, "warmup": false},
			[]string{"non-finite logits"}},
	}
	for _, c := range cases {
		t.Run(c.exp, func(t *testing.T) {
			e, err := experiments.Lookup(c.exp)
			if err != nil {
				t.Fatal(err)
			}
			p, err := experiments.Resolve(e, c.raw)
			if err != nil {
				t.Fatalf("resolve %v: %v", c.raw, err)
			}
			r, err := e.Run(context.Background(), overflowEnv(t), p)
			if err == nil {
				t.Fatalf("%s on overflowing weights succeeded: %+v", c.exp, r)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}
