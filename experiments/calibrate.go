package experiments

import (
	"context"
	"fmt"
	"sync"

	"kvcascade/datasets/passkey"
	"kvcascade/policies"
)

// Calibrations memoises the calibration runs of one model
// (policies.Calibrator): the first point that needs a measurement runs it,
// the others with the same request reuse it. The zero value is empty and
// ready; it is safe for concurrent use.
type Calibrations struct {
	mu   sync.Mutex
	runs map[string]*calibration
}

// calibration is one run, done once.
type calibration struct {
	once   sync.Once
	scores policies.HeadScores
	err    error
}

// get returns the run keyed key, running it with run the first time.
func (c *Calibrations) get(key string, run func() (policies.HeadScores, error)) (policies.HeadScores, error) {
	c.mu.Lock()
	if c.runs == nil {
		c.runs = map[string]*calibration{}
	}
	r, ok := c.runs[key]
	if !ok {
		r = &calibration{}
		c.runs[key] = r
	}
	c.mu.Unlock()
	r.once.Do(func() { r.scores, r.err = run() })
	return r.scores, r.err
}

// calibrationDepthBin is the depth bin of the calibration prompt's key: the
// middle of the filler, as far from the sinks as from the window.
const calibrationDepthBin = 2

// calibrated returns f ready to make caches: f itself, or, for a
// policies.Calibrator, the factory its calibration on the point's model
// gives. The calibration prompt is the plain passkey prompt of the
// request's length and seed (depth bin 2, sample 0, the embedded word
// list), read with full attention in the point's chunks, its last
// req.Probe tokens as a chunk of their own; it runs once per model,
// request and chunk size where Env.Calibrations is shared, else once per
// Env.
func (e *Env) calibrated(ctx context.Context, f policies.Factory) (policies.Factory, error) {
	c, ok := f.(policies.Calibrator)
	if !ok {
		return f, nil
	}
	if e.Calibrations == nil {
		e.Calibrations = &Calibrations{}
	}
	req := c.Calibration()
	chunk := e.Chunk
	if chunk <= 0 {
		chunk = req.Length
	}
	// the chunks change the sums' rounding, so they are part of the key
	key := fmt.Sprintf("%s; chunks of %d", req.Key, chunk)
	scores, err := e.Calibrations.get(key, func() (policies.HeadScores, error) {
		if e.Tokenizer == nil {
			return nil, fmt.Errorf("no tokenizer to write the calibration prompt with")
		}
		cfg := passkey.Config{Length: req.Length, DepthBin: calibrationDepthBin, Seed: req.Seed}
		s, err := passkey.Generate(cfg, e.Tokenizer, passkey.Rand(req.Seed, req.Length, calibrationDepthBin, 0))
		if err != nil {
			return nil, err
		}
		ids := e.Tokenizer.Encode(s.Prompt, true)
		if len(ids) <= req.Probe {
			return nil, fmt.Errorf("calibration prompt of %d tokens, not more than the %d measured", len(ids), req.Probe)
		}
		probe, result := c.Probe(len(ids))
		cache, err := e.newCacheOf(probe)
		if err != nil {
			return nil, err
		}
		defer cache.Free()
		sess := e.Model.NewSession(cache, chunk)
		defer sess.Close()
		split := len(ids) - req.Probe
		if _, err := sess.Prefill(ctx, ids[:split], nil); err != nil {
			return nil, err
		}
		if _, err := sess.Prefill(ctx, ids[split:], nil); err != nil {
			return nil, err
		}
		return result()
	})
	if err != nil {
		return nil, fmt.Errorf("policy %s: calibration (%s): %w", f.Name(), key, err)
	}
	return c.Calibrated(scores)
}
