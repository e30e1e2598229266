// Package runner executes the points of a sweep into a results database:
// it registers the sweep's points, hands them out to workers through the
// database (so that several workers and processes share one sweep and a
// crash loses nothing finished), runs each point's experiment and stores
// its outcome in one transaction.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"kvcascade/experiments"
	"kvcascade/experiments/sweep"
	"kvcascade/plots/figure"
	"kvcascade/policies/params"
	"kvcascade/results"
	"kvcascade/runtime/backend"
)

// Options control a run.
type Options struct {
	// Workers is the number of points run at once (default 1). Each worker
	// uses all cores for its matrix products, so more than one pays only
	// when points are small.
	Workers int
	// Force re-runs points that are already done or failed. Without it,
	// failed points run again and done ones never do.
	Force bool
	// KeepFailed leaves failed points failed instead of running them again:
	// for the workers of one run (--gpus, Slurm tasks), whose parent
	// decided what runs.
	KeepFailed bool
	// Worker names this process in the database (default host:pid).
	Worker string
	// Heartbeat is how often a running point is marked alive (default 5 s),
	// and StaleAfter how old a heartbeat may be before the point is taken
	// as abandoned by a dead worker and handed out again (default 1 min).
	Heartbeat, StaleAfter time.Duration
	// Progress receives progress output; nil discards it.
	Progress io.Writer
	// TTY draws a progress bar on one line instead of one line per point.
	TTY bool
	// Width is the terminal's width in columns, which the bar never
	// exceeds (default 80).
	Width int
	// Shard, when Of > 1, restricts the run to the points whose index in
	// the sweep's order is congruent to Index modulo Of.
	Shard Shard
	// Models resolves a sweep's model reference to a loaded model.
	Models *ModelLoader
	// GPU and Driver describe the device for provenance ("" = unknown).
	// For points whose backend is "cuda" the GPUMonitor's name and driver
	// take their place.
	GPU, Driver string
	// GPUMonitor samples the GPU every 200 ms while a point whose backend
	// is "cuda" runs, storing the samples as the point's telemetry and
	// their peak memory and mean power as its metrics. Nil: Run opens NVML
	// on CUDA device 0 when the sweep has such points; where NVML is absent
	// nothing is sampled and the GPU is recorded as unknown.
	GPUMonitor GPUMonitor
}

// Shard is one part of a sweep split over several runs.
type Shard struct{ Index, Of int }

// Summary counts what a run did.
type Summary struct {
	Planned  int // points of the sweep (of this shard)
	Skipped  int // already done before this run (in this or another version of the sweep)
	Carried  int // of those, found done in another version of the sweep by their hash
	Ran      int // run by this process
	Failed   int // of those, failed
	Counts   results.Counts
	SweepID  int64
	Duration time.Duration
}

// Register adds the sweep's current version and its points (of the shard)
// to db, carries over the outcome of every point already done in another
// version of the sweep (results.DB.CarryOver), and returns the version's
// id and the points.
func Register(db *results.DB, s *sweep.Sweep, shard Shard) (int64, []sweep.Point, error) {
	id, pts, _, err := register(db, s, shard)
	return id, pts, err
}

func register(db *results.DB, s *sweep.Sweep, shard Shard) (int64, []sweep.Point, int, error) {
	pts, err := s.Points()
	if err != nil {
		return 0, nil, 0, err
	}
	if shard.Of > 1 {
		var mine []sweep.Point
		for i, p := range pts {
			if i%shard.Of == shard.Index {
				mine = append(mine, p)
			}
		}
		pts = mine
	}
	id, err := db.EnsureSweep(s.Name, s.Text)
	if err != nil {
		return 0, nil, 0, err
	}
	specs := make([]results.PointSpec, len(pts))
	for i, p := range pts {
		if specs[i], err = pointSpec(p); err != nil {
			return 0, nil, 0, fmt.Errorf("point %s: %w", p.Hash, err)
		}
	}
	if _, err := db.AddPoints(id, specs); err != nil {
		return 0, nil, 0, err
	}
	carried, err := db.CarryOver(id)
	if err != nil {
		return 0, nil, 0, err
	}
	return id, pts, carried, nil
}

