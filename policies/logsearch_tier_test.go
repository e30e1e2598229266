package policies

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"kvcascade/datasets/passkey"
	"kvcascade/internal/modeltest"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
)

// foundLog is a logsearch layer that records the blocks every chunk
// retrieves, head by head.
type foundLog struct {
	*logsearch
	log *[][]int32
	// rows staged for the views and rows of them copied from the tier
	staged, copied *int
}

func (f *foundLog) Plan(step Step, view *backend.View) {
	f.logsearch.Plan(step, view)
	*f.log = append(*f.log, slices.Clone(f.found))
	if f.tierOn() {
		src, _ := f.fetch()
		*f.staged += len(src)
		for _, r := range src {
			if r >= 0 {
				*f.copied++
			}
		}
	}
}

// tierRun reads ids through the embedded tiny model on the CPU backend
// with logsearch of cfg, in chunks cycling through chunks (the last ones
// through the decoding path, promptEnd −1, from decodeFrom on), and
// returns every position's logits, the blocks each layer's chunks
// retrieved and the Memory after every chunk. segment, when positive,
// replaces the host tier's segment rows.
func tierRun(t *testing.T, m *model.Model, cfg logsearchConfig, ids []int32, chunks []int, decodeFrom, segment int) (
	logits [][]float32, found [][][]int32, mems []Memory) {
	t.Helper()
	found = make([][][]int32, m.Layers)
	var staged, copied int
	f := factoryFunc{"logsearch", func(l int, s Shape) (Policy, error) {
		return &foundLog{logsearch: newLogsearch(cfg, s), log: &found[l], staged: &staged, copied: &copied}, nil
	}}
	defer func() {
		if cfg.device > 0 {
			t.Logf("%d of %d staged rows copied from the host tier, the others still staged from an earlier chunk", copied, staged)
			if copied == 0 || copied == staged {
				t.Errorf("%d of %d staged rows copied: want some copied and some kept", copied, staged)
			}
		}
	}()
	s := Shape{Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim}
	c, err := NewCache(m.Backend(), f, s, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Free()
	if segment > 0 {
		c.tierRows = segment
	}
	sess := m.NewSession(c, slices.Max(chunks))
	defer sess.Close()
	for i, at := 0, 0; at < len(ids); i++ {
		n := min(chunks[i%len(chunks)], len(ids)-at)
		pe := int64(decodeFrom)
		if at >= decodeFrom {
			n, pe = 1, -1
		}
		out, err := sess.Forward(ids[at:at+n], pe, model.AllLogits)
		if err != nil {
			t.Fatal(err)
		}
		for r := range n {
			logits = append(logits, slices.Clone(out[r*m.Vocab:(r+1)*m.Vocab]))
		}
		mems = append(mems, c.Memory())
		at += n
	}
	return logits, found, mems
}

// TestLogsearchTierIdentical reads a passkey prompt of 1,536 tokens, about
// ten times the device rows, through the tiny model with logsearch
// untiered and tiered (device_tokens 150: 4 sinks, 4·16 staging rows, a
// ring of 82 for a window of 64), chunks longer and shorter than the ring
// and a decoded tail, host tier segments of 100 rows (not a multiple of
// the block, so blocks straddle segments) and of the default size, both
// position modes, exact search and a beam. The tier only moves rows: the
// logits must be bit-identical and every chunk must retrieve the same
// blocks.
func TestLogsearchTierIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 1,536 tokens through the tiny model several times")
	}
	m, tok := modeltest.Tiny(t)
	smp, err := passkey.Generate(passkey.Config{Length: 1536, DepthBin: 1}, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode(smp.Prompt, true)
	chunks := []int{100, 7, 130, 1, 64}
	decodeFrom := len(ids) - 40
	for _, tc := range []struct {
		pos     positions
		beam    int
		segment int
	}{
		{cachePositions, 0, 100},
		{originalPositions, 8, 100},
		{cachePositions, 8, 0},
	} {
		t.Run(fmt.Sprintf("original=%v/beam%d/segment%d", tc.pos == originalPositions, tc.beam, tc.segment), func(t *testing.T) {
			cfg := logsearchConfig{sinks: 4, window: 64, block: 16, topk: 4, beam: tc.beam, positions: tc.pos}
			want, wantFound, _ := tierRun(t, m, cfg, ids, chunks, decodeFrom, 0)
			cfg.device = 150
			got, gotFound, mems := tierRun(t, m, cfg, ids, chunks, decodeFrom, tc.segment)
			if len(got) != len(want) {
				t.Fatalf("%d positions, want %d", len(got), len(want))
			}
			for p := range want {
				for i := range want[p] {
					if math.Float32bits(got[p][i]) != math.Float32bits(want[p][i]) {
						t.Fatalf("position %d, logit %d: tiered %v, untiered %v", p, i, got[p][i], want[p][i])
					}
				}
			}
			retrieved := 0
			for l := range wantFound {
				if len(gotFound[l]) != len(wantFound[l]) {
					t.Fatalf("layer %d: %d chunks planned, want %d", l, len(gotFound[l]), len(wantFound[l]))
				}
				for c := range wantFound[l] {
					if !slices.Equal(gotFound[l][c], wantFound[l][c]) {
						t.Fatalf("layer %d, chunk %d: retrieved %v, untiered %v", l, c, gotFound[l][c], wantFound[l][c])
					}
					retrieved += len(wantFound[l][c])
				}
			}
			if retrieved == 0 {
				t.Fatal("no block was retrieved: the test compares nothing")
			}
			// the device rows are fixed from the first chunk; the host
			// tier grows by whole segments and holds every non-sink token
			s := Shape{Layers: m.Layers, QHeads: m.Heads, KVHeads: m.KVHeads, HeadDim: m.HeadDim}
			row := int64(2 * s.KVHeads * s.HeadDim * 4 * s.Layers) // a key and a value, all layers
			seg := int64(tc.segment)
			if seg == 0 {
				seg = tierSegment
			}
			wantHost := (int64(len(ids)-4) + seg - 1) / seg * seg * row
			last := mems[len(mems)-1]
			if last.Storage != 150*row || last.HostStorage != wantHost {
				t.Errorf("memory after %d tokens: device %d, host tier %d; want %d and %d", len(ids), last.Storage, last.HostStorage, 150*row, wantHost)
			}
			for i, mm := range mems {
				if mm.Storage != 150*row {
					t.Fatalf("chunk %d: device storage %d, want %d", i, mm.Storage, 150*row)
				}
				if i > 0 && mm.HostStorage < mems[i-1].HostStorage {
					t.Fatalf("chunk %d: host tier shrank from %d to %d", i, mems[i-1].HostStorage, mm.HostStorage)
				}
			}
		})
	}
}

