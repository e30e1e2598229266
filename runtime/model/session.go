package model

import (
	"context"
	"fmt"
	"math"

	"kvcascade/runtime/backend"
)

// Session runs one sequence through a model and its cache, chunk by chunk.
// Activations are allocated once for the chunk size, so the per-token loop
// does not allocate. A Session is not safe for concurrent use.
type Session struct {
	m     *Model
	cache Cache
	chunk int
	seen  int64

	x, h     backend.Tensor // [chunk, D] residual stream, normed input
	q, att   backend.Tensor // [chunk, Hq·hd]
	k, v     backend.Tensor // [chunk, Hkv·hd]
	gate, up backend.Tensor // [chunk, F]
	logits   backend.Tensor // [chunk, V], made on first use of AllLogits
	logits1  backend.Tensor // [1, V], made on first use of LastLogits
	mass     []float32      // [Hq·(L+S)]
	host     []float32      // [rows·V] logits on the host, grown to the rows asked for
	attn     backend.Attention
	views    map[int]*views // row views of the activations by chunk length
	views1   *views         // the views for one row (decoding)
	one      [1]int32       // Decode's token
	windowOK bool           // backend and cache can apply the sliding window
	next     [1]int32       // DecodeGreedy's pick
}

// views are the activations cut to the n rows of one forward pass.
type views struct {
	x, h, q, att, k, v, gate, up backend.Tensor
	last, normed1, normedN       backend.Tensor // last row of x; first 1 and n rows of h
	logitsN                      backend.Tensor // first n rows of logits (nil until used)
	// qkv [1, Hq·hd+2·Hkv·hd] and gu [1, 2F], when not nil (one row of a
	// fused model), are decoding's fused products, which q, k, v and gate,
	// up are views of: one product fills each. They are the session's to
	// free.
	qkv, gu backend.Tensor
}

// viewsFor returns the views for n rows, made once per n (for a bounded
// number of distinct lengths, and always for n = 1) so that decoding
// allocates nothing.
func (s *Session) viewsFor(n int) *views {
	if n == 1 && s.views1 != nil {
		return s.views1
	}
	if v, ok := s.views[n]; ok {
		return v
	}
	b := s.m.b
	v := &views{
		x: b.Slice(s.x, 0, n), h: b.Slice(s.h, 0, n), q: b.Slice(s.q, 0, n), att: b.Slice(s.att, 0, n),
		k: b.Slice(s.k, 0, n), v: b.Slice(s.v, 0, n), gate: b.Slice(s.gate, 0, n), up: b.Slice(s.up, 0, n),
	}
	v.last = b.Slice(s.x, n-1, n)
	v.normed1, v.normedN = b.Slice(s.h, 0, 1), v.h
	if n == 1 {
		if s.m.fused {
			s.fusedViews(v)
		}
		s.views1 = v
		return v
	}
	if s.views == nil {
		s.views = map[int]*views{}
	}
	if len(s.views) < 8 {
		s.views[n] = v
	}
	return v
}

// fusedViews makes the fused products' outputs v.qkv and v.gu of the
// one-row views v and points v's q, k, v, gate and up at their columns.
func (s *Session) fusedViews(v *views) {
	b, c := s.m.b, s.m.Config
	qd, kvd, f := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim, c.Intermediate
	dt := b.DType()
	v.qkv, v.gu = b.New(dt, 1, qd+2*kvd), b.New(dt, 1, 2*f)
	// cols returns columns [lo, hi) of the row t [1, N] as a [1, hi−lo] view.
	cols := func(t backend.Tensor, lo, hi int) backend.Tensor {
		flat := b.Reshape(t, backend.Numel(t.Shape()))
		return b.Reshape(b.Slice(flat, lo, hi), 1, hi-lo)
	}
	v.q, v.k, v.v = cols(v.qkv, 0, qd), cols(v.qkv, qd, qd+kvd), cols(v.qkv, qd+kvd, qd+2*kvd)
	v.gate, v.up = cols(v.gu, 0, f), cols(v.gu, f, 2*f)
}

// Which selects the rows of logits a forward pass returns.
type Which int

// Rows of logits to compute.
const (
	NoLogits   Which = iota // none (cheapest: skips the LM head)
	LastLogits              // the chunk's last token
	AllLogits               // every token of the chunk
)

