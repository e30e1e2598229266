package policies

import (
	"fmt"

	"kvcascade/runtime/backend"
)

// Cache is the KV cache of one sequence: per layer, the key and value
// storage on a backend and the policy that manages it. It implements the
// cache interface of runtime/model.
type Cache struct {
	b      backend.Backend
	policy string // the factory's name
	shape  Shape
	dtype  backend.DType
	layers []layerCache
	probe  PromptEndProbe // see ProbePromptEnd
	// pooled: every layer stores its keys and values in one pool
	// [1, capacity, hd] that all KV heads draw slots from (slotSharer).
	pooled bool
	// viewRows counts the key rows of every view handed out (ViewRows).
	viewRows int64
	// tier is the backend's host tier when a layer's policy keeps one,
	// tierRows the rows per KV head of each of its segments.
	tier     backend.HostTier
	tierRows int
}

// tierSegment is the rows per KV head of one segment of a host tier: the
// tier grows by whole segments, so nothing is copied as it grows.
const tierSegment = 65536

// PromptEndProbe receives, for layer l, the attention of the prompt's last
// token: pos[h] are the original positions of the keys KV head h attended
// to, in attention order (the keys held, then the chunk's own), and mass
// [Hq·len(pos[0])] that token's attention probabilities over them, query
// head by query head.
type PromptEndProbe func(l int, pos [][]int64, mass []float32)

type layerCache struct {
	p      Policy
	dev    devicePolicy   // p, when its bookkeeping runs on the backend's device
	k, v   backend.Tensor // [Hkv, capacity, hd], or [1, capacity, hd] when pooled
	cap    int            // slots per KV head, or in the pool
	seen   int64          // tokens seen
	view   backend.View
	step   Step
	place  []int32   // [Hkv·n]
	keys   []float32 // [n, Hkv·hd] the chunk's keys, for a keyObserver
	vals   []float32 // [n, Hkv·hd] the chunk's values, for a valueObserver
	host   []float32 // [Hq·hd] host copy of a chunk's last query, for a searcher; [n, Hq·hd] for a queryObserver
	active bool      // between View and Update
	probe  []float32 // [n] one-hot query weights while probing the prompt's last token
	probed bool      // the current chunk is probed (see Cache.ProbePromptEnd)

	// tp is p when it keeps a host tier; tierK, tierV its segments
	// [Hkv, Cache.tierRows, hd]: host row r of a head is row r%tierRows
	// of segment r/tierRows
	tp           tiered
	tierK, tierV []backend.Tensor
	rowsA, rowsB []int32 // per-segment row lists
}

// tiered is a policy that keeps every token in a host tier as well as
// (some of them) in its device storage (logsearch with device_tokens):
// the Cache writes each committed chunk's rows through to the tier and,
// before a chunk's attention, copies the rows its view reads from the
// tier into device storage.
type tiered interface {
	Policy
	// tierOn reports whether the policy uses the tier.
	tierOn() bool
	// fetch returns, after Plan, the copies the chunk needs before its
	// attention: host row src[h·m+i] of KV head h into device storage row
	// dst[h·m+i], m = len(src)/Hkv; −1 in both skips the pair (the row is
	// on the device already).
	fetch() (src, dst []int32)
	// hostPlace returns, after Commit, the host row [Hkv·n] of each token
	// of the chunk, −1 for one not written to the tier.
	hostPlace() []int32
	// hostRows returns, after Commit, the rows per KV head the tier must
	// hold.
	hostRows() int
}