// pointSpec is a point as the results store keeps it: model, experiment
// and policy (its label) have columns of their own; params holds the
// point's settings (chunk, backend, its options where not the defaults,
// and the registered policy name as policy_name where a label differs);
// the experiment's parameters (in the order it declares them) and the
// policy's are stored apart, with the figures the experiment draws.
func pointSpec(p sweep.Point) (results.PointSpec, error) {
	settings := map[string]any{"chunk": p.Chunk, "backend": p.Backend.Name}
	if !p.Backend.IsDefault() {
		settings["backend_options"] = p.Backend.String()
	}
	if p.Label != p.Policy {
		settings["policy_name"] = p.Policy
	}
	exp, err := p.Definition()
	if err != nil {
		return results.PointSpec{}, err
	}
	var order []string
	for _, prm := range exp.Params() {
		order = append(order, prm.Name)
	}
	expParams, err := results.OrderedObject(p.ExperimentParams, order)
	if err != nil {
		return results.PointSpec{}, fmt.Errorf("experiment params: %w", err)
	}
	pol := p.PolicyParams
	if pol == nil {
		pol = params.Values{}
	}
	polParams, err := json.Marshal(pol)
	if err != nil {
		return results.PointSpec{}, fmt.Errorf("policy params: %w", err)
	}
	return results.PointSpec{Hash: p.Hash, Experiment: p.Experiment, Model: p.Model.String(), Policy: p.Label,
		Params: settings, ExperimentParams: expParams, PolicyParams: polParams, Figures: figure.Strings(exp.Figures())}, nil
}

// Run runs every pending point of the sweep (of the shard) and returns what
// it did. A point that fails is stored as failed and the run goes on; the
// error returned is for the run itself (database, cancellation).
func Run(ctx context.Context, db *results.DB, s *sweep.Sweep, opt Options) (Summary, error) {
	start := time.Now()
	opt.defaults()
	id, pts, carried, err := register(db, s, opt.Shard)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Planned: len(pts), SweepID: id, Carried: carried}
	if opt.GPUMonitor == nil && slices.ContainsFunc(pts, func(p sweep.Point) bool { return p.Backend.Name == "cuda" }) {
		if m, closeMonitor, err := openGPUMonitor(); err == nil { // else: no telemetry, GPU unknown
			defer closeMonitor()
			opt.GPUMonitor = m
		}
	}
	byHash := make(map[string]sweep.Point, len(pts))
	hashes := make([]string, len(pts))
	for i, p := range pts {
		byHash[p.Hash] = p
		hashes[i] = p.Hash
	}
	switch {
	case opt.Force:
		if _, err := db.ResetPoints(id, hashes); err != nil {
			return sum, err
		}
	case !opt.KeepFailed:
		if _, err := db.ResetFailed(id, hashes); err != nil {
			return sum, err
		}
	}
	if _, err := db.ResetStale(id, opt.StaleAfter); err != nil {
		return sum, err
	}
	rows, err := db.Points(results.Filter{SweepID: id})
	if err != nil {
		return sum, err
	}
	pending := 0
	for _, r := range rows {
		if _, mine := byHash[r.Hash]; !mine || r.SweepID != id {
			continue
		}
		switch r.Status {
		case results.Done:
			sum.Skipped++
		case results.Pending:
			pending++
		}
	}
	prog := newProgress(opt.Progress, opt.TTY, opt.Width, pending, start)

	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < opt.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				p, err := db.ClaimAmong(id, fmt.Sprintf("%s/%d", opt.Worker, w), hashes)
				if err != nil || p == nil {
					if err != nil {
						mu.Lock()
						firstErr = errors.Join(firstErr, err)
						mu.Unlock()
					}
					return
				}
				pt := byHash[p.Hash] // ClaimAmong hands out only this run's points
				prog.begin(pt)
				outcome := runPoint(ctx, db, p, pt, opt)
				if ctx.Err() != nil {
					// Interrupted: the point goes back to pending at once, so
					// that the next run takes it up.
					if err := db.Release(p); err != nil && !errors.Is(err, results.ErrClaimLost) {
						mu.Lock()
						firstErr = errors.Join(firstErr, err)
						mu.Unlock()
					}
					return
				}
				if err := db.Finish(p, outcome); errors.Is(err, results.ErrClaimLost) {
					continue // another worker took the point over; its result counts
				} else if err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
					return
				}
				mu.Lock()
				sum.Ran++
				if outcome.Err != nil {
					sum.Failed++
				}
				mu.Unlock()
				prog.end(pt, outcome)
			}
		}()
	}
	wg.Wait()
	prog.finish()
	sum.Duration = time.Since(start)
	if c, err := db.Status(id); err == nil {
		sum.Counts = c
	} else {
		firstErr = errors.Join(firstErr, err)
	}
	if err := ctx.Err(); err != nil {
		firstErr = errors.Join(firstErr, err)
	}
	return sum, firstErr
}

