// Package models embeds the models kvcascade ships, so that any build of the
// binary can run real experiments without weight files: "tiny" is a 5.2M
// parameter Llama trained at 1,024 tokens, "mini" a 7.6M parameter one
// trained at 4,096 tokens, both by tools/train_tiny (see
// models/tiny/README.md and models/mini/README.md).
//
// An embedded model is written once to a cache folder (under the user's
// cache directory, named by a hash of its files) and loaded from there like
// any Hugging Face model directory.
package models

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

//go:embed tiny/config.json tiny/generation_config.json tiny/tokenizer.json tiny/model.safetensors
//go:embed mini/config.json mini/generation_config.json mini/tokenizer.json mini/model.safetensors
var files embed.FS

// Names returns the names of the embedded models.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// Dir returns a model directory holding the embedded model name, writing it
// to the cache folder on first use.
func Dir(name string) (string, error) {
	entries, err := fs.ReadDir(files, name)
	if err != nil || name == "." || name == "" {
		return "", fmt.Errorf("no embedded model %q (embedded: %v)", name, Names())
	}
	h := sha256.New()
	for _, e := range entries {
		data, err := files.ReadFile(name + "/" + e.Name())
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", e.Name(), len(data))
		h.Write(data)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "kvcascade", "models", name+"-"+hex.EncodeToString(h.Sum(nil))[:16])
	if complete(dir, entries) {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("embedded model %s: %w", name, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), name+".tmp-")
	if err != nil {
		return "", fmt.Errorf("embedded model %s: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	for _, e := range entries {
		data, _ := files.ReadFile(name + "/" + e.Name())
		if err := os.WriteFile(filepath.Join(tmp, e.Name()), data, 0o644); err != nil {
			return "", fmt.Errorf("embedded model %s: %w", name, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil && !complete(dir, entries) {
		return "", fmt.Errorf("embedded model %s: %w", name, err)
	}
	return dir, nil
}

// complete reports whether dir holds every file of entries at its size.
func complete(dir string, entries []fs.DirEntry) bool {
	for _, e := range entries {
		want, err := e.Info()
		if err != nil {
			return false
		}
		got, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil || got.Size() != want.Size() {
			return false
		}
	}
	return true
}
