package model_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
	"kvcascade/runtime/safetensors"
)

// brokenDir copies the llama fixture's config.json into a new folder and
// writes weights from the fixture's, changed by edit.
func brokenDir(t *testing.T, edit func([]safetensors.Tensor) []safetensors.Tensor) string {
	t.Helper()
	src := "testdata/llama"
	dir := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
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
		ts = append(ts, safetensors.Tensor{Name: name, DType: info.DType, Shape: info.Shape, Data: append([]byte(nil), data...)})
	}
	out, err := os.Create(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := safetensors.Write(out, edit(ts), nil); err != nil {
		t.Fatal(err)
	}
	return dir
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