func (o *Options) defaults() {
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Worker == "" {
		host, _ := os.Hostname()
		o.Worker = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 5 * time.Second
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = time.Minute
	}
	if o.Models == nil {
		o.Models = NewModelLoader()
	}
}

// runPoint runs one point, keeping its claim alive, and turns every way it
// can go wrong (error, panic, NaN) into a failed outcome.
func runPoint(ctx context.Context, db *results.DB, p *results.Point, pt sweep.Point, opt Options) (out results.Outcome) {
	gpuName, driver := opt.GPU, opt.Driver
	if pt.Backend.Name == "cuda" && opt.GPUMonitor != nil {
		gpuName, driver = opt.GPUMonitor.Device()
		s := startGPUSampler(opt.GPUMonitor, sampleEvery)
		defer func() { recordGPU(db, p, &out, s.stop()) }() // runs after the recover below
	}
	out.Provenance = results.CurrentProvenance(gpuName, driver)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(opt.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_ = db.Heartbeat(p)
			}
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			out.Metrics, out.Samples = nil, nil
			out.Err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	res, b, err := execute(ctx, pt, opt.Models)
	if b != nil {
		out.Provenance.Backend, out.Provenance.DType = pt.Backend.String(), b.DType().String()
	}
	if err != nil {
		out.Err = err
		return out
	}
	for _, m := range res.Metrics {
		if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
			out.Err = fmt.Errorf("metric %s is %v", m.Name, m.Value)
			return out
		}
		out.Metrics = append(out.Metrics, results.Metric{Name: m.Name, Value: m.Value, Unit: m.Unit})
	}
	out.Samples = res.Samples
	return out
}

// execute builds the point's environment and runs its experiment. It
// returns the backend the point ran on, once it is open.
func execute(ctx context.Context, pt sweep.Point, models *ModelLoader) (*experiments.Result, backend.Backend, error) {
	exp, err := pt.Definition()
	if err != nil {
		return nil, nil, err
	}
	f, err := pt.Factory()
	if err != nil {
		return nil, nil, err
	}
	lm, err := models.Get(pt.Model, pt.Backend)
	if err != nil {
		return nil, nil, err
	}
	env := &experiments.Env{Model: lm.Model, Tokenizer: lm.Tokenizer, Policy: f, Chunk: pt.Chunk,
		PolicyName: pt.Policy, PolicyParams: pt.PolicyParams, Calibrations: lm.Calibrations}
	res, err := exp.Run(ctx, env, pt.RunParams())
	return res, lm.Model.Backend(), err
}