// NewCache builds one policy per layer with f and returns the empty cache.
// Keys and values are stored as dtype on b.
func NewCache(b backend.Backend, f Factory, s Shape, dtype backend.DType) (*Cache, error) {
	if s.KVHeads <= 0 || s.QHeads%s.KVHeads != 0 || s.HeadDim <= 0 || s.Layers <= 0 {
		return nil, fmt.Errorf("cache: bad shape %+v", s)
	}
	c := &Cache{b: b, policy: f.Name(), shape: s, dtype: dtype, layers: make([]layerCache, s.Layers)}
	for l := range c.layers {
		lc := &c.layers[l]
		var err error
		if df, ok := f.(deviceFactory); ok {
			lc.dev, err = df.onDevice(l, s, b)
			lc.p = lc.dev
		}
		if lc.dev == nil && err == nil {
			lc.p, err = f.NewLayer(l, s)
		}
		if err != nil {
			c.Free()
			return nil, fmt.Errorf("policy %s, layer %d: %w", f.Name(), l, err)
		}
	}
	if sh, ok := c.layers[0].p.(slotSharer); ok && sh.sharesSlots() {
		if sp, ok := b.(backend.SlotPooler); !ok || !sp.PoolsSlots() {
			c.Free()
			return nil, fmt.Errorf("policy %s gives KV heads different numbers of tokens from one pool of slots per layer, "+
				"which backend %s cannot address (backend.SlotPooler): run it on the cpu backend", f.Name(), b.Name())
		}
		c.pooled = true
	}
	for l := range c.layers {
		lc := &c.layers[l]
		if tp, ok := lc.p.(tiered); ok && tp.tierOn() {
			ht, ok := b.(backend.HostTier)
			if !ok {
				c.Free()
				return nil, fmt.Errorf("policy %s keeps its evicted tokens in a host tier, which backend %s has none of "+
					"(backend.HostTier): set device_tokens = 0 or use another backend", f.Name(), b.Name())
			}
			lc.tp, c.tier, c.tierRows = tp, ht, tierSegment
		}
	}
	return c, nil
}

// slotSharer is implemented by policies whose KV heads draw their slots
// from one pool per layer (adakv), so that heads hold different numbers of
// tokens: Reserve and the slots they place then count the pool, and the
// Cache stores the layer as one [1, capacity, hd] on a backend.SlotPooler.
type slotSharer interface {
	sharesSlots() bool
}

// deviceFactory is a Factory whose policies also come in a variant that
// keeps its bookkeeping on the backend's device (see policies/device). The
// Cache asks for that variant first, once per layer; NewLayer makes the
// host variant.
type deviceFactory interface {
	Factory
	// onDevice returns layer's policy on b's device, or nil (and no error)
	// when b does not run it there.
	onDevice(layer int, s Shape, b backend.Backend) (devicePolicy, error)
}

// devicePolicy is the device variant of a policy: its Plan returns a
// device view (View.Device), and commitDevice replaces Commit (which it
// does not implement: the mass stays on the device) and the scatter.
type devicePolicy interface {
	Policy
	// commitDevice consumes the chunk's mass on the device and stores the
	// rows of the chunk's keys and values chunkK, chunkV [n, Hkv·hd] that
	// the policy keeps into the storage k, v.
	commitDevice(k, v, chunkK, chunkV backend.Tensor)
	// release frees the device state.
	release()
}

// The device variants of the policies that have one.
var _ = []devicePolicy{(*cascadeDevice)(nil), (*h2oDevice)(nil), (*snapkvDevice)(nil), (*fullDevice)(nil),
	(*patternDevice)(nil)}

// The device variants say which of their bookkeeping bytes live on the
// device (Memory).
var _ = []deviceBookkeeper{(*cascadeDevice)(nil), (*h2oDevice)(nil), (*snapkvDevice)(nil), (*fullDevice)(nil),
	(*patternDevice)(nil)}

// dualFactory is the factory of a policy with a device variant: NewLayer
// makes the host one, device the one on a backend's device (nil, nil when
// the backend cannot run it).
type dualFactory struct {
	factoryFunc
	device func(layer int, s Shape, b backend.Backend) (devicePolicy, error)
}

func (f dualFactory) onDevice(l int, s Shape, b backend.Backend) (devicePolicy, error) {
	return f.device(l, s, b)
}

// OnDevice reports whether layer l's policy keeps its bookkeeping on the
// backend's device.
func (c *Cache) OnDevice(l int) bool { return c.layers[l].dev != nil }