// TestLogsearchTierLockstep drives logsearch untiered and tiered with the
// same random queries and keys through the harness, whose fake storage
// follows the host tier's copies (harness.tier), and asks that every
// chunk's view reads the same tokens at the same positions from
// different slots.
func TestLogsearchTierLockstep(t *testing.T) {
	for _, tc := range []struct {
		params map[string]any
		device int
		chunks []int
	}{
		{map[string]any{"sinks": 4, "window": 20, "block": 4, "topk": 3}, 4 + 12 + 24, []int{1, 7, 64, 3, 200, 1, 1, 33}},
		{map[string]any{"sinks": 0, "window": 0, "block": 1, "topk": 2}, 3, []int{1, 5, 2}},
		{map[string]any{"sinks": 3, "window": 9, "block": 5, "topk": 2, "beam": 4, "positions": "original"}, 60, []int{17, 1, 90}},
	} {
		t.Run(fmt.Sprint(tc.params, tc.device), func(t *testing.T) {
			tiered := map[string]any{"device_tokens": tc.device}
			for k, v := range tc.params {
				tiered[k] = v
			}
			a := newHarness(t, "logsearch", tc.params, gqa)
			b := newHarness(t, "logsearch", tiered, gqa)
			for i := 0; a.seen < 1500; i++ {
				n := tc.chunks[i%len(tc.chunks)]
				a.chunk(n, -1)
				b.chunk(n, -1)
				if !slices.Equal(a.ctx.Pos, b.ctx.Pos) || !slices.Equal(a.ctx.QueryPos, b.ctx.QueryPos) {
					t.Fatalf("at %d: view positions differ", a.seen)
				}
				for kh := range gqa.KVHeads {
					if !slices.Equal(a.orig[kh], b.orig[kh]) {
						t.Fatalf("at %d head %d: the tiered view reads %v, the untiered %v", a.seen, kh, clip(b.orig[kh]), clip(a.orig[kh]))
					}
				}
				if r := b.p.Reserve(1); r != tc.device {
					t.Fatalf("at %d: Reserve %d, want device_tokens %d", a.seen, r, tc.device)
				}
			}
		})
	}
}

// tierFetch applies a tiered policy's copies to the fake storage (after
// Plan) and tierStore its write-through (after Commit).
func (h *harness) tierFetch(tp tiered) {
	src, dst := tp.fetch()
	m := len(src) / h.s.KVHeads
	for kh := range h.s.KVHeads {
		for i := range m {
			s, d := src[kh*m+i], dst[kh*m+i]
			if s < 0 || d < 0 {
				continue // the row is there already
			}
			if int(s) >= len(h.tier[kh]) || h.tier[kh][s] < 0 {
				h.t.Fatalf("%s at %d head %d: copy from host row %d, never written", h.name, h.seen, kh, s)
			}
			h.store[kh][d] = h.tier[kh][s]
		}
	}
}

