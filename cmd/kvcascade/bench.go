package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"kvcascade/experiments"
	"kvcascade/models"
	"kvcascade/policies"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/model"
)

// The parts of a backend bench uses beyond backend.Backend, where the
// backend has them (the GPU does): its memory, its queue of work and its
// resources.
type (
	// memoryInfo reports the device memory free and in all, in bytes.
	memoryInfo interface {
		MemInfo() (free, total int64, err error)
	}
	// synchronizer waits until the device has done the work queued on it.
	synchronizer interface{ Synchronize() error }
	// describer says what the backend runs on.
	describer interface{ Info() string }
)

// benchPolicy is one --policy value: a policy name and its parameters.
type benchPolicy struct {
	label   string // as given on the command line
	factory policies.Factory
}

// policyList collects repeated --policy name[:k=v,...] values.
type policyList []benchPolicy

func (p *policyList) String() string {
	var s []string
	for _, b := range *p {
		s = append(s, b.label)
	}
	return strings.Join(s, " ")
}

func (p *policyList) Set(v string) error {
	name, params, err := parsePolicy(v)
	if err != nil {
		return err
	}
	f, err := policies.New(name, params)
	if err != nil {
		return err
	}
	*p = append(*p, benchPolicy{label: v, factory: f})
	return nil
}

// intList is a comma-separated list of positive integers.
type intList []int

func (l *intList) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	*l = nil
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("want positive integers separated by commas, got %q", f)
		}
		*l = append(*l, n)
	}
	slices.Sort(*l)
	return nil
}

