package model_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/internal/modeltest"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
	"kvcascade/runtime/safetensors"
)

// brokenDir copies the llama fixture into a new folder with its weights
// changed by edit.
func brokenDir(t *testing.T, edit func([]safetensors.Tensor) []safetensors.Tensor) string {
	t.Helper()
	return modeltest.EditedCopy(t, "testdata/llama", edit)
}

func TestLoadBadModelDirs(t *testing.T) {
	cases := []struct {
		name string
		edit func([]safetensors.Tensor) []safetensors.Tensor
		want string
	}{
		{"missing tensor", func(ts []safetensors.Tensor) []safetensors.Tensor {
			var out []safetensors.Tensor
			for _, x := range ts {
				if x.Name != "model.layers.1.mlp.up_proj.weight" {
					out = append(out, x)
				}
			}
			return out
		}, "model.layers.1.mlp.up_proj.weight missing"},
		{"wrong shape", func(ts []safetensors.Tensor) []safetensors.Tensor {
			for i, x := range ts {
				if x.Name == "model.norm.weight" {
					ts[i].Shape = []int{x.Shape[0] / 2, 2}
				}
			}
			return ts
		}, "model.norm.weight has shape"},
		{"NaN weight", func(ts []safetensors.Tensor) []safetensors.Tensor {
			for i, x := range ts {
				if x.Name == "model.norm.weight" && x.DType == "F32" {
					copy(ts[i].Data[4:8], []byte{0x00, 0x00, 0xc0, 0x7f})
				}
			}
			return ts
		}, "model.norm.weight element 1 is NaN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := brokenDir(t, c.edit)
			_, err := model.Load(dir, cpu.New(1))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %v, want one naming %s and %q", err, dir, c.want)
			}
		})
	}
	if _, err := model.Load(filepath.Join(t.TempDir(), "nope"), cpu.New(1)); err == nil {
		t.Error("missing directory loaded")
	}
	empty := t.TempDir()
	if _, err := model.Load(empty, cpu.New(1)); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("empty directory: %v", err)
	}
}

// TestLoadConfigAgainstWeights loads the llama fixture's weights under an
// edited config.json: counts that disagree with the weights, however large,
// must give an error naming the field, not allocate for them.
func TestLoadConfigAgainstWeights(t *testing.T) {
	src := "testdata/llama"
	cfg, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	weights, err := os.ReadFile(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, from, to, want string
	}{
		{"billion layers", `"num_hidden_layers": 3`, `"num_hidden_layers": 1000000000`, "num_hidden_layers must be in [1, 4096], got 1000000000"},
		{"more layers than tensors", `"num_hidden_layers": 3`, `"num_hidden_layers": 4000`, "enough for 3 layers at most"},
		{"one layer more", `"num_hidden_layers": 3`, `"num_hidden_layers": 4`, "enough for 3 layers at most"},
		{"one layer less", `"num_hidden_layers": 3`, `"num_hidden_layers": 2`, "model.layers.2.input_layernorm.weight of a further layer"},
		{"wide hidden", `"hidden_size": 64`, `"hidden_size": 131072`, "model.embed_tokens.weight has shape [512 64], config.json implies [512 131072]"},
		{"wide vocab", `"vocab_size": 512`, `"vocab_size": 16000000`, "model.embed_tokens.weight has shape [512 64], config.json implies [16000000 64]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			edited := strings.Replace(string(cfg), c.from, c.to, 1)
			if edited == string(cfg) {
				t.Fatalf("%q not in the fixture's config.json", c.from)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(edited), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), weights, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := model.Load(dir, cpu.New(1))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %v, want one naming %s and %q", err, dir, c.want)
			}
		})
	}
}
