package policies

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"kvcascade/runtime/backend"
)

// The streaming-head caches and head choices of duo.
const (
	duoWindow     = "window"
	duoCascade    = "cascade"
	duoCalibrated = "calibrated"
	duoRandom     = "random"
)

// duoSpec is DuoAttention's split of the KV heads (Xiao et al. 2024):
// retrieval heads keep every token, streaming heads keep sinks and a recent
// window (or, with streaming = "cascade", a cascading cache). DuoAttention
// learns which heads retrieve; here they are found without training, by a
// calibration run of the model itself (Calibrator, HeadScores).
func duoSpec() Spec {
	return Spec{
		Name: "duo",
		Doc: "DuoAttention-style heads: the retrieval_ratio of KV heads that a calibration run finds looking furthest back keep every token, " +
			"the others sinks + a recent window (or a cascade); memory grows with the stream in layers with a retrieval head",
		Aliases: []string{"duo_attention", "duoattention"},
		Params: []Param{
			{Name: "retrieval_ratio", Kind: "float", Default: 0.5, Doc: "fraction of all KV heads (every layer together) that keep every token, in [0, 1]"},
			{Name: "streaming", Kind: "string", Default: duoWindow, Choices: []string{duoWindow, duoCascade},
				Doc: "the streaming heads' cache: window = sinks + sliding window (StreamingLLM); cascade = sinks + a cascading cache of window slots"},
			{Name: "sinks", Kind: "int", Default: 4, Doc: "first tokens a streaming head keeps for ever"},
			{Name: "window", Kind: "int", Default: 252, Doc: "a streaming head's other slots: its sliding window, or the cascade's size (rounded down to a multiple of cascades)"},
			{Name: "cascades", Kind: "int", Default: 4, Doc: "cascades of a streaming head (streaming = cascade)"},
			{Name: "heads", Kind: "string", Default: duoCalibrated, Choices: []string{duoCalibrated, duoRandom},
				Doc: "calibrated: the heads with the most attention mass beyond sinks + window in a calibration run; random: a seeded draw of as many (a control)"},
			{Name: "seed", Kind: "int", Default: 0, Doc: "seed of heads = random", OmitDefault: true},
			{Name: "calib_length", Kind: "int", Default: 1024, Doc: "tokens of the calibration prompt (a passkey prompt from a fixed seed)"},
			positionsParam(),
		},
		Bounded:   true,
		SplitKeys: []string{"window"},
		split:     splitTwo("duo", "sinks", "window", nil),
		splitDoc:  "slots of a streaming head: sinks as set (default 4), window the rest; retrieval heads keep every token",
		make:      makeDuo,
	}
}

// duoConfig is a checked duo configuration.
type duoConfig struct {
	ratio       float64
	streaming   Factory // the streaming heads' cache, on a shape of those heads only
	sinks       int
	window      int
	random      bool
	seed        uint64
	calibLength int
	positions   positions
}

func makeDuo(v Values) (Factory, error) {
	const name = "duo"
	c := duoConfig{ratio: v.Float("retrieval_ratio"), sinks: v.Int("sinks"), window: v.Int("window"),
		random: v.String("heads") == duoRandom, seed: uint64(v.Int("seed")), calibLength: v.Int("calib_length"),
		positions: positionsOf(v)}
	if !(c.ratio >= 0 && c.ratio <= 1) {
		return nil, paramError(name, "retrieval_ratio", "must lie in [0, 1], got %v", c.ratio)
	}
	if err := atLeast(name, v, 0, "sinks"); err != nil {
		return nil, err
	}
	if err := atLeast(name, v, 1, "window", "cascades"); err != nil {
		return nil, err
	}
	if err := atLeast(name, v, 16, "calib_length"); err != nil {
		return nil, err
	}
	var err error
	if v.String("streaming") == duoCascade {
		cs := v.Int("cascades")
		size := c.window / cs * cs
		if size < cs {
			return nil, paramError(name, "window", "%d slots cannot hold %d cascades", c.window, cs)
		}
		c.streaming, err = New("cascade", map[string]any{"sinks": c.sinks, "size": size, "cascades": cs, "positions": v.String("positions")})
	} else {
		c.streaming, err = New("sink", map[string]any{"sinks": c.sinks, "window": c.window, "positions": v.String("positions")})
	}
	if err != nil {
		return nil, fmt.Errorf("policy duo: streaming heads: %w", err)
	}
	if c.random {
		return duoFactory{c: &c}, nil
	}
	return duoUncalibrated{c: &c}, nil
}

