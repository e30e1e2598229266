package policies

import (
	"cmp"
	"fmt"
	"slices"
	"sync"

	"kvcascade/runtime/backend"
)

// logsearchSpec is issue 19's policy: a fixed working set (sinks and a
// recent window) plus every evicted token kept and indexed by a tree of key
// bounds, from which each chunk retrieves the top-k blocks.
func logsearchSpec() Spec {
	return Spec{
		Name: "logsearch",
		Doc: "sinks + a recent window, and every evicted token kept in a tree of per-block key bounds; " +
			"each chunk also attends to the top-k blocks found by best-first descent (memory grows with the stream; " +
			"device_tokens keeps a fixed part on the device and the rest in a pinned-host tier)",
		Params: []Param{
			{Name: "sinks", Kind: "int", Default: 4, Doc: "first tokens always attended (attention sinks)"},
			{Name: "window", Kind: "int", Default: 256, Doc: "most recent tokens always attended (up to block−1 more while a block fills)"},
			{Name: "block", Kind: "int", Default: 16, Doc: "tokens per leaf of the index (B)"},
			{Name: "topk", Kind: "int", Default: 4, Doc: "evicted blocks retrieved per chunk and KV head (k)"},
			{Name: "beam", Kind: "int", Default: 0, OmitDefault: true,
				Doc: "0: exact best-first search (the top k by bound; O(N/B) bounds where the boxes do not separate the blocks); " +
					"b ≥ topk: descend level by level keeping the b best nodes (approximate, O(b·log N) bounds)"},
			{Name: "device_tokens", Kind: "int", Default: 0, OmitDefault: true,
				Doc: "0: every token in the backend's storage (grows with the stream); n > 0: n rows per KV head there " +
					"(the sinks, topk·block staging rows for the retrieved blocks, a ring of the recent tokens) and every " +
					"non-sink token written through to a host tier (page-locked on a GPU) from which the retrieved blocks " +
					"are copied for each chunk; at least sinks + topk·block + window + block"},
			positionsParam(),
		},
		make: func(v Values) (Factory, error) {
			const name = "logsearch"
			if err := atLeast(name, v, 0, "sinks", "window", "topk", "beam", "device_tokens"); err != nil {
				return nil, err
			}
			if err := atLeast(name, v, 1, "block"); err != nil {
				return nil, err
			}
			if v.Int("sinks")+v.Int("window")+(v.Int("topk")+1)*v.Int("block") > maxSlots {
				return nil, paramError(name, "topk", "sinks + window + (topk+1)·block is more than %d", maxSlots)
			}
			if b := v.Int("beam"); b > 0 && b < v.Int("topk") {
				return nil, paramError(name, "beam", "beam %d is less than topk %d (0: exact search)", b, v.Int("topk"))
			}
			if d, least := v.Int("device_tokens"), v.Int("sinks")+v.Int("topk")*v.Int("block")+v.Int("window")+v.Int("block"); d > 0 && d < least {
				return nil, paramError(name, "device_tokens", "device_tokens %d is less than sinks + topk·block + window + block = %d", d, least)
			}
			if v.Int("device_tokens") > maxSlots {
				return nil, paramError(name, "device_tokens", "device_tokens is more than %d", maxSlots)
			}
			cfg := logsearchConfig{sinks: int64(v.Int("sinks")), window: int64(v.Int("window")),
				block: int64(v.Int("block")), topk: v.Int("topk"), beam: v.Int("beam"), positions: positionsOf(v),
				device: int64(v.Int("device_tokens"))}
			return factoryFunc{name, func(_ int, s Shape) (Policy, error) {
				if err := checkShape(s); err != nil {
					return nil, err
				}
				if s.HeadDim <= 0 {
					return nil, fmt.Errorf("bad shape: head dimension %d", s.HeadDim)
				}
				return newLogsearch(cfg, s), nil
			}}, nil
		},
	}
}

type logsearchConfig struct {
	sinks, window, block int64
	topk                 int
	beam                 int // 0: exact best-first search; else searchBeam's width
	positions            positions
	// device > 0: the tiered layout (device rows per KV head); 0: token t
	// in storage slot t
	device int64
}

