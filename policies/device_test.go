package policies_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"kvcascade/policies"
	"kvcascade/policies/device"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
)

// hostCascader is the CPU backend posing as one that runs the cascade and
// the token lists and lays out patterns on its device (device.Cascader,
// device.TokenLister, device.Patterner): behind the device.Cascade,
// device.TokenList and device.Pattern interfaces it drives host policies of
// its own, made by f. It lets the CPU tests
// check the Cache's device path — views planned by the backend, the mass
// kept there, Commit storing the rows, and what the policy keeps on the host
// to size the view — against the host path, bit for bit.
type hostCascader struct {
	*cpu.Backend
	f        policies.Factory
	shape    policies.Shape
	made     []*fakeCascade
	lists    []*fakeTokens
	patterns []*fakePattern
}

func (b *hostCascader) NewCascade(spec device.CascadeSpec) (device.Cascade, error) {
	p, err := b.f.NewLayer(len(b.made), b.shape)
	if err != nil {
		return nil, err
	}
	c := &fakeCascade{b: b, p: p, spec: spec}
	b.made = append(b.made, c)
	return c, nil
}

// Attention runs a device view's attention over the host view the fake
// planned, leaving the mass in the fake.
func (b *hostCascader) Attention(a *backend.Attention) {
	switch v := a.View.Device.(type) {
	case *fakeView:
		if !slices.Equal(a.View.QueryWeights, v.ctx.QueryWeights) {
			panic(fmt.Sprintf("device view: %d query weights, the planned view has %d", len(a.View.QueryWeights), len(v.ctx.QueryWeights)))
		}
		b.hostAttention(a, &v.ctx, v.mass)
	case *fakeTokenView:
		// The host policy was planned without the prompt's end, so its
		// weights are the device policy's, which must ask for the mass the
		// view was planned with.
		if (a.View.QueryWeights != nil) != (v.mass != nil) {
			panic(fmt.Sprintf("device view: %d query weights, the view was planned with mass %v", len(a.View.QueryWeights), v.mass != nil))
		}
		ctx := v.ctx
		ctx.QueryWeights = a.View.QueryWeights
		b.hostAttention(a, &ctx, v.mass)
	case *fakePatternView:
		if a.View.QueryWeights != nil {
			panic(fmt.Sprintf("pattern view: %d query weights; a pattern asks for no mass", len(a.View.QueryWeights)))
		}
		b.hostAttention(a, &v.ctx, nil)
	default:
		b.Backend.Attention(a)
	}
}

// hostAttention runs a over the host view ctx, with the mass into mass.
func (b *hostCascader) hostAttention(a *backend.Attention, ctx *backend.View, mass []float32) {
	if !slices.Equal(a.View.QueryPos, ctx.QueryPos) || a.Mass != nil {
		panic(fmt.Sprintf("device view: query positions %v, mass slice %v; the planned view has %v", a.View.QueryPos, a.Mass != nil, ctx.QueryPos))
	}
	host := *a
	host.View = *ctx
	host.View.K, host.View.V = a.View.K, a.View.V
	host.Mass = mass
	b.Backend.Attention(&host)
}

type fakeCascade struct {
	b     *hostCascader
	p     policies.Policy
	spec  device.CascadeSpec
	ctx   backend.View
	step  policies.Step
	mass  []float32
	place []int32
	sunk  int
}

type fakeView fakeCascade

func (v *fakeView) Len() int { return v.ctx.ViewLen }

func (c *fakeCascade) Plan(first int64, n, sunk, viewLen int) backend.DeviceView {
	c.step = policies.Step{Start: first, N: n, PromptEnd: -1}
	c.p.Plan(c.step, &c.ctx)
	if c.ctx.ViewLen != viewLen || sunk != c.sunk {
		panic(fmt.Sprintf("Plan at %d: the policy sized the view %d with %d sinks, the host cascade has %d with %d", first, viewLen, sunk, c.ctx.ViewLen, c.sunk))
	}
	c.mass = make([]float32, c.spec.QHeads*(viewLen+n))
	return (*fakeView)(c)
}

func (c *fakeCascade) Commit(k, v, chunkK, chunkV backend.Tensor) {
	c.place = make([]int32, c.spec.KVHeads*c.step.N)
	c.p.Commit(c.mass, c.place)
	c.b.Scatter(k, chunkK, c.place)
	c.b.Scatter(v, chunkV, c.place)
	c.sunk = int(min(int64(c.spec.Sinks), c.step.Start+int64(c.step.N)))
}