// HeadScores are a calibration's measurement of a model: [layer][KV head]
// the attention mass its query heads put, at the end of the calibration
// prompt, on tokens that a streaming head would have dropped. Higher means
// more of a retrieval head.
type HeadScores [][]float64

// CalibrationRequest says what a Calibrator needs measured.
type CalibrationRequest struct {
	// Key names the measurement: factories with equal keys can share the
	// HeadScores of one run on the same model.
	Key string
	// Length is the calibration prompt's length in tokens and Seed the seed
	// it is drawn from.
	Length int
	Seed   int64
	// Probe is the number of queries, the prompt's last, whose attention is
	// measured; the caller feeds them as a chunk of their own.
	Probe int
}

// Calibrator is implemented by factories whose layers depend on a
// measurement of the model they run on (duo's choice of retrieval heads).
// The caller runs the prompt the request describes through a cache of
// Probe's factory, hands the result to Calibrated and uses the factory it
// returns; the factory itself makes no layers.
type Calibrator interface {
	Factory
	// Calibration describes the run.
	Calibration() CalibrationRequest
	// Probe returns the factory of the calibration run's cache over a
	// prompt of n tokens and the function that returns its measurement
	// once the whole prompt has been read.
	Probe(n int) (Factory, func() (HeadScores, error))
	// Calibrated returns the factory that uses scores.
	Calibrated(scores HeadScores) (Factory, error)
}

// duoProbeQueries is the number of last prompt queries a calibration
// measures: the question of a passkey prompt and the words before it.
const duoProbeQueries = 32

// duoCalibrationSeed is the seed of the calibration prompt, one no
// experiment's default draws from.
const duoCalibrationSeed = 0x5eed_d0

// duoUncalibrated is a duo factory with calibrated heads before its
// calibration.
type duoUncalibrated struct{ c *duoConfig }

var _ Calibrator = duoUncalibrated{}

func (duoUncalibrated) Name() string { return "duo" }

func (f duoUncalibrated) NewLayer(int, Shape) (Policy, error) {
	return nil, fmt.Errorf("policy duo: heads = %q needs a calibration run on the model before its first cache (experiments run it; give heads = %q to do without)",
		duoCalibrated, duoRandom)
}

func (f duoUncalibrated) Calibration() CalibrationRequest {
	return CalibrationRequest{
		Key:    fmt.Sprintf("duo far mass: sinks %d, window %d, %d tokens, seed %d, last %d queries", f.c.sinks, f.c.window, f.c.calibLength, duoCalibrationSeed, duoProbeQueries),
		Length: f.c.calibLength, Seed: duoCalibrationSeed, Probe: duoProbeQueries,
	}
}

func (f duoUncalibrated) Probe(n int) (Factory, func() (HeadScores, error)) {
	pr := &duoProbe{sinks: int64(f.c.sinks), window: int64(f.c.window), end: int64(n), probe: duoProbeQueries}
	fac := factoryFunc{"duo-probe", func(l int, s Shape) (Policy, error) {
		if err := checkShape(s); err != nil {
			return nil, err
		}
		if pr.scores == nil {
			pr.scores = make(HeadScores, s.Layers)
			pr.done = make([]bool, s.Layers)
		}
		if l < 0 || l >= len(pr.scores) {
			return nil, fmt.Errorf("layer %d of %d", l, len(pr.scores))
		}
		pr.scores[l] = make([]float64, s.KVHeads)
		return &duoProbeLayer{full: full{s: s}, pr: pr, layer: l}, nil
	}}
	return fac, pr.result
}

func (f duoUncalibrated) Calibrated(scores HeadScores) (Factory, error) {
	for l, row := range scores {
		for h, x := range row {
			if math.IsNaN(x) {
				return nil, fmt.Errorf("policy duo: calibration score of layer %d, KV head %d is NaN", l, h)
			}
		}
	}
	return duoFactory{c: f.c, scores: scores}, nil
}

// duoProbe is the measurement of one calibration run.
type duoProbe struct {
	sinks, window, end int64
	probe              int
	scores             HeadScores
	done               []bool
}

func (p *duoProbe) result() (HeadScores, error) {
	if p.scores == nil {
		return nil, fmt.Errorf("policy duo: the calibration run made no cache")
	}
	for l, d := range p.done {
		if !d {
			return nil, fmt.Errorf("policy duo: the calibration run never reached the last %d queries of its %d tokens in layer %d", p.probe, p.end, l)
		}
	}
	return p.scores, nil
}