// logsearch keeps every token: token t lives in storage slot t for ever,
// so the storage grows with the stream like full's; with device_tokens the
// storage is fixed and every token is also in a host tier (the tiered
// layout below). What is fixed is the
// working set a chunk always attends to: the sinks (tokens 0…sinks−1) and
// the recent tokens, from the first token of the block after the last
// evicted one to the newest (window to window+block−1 tokens once the
// stream is long enough). Tokens that leave the window are evicted from
// the working set in whole blocks of B: block j holds tokens sinks+j·B …
// sinks+(j+1)·B−1 and is evicted once all of its tokens are older than the
// window.
//
// Every non-sink token's key goes into its KV head's blockIndex as it is
// committed. For each chunk and KV head, the index is searched with the
// chunk's last query of every query head of the GQA group (the bound of a
// node is the maximum over the group's queries), among the evicted blocks
// only, and the chunk attends to [sinks ; the top-k blocks, in original
// order ; recent tokens]. Positions are handled as by the other policies:
// "cache" numbers that view 0…L−1 and puts the chunk at L, "original"
// gives every key its own position.
//
// Keys and queries are indexed and compared before RoPE: the score that
// ranks a block is the un-rotated q·k, the attention logit a key would
// have at the query's own position (relative distance 0). The retrieved
// tokens are then attended at the positions above, so what the bound ranks
// is the content match, not the logit the key gets in the view: exact for
// the rotary pairs whose angle over the real distance is small, an
// approximation for the fast-rotating ones.
//
// The Cache hands the policy what it needs on the host (the searcher
// interface): the chunk's last query row before Plan and the chunk's key
// rows before Commit. Without a query for a chunk it retrieves nothing.
type logsearch struct {
	c    logsearchConfig
	s    Shape
	seen int64
	step Step

	index []*blockIndex // [Hkv]
	q     []float32     // [Hq·hd] the chunk's last query, before RoPE
	hasQ  bool          // q belongs to the chunk about to be planned
	keys  []float32     // [n·Hkv·hd] the chunk's keys, before RoPE
	hasK  bool

	// scratch of Plan
	found  []int32 // [Hkv·k] retrieved blocks, head by head, sorted
	visits int     // node bounds computed by the last Plan, all heads

	// the tier (c.device > 0): fetchSrc, fetchDst [Hkv·k·B] are the host
	// rows of the retrieved blocks and the staging rows they are copied
	// to before the chunk's attention, tierPlace [Hkv·n] the host row of
	// each token of the last committed chunk (−1 for a sink)
	fetchSrc, fetchDst, tierPlace []int32
	// staged [Hkv·topk] is the block each head's staging place holds (−1:
	// none); at [Hkv·k] the place of each block found, fresh whether it
	// must be copied there (stageBlocks)
	staged, at []int32
	fresh      []bool
	order      []int32 // scratch of stageBlocks
	kept       []bool
}

// searcher is a host policy that plans from the chunk's queries and
// indexes the keys it is given: the Cache reads both to the host for it
// (the keys as for any keyObserver: [n, Hkv·hd], before RoPE, before
// Commit).
type searcher interface {
	Policy
	keyObserver
	// setQuery gives the last query row [Hq·hd] of the chunk about to be
	// planned, before RoPE.
	setQuery(q []float32)
}

var _ searcher = (*logsearch)(nil)

var _ tiered = (*logsearch)(nil)

func newLogsearch(c logsearchConfig, s Shape) *logsearch {
	p := &logsearch{c: c, s: s, index: make([]*blockIndex, s.KVHeads)}
	for h := range p.index {
		p.index[h] = newBlockIndex(s.HeadDim, int(c.block))
	}
	return p
}

func (p *logsearch) setQuery(q []float32) {
	p.q = append(p.q[:0], q...)
	p.hasQ = true
}

// wantsKeys: every chunk's keys go into the index.
func (p *logsearch) wantsKeys() bool { return true }

func (p *logsearch) observeKeys(k []float32) {
	p.keys = append(p.keys[:0], k...)
	p.hasK = true
}

// Reserve: every token keeps its slot, so the storage holds all of them;
// with the tier, the device rows are fixed.
func (p *logsearch) Reserve(n int) int {
	if p.c.device > 0 {
		return int(p.c.device)
	}
	return int(p.seen) + n
}

// The tiered layout (device_tokens = D > 0) of each KV head's D device
// rows: the sinks in rows 0…sinks−1, topk·B staging rows from row sinks on
// (the i-th retrieved block of the chunk in rows sinks + i·B …), and a
// ring of the R = D − sinks − topk·B rows above them, where non-sink token
// t lives in row ringSlot(t) until R newer tokens have come. R ≥ window +
// B holds every recent token a view attends to (at most window + B − 1).
// Every non-sink token t is also written through to row t − sinks of the
// host tier, from which the retrieved blocks are copied to the staging
// rows before each chunk's attention.

// tierOn reports whether the policy keeps the tiered layout.
func (p *logsearch) tierOn() bool { return p.c.device > 0 }

// stage is the first staging row.
func (p *logsearch) stage() int64 { return p.c.sinks }

// ringBase is the first row of the ring in the tiered layout, ringRows
// its rows (R).
func (p *logsearch) ringBase() int64 { return p.c.sinks + int64(p.c.topk)*p.c.block }
func (p *logsearch) ringRows() int64 { return p.c.device - p.ringBase() }