func (h *harness) tierStore(tp tiered, n int) {
	hp := tp.hostPlace()
	for kh := range h.s.KVHeads {
		for i := range n {
			r := hp[kh*n+i]
			if r < 0 {
				continue
			}
			for len(h.tier[kh]) <= int(r) {
				h.tier[kh] = append(h.tier[kh], -1)
			}
			if h.tier[kh][r] >= 0 {
				h.t.Fatalf("%s at %d head %d: host row %d written twice", h.name, h.seen, kh, r)
			}
			h.tier[kh][r] = h.seen + int64(i)
		}
		if got := tp.hostRows(); got < len(h.tier[kh]) {
			h.t.Fatalf("%s at %d: host tier of %d rows, written to row %d", h.name, h.seen, got, len(h.tier[kh])-1)
		}
	}
}

// TestLogsearchTierParams: device_tokens too small for the working set
// is an error naming it; 0 is today's layout.
func TestLogsearchTierParams(t *testing.T) {
	for _, tc := range []struct {
		params map[string]any
		ok     bool
	}{
		{map[string]any{"device_tokens": -1}, false},
		{map[string]any{"device_tokens": 4 + 4*16 + 256 + 16 - 1}, false}, // the defaults' least is 340
		{map[string]any{"device_tokens": 4 + 4*16 + 256 + 16}, true},
		{map[string]any{"sinks": 0, "window": 0, "block": 1, "topk": 0, "device_tokens": 1}, true},
		{map[string]any{"sinks": 0, "window": 0, "block": 2, "topk": 1, "device_tokens": 3}, false},
		{map[string]any{"device_tokens": 1 << 40}, false},
		{map[string]any{"device_tokens": 0}, true},
	} {
		_, err := New("logsearch", tc.params)
		if tc.ok && err != nil {
			t.Errorf("New(logsearch, %v): %v", tc.params, err)
		}
		if !tc.ok && (err == nil || !containsWord(err.Error(), "device_tokens")) {
			t.Errorf("New(logsearch, %v) = %v, want an error naming device_tokens", tc.params, err)
		}
	}
}

// noTier is a backend without a host tier.
type noTier struct{ backend.Backend }

// TestLogsearchTierBackend: a cache of tiered logsearch on a backend
// without backend.HostTier is refused; untiered it is made.
func TestLogsearchTierBackend(t *testing.T) {
	b := noTier{cpu.New(1)}
	for _, dev := range []int{0, 400} {
		f, err := New("logsearch", map[string]any{"device_tokens": dev})
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewCache(b, f, gqa, backend.F32)
		if dev == 0 && err != nil {
			t.Errorf("untiered: %v", err)
		}
		if dev > 0 && (err == nil || !strings.Contains(err.Error(), "HostTier")) {
			t.Errorf("tiered on a backend without a host tier: %v, want an error naming backend.HostTier", err)
		}
		if c != nil {
			c.Free()
		}
	}
}

// TestLogsearchTierMemory: with device_tokens the device storage is
// fixed and the host tier grows a segment at a time; Bytes counts both.
func TestLogsearchTierMemory(t *testing.T) {
	s := Shape{Layers: 2, QHeads: 4, KVHeads: 2, HeadDim: 8}
	f, err := New("logsearch", map[string]any{"sinks": 4, "window": 16, "block": 4, "topk": 2, "device_tokens": 40})
	if err != nil {
		t.Fatal(err)
	}
	b := cpu.New(1)
	c, err := NewCache(b, f, s, backend.F32)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Free()
	c.tierRows = 50
	row := int64(2 * s.KVHeads * s.HeadDim * 4 * s.Layers)
	r := rand.New(rand.NewPCG(1, 2))
	for seen := 0; seen < 300; {
		n := 1 + r.IntN(30)
		for l := range s.Layers {
			if err := c.Query(l, b.FromFloat32(gaussian(r, n*s.QHeads*s.HeadDim), n, s.QHeads*s.HeadDim)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.View(l, n, -1); err != nil {
				t.Fatal(err)
			}
			k := b.FromFloat32(gaussian(r, n*s.KVHeads*s.HeadDim), n, s.KVHeads*s.HeadDim)
			if err := c.Update(l, k, k, nil); err != nil {
				t.Fatal(err)
			}
		}
		seen += n
		m := c.Memory()
		wantHost := int64((seen-4+49)/50*50) * row
		if m.Storage != 40*row || m.HostStorage != wantHost {
			t.Fatalf("after %d tokens: device %d, host %d bytes; want %d and %d", seen, m.Storage, m.HostStorage, 40*row, wantHost)
		}
		if c.Bytes() != m.Storage+m.HostStorage+m.Device+m.Host {
			t.Fatalf("Bytes %d is not the sum of %+v", c.Bytes(), m)
		}
	}
}
