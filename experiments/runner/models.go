package runner

import (
	"fmt"
	"path/filepath"
	"sync"

	"kvcascade/experiments"
	"kvcascade/experiments/sweep"
	"kvcascade/models"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/backends"
	"kvcascade/runtime/model"
	"kvcascade/runtime/tokenizer"
)

// Loaded is a model with its tokenizer, ready to run.
type Loaded struct {
	Model     *model.Model
	Tokenizer *tokenizer.Tokenizer
	Dir       string
	// Calibrations are the calibration runs made on Model, shared by
	// every point that runs on it.
	Calibrations *experiments.Calibrations
}

// ModelLoader loads each model once and shares it between points; models
// are read-only once loaded, so workers may use one at the same time.
type ModelLoader struct {
	mu     sync.Mutex
	loaded map[string]*Loaded
}

// NewModelLoader returns a loader that has loaded nothing yet.
func NewModelLoader() *ModelLoader { return &ModelLoader{loaded: map[string]*Loaded{}} }

// Get returns the model ref names on the backend spec chooses, opening the
// backend and loading the model on first use.
func (c *ModelLoader) Get(ref sweep.ModelRef, spec backend.Spec) (*Loaded, error) {
	key := spec.String() + "\x00" + ref.Name + "\x00" + ref.Path
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.loaded[key]; ok {
		return l, nil
	}
	dir := ref.Path
	if ref.Name != "" {
		d, err := models.Dir(ref.Name)
		if err != nil {
			return nil, err
		}
		dir = d
	}
	b, err := backends.Open(spec)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", spec, err)
	}
	m, err := model.Load(dir, b)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() > m.Vocab {
		return nil, fmt.Errorf("%s: tokenizer has %d tokens but config.json's vocab_size is %d", dir, tok.VocabSize(), m.Vocab)
	}
	l := &Loaded{Model: m, Tokenizer: tok, Dir: dir, Calibrations: &experiments.Calibrations{}}
	c.loaded[key] = l
	return l, nil
}