// ringSlot is the device row of non-sink token t in the tiered layout.
func (p *logsearch) ringSlot(t int64) int32 {
	return int32(p.ringBase() + (t-p.c.sinks)%p.ringRows())
}

// slotOf is the storage row a view reads token t from: t itself without
// the tier; in the tiered layout a sink's own row or the ring's.
func (p *logsearch) slotOf(t int64) int32 {
	if !p.tierOn() || t < p.c.sinks {
		return int32(t)
	}
	return p.ringSlot(t)
}

// fetch returns the copies the chunk just planned needs before its
// attention: host row src[h·m+i] of head h into device row dst[h·m+i],
// −1 where the block is staged already.
func (p *logsearch) fetch() (src, dst []int32) { return p.fetchSrc, p.fetchDst }

// hostPlace returns the host row of each token of the chunk just
// committed, [Hkv·n], −1 for a sink.
func (p *logsearch) hostPlace() []int32 { return p.tierPlace }

// hostRows is the host tier's rows per KV head once the chunk just
// committed is stored.
func (p *logsearch) hostRows() int { return int(max(0, p.seen-p.c.sinks)) }

// evicted returns the number of blocks evicted from the working set after
// seen tokens.
func (p *logsearch) evicted(seen int64) int64 {
	return max(0, (seen-p.c.sinks-p.c.window)/p.c.block)
}

// recent returns the first token of the working set's recent part.
func (p *logsearch) recent(seen int64) int64 {
	return min(seen, p.c.sinks) + p.evicted(seen)*p.c.block
}

func (p *logsearch) Plan(step Step, view *backend.View) {
	p.step = step
	hk, hd, g := p.s.KVHeads, p.s.HeadDim, p.s.Group()
	ne := p.evicted(p.seen)
	k := 0
	if p.hasQ {
		k = int(min(int64(p.c.topk), ne))
	}
	p.hasQ = false
	p.found = grow(p.found, hk*k)
	p.visits = 0
	if k > 0 {
		// The KV heads' indexes are searched side by side: each has its
		// own scratch and writes its own part of found.
		visits := make([]int, hk)
		var wg sync.WaitGroup
		for h := range hk {
			wg.Go(func() {
				f := p.found[h*k : h*k : (h+1)*k]
				q := p.q[h*g*hd : (h+1)*g*hd]
				if p.c.beam > 0 {
					f, visits[h] = p.index[h].searchBeam(q, k, int(ne), p.c.beam, f)
				} else {
					f, visits[h] = p.index[h].search(q, k, int(ne), f)
				}
				sortInt32(f)
			})
		}
		wg.Wait()
		for _, v := range visits {
			p.visits += v
		}
	}
	ns := min(p.seen, p.c.sinks)
	lo := p.recent(p.seen)
	B := int(p.c.block)
	L := int(ns) + k*B + int(p.seen-lo)
	sizeView(view, hk, L)
	if p.tierOn() {
		p.fetchSrc = grow(p.fetchSrc, hk*k*B)
		p.fetchDst = grow(p.fetchDst, hk*k*B)
		p.stageBlocks(k)
	}
	for h := 0; h < hk; h++ {
		slots, pos := view.Slots[h*L:(h+1)*L], view.Pos[h*L:(h+1)*L]
		j := 0
		put := func(t int64, slot int32) {
			slots[j], pos[j] = slot, int32(j)
			if p.c.positions == originalPositions {
				pos[j] = int32(t)
			}
			j++
		}
		for t := range ns {
			put(t, int32(t))
		}
		for i, b := range p.found[h*k : (h+1)*k] {
			first := p.c.sinks + int64(b)*p.c.block
			// the block's first row: where it is stored, or with the tier
			// the staging rows it is (or was already) copied to from the
			// host tier
			row := int32(first)
			if p.tierOn() {
				row = int32(p.stage() + int64(p.at[h*k+i])*p.c.block)
			}
			for o := range B {
				t := first + int64(o)
				if p.tierOn() {
					e := (h*k+i)*B + o
					p.fetchSrc[e], p.fetchDst[e] = -1, -1
					if p.fresh[h*k+i] {
						p.fetchSrc[e], p.fetchDst[e] = int32(t-p.c.sinks), row+int32(o)
					}
				}
				put(t, row+int32(o))
			}
		}
		for t := lo; t < p.seen; t++ {
			put(t, p.slotOf(t))
		}
	}
	queryPos(view.QueryPos, L, step, p.c.positions)
	view.QueryWeights = nil
	view.Device = nil
}