// benchRow is one measured (policy, length) point.
type benchRow struct {
	policy           string
	length           int
	prefillS         float64
	decodeMSPerToken float64 // -1 when nothing was decoded
	allocsPerToken   float64 // Go heap allocations per decoded token
	stepBytes        float64 // bytes a decoding step must read: weights and the views' keys and values
	cacheBytes       int64
	deviceBytes      int64 // device memory in use after the run; -1 when unknown
}

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	shape := fs.String("shape", "tiny", "model shape: llama-3.1-8b, an embedded model ("+strings.Join(models.Names(), ", ")+"), or a config.json / model directory")
	bf := addBackendFlags(fs)
	lengths := intList{4096}
	fs.Var(&lengths, "lengths", "prompt lengths in tokens, comma-separated")
	chunk := fs.Int("chunk", 4096, "prefill chunk size in tokens")
	decode := fs.Int("decode", 16, "tokens decoded after each prefill (reported as ms/token)")
	var pols policyList
	fs.Var(&pols, "policy", "cache policy name[:key=value,...] (repeatable; default full)")
	seed := fs.Uint64("seed", 0, "seed of the random weights and prompts")
	layers := fs.Int("layers", 0, "use only this many layers of the shape (0: all)")
	maxPrefill := fs.Duration("max-prefill", 0, "skip a policy's longer lengths once one of its prefills took longer (0: never)")
	format := fs.String("format", "table", "table or csv")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the timed runs to this file")
	chunkTimes := fs.String("chunk-times", "", "write each prefill chunk's wall time to this CSV file (policy, length, tokens, seconds); each chunk then ends with the device done")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kvcascade bench [--shape llama-3.1-8b] [--backend cuda] [--lengths 4096,16384] [--policy NAME[:k=v,...] ...]\n\n"+
			"Times prefill and decoding of a model shape with random weights (no weight files): one\n"+
			"short untimed prefill per policy first, then per policy and length a prefill in chunks\n"+
			"and --decode greedy tokens. On cuda the weights are drawn on the device. decode GB/s is\n"+
			"the bytes a decoding step must read (the weights and its views' keys and values) over its time.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case *chunk <= 0:
		return fmt.Errorf("--chunk must be positive, got %d", *chunk)
	case *decode < 0:
		return fmt.Errorf("--decode must be ≥ 0, got %d", *decode)
	case *layers < 0:
		return fmt.Errorf("--layers must be ≥ 0, got %d", *layers)
	case *format != "table" && *format != "csv":
		return fmt.Errorf("--format %q: want table or csv", *format)
	}
	if len(pols) == 0 {
		if err := pols.Set("full"); err != nil {
			return err
		}
	}
	cfg, err := benchShape(*shape)
	if err != nil {
		return err
	}
	if *layers > 0 {
		if *layers > cfg.Layers {
			return fmt.Errorf("--layers %d: shape %s has %d", *layers, *shape, cfg.Layers)
		}
		cfg.Layers = *layers
	}

	b, err := bf.open()
	if err != nil {
		return err
	}
	if c, ok := b.(io.Closer); ok {
		defer c.Close()
	}
	mem, _ := b.(memoryInfo) // nil: memory not checked nor reported
	if mem != nil {
		if err := checkWeightsFit(mem, b.DType(), cfg, *chunk, *shape); err != nil {
			return err
		}
	}

	start := time.Now()
	m, err := model.NewRandom(cfg, b, *seed)
	if err != nil {
		return err
	}
	if sy, ok := b.(synchronizer); ok {
		if err := sy.Synchronize(); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "bench: random %s, %d layers, %s parameters (%s), built on %s in %.1f s\n",
		*shape, cfg.Layers, paramsString(m.Params()), b.DType(), b.Name(), time.Since(start).Seconds())
	if d, ok := b.(describer); ok {
		fmt.Fprintf(stderr, "bench: %s\n", d.Info())
	}

	w := newBenchWriter(stdout, *format, pols)
	if *format == "table" {
		fmt.Fprintf(stdout, "# kvcascade bench: shape %s (%d layers, %s params, %s), backend %s, chunk %d, decode %d, seed %d\n",
			*shape, cfg.Layers, paramsString(m.Params()), b.DType(), b.Name(), *chunk, *decode, *seed)
	}
	w.header()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile %s: %w", *cpuProfile, err)
		}
		defer pprof.StopCPUProfile()
	}
	var chunkCSV *csv.Writer
	if *chunkTimes != "" {
		f, err := os.Create(*chunkTimes)
		if err != nil {
			return fmt.Errorf("--chunk-times: %w", err)
		}
		defer f.Close()
		chunkCSV = csv.NewWriter(f)
		chunkCSV.Write([]string{"policy", "length", "tokens", "chunk_s"})
		defer chunkCSV.Flush()
	}
	pshape := policies.Shape{Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim}
	for _, p := range pols {
		warm := randomIDs(min(2**chunk, lengths[0]), m.Vocab, *seed+1)
		if _, err := benchRun(mem, m, p, warm, *chunk, 1, nil); err != nil {
			return fmt.Errorf("warm-up of %s: %w", p.label, err)
		}
		for i, n := range lengths {
			if mem != nil {
				if err := checkCacheFits(mem, b.DType(), p, pshape, n+*decode, *chunk); err != nil {
					// longer lengths need at least as much: go on with the next policy
					fmt.Fprintf(stderr, "bench: %v; skipping %v\n", err, lengths[i:])
					break
				}
			}
			runtime.GC()
			var each func(int, time.Duration) error
			if chunkCSV != nil {
				each = func(tokens int, d time.Duration) error {
					chunkCSV.Write([]string{p.label, strconv.Itoa(n), strconv.Itoa(tokens), strconv.FormatFloat(d.Seconds(), 'f', 5, 64)})
					if chunkCSV.Flush(); chunkCSV.Error() != nil {
						return fmt.Errorf("--chunk-times: %w", chunkCSV.Error())
					}
					return nil
				}
			}
			r, err := benchRun(mem, m, p, randomIDs(n, m.Vocab, *seed), *chunk, *decode, each)
			if err != nil {
				return fmt.Errorf("%s at %d tokens: %w", p.label, n, err)
			}
			r.length = n
			if err := w.row(r); err != nil {
				return err
			}
			if *decode > 0 {
				fmt.Fprintf(stderr, "bench: %s at %d tokens: %.1f heap allocations per decoded token\n", p.label, n, r.allocsPerToken)
			}
			if *maxPrefill > 0 && r.prefillS > maxPrefill.Seconds() && i+1 < len(lengths) {
				fmt.Fprintf(stderr, "bench: %s: prefill of %d tokens took %.1f s > --max-prefill %v; skipping %v\n",
					p.label, n, r.prefillS, *maxPrefill, lengths[i+1:])
				break
			}
		}
	}
	return w.flush()
}

