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
// the token lists on its device (device.Cascader, device.TokenLister):
// behind the device.Cascade and device.TokenList interfaces
// it drives host policies of its own, made by f. It lets the CPU tests
// check the Cache's device path — views planned by the backend, the mass
// kept there, Commit storing the rows, and what the policy keeps on the host
// to size the view — against the host path, bit for bit.
type hostCascader struct {
	*cpu.Backend
	f     policies.Factory
	shape policies.Shape
	made  []*fakeCascade
	lists []*fakeTokens
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
				if len(fake.made) == 0 || len(fake.lists) != 0 {
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
				if len(fake.lists) == 0 || len(fake.made) != 0 {
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
	if n := len(fake.made) + len(fake.lists); n != host.Layers {
		t.Fatalf("the backend made %d device policies for %d layers", n, host.Layers)
	}
	if worst, at := maxDiff(got, want); worst != 0 {
		t.Fatalf("logits differ by %g at position %d", worst, at)
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
				continue // full keeps no scores
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