// OriginalPositions returns nil when every layer's policy gives keys and
// queries their original positions (full and truncated always do; the
// evicting policies with positions = "original"), and otherwise an error
// naming the policy: what a model with a sliding window needs
// (model.WindowCache).
func (c *Cache) OriginalPositions() error {
	for l := range c.layers {
		if p, ok := c.layers[l].p.(positioned); !ok || !p.originalPositions() {
			return fmt.Errorf("policy %s (layer %d) puts keys at their places in the cache, not at their original positions; set positions = \"original\" to use it with this model", c.policy, l)
		}
	}
	return nil
}

// Policy returns the policy of layer l.
func (c *Cache) Policy(l int) Policy { return c.layers[l].p }

// Seen returns the number of tokens layer 0 has taken.
func (c *Cache) Seen() int64 { return c.layers[0].seen }

// ViewRows is the number of key rows the views handed out so far hold,
// over all layers: per KV head, or per query head where a policy plans
// per query head, the view's keys (padding included) and the chunk's own.
// Each row is a key and a value of HeadDim elements that the attention
// reads, so the rows one decoding step adds, times 2·HeadDim·element
// size, are the cache bytes the step must read.
func (c *Cache) ViewRows() int64 { return c.viewRows }

// View returns what the next chunk of n tokens of layer l attends to.
// promptEnd is the position one past the prompt's end while a prompt is
// read, or -1 while decoding.
func (c *Cache) View(l, n int, promptEnd int64) (*backend.View, error) {
	lc := &c.layers[l]
	if lc.active {
		return nil, fmt.Errorf("cache layer %d: View called twice without Update", l)
	}
	c.reserve(lc, n)
	lc.step = Step{Start: lc.seen, N: n, PromptEnd: promptEnd}
	lc.p.Plan(lc.step, &lc.view)
	lc.probed = false
	if c.probe != nil && lc.dev == nil && lc.view.QueryWeights == nil && lc.step.EndsPrompt() {
		// Ask the backend for the attention of the prompt's last token
		// alone; the policy asked for none and gets none.
		lc.probe = grow(lc.probe, n)
		clear(lc.probe)
		lc.probe[lc.step.PromptEnd-1-lc.step.Start] = 1
		lc.view.QueryWeights = lc.probe
		lc.probed = true
	}
	lc.view.K, lc.view.V = lc.k, lc.v
	rows := c.shape.KVHeads
	if lc.view.PerQueryHead {
		rows = c.shape.QHeads
	}
	if got, want := len(lc.view.Slots), lc.view.ViewLen*rows; got != want && lc.dev == nil {
		return nil, fmt.Errorf("cache layer %d: policy planned %d slots, want %d", l, got, want)
	}
	if lc.tp != nil {
		c.fetch(lc)
	}
	c.viewRows += int64((lc.view.ViewLen + n) * rows)
	lc.active = true
	return &lc.view, nil
}

// Query hands layer l the queries q [n, Hq·hd] (before RoPE) of the chunk
// whose View comes next. Only a policy that plans from the queries
// (logsearch) or scores by them (a queryObserver) reads them: the layer
// copies the last row, or all rows, to the host; for the others Query does
// nothing.
func (c *Cache) Query(l int, q backend.Tensor) error {
	lc := &c.layers[l]
	if qo, ok := lc.p.(queryObserver); ok && qo.wantsQueries() {
		sh := q.Shape()
		if len(sh) != 2 || sh[1] != c.shape.QHeads*c.shape.HeadDim {
			return fmt.Errorf("cache layer %d: queries of shape %v, want [n, %d]", l, sh, c.shape.QHeads*c.shape.HeadDim)
		}
		lc.host = grow(lc.host, sh[0]*sh[1])
		c.b.Read(q, lc.host)
		qo.observeQueries(lc.host)
		return nil
	}
	sp, ok := lc.p.(searcher)
	if !ok {
		return nil
	}
	if lc.active {
		return fmt.Errorf("cache layer %d: Query between View and Update", l)
	}
	sh := q.Shape()
	if len(sh) != 2 || sh[0] < 1 || sh[1] != c.shape.QHeads*c.shape.HeadDim {
		return fmt.Errorf("cache layer %d: queries of shape %v, want [n, %d]", l, sh, c.shape.QHeads*c.shape.HeadDim)
	}
	last := c.b.Slice(q, sh[0]-1, sh[0])
	lc.host = grow(lc.host, sh[1])
	c.b.Read(last, lc.host)
	sp.setQuery(lc.host)
	return nil
}