// NewSession starts an empty sequence on cache with prefill chunks of at
// most chunk tokens.
func (m *Model) NewSession(cache Cache, chunk int) *Session {
	if chunk <= 0 {
		chunk = 1
	}
	c, b := m.Config, m.b
	s := &Session{m: m, cache: cache, chunk: chunk}
	if rc, ok := cache.(RotaryCache); ok {
		rc.SetRoPE(m.invFreq, m.attnFactor)
	}
	// Activations in the backend's storage type; logits stay float32.
	dt := b.DType()
	s.x = b.New(dt, chunk, c.Hidden)
	s.h = b.New(dt, chunk, c.Hidden)
	s.q = b.New(dt, chunk, c.Heads*c.HeadDim)
	s.att = b.New(dt, chunk, c.Heads*c.HeadDim)
	s.k = b.New(dt, chunk, c.KVHeads*c.HeadDim)
	s.v = b.New(dt, chunk, c.KVHeads*c.HeadDim)
	s.gate = b.New(dt, chunk, c.Intermediate)
	s.up = b.New(dt, chunk, c.Intermediate)
	s.attn = backend.Attention{
		HeadDim: c.HeadDim, QHeads: c.Heads, KVHeads: c.KVHeads,
		Scale:   float32(1 / math.Sqrt(float64(c.HeadDim))),
		InvFreq: m.invFreq, AttnFactor: m.attnFactor,
		Window: c.SlidingWindow,
	}
	return s
}

// Close frees the session's activations (not the cache).
func (s *Session) Close() {
	owned := []backend.Tensor{s.x, s.h, s.q, s.att, s.k, s.v, s.gate, s.up, s.logits, s.logits1}
	if v := s.views1; v != nil {
		owned = append(owned, v.qkv, v.gu)
	}
	for _, t := range owned {
		if t != nil {
			s.m.b.Free(t)
		}
	}
}

// Seen returns the number of tokens the session has processed.
func (s *Session) Seen() int64 { return s.seen }

// Chunk returns the prefill chunk size.
func (s *Session) Chunk() int { return s.chunk }

// Forward runs ids (at most the chunk size) through the model. promptEnd is
// one past the prompt's last position while a prompt is read, -1 while
// decoding. The returned logits ([rows, V] on the host) are valid until the
// next call. Logits holding a NaN or ±Inf fail the pass with a
// *NonFiniteError: the check reads the logits already on the host, and only
// a failing pass pays for finding the layer.
func (s *Session) Forward(ids []int32, promptEnd int64, which Which) ([]float32, error) {
	out, err := s.forward(ids, promptEnd, which)
	if err != nil || out == nil {
		return nil, err
	}
	host := s.host[:backend.Numel(out.Shape())]
	s.m.b.Read(out, host)
	rows := len(host) / s.m.Vocab
	if err := s.checkLogits(host, ids, s.seen-int64(rows)); err != nil {
		return nil, err
	}
	return host, nil
}