// benchShape returns the architecture named by --shape: a built-in shape
// (model.BuiltinShapes), an embedded model, or a config.json or model
// directory.
func benchShape(shape string) (*model.Config, error) {
	if shape == "" {
		return nil, errors.New("--shape is empty")
	}
	if c, ok, err := model.BuiltinShape(shape); ok {
		return c, err
	}
	path := shape
	if st, err := os.Stat(path); err != nil {
		dir, embErr := models.Dir(shape)
		if embErr != nil {
			return nil, fmt.Errorf("--shape %s: not a built-in shape (%s), an embedded model or a file: %w", shape, strings.Join(model.BuiltinShapes(), ", "), err)
		}
		path = filepath.Join(dir, "config.json")
	} else if st.IsDir() {
		path = filepath.Join(path, "config.json")
	}
	return model.LoadConfig(path)
}

// paramsString writes a parameter count in millions or billions.
func paramsString(n int64) string {
	if n < 1e9 {
		return fmt.Sprintf("%.1f M", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f B", float64(n)/1e9)
}

// randomIDs draws n token ids uniformly from the vocabulary.
func randomIDs(n, vocab int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 0x62656e6368))
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	return ids
}

// benchRun prefills ids (cut as p's policy cuts prompts) on a fresh cache
// of p and decodes decode tokens greedily, through the latency experiment's
// measurement (each, when not nil, is given every prefill chunk's time as
// it ends); mem, when not nil, reports the device memory in use after.
func benchRun(mem memoryInfo, m *model.Model, p benchPolicy, ids []int32, chunk, decode int, each func(int, time.Duration) error) (benchRow, error) {
	r := benchRow{policy: p.label, decodeMSPerToken: -1, deviceBytes: -1}
	env := &experiments.Env{Model: m, Policy: p.factory, Chunk: chunk}
	t, err := experiments.TimeByChunk(context.Background(), env, env.Prompt(ids), decode, each)
	if err != nil {
		return r, err
	}
	r.prefillS, r.cacheBytes = t.Prefill.Seconds(), t.CacheBytes
	if decode > 0 {
		r.decodeMSPerToken = float64(t.PerToken.Microseconds()) / 1000
		r.allocsPerToken = t.AllocsPerToken
		elem := float64(m.Backend().DType().Size())
		r.stepBytes = float64(stepWeights(&m.Config))*elem + t.ViewRowsPerToken*float64(2*m.HeadDim)*elem
	}
	if mem != nil {
		if free, total, err := mem.MemInfo(); err == nil {
			r.deviceBytes = total - free
		}
	}
	return r, nil
}

// stepWeights is the number of weights a decoding step reads: all but the
// input embedding, of which it reads one row (a tied embedding is read
// whole as the LM head).
func stepWeights(c *model.Config) int64 {
	if c.TieEmbeddings {
		return c.Params()
	}
	return c.Params() - int64(c.Vocab)*int64(c.Hidden)
}

const (
	mib = 1 << 20
	gib = 1 << 30
	// benchMargin is device memory kept free beyond the estimates, for
	// attention scratch, the kernels and the driver.
	benchMargin = 1 * gib
)

// checkWeightsFit fails when the weights and one chunk's activations of
// cfg do not fit in the device's free memory.
func checkWeightsFit(mem memoryInfo, dtype backend.DType, cfg *model.Config, chunk int, shape string) error {
	free, total, err := mem.MemInfo()
	if err != nil {
		return err
	}
	// Weights and activations are stored in the backend's type; the logits
	// (two rows of the vocabulary per chunk row at most) in float32.
	elem := int64(dtype.Size())
	weights := elem * cfg.Params()
	act := elem * int64(chunk) * int64(2*cfg.Hidden+2*cfg.Heads*cfg.HeadDim+2*cfg.KVHeads*cfg.HeadDim+2*cfg.Intermediate)
	act += 4 * int64(cfg.Vocab) * 2
	if need := weights + act + benchMargin; need > free {
		per := elem * (cfg.Params() - (&model.Config{Vocab: cfg.Vocab, Hidden: cfg.Hidden, TieEmbeddings: cfg.TieEmbeddings}).Params()) / int64(cfg.Layers)
		fit := (free - benchMargin - act - elem*int64(cfg.Vocab)*int64(cfg.Hidden)*2) / max(per, 1)
		return fmt.Errorf("shape %s does not fit: %.1f GiB of %s weights (%d layers) + %.1f GiB of activations at chunk %d, but the device has %.1f of %.1f GiB free; try --layers %d or a smaller --chunk",
			shape, float64(weights)/gib, dtype, cfg.Layers, float64(act)/gib, chunk, float64(free)/gib, float64(total)/gib, max(fit, 0))
	}
	return nil
}