func (c *fakeCascade) Held(h int, dst []int64) []int64 {
	return append(dst, c.p.Held(h, nil)[c.sunk:]...)
}

func (c *fakeCascade) Scores(h int, dst []float32) []float32 {
	return c.p.(interface {
		Scores(int, []float32) []float32
	}).Scores(h, dst)
}

func (c *fakeCascade) Bytes() int64 { return c.p.MetaBytes() }
func (c *fakeCascade) Free()        {}

func (b *hostCascader) NewTokenList(spec device.TokenListSpec) (device.TokenList, error) {
	p, err := b.f.NewLayer(len(b.lists), b.shape)
	if err != nil {
		return nil, err
	}
	l := &fakeTokens{b: b, p: p, spec: spec, evictions: map[device.Eviction]int{}}
	b.lists = append(b.lists, l)
	return l, nil
}

// fakeTokens is a device.TokenList served by a host h2o, snapkv or full.
type fakeTokens struct {
	b         *hostCascader
	p         policies.Policy
	spec      device.TokenListSpec
	ctx       backend.View
	step      policies.Step
	mass      []float32 // nil when the view asks for none
	evictions map[device.Eviction]int
}

type fakeTokenView fakeTokens

func (v *fakeTokenView) Len() int { return v.ctx.ViewLen }

func (c *fakeTokens) Len() int          { return len(c.p.Held(0, nil)) }
func (c *fakeTokens) Reserve(n int) int { return c.p.Reserve(n) }

func (c *fakeTokens) Plan(first int64, n int, mass bool) backend.DeviceView {
	c.step = policies.Step{Start: first, N: n, PromptEnd: -1}
	c.p.Plan(c.step, &c.ctx)
	c.mass = nil
	if mass {
		c.mass = make([]float32, c.spec.QHeads*(c.ctx.ViewLen+n))
	}
	return (*fakeTokenView)(c)
}

// Commit runs the host policy's Commit. A device list learns that a chunk
// ends a prompt only from the eviction's Reset, so the host snapkv is
// planned again with the prompt's end before it commits.
func (c *fakeTokens) Commit(k, v, chunkK, chunkV backend.Tensor, e device.Eviction) {
	c.evictions[e]++
	if e.Reset {
		c.step.PromptEnd = c.step.Start + int64(c.step.N)
		c.p.Plan(c.step, &c.ctx)
	}
	place := make([]int32, c.spec.KVHeads*c.step.N)
	c.p.Commit(c.mass, place)
	c.b.Scatter(k, chunkK, place)
	c.b.Scatter(v, chunkV, place)
}

func (c *fakeTokens) Held(h int, dst []int64) []int64 { return c.p.Held(h, dst) }

func (c *fakeTokens) Scores(h int, dst []float32) []float32 {
	return c.p.(interface {
		Scores(int, []float32) []float32
	}).Scores(h, dst)
}

func (c *fakeTokens) Bytes() int64 { return c.p.MetaBytes() }
func (c *fakeTokens) Free()        {}

func (b *hostCascader) NewPattern(spec device.PatternSpec) (device.Pattern, error) {
	p, err := b.f.NewLayer(len(b.patterns), b.shape)
	if err != nil {
		return nil, err
	}
	c := &fakePattern{b: b, p: p, spec: spec}
	b.patterns = append(b.patterns, c)
	return c, nil
}

// fakePattern is a device.Pattern that lays each view out from its
// device.PatternView and places each chunk's tokens by the spec as the GPU's
// kernels do (gpu/kernels/pattern.cu), line for line, and holds both to the
// view and places of a host policy of its own (sink, bigbird), panicking on
// the first difference.
type fakePattern struct {
	b    *hostCascader
	p    policies.Policy
	spec device.PatternSpec
	ctx  backend.View // laid out from the PatternView
	host backend.View // the host policy's
	step policies.Step
}

type fakePatternView fakePattern

func (v *fakePatternView) Len() int { return v.ctx.ViewLen }

// slot is where the spec stores token t (pattern_slot).
func (c *fakePattern) slot(t int64) int32 {
	sinks, ring := int64(c.spec.Sinks), int64(c.spec.Ring)
	if ring == 0 || t < sinks {
		return int32(t)
	}
	return int32(sinks + (t-sinks)%ring)
}

