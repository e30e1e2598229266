package main

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/runtime/safetensors"
)

// TestGenerateNonFiniteLogits runs generate on a copy of the model fixture
// whose final norm weights (3.4e38) make every logit overflow: it must
// fail naming the non-finite logits rather than print the argmax of NaN.
func TestGenerateNonFiniteLogits(t *testing.T) {
	src := filepath.Join("..", "..", "runtime", "model", "testdata", "llama")
	dir := t.TempDir()
	for _, name := range []string{"config.json", "tokenizer.json"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := safetensors.Open(filepath.Join(src, "model.safetensors"))
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
	code, stdout, stderr := run(t, "generate", "--model", dir, "--prompt", "the mill by the river", "--max-new", "4")
	if code == 0 || !strings.Contains(stderr, "non-finite logits") || !strings.Contains(stderr, "model.norm output") {
		t.Errorf("generate exited %d, stdout %q, stderr %q; want a failure naming the non-finite logits and model.norm", code, stdout, stderr)
	}
}