// duoProbeLayer is full attention that, for the chunk of the prompt's last
// queries, asks for their mass and scores each KV head by the mass its
// query heads put on keys older than the window and not sinks, measured
// from the prompt's end: [sinks, end − window). The score is that mass per
// query head and query, in [0, 1].
type duoProbeLayer struct {
	full
	pr    *duoProbe
	layer int
	step  Step
	w     []float32
}

func (p *duoProbeLayer) Plan(step Step, view *backend.View) {
	p.step = step
	p.full.Plan(step, view)
	if step.Start+int64(step.N) != p.pr.end {
		return
	}
	p.w = grow(p.w, step.N)
	for i := range p.w {
		p.w[i] = 0
		if i >= step.N-p.pr.probe {
			p.w[i] = 1
		}
	}
	view.QueryWeights = p.w
}

func (p *duoProbeLayer) Commit(mass []float32, place []int32) {
	if mass != nil {
		n, L, g := p.step.N, p.full.held, p.s.Group()
		lo := min(p.pr.sinks, p.pr.end)
		hi := max(lo, p.pr.end-p.pr.window)
		queries := float64(min(n, p.pr.probe) * g)
		for h := range p.s.KVHeads {
			var far float64
			for q := h * g; q < (h+1)*g; q++ {
				// the probe's keys are the tokens 0…L+n−1 in order
				for _, x := range mass[q*(L+n)+int(lo) : q*(L+n)+int(hi)] {
					far += float64(x)
				}
			}
			p.pr.scores[p.layer][h] = far / queries
		}
		p.pr.done[p.layer] = true
	}
	p.full.Commit(nil, place)
}

// duoFactory makes duo's layers once the retrieval heads can be chosen:
// from scores, or at random.
type duoFactory struct {
	c      *duoConfig
	scores HeadScores // nil: heads = random
}

func (duoFactory) Name() string { return "duo" }

func (f duoFactory) NewLayer(l int, s Shape) (Policy, error) {
	if err := checkShape(s); err != nil {
		return nil, err
	}
	if l < 0 || l >= s.Layers {
		return nil, fmt.Errorf("layer %d of %d", l, s.Layers)
	}
	ret, err := f.retrieval(s)
	if err != nil {
		return nil, err
	}
	return newDuo(f.c, s, l, ret[l*s.KVHeads:(l+1)*s.KVHeads])
}

// retrieval returns [layer·Hkv] whether each KV head of the model is a
// retrieval head: the round(ratio · layers · Hkv) heads with the highest
// scores (ties: the earlier layer, then the lower head), or with the
// highest seeded draws for heads = random.
func (f duoFactory) retrieval(s Shape) ([]bool, error) {
	n := s.Layers * s.KVHeads
	key := make([]float64, n)
	for i := range key {
		l, h := i/s.KVHeads, i%s.KVHeads
		if f.scores == nil {
			key[i] = float64(mix(mix(f.c.seed, uint64(l)), uint64(h))>>11) / (1 << 53)
			continue
		}
		if len(f.scores) != s.Layers || len(f.scores[l]) != s.KVHeads {
			return nil, fmt.Errorf("policy duo: calibrated on a model of %d layers, run on one of %d layers × %d KV heads",
				len(f.scores), s.Layers, s.KVHeads)
		}
		key[i] = f.scores[l][h]
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return key[order[a]] > key[order[b]] })
	ret := make([]bool, n)
	for _, i := range order[:int(math.Round(f.c.ratio*float64(n)))] {
		ret[i] = true
	}
	return ret, nil
}

// duo is one layer of DuoAttention-style heads. A retrieval head keeps
// token t in slot t and attends to all of them, at position t (which is
// also its index in the view). The streaming heads are one policy of
// their own (sink or cascade) on the shape of those heads only, whose
// views, mass and placements duo maps to and from its heads. The view is
// as long as the longest head's; a shorter head's is padded at its end
// with slot −1 (no attention), so each head's positions and query position
// are those of its own keys.
//
// The Cache's storage is rectangular ([Hkv, capacity] per layer), so a
// layer with a retrieval head reserves room for every token for all its
// heads; Held and the budget count what each head keeps.
type duo struct {
	s         Shape
	ret, str  []int // the retrieval and the streaming heads
	inner     Policy
	positions positions
	seen      int64
	step      Step
	viewLen   int // L of the last planned view

	sub      backend.View // the streaming heads' view
	subMass  []float32    // [Hq_s·(Ls+n)]
	subPlace []int32      // [Hkv_s·n]
}