// Plan lays the view out as pattern_plan does.
func (c *fakePattern) Plan(v device.PatternView) backend.DeviceView {
	hk := c.spec.KVHeads
	L, r := v.Len(hk), len(v.Blocks)/hk
	c.ctx = backend.View{ViewLen: L, Slots: make([]int32, hk*L), Pos: make([]int32, hk*L)}
	for h := range hk {
		for j := range L {
			var t int64
			k := int64(j) - v.Head
			switch {
			case int64(j) < v.Head:
				t = int64(j)
			case k < int64(r*v.Block):
				t = int64(v.Blocks[h*r+int(k)/v.Block]) + k%int64(v.Block)
			default:
				t = v.Tail + k - int64(r*v.Block)
			}
			c.ctx.Slots[h*L+j], c.ctx.Pos[h*L+j] = c.slot(t), int32(j)
			if c.spec.Original {
				c.ctx.Pos[h*L+j] = int32(t)
			}
		}
	}
	c.step = policies.Step{Start: v.Start, N: v.N, PromptEnd: -1}
	c.p.Plan(c.step, &c.host)
	if c.host.ViewLen != L || !slices.Equal(c.ctx.Slots, c.host.Slots) || !slices.Equal(c.ctx.Pos, c.host.Pos) {
		panic(fmt.Sprintf("Plan at %d of %+v: the pattern lays out slots %v, positions %v; the host policy %v, %v",
			v.Start, v, c.ctx.Slots, c.ctx.Pos, c.host.Slots, c.host.Pos))
	}
	if c.host.QueryWeights != nil {
		panic("the host policy of a pattern asks for mass")
	}
	c.ctx.QueryPos = c.host.QueryPos
	return (*fakePatternView)(c)
}

// Commit places the chunk's tokens as pattern_place does and stores them.
func (c *fakePattern) Commit(k, v, chunkK, chunkV backend.Tensor) {
	hk, n := c.spec.KVHeads, c.step.N
	end := c.step.Start + int64(n)
	place := make([]int32, hk*n)
	for h := range hk {
		for i := range n {
			t := c.step.Start + int64(i)
			s := int32(-1)
			if c.spec.Ring == 0 || t < int64(c.spec.Sinks) || t >= end-int64(c.spec.Ring) {
				s = c.slot(t)
			}
			place[h*n+i] = s
		}
	}
	want := make([]int32, hk*n)
	c.p.Commit(nil, want)
	if !slices.Equal(place, want) {
		panic(fmt.Sprintf("Commit at %d: the pattern places %v, the host policy %v", c.step.Start, place, want))
	}
	c.b.Scatter(k, chunkK, place)
	c.b.Scatter(v, chunkV, place)
}

func (c *fakePattern) Bytes() int64 { return int64(cap(c.ctx.Slots)+cap(c.ctx.Pos)) * 4 }
func (c *fakePattern) Free()        {}

// TestDeviceCascadePath runs the cascade through the Cache's device path
// (hostCascader) and through the host path on the same fixture models:
// logits, held tokens and scores must be identical, prefill in chunks and
// decoding alike.
func TestDeviceCascadePath(t *testing.T) {
	params := []map[string]any{
		{"sinks": 4, "size": 24, "cascades": 3},
		{"sinks": 2, "size": 16, "cascades": 4, "eager_fill": false, "reduction": "max"},
		{"sinks": 3, "size": 20, "cascades": 2, "positions": "original", "homogeneous": true, "rule": "iplus1"},
		{"sinks": 0, "size": 12, "cascades": 3},
	}
	for _, fx := range fixtures {
		for i, p := range params {
			t.Run(fmt.Sprintf("%s/%d", fx, i), func(t *testing.T) {
				fake := compareDevicePath(t, fx, "cascade", p, func(t *testing.T, s *model.Session, vocab int) [][]float32 {
					ids := randomIDs(90, vocab, uint64(i))
					rows := prefillLogits(t, s, ids[:70], vocab)
					return append(rows, decodeLogits(t, s, ids[70:])...)
				})
				if len(fake.made) == 0 || len(fake.lists)+len(fake.patterns) != 0 {
					t.Fatalf("the backend made %d device cascades and %d token lists", len(fake.made), len(fake.lists))
				}
			})
		}
	}
}

