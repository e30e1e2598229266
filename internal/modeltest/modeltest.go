// Package modeltest makes model directories for tests: a copy of a fixture
// with its weights changed, to check how loading and running a model
// answer weights that are wrong; and it loads the embedded tiny model.
package modeltest

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"kvcascade/models"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
	"kvcascade/runtime/safetensors"
	"kvcascade/runtime/tokenizer"
)

// EditedCopy copies the model directory src (config.json, and
// tokenizer.json where it has one) into a new temporary folder and writes
// its model.safetensors with the tensors edit returns, given a copy of
// src's. It returns the folder.
func EditedCopy(t testing.TB, src string, edit func([]safetensors.Tensor) []safetensors.Tensor) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"config.json", "tokenizer.json"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if os.IsNotExist(err) && name != "config.json" {
			continue
		}
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
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Fill returns an edit for EditedCopy that sets every value of the float32
// tensor called name to v (3.4e38 in the final norm makes every logit
// overflow while the weights stay finite).
func Fill(name string, v float32) func([]safetensors.Tensor) []safetensors.Tensor {
	return func(ts []safetensors.Tensor) []safetensors.Tensor {
		for _, x := range ts {
			if x.Name == name {
				for i := 0; i+4 <= len(x.Data); i += 4 {
					binary.LittleEndian.PutUint32(x.Data[i:], math.Float32bits(v))
				}
			}
		}
		return ts
	}
}

// Tiny loads the embedded tiny model on the CPU backend with its
// tokenizer, for tests that need a trained model.
func Tiny(t testing.TB) (*model.Model, *tokenizer.Tokenizer) {
	t.Helper()
	dir, err := models.Dir("tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(dir, cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	return m, tok
}