// stageBlocks assigns each head's k blocks just found their staging
// places: a block a place already holds (the previous chunk retrieved it
// too; an evicted block's rows never change) stays there and is not
// copied again, the others take the places of the blocks no longer found.
// A decoding step, whose retrieval mostly repeats the last one's, then
// copies only the blocks that changed.
func (p *logsearch) stageBlocks(k int) {
	hk, K := p.s.KVHeads, p.c.topk
	if len(p.staged) != hk*K {
		p.staged = make([]int32, hk*K)
		for i := range p.staged {
			p.staged[i] = -1
		}
	}
	p.at, p.fresh = grow(p.at, hk*k), grow(p.fresh, hk*k)
	p.order, p.kept = grow(p.order, K), grow(p.kept, K)
	order, kept := p.order, p.kept
	for h := range hk {
		staged, found := p.staged[h*K:(h+1)*K], p.found[h*k:(h+1)*k]
		at, fresh := p.at[h*k:(h+1)*k], p.fresh[h*k:(h+1)*k]
		// the places by the block they hold, merged against found (sorted)
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(staged[a], staged[b]) })
		clear(kept)
		j := 0
		for i, b := range found {
			for j < K && staged[order[j]] < b {
				j++
			}
			fresh[i] = j == K || staged[order[j]] != b
			if !fresh[i] {
				at[i], kept[order[j]] = order[j], true
				j++
			}
		}
		free := 0
		for i, b := range found {
			if !fresh[i] {
				continue
			}
			for kept[free] {
				free++
			}
			at[i], staged[free], kept[free] = int32(free), b, true
		}
	}
}

// sortInt32 sorts a few block indices (insertion sort: k is small).
func sortInt32(s []int32) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func (p *logsearch) Commit(_ []float32, place []int32) {
	n, hk, hd := p.step.N, p.s.KVHeads, p.s.HeadDim
	if !p.hasK || len(p.keys) != n*hk*hd {
		panic(fmt.Sprintf("policies: logsearch committed %d tokens without their keys (%d values; the Cache hands them)", n, len(p.keys)))
	}
	p.hasK = false
	if p.tierOn() {
		// A token that R newer tokens of the same chunk overwrite in the
		// ring is not stored on the device at all (it is in the host tier).
		ring := p.ringRows()
		p.tierPlace = grow(p.tierPlace, hk*n)
		for i := 0; i < n; i++ {
			t := p.seen + int64(i)
			slot, host := p.slotOf(t), int32(t-p.c.sinks)
			if t < p.c.sinks {
				host = -1
			} else if t < p.seen+int64(n)-ring {
				slot = -1
			}
			for h := 0; h < hk; h++ {
				place[h*n+i], p.tierPlace[h*n+i] = slot, host
			}
		}
	} else {
		for i := 0; i < n; i++ {
			for h := 0; h < hk; h++ {
				place[h*n+i] = int32(p.seen + int64(i))
			}
		}
	}
	// Each KV head's index takes its keys apart from the others'.
	var wg sync.WaitGroup
	for h := range hk {
		add := func() {
			for i := max(0, p.c.sinks-p.seen); i < int64(n); i++ {
				p.index[h].add(p.keys[(int(i)*hk+h)*hd : (int(i)*hk+h+1)*hd])
			}
		}
		if n == 1 {
			add() // a decoding step: one key, not worth a goroutine
			continue
		}
		wg.Go(add)
	}
	wg.Wait()
	p.seen += int64(n)
}

// Held: every token seen stays in storage and may be retrieved.
func (p *logsearch) Held(_ int, dst []int64) []int64 {
	for t := range p.seen {
		dst = append(dst, t)
	}
	return dst
}

// viewed appends to dst the original positions of the tokens the last
// planned view of head h attends to, in attention order.
func (p *logsearch) viewed(h int, dst []int64) []int64 {
	ns := min(p.step.Start, p.c.sinks)
	for t := range ns {
		dst = append(dst, t)
	}
	k := len(p.found) / p.s.KVHeads
	for _, b := range p.found[h*k : (h+1)*k] {
		first := p.c.sinks + int64(b)*p.c.block
		for t := first; t < first+p.c.block; t++ {
			dst = append(dst, t)
		}
	}
	for t := p.recent(p.step.Start); t < p.step.Start; t++ {
		dst = append(dst, t)
	}
	return dst
}

// MetaBytes: the index (grows with the stream: about 4·hd float32 per
// block of B tokens per KV head), the host copies of one chunk's keys and
// last query, and the tier's and search's scratch.
func (p *logsearch) MetaBytes() int64 {
	b := int64(cap(p.q)+cap(p.keys)+cap(p.found)+cap(p.fetchSrc)+cap(p.fetchDst)+cap(p.tierPlace)+cap(p.staged)+cap(p.at)+cap(p.order))*4 +
		int64(cap(p.fresh)+cap(p.kept))
	for _, x := range p.index {
		b += x.bytes()
	}
	return b
}

func (p *logsearch) originalPositions() bool { return p.c.positions == originalPositions }