// TestDeviceTokenListPath runs h2o, snapkv, full and truncated through the
// Cache's device path (hostCascader) and through the host path on the same
// fixture models:
// two prompts, each read in chunks and followed by decoding, so that
// snapkv compresses twice. Logits, held tokens and scores must be
// identical, and the evictions the policies ask the device for must be
// theirs.
func TestDeviceTokenListPath(t *testing.T) {
	runs := []struct {
		name   string
		params map[string]any
		want   []device.Eviction // besides none (snapkv)
	}{
		{"h2o", map[string]any{"heavy": 8, "recent": 6}, []device.Eviction{{Budget: 14, Recent: 6}}},
		{"h2o", map[string]any{"heavy": 0, "recent": 10}, []device.Eviction{{Budget: 10, Recent: 10}}},
		{"h2o", map[string]any{"heavy": 12, "recent": 0, "positions": "original"}, []device.Eviction{{Budget: 12}}},
		{"h2o", map[string]any{"heavy": 30, "recent": 25}, []device.Eviction{{Budget: 55, Recent: 25}}},
		{"snapkv", map[string]any{"window": 4, "kernel": 3, "budget": 20},
			[]device.Eviction{{Budget: 20, Recent: 4, Pool: 3, Reset: true}}},
		{"snapkv", map[string]any{"window": 8, "kernel": 5, "pooling": "avg", "budget": 30, "positions": "original"},
			[]device.Eviction{{Budget: 30, Recent: 8, Pool: 5, PoolAvg: true, Reset: true}}},
		{"snapkv", map[string]any{"window": 2, "kernel": 1, "budget": 200},
			[]device.Eviction{{Budget: 200, Recent: 2, Pool: 1, Reset: true}}},
		// full and truncated: lists that never evict (only the zero
		// eviction) and ask for no mass.
		{"full", nil, nil},
		{"truncated", map[string]any{"keep": 40}, nil},
	}
	for _, fx := range fixtures {
		for i, r := range runs {
			t.Run(fmt.Sprintf("%s/%s%d", fx, r.name, i), func(t *testing.T) {
				fake := compareDevicePath(t, fx, r.name, r.params, func(t *testing.T, s *model.Session, vocab int) [][]float32 {
					ids := randomIDs(100, vocab, uint64(i))
					rows := prefillLogits(t, s, ids[:50], vocab)
					rows = append(rows, decodeLogits(t, s, ids[50:60])...)
					rows = append(rows, prefillLogits(t, s, ids[60:90], vocab)...)
					return append(rows, decodeLogits(t, s, ids[90:])...)
				})
				if len(fake.lists) == 0 || len(fake.made)+len(fake.patterns) != 0 {
					t.Fatalf("the backend made %d device token lists and %d cascades", len(fake.lists), len(fake.made))
				}
				for _, l := range fake.lists {
					for e, n := range l.evictions {
						if e != (device.Eviction{}) && !slices.Contains(r.want, e) {
							t.Fatalf("the policy asked for eviction %+v %d times, want %+v", e, n, r.want)
						}
					}
					if r.name == "snapkv" && l.evictions[r.want[0]] != 2 {
						t.Fatalf("snapkv compressed %d times for two prompts", l.evictions[r.want[0]])
					}
				}
			})
		}
	}
}

// TestDevicePatternPath runs sink, bigbird and hip_bigbird through the
// Cache's device path (hostCascader, whose patterns lay each view out from
// the numbers the policy hands over, as the GPU does, and check it against
// the host policy's own view) and through the host path on the same
// fixture models: a prompt read in chunks of 13, longer than sink's window
// and bigbird's, so that sink drops tokens within a chunk and bigbird draws
// its blocks, then decoding. Logits and held tokens must be identical.
func TestDevicePatternPath(t *testing.T) {
	runs := []struct {
		name   string
		params map[string]any
	}{
		{"sink", map[string]any{"sinks": 4, "window": 20}},
		{"sink", map[string]any{"sinks": 3, "window": 8, "positions": "original"}},
		{"sink", map[string]any{"sinks": 0, "window": 1}},
		{"sink", map[string]any{"sinks": 200, "window": 5}},
		{"bigbird", map[string]any{"global": 4, "window": 16, "random_blocks": 2, "block": 4}},
		{"bigbird", map[string]any{"global": 2, "window": 9, "random_blocks": 3, "block": 3, "seed": 7, "positions": "original"}},
		{"bigbird", map[string]any{"global": 0, "window": 5, "random_blocks": 40, "block": 2}},
		{"bigbird", map[string]any{"global": 6, "window": 0, "random_blocks": 0, "block": 8}},
		{"hip_bigbird", map[string]any{"window": 16, "sinks": 4, "block": 2}},
		{"hip_bigbird", map[string]any{"window": 40, "sinks": 2, "block": 3, "seed": 3}},
	}
	for _, fx := range fixtures {
		for i, r := range runs {
			t.Run(fmt.Sprintf("%s/%s%d", fx, r.name, i), func(t *testing.T) {
				fake := compareDevicePath(t, fx, r.name, r.params, func(t *testing.T, s *model.Session, vocab int) [][]float32 {
					ids := randomIDs(100, vocab, uint64(i))
					rows := prefillLogits(t, s, ids[:70], vocab)
					return append(rows, decodeLogits(t, s, ids[70:])...)
				})
				if len(fake.patterns) == 0 || len(fake.made)+len(fake.lists) != 0 {
					t.Fatalf("the backend made %d device patterns, %d cascades and %d token lists",
						len(fake.patterns), len(fake.made), len(fake.lists))
				}
			})
		}
	}
}