// forward runs ids through the model as Forward does and returns the
// logits it asked for on the device ([rows, V] float32; nil for
// NoLogits), valid until the next call.
func (s *Session) forward(ids []int32, promptEnd int64, which Which) (backend.Tensor, error) {
	n := len(ids)
	if n == 0 || n > s.chunk {
		return nil, fmt.Errorf("forward: %d tokens for a chunk of %d", n, s.chunk)
	}
	m, b, c := s.m, s.m.b, s.m.Config
	for _, id := range ids {
		if id < 0 || int(id) >= c.Vocab {
			return nil, fmt.Errorf("forward: token id %d outside vocabulary of %d", id, c.Vocab)
		}
	}
	if w := c.SlidingWindow; w > 0 && s.seen+int64(n) > int64(w) && !s.windowOK {
		if err := s.checkWindow(s.seen + int64(n)); err != nil {
			return nil, err
		}
		s.windowOK = true
	}
	vw := s.viewsFor(n)
	x, h, q, att, k, v, gate, up := vw.x, vw.h, vw.q, vw.att, vw.k, vw.v, vw.gate, vw.up
	eps := float32(c.RMSNormEps)

	// addNorm adds h to the residual x and sets h to its norm by w, in one
	// kernel where the backend fuses them.
	an, fused := b.(backend.AddNormer)
	addNorm := func(w backend.Tensor) {
		if fused {
			an.AddRMSNorm(h, x, h, w, eps)
			return
		}
		b.Add(x, h)
		b.RMSNorm(h, x, w, eps)
	}
	b.Embed(x, m.embed, ids)
	if len(m.layers) > 0 {
		b.RMSNorm(h, x, m.layers[0].attnNorm, eps)
	}
	for li := range m.layers {
		l := &m.layers[li]
		// h holds the layer's normed input
		if vw.qkv != nil { // decoding: one product, q, k and v are its views
			b.MatMul(vw.qkv, h, l.wqkv, l.bqkv)
		} else { // a chunk, or an unfused model: a product per part (rows of wqkv)
			b.MatMul(q, h, l.wq, l.bq)
			b.MatMul(k, h, l.wk, l.bk)
			b.MatMul(v, h, l.wv, l.bv)
		}
		if qc, ok := s.cache.(QueryCache); ok {
			if err := qc.Query(li, q); err != nil {
				return nil, fmt.Errorf("layer %d: %w", li, err)
			}
		}
		view, err := s.cache.View(li, n, promptEnd)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", li, err)
		}
		a := &s.attn
		a.Out, a.Q, a.K, a.V, a.View = att, q, k, v, *view
		a.Mass = nil
		if view.QueryWeights != nil && view.Device == nil { // a device view keeps its mass
			need := c.Heads * (view.ViewLen + n)
			if cap(s.mass) < need {
				s.mass = make([]float32, need+need/2)
			}
			a.Mass = s.mass[:need]
		}
		b.Attention(a)
		if err := s.cache.Update(li, k, v, a.Mass); err != nil {
			return nil, fmt.Errorf("layer %d: %w", li, err)
		}
		b.MatMul(h, att, l.wo, nil)
		addNorm(l.mlpNorm)
		if vw.gu != nil {
			b.MatMul(vw.gu, h, l.wgu, nil)
		} else {
			b.MatMul(gate, h, l.gate, nil)
			b.MatMul(up, h, l.up, nil)
		}
		b.SwiGLU(gate, gate, up)
		b.MatMul(h, gate, l.down, nil)
		if li+1 < len(m.layers) {
			addNorm(m.layers[li+1].attnNorm) // the next layer's input
		} else {
			b.Add(x, h)
		}
	}
	s.seen += int64(n)
	if which == NoLogits {
		return nil, nil
	}
	// Only the rows asked for are allocated: a chunk's [chunk, V] float32
	// logits are gigabytes for a large vocabulary, and clearing a host
	// buffer that size cost more than the whole forward pass of a 4K
	// prompt.
	rows, in, normed := n, x, vw.normedN
	var out backend.Tensor
	if which == LastLogits {
		rows, in, normed = 1, vw.last, vw.normed1
		if s.logits1 == nil {
			s.logits1 = b.New(backend.F32, 1, c.Vocab)
		}
		out = s.logits1
	} else {
		if s.logits == nil {
			s.logits = b.New(backend.F32, s.chunk, c.Vocab)
		}
		if vw.logitsN == nil {
			vw.logitsN = b.Slice(s.logits, 0, rows)
		}
		out = vw.logitsN
	}
	if len(s.host) < rows*c.Vocab {
		s.host = make([]float32, rows*c.Vocab)
	}
	b.RMSNorm(normed, in, m.norm, eps)
	b.MatMul(out, normed, m.lmHead, nil)
	return out, nil
}

// checkWindow returns an error unless the backend and the cache can apply
// the model's sliding window to a sequence of seen tokens, longer than the
// window: the backend must mask by window (backend.WindowMasker) and the
// cache must give keys their original positions (WindowCache).
func (s *Session) checkWindow(seen int64) error {
	w, b := s.m.SlidingWindow, s.m.b
	if wm, ok := b.(backend.WindowMasker); !ok || !wm.MasksWindow() {
		return fmt.Errorf("the model attends within a sliding window of %d tokens (sliding_window), which the %s backend does not apply; the sequence has reached %d tokens", w, b.Name(), seen)
	}
	wc, ok := s.cache.(WindowCache)
	if !ok {
		return fmt.Errorf("the model attends within a sliding window of %d tokens (sliding_window), and the cache (%T) does not say whether its keys keep their original positions; the sequence has reached %d tokens", w, s.cache, seen)
	}
	if err := wc.OriginalPositions(); err != nil {
		return fmt.Errorf("the model attends within a sliding window of %d tokens (sliding_window), measured in original positions: %w", w, err)
	}
	return nil
}

// Prefill feeds prompt in chunks. When each is not nil it receives the
// logits [n, V] of every chunk with the position of its first token (for
// perplexity); otherwise only the last token's logits are computed. Prefill
// returns the logits of the prompt's last token.
func (s *Session) Prefill(ctx context.Context, prompt []int32, each func(start int64, logits []float32) error) ([]float32, error) {
	if each != nil {
		return s.PrefillEach(ctx, prompt, AllLogits, each)
	}
	return s.PrefillEach(ctx, prompt, NoLogits, nil)
}

