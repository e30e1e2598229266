package sweep

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"kvcascade/experiments"
	"kvcascade/models"
	"kvcascade/runtime/model"
	"kvcascade/runtime/safetensors"
	"kvcascade/runtime/tokenizer"
)

// CheckFiles opens everything the sweep names before anything runs: every
// embedded model's name is checked, every model directory (config.json checked, the safetensors headers read,
// tokenizer.json parsed) and every file or folder an experiment parameter
// names (word lists, texts, LongBench files, read far enough to know the
// points can use them; see experiments.CheckFiles). Relative paths resolve
// against the sweep file's folder, for every key. Problems are reported as
// FILE:LINE:COL: KEY: message, once per file and key however many points
// use them.
func (s *Sweep) CheckFiles() error {
	if s == nil || len(s.models) == 0 {
		return errors.New("sweep has no points: make it with Parse or Load")
	}
	c := &checker{file: s.File, loc: newLocator([]byte(s.Text))}
	for i, m := range s.models {
		if m.Name != "" {
			if !slices.Contains(models.Names(), m.Name) {
				c.errorf(s.modelAt[i].with("name"), "no embedded model %q (embedded: %s; a model directory is set with path)",
					m.Name, strings.Join(models.Names(), ", "))
			}
			continue
		}
		if err := checkModelDir(m.Path); err != nil {
			c.errorf(s.modelAt[i].with("path"), "%v", err)
		}
	}
	files := &experiments.Files{}
	for j := range s.experiments {
		e := &s.experiments[j]
		for _, cb := range s.settings[j] {
			if err := experiments.CheckFiles(s.exps[j], cb.run, files); err != nil {
				c.errorf(e.blameAt(err, cb), "%v", err)
			}
		}
	}
	return c.err()
}

// checkModelDir opens a Hugging Face model directory the way loading it
// starts: config.json, the safetensors headers, tokenizer.json.
func checkModelDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("model directory %s does not exist", dir)
	case err != nil:
		return fmt.Errorf("model directory: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("model directory %s is not a directory", dir)
	}
	cfg, err := model.LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return err
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return err
	}
	set.Close()
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return err
	}
	if tok.VocabSize() > cfg.Vocab {
		return fmt.Errorf("%s: tokenizer has %d tokens but config.json's vocab_size is %d", dir, tok.VocabSize(), cfg.Vocab)
	}
	return nil
}