// Reserve makes room in every layer's storage for the next n tokens, as
// View would for a chunk of n, so that the storage of a policy whose
// memory grows with the stream does not grow during the next n steps: a
// timed decode of n tokens then measures the steps, not one doubling of
// the whole cache that happened to fall among them.
func (c *Cache) Reserve(n int) {
	for l := range c.layers {
		c.reserve(&c.layers[l], n)
	}
}

// reserve grows lc's storage, when it must, to what its policy asks for a
// chunk of n tokens.
func (c *Cache) reserve(lc *layerCache, n int) {
	if need := lc.p.Reserve(n); need > lc.cap {
		c.growLayer(lc, need)
	}
}

// growLayer enlarges the storage of a layer to at least need slots per head,
// doubling so that a growing cache costs amortised O(1) copies per token.
func (c *Cache) growLayer(lc *layerCache, need int) {
	newCap := grownCap(lc.cap, need)
	s := c.shape
	heads := s.KVHeads
	if c.pooled {
		heads = 1
	}
	k := c.b.New(c.dtype, heads, newCap, s.HeadDim)
	v := c.b.New(c.dtype, heads, newCap, s.HeadDim)
	if lc.k != nil {
		c.b.CopySlots(k, lc.k, lc.cap)
		c.b.CopySlots(v, lc.v, lc.cap)
		c.b.Free(lc.k)
		c.b.Free(lc.v)
	}
	lc.k, lc.v, lc.cap = k, v, newCap
}

// grownCap is the capacity, in slots per KV head, that storage of cap slots
// grows to when a chunk needs need > cap: doubling, at least 16.
func grownCap(cap, need int) int { return max(need, 2*cap, 16) }

// SlotsAfter estimates the storage slots per KV head one layer of a Cache of
// f's policy holds after n tokens read in chunks of chunk, without running
// it: a policy whose fresh reservation does not grow with the chunk is
// bounded and reserves that once; the storage of the others grows by
// the Cache's own rule as each chunk asks for room for every token so far.
func SlotsAfter(f Factory, s Shape, n, chunk int) (int, error) {
	l, err := f.NewLayer(0, s)
	if err != nil {
		return 0, err
	}
	if r := l.Reserve(chunk); r == l.Reserve(2*chunk) {
		return r, nil
	}
	slots := 0
	for seen := 0; seen < n; seen += chunk {
		if need := min(seen+chunk, n); need > slots {
			slots = grownCap(slots, need)
		}
	}
	return slots, nil
}