// PrefillEach feeds prompt in chunks, computing the rows of logits which
// selects for every chunk (the last token's, at least, for the last chunk)
// and handing them to each, when not nil, with the position of the chunk's
// first token as the chunk ends. It returns the logits of the prompt's last
// token.
func (s *Session) PrefillEach(ctx context.Context, prompt []int32, which Which, each func(start int64, logits []float32) error) ([]float32, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("prefill: empty prompt")
	}
	end := s.seen + int64(len(prompt))
	var last []float32
	for i := 0; i < len(prompt); i += s.chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		j := min(i+s.chunk, len(prompt))
		w := which
		if j == len(prompt) && w == NoLogits {
			w = LastLogits
		}
		start := s.seen
		logits, err := s.Forward(prompt[i:j], end, w)
		if err != nil {
			return nil, fmt.Errorf("prefill tokens [%d, %d): %w", i, j, err)
		}
		if each != nil {
			if err := each(start, logits); err != nil {
				return nil, err
			}
		}
		last = logits
	}
	v := s.m.Vocab
	return last[len(last)-v:], nil
}

// Decode feeds one token and returns the logits for the next.
func (s *Session) Decode(id int32) ([]float32, error) {
	s.one[0] = id
	return s.Forward(s.one[:], -1, LastLogits)
}

// argmaxer is a backend that picks greedy tokens on its device (the CUDA
// backend), so that a decoding step reads back one index instead of the
// logits. Argmax must pick what the package's Argmax picks on the host.
type argmaxer interface {
	// Argmax sets dst[r] to the index of the largest value of row r of
	// logits [rows, V], the first on ties, or to −1 when the row holds a
	// NaN or ±Inf.
	Argmax(logits backend.Tensor, dst []int32)
}

// DecodeGreedy feeds one token and returns the greedy next one, what
// Argmax picks from the logits Decode would return. On a backend that
// picks on its device (an argmaxer) the logits stay there and only the
// token is read back, unless the logits hold a NaN or ±Inf: then, as on
// the host, the step fails with a *NonFiniteError.
func (s *Session) DecodeGreedy(id int32) (int32, error) {
	s.one[0] = id
	out, err := s.forward(s.one[:], -1, LastLogits)
	if err != nil {
		return 0, err
	}
	if a, ok := s.m.b.(argmaxer); ok {
		if a.Argmax(out, s.next[:]); s.next[0] >= 0 {
			return s.next[0], nil
		}
	}
	host := s.host[:s.m.Vocab]
	s.m.b.Read(out, host)
	if err := s.checkLogits(host, s.one[:], s.seen-1); err != nil {
		return 0, err
	}
	return Argmax(host), nil
}

// Generate prefills prompt and continues greedily for at most maxNew
// tokens, stopping after any token of stop. It returns the new tokens.
func (s *Session) Generate(ctx context.Context, prompt []int32, maxNew int, stop []int32) ([]int32, error) {
	return s.GenerateThen(ctx, prompt, maxNew, stop, nil)
}

// GenerateThen is Generate calling afterPrompt, when not nil, once the
// prompt has been read and before the first token is decoded: the moment
// the cache holds what the answer will attend to.
func (s *Session) GenerateThen(ctx context.Context, prompt []int32, maxNew int, stop []int32, afterPrompt func()) ([]int32, error) {
	logits, err := s.Prefill(ctx, prompt, nil)
	if err != nil {
		return nil, fmt.Errorf("generation step 0 (the prompt): %w", err)
	}
	if afterPrompt != nil {
		afterPrompt()
	}
	var out []int32
	next := Argmax(logits)
	for len(out) < maxNew {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		out = append(out, next)
		if contains(stop, next) || len(out) == maxNew {
			break
		}
		if next, err = s.DecodeGreedy(next); err != nil {
			return out, fmt.Errorf("generation step %d (after generated token %d): %w", len(out), len(out), err)
		}
	}
	return out, nil
}

func contains(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Argmax returns the index of the largest logit (the first on ties).
func Argmax(logits []float32) int32 {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return int32(best)
}

// LogProb returns log softmax(logits)[id], computed in float64.
func LogProb(logits []float32, id int32) float64 {
	m := float64(logits[0])
	for _, v := range logits {
		m = math.Max(m, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - m)
	}
	return float64(logits[id]) - m - math.Log(sum)
}