// compareDevicePath loads fixture fx on the CPU and on a hostCascader,
// feeds each a fresh cache of the named policy through feed, and requires
// bit-identical logits, the host cache on the host and the other on the
// device for every layer, identical held tokens and scores, and a positive
// size. It returns the fake backend, for the caller's own checks.
func compareDevicePath(t *testing.T, fx, name string, params map[string]any, feed func(*testing.T, *model.Session, int) [][]float32) *hostCascader {
	t.Helper()
	host := loadFixture(t, fx)
	f, err := policies.New(name, params)
	if err != nil {
		t.Fatal(err)
	}
	fake := &hostCascader{Backend: cpu.New(0), f: f, shape: shapeOf(host)}
	dev, err := model.Load(filepath.Join("..", "runtime", "model", "testdata", fx), fake)
	if err != nil {
		t.Fatal(err)
	}
	run := func(m *model.Model) ([][]float32, *policies.Cache) {
		c, err := policies.NewCache(m.Backend(), f, shapeOf(m), backend.F32)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Free)
		s := m.NewSession(c, 13)
		t.Cleanup(s.Close)
		return feed(t, s, m.Vocab), c
	}
	want, hc := run(host)
	got, dc := run(dev)
	for l := range host.Layers {
		if hc.OnDevice(l) || !dc.OnDevice(l) {
			t.Fatalf("layer %d OnDevice: host cache %v, device cache %v", l, hc.OnDevice(l), dc.OnDevice(l))
		}
	}
	if n := len(fake.made) + len(fake.lists) + len(fake.patterns); n != host.Layers {
		t.Fatalf("the backend made %d device policies for %d layers", n, host.Layers)
	}
	if worst, at := maxDiff(got, want); worst != 0 {
		t.Fatalf("logits differ by %g at position %d", worst, at)
	}
	// where the bytes live: the same storage; on the host path no device
	// bookkeeping, on the device path the fake device's state wherever the
	// host policy keeps some
	hm, dm := hc.Memory(), dc.Memory()
	if hm.Device != 0 || (hm.Host > 0 && dm.Device == 0) || hm.Storage != dm.Storage || dm.Storage <= 0 {
		t.Errorf("memory: host path %+v, device path %+v: want the same storage and device bookkeeping only on the device path", hm, dm)
	}
	for _, c := range []*policies.Cache{hc, dc} {
		if m := c.Memory(); m.Storage+m.Device+m.Host != c.Bytes() {
			t.Errorf("memory %+v does not add up to Bytes() = %d", m, c.Bytes())
		}
	}
	type scorer interface {
		Scores(int, []float32) []float32
	}
	for l := range host.Layers {
		for h := range host.KVHeads {
			if a, b := dc.Held(l, h), hc.Held(l, h); !slices.Equal(a, b) {
				t.Fatalf("layer %d head %d holds %v on the device path, %v on the host", l, h, a, b)
			}
			hs, ok := hc.Policy(l).(scorer)
			if !ok {
				continue // full and the patterns keep no scores
			}
			a, b := dc.Policy(l).(scorer).Scores(h, nil), hs.Scores(h, nil)
			if !slices.Equal(a, b) {
				t.Fatalf("layer %d head %d scores differ:\n device %v\n host   %v", l, h, a, b)
			}
		}
	}
	if dc.Bytes() <= 0 {
		t.Errorf("device cache reports %d bytes", dc.Bytes())
	}
	return fake
}