// Update hands the chunk's keys and values [n, Hkv·hd] and the attention mass
// the chunk produced back to layer l, which stores what its policy keeps.
func (c *Cache) Update(l int, k, v backend.Tensor, mass []float32) error {
	lc := &c.layers[l]
	if !lc.active {
		return fmt.Errorf("cache layer %d: Update without View", l)
	}
	lc.active = false
	n := lc.step.N
	if lc.dev != nil {
		lc.dev.commitDevice(lc.k, lc.v, k, v)
		lc.seen += int64(n)
		return nil
	}
	lc.place = grow(lc.place, n*c.shape.KVHeads)
	if lc.probed {
		lc.view.QueryWeights = nil
		lc.probed = false
		if mass != nil {
			pos := make([][]int64, c.shape.KVHeads)
			whole := true // the view shows every held token
			for h := range pos {
				pos[h] = lc.p.Held(h, nil)
				whole = whole && len(pos[h]) == lc.view.ViewLen
				for i := range n {
					pos[h] = append(pos[h], lc.step.Start+int64(i))
				}
			}
			if whole {
				c.probe(l, pos, mass)
			}
		}
		mass = nil
	}
	if ko, ok := lc.p.(keyObserver); ok && ko.wantsKeys() {
		lc.keys = grow(lc.keys, n*c.shape.KVHeads*c.shape.HeadDim)
		c.b.Read(k, lc.keys)
		ko.observeKeys(lc.keys)
	}
	if vo, ok := lc.p.(valueObserver); ok && vo.wantsValues() {
		lc.vals = grow(lc.vals, n*c.shape.KVHeads*c.shape.HeadDim)
		c.b.Read(v, lc.vals)
		vo.observeValues(lc.vals)
	}
	lc.p.Commit(mass, lc.place)
	for i, s := range lc.place {
		if int(s) >= lc.cap {
			return fmt.Errorf("cache layer %d: policy placed token %d in slot %d of %d", l, i%n, s, lc.cap)
		}
	}
	c.b.Scatter(lc.k, k, lc.place)
	c.b.Scatter(lc.v, v, lc.place)
	if lc.tp != nil {
		c.writeThrough(lc, k, v)
	}
	lc.seen += int64(n)
	return nil
}

// fetch copies the rows the chunk just planned needs from lc's host tier
// into its device storage: one CopyRows per tier segment it reads from,
// keys and values.
func (c *Cache) fetch(lc *layerCache) {
	src, dst := lc.tp.fetch()
	c.bySegment(lc, src, func(seg int, rows []int32) {
		lc.rowsB = grow(lc.rowsB, len(dst))
		for e, r := range rows {
			lc.rowsB[e] = -1
			if r >= 0 {
				lc.rowsB[e] = dst[e]
			}
		}
		c.tier.CopyRows(lc.k, lc.tierK[seg], lc.rowsB, rows)
		c.tier.CopyRows(lc.v, lc.tierV[seg], lc.rowsB, rows)
	})
}

// writeThrough stores the chunk's keys and values k, v [n, Hkv·hd] in lc's
// host tier where the policy placed them, adding segments as it grows.
func (c *Cache) writeThrough(lc *layerCache, k, v backend.Tensor) {
	for need := lc.tp.hostRows(); len(lc.tierK)*c.tierRows < need; {
		s := c.shape
		lc.tierK = append(lc.tierK, c.tier.NewHostTensor(c.dtype, s.KVHeads, c.tierRows, s.HeadDim))
		lc.tierV = append(lc.tierV, c.tier.NewHostTensor(c.dtype, s.KVHeads, c.tierRows, s.HeadDim))
	}
	c.bySegment(lc, lc.tp.hostPlace(), func(seg int, rows []int32) {
		c.b.Scatter(lc.tierK[seg], k, rows)
		c.b.Scatter(lc.tierV[seg], v, rows)
	})
}

// bySegment calls fn, for every tier segment that host rows (−1: none)
// name, with the list of the rows within that segment, the others −1.
func (c *Cache) bySegment(lc *layerCache, rows []int32, fn func(seg int, local []int32)) {
	lo, hi := len(lc.tierK), -1 // the segments named
	for _, r := range rows {
		if r >= 0 {
			g := int(r) / c.tierRows
			lo, hi = min(lo, g), max(hi, g)
		}
	}
	for g := lo; g <= hi; g++ {
		lc.rowsA = grow(lc.rowsA, len(rows))
		named := false
		for e, r := range rows {
			lc.rowsA[e] = -1
			if r >= 0 && int(r)/c.tierRows == g {
				lc.rowsA[e], named = r%int32(c.tierRows), true
			}
		}
		if named {
			fn(g, lc.rowsA)
		}
	}
}