func newDuo(c *duoConfig, s Shape, layer int, retrieval []bool) (*duo, error) {
	p := &duo{s: s, positions: c.positions}
	for h, r := range retrieval {
		if r {
			p.ret = append(p.ret, h)
		} else {
			p.str = append(p.str, h)
		}
	}
	if len(p.str) > 0 {
		ss := Shape{Layers: s.Layers, QHeads: len(p.str) * s.Group(), KVHeads: len(p.str), HeadDim: s.HeadDim}
		var err error
		if p.inner, err = c.streaming.NewLayer(layer, ss); err != nil {
			return nil, fmt.Errorf("streaming heads: %w", err)
		}
	}
	return p, nil
}

// Reserve: the streaming heads' fixed slots, or every token where a
// retrieval head keeps them.
func (p *duo) Reserve(n int) int {
	r := 0
	if p.inner != nil {
		r = p.inner.Reserve(n)
	}
	if len(p.ret) > 0 {
		r = max(r, int(p.seen)+n)
	}
	return r
}

func (p *duo) Plan(step Step, view *backend.View) {
	p.step = step
	hk := p.s.KVHeads
	Ls := 0
	if p.inner != nil {
		p.inner.Plan(step, &p.sub)
		Ls = p.sub.ViewLen
	}
	L := Ls
	if len(p.ret) > 0 {
		L = max(L, int(p.seen))
	}
	sizeView(view, hk, L)
	p.viewLen = L
	for _, h := range p.ret {
		slots, pos := view.Slots[h*L:(h+1)*L], view.Pos[h*L:(h+1)*L]
		for j := range slots {
			slots[j], pos[j] = int32(j), int32(j)
			if int64(j) >= p.seen {
				slots[j], pos[j] = -1, 0
			}
		}
		view.QueryPos[h] = int32(p.seen)
	}
	for i, h := range p.str {
		slots, pos := view.Slots[h*L:(h+1)*L], view.Pos[h*L:(h+1)*L]
		copy(slots, p.sub.Slots[i*Ls:(i+1)*Ls])
		copy(pos, p.sub.Pos[i*Ls:(i+1)*Ls])
		for j := Ls; j < L; j++ {
			slots[j], pos[j] = -1, 0
		}
		view.QueryPos[h] = p.sub.QueryPos[i]
	}
	view.QueryWeights = nil
	view.MassMode = backend.MassExact
	if p.inner != nil {
		view.QueryWeights, view.MassMode = p.sub.QueryWeights, p.sub.MassMode
	}
	view.Device = nil
}

func (p *duo) Commit(mass []float32, place []int32) {
	n, g := p.step.N, p.s.Group()
	if p.inner != nil {
		var sm []float32
		if mass != nil {
			L, Ls := p.viewLen, p.sub.ViewLen
			p.subMass = grow(p.subMass, len(p.str)*g*(Ls+n))
			sm = p.subMass
			for i, h := range p.str {
				for q := 0; q < g; q++ {
					src := mass[(h*g+q)*(L+n):]
					dst := sm[(i*g+q)*(Ls+n):]
					copy(dst[:Ls], src[:Ls])
					copy(dst[Ls:Ls+n], src[L:L+n])
				}
			}
		}
		p.subPlace = grow(p.subPlace, len(p.str)*n)
		p.inner.Commit(sm, p.subPlace)
		for i, h := range p.str {
			copy(place[h*n:(h+1)*n], p.subPlace[i*n:(i+1)*n])
		}
	}
	for _, h := range p.ret {
		for i := range n {
			place[h*n+i] = int32(p.seen) + int32(i)
		}
	}
	p.seen += int64(n)
}

// Held: every token for a retrieval head, the streaming policy's for a
// streaming head.
func (p *duo) Held(h int, dst []int64) []int64 {
	if i, ok := slices.BinarySearch(p.str, h); ok {
		return p.inner.Held(i, dst)
	}
	for t := range p.seen {
		dst = append(dst, t)
	}
	return dst
}

// MetaBytes: the streaming policy's bookkeeping and duo's own buffers.
func (p *duo) MetaBytes() int64 {
	b := int64(cap(p.subMass)+cap(p.subPlace)+cap(p.sub.Slots)+cap(p.sub.Pos)+cap(p.sub.QueryPos)) * 4
	if p.inner != nil {
		b += p.inner.MetaBytes()
	}
	return b
}

// originalPositions: a retrieval head's positions are original in both
// modes; the streaming heads follow positions.
func (p *duo) originalPositions() bool { return p.positions == originalPositions }