// cacheSlots estimates the slots per KV head that policy p holds after n
// tokens read in chunks, by the cache's own sizing rule.
func cacheSlots(p benchPolicy, s policies.Shape, n, chunk int) (int, error) {
	return policies.SlotsAfter(p.factory, s, n, chunk)
}

// checkCacheFits fails when the KV cache of p after n tokens would not fit
// in the device's free memory.
func checkCacheFits(mem memoryInfo, dtype backend.DType, p benchPolicy, s policies.Shape, n, chunk int) error {
	slots, err := cacheSlots(p, s, n, chunk)
	if err != nil {
		return err
	}
	free, total, err := mem.MemInfo()
	if err != nil {
		return err
	}
	cache := int64(slots) * int64(s.Layers*2*s.KVHeads*s.HeadDim*dtype.Size())
	// The doubling copy holds old and new storage of one layer at once.
	grow := cache / int64(s.Layers)
	if need := cache + grow + benchMargin; need > free {
		return fmt.Errorf("policy %s at %d tokens: the KV cache needs ≈ %.1f GiB (%d slots × %d layers), the device has %.1f of %.1f GiB free",
			p.label, n, float64(cache)/gib, slots, s.Layers, float64(free)/gib, float64(total)/gib)
	}
	return nil
}

// benchWriter prints rows as they are measured, so that a run cut short
// keeps what it had.
type benchWriter struct {
	w      io.Writer
	csv    *csv.Writer // nil for the table
	policy int         // width of the policy column
}

// benchColumns are the CSV columns. decode_GB_s is the bytes a decoding
// step must read (the weights and the keys and values of its views) over
// its time: the bandwidth the step achieves.
var benchColumns = []string{"policy", "length", "prefill_s", "prefill_tok_s", "decode_ms_tok", "cache_MiB", "device_MiB", "decode_GB_s"}

func newBenchWriter(w io.Writer, format string, pols policyList) *benchWriter {
	bw := &benchWriter{w: w, policy: len("policy")}
	if format == "csv" {
		bw.csv = csv.NewWriter(w)
	}
	for _, p := range pols {
		bw.policy = max(bw.policy, len(p.label))
	}
	return bw
}

func (bw *benchWriter) header() {
	if bw.csv != nil {
		bw.csv.Write(benchColumns)
		bw.csv.Flush()
		return
	}
	fmt.Fprintf(bw.w, "%-*s  %7s  %10s  %13s  %13s  %10s  %10s  %11s\n", bw.policy,
		"policy", "length", "prefill s", "prefill tok/s", "decode ms/tok", "cache MiB", "device MiB", "decode GB/s")
}

func (bw *benchWriter) row(r benchRow) error {
	decode, device, gbs := "-", "-", "-"
	if r.decodeMSPerToken >= 0 {
		decode = strconv.FormatFloat(r.decodeMSPerToken, 'f', 2, 64)
		if r.decodeMSPerToken > 0 {
			gbs = strconv.FormatFloat(r.stepBytes/(r.decodeMSPerToken*1e6), 'f', 1, 64)
		}
	}
	if r.deviceBytes >= 0 {
		device = strconv.FormatInt(r.deviceBytes/mib, 10)
	}
	tokS := float64(r.length) / r.prefillS
	if bw.csv != nil {
		bw.csv.Write([]string{r.policy, strconv.Itoa(r.length), strconv.FormatFloat(r.prefillS, 'f', 4, 64),
			strconv.FormatFloat(tokS, 'f', 1, 64), decode, strconv.FormatFloat(float64(r.cacheBytes)/mib, 'f', 1, 64), device, gbs})
		bw.csv.Flush()
		return bw.csv.Error()
	}
	_, err := fmt.Fprintf(bw.w, "%-*s  %7d  %10.3f  %13.1f  %13s  %10.1f  %10s  %11s\n", bw.policy,
		r.policy, r.length, r.prefillS, tokS, decode, float64(r.cacheBytes)/mib, device, gbs)
	return err
}

func (bw *benchWriter) flush() error {
	if bw.csv != nil {
		bw.csv.Flush()
		return bw.csv.Error()
	}
	return nil
}