// ProbePromptEnd has the cache hand fn the attention of the prompt's last
// token in every layer whose policy asks for no attention mass of its own
// and shows each chunk every token it holds (full, sink), as that chunk is
// stored. Policies that ask for mass (cascade, h2o, …) or show a sparse
// view (bigbird, logsearch) are not probed, nor are policies whose
// bookkeeping runs on the device. The policy sees no mass and decides as it
// would unprobed. nil stops probing.
func (c *Cache) ProbePromptEnd(fn PromptEndProbe) { c.probe = fn }

// Held returns the original positions head h of layer l holds, in
// attention order.
func (c *Cache) Held(l, h int) []int64 { return c.layers[l].p.Held(h, nil) }

// scorer is a policy that keeps a score for the tokens it may evict
// (cascade: the EMA of the attention they received; h2o, snapkv and the
// scored policies: their accumulated or fixed scores).
type scorer interface {
	// Scores appends to dst the scores of the scored tokens head h holds,
	// which are the last tokens of Held's order (a cascade's sinks come
	// first and have none).
	Scores(h int, dst []float32) []float32
}

// Scores returns the scores the policy of layer l keeps for the tokens
// head h holds, aligned with the tail of Held(l, h): the i-th score
// belongs to Held(l, h)[len(Held)−len(Scores)+i]. It returns nil when the
// policy keeps no scores (full, sink).
func (c *Cache) Scores(l, h int) []float32 {
	if s, ok := c.layers[l].p.(scorer); ok {
		return s.Scores(h, nil)
	}
	return nil
}

// Bytes is the memory the cache holds: key and value storage of every layer
// plus the policies' bookkeeping (Memory says where it lives).
func (c *Cache) Bytes() int64 {
	m := c.Memory()
	return m.Storage + m.HostStorage + m.Device + m.Host
}

// Memory is where the bytes of a Cache live.
type Memory struct {
	// Storage is the key and value storage of every layer, allocated in
	// the backend's memory: the GPU's with the CUDA backend, the host's
	// with the CPU backend.
	Storage int64
	// HostStorage is the key and value storage of every layer's host tier
	// (logsearch with device_tokens: every non-sink token, in segments of
	// 65,536 rows per KV head), in host memory, page-locked on the CUDA
	// backend; 0 without a tier.
	HostStorage int64
	// Device is the bookkeeping of the policies that plan on the
	// backend's device (their lists, scores and rings), also in the
	// backend's memory.
	Device int64
	// Host is the bookkeeping the policies keep in host memory: the host
	// policies' scores and slot maps, logsearch's and quest's index of
	// every evicted block, host copies of a chunk's queries and keys.
	Host int64
}

// deviceBookkeeper is a policy that keeps part of its bookkeeping on the
// backend's device: deviceBytes of its MetaBytes live there.
type deviceBookkeeper interface {
	deviceBytes() int64
}

// Memory returns where the cache's bytes live.
func (c *Cache) Memory() Memory {
	var m Memory
	heads := c.shape.KVHeads
	if c.pooled {
		heads = 1
	}
	for i := range c.layers {
		lc := &c.layers[i]
		m.Storage += 2 * int64(lc.cap) * int64(heads*c.shape.HeadDim*c.dtype.Size())
		m.HostStorage += 2 * int64(len(lc.tierK)) * int64(c.tierRows) * int64(heads*c.shape.HeadDim*c.dtype.Size())
		meta := lc.p.MetaBytes()
		if d, ok := lc.p.(deviceBookkeeper); ok {
			m.Device += d.deviceBytes()
			meta -= d.deviceBytes()
		}
		m.Host += meta
	}
	return m
}

// Free releases the storage and any bookkeeping kept on the device.
func (c *Cache) Free() {
	for i := range c.layers {
		lc := &c.layers[i]
		if lc.dev != nil {
			lc.dev.release()
			lc.dev = nil
		}
		if lc.k != nil {
			c.b.Free(lc.k)
			c.b.Free(lc.v)
			lc.k, lc.v, lc.cap = nil, nil, 0
		}
		for g := range lc.tierK {
			c.b.Free(lc.tierK[g])
			c.b.Free(lc.tierV[g])
		}
		lc.tierK, lc.tierV = nil, nil
	}
}
