package policies_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"kvcascade/policies"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
	"kvcascade/runtime/model"
)

// hostCascader is the CPU backend posing as one that runs the cascade on its
// device (backend.Cascader): behind the backend.DeviceCascade interface it
// drives a host cascade of its own. It lets the CPU tests check the Cache's
// device path — views planned by the backend, the mass kept there, Commit
// storing the rows, and the fills the policy mirrors on the host to size
// the view — against the host path, bit for bit.
type hostCascader struct {
	*cpu.Backend
	f      policies.Factory
	layers int
	shape  policies.Shape
	made   []*fakeCascade
}

func (b *hostCascader) NewCascade(spec backend.CascadeSpec) (backend.DeviceCascade, error) {
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
	v, ok := a.Ctx.Device.(*fakeView)
	if !ok {
		b.Backend.Attention(a)
		return
	}
	if !slices.Equal(a.Ctx.QueryPos, v.ctx.QueryPos) || !slices.Equal(a.Ctx.QueryWeights, v.ctx.QueryWeights) || a.Mass != nil {
		panic(fmt.Sprintf("device view: query positions %v, weights %d, mass slice %v; the planned view has %v, %d",
			a.Ctx.QueryPos, len(a.Ctx.QueryWeights), a.Mass != nil, v.ctx.QueryPos, len(v.ctx.QueryWeights)))
	}
	host := *a
	host.Ctx = v.ctx
	host.Ctx.K, host.Ctx.V = a.Ctx.K, a.Ctx.V
	host.Mass = v.mass
	b.Backend.Attention(&host)
}

type fakeCascade struct {
	b     *hostCascader
	p     policies.Policy
	spec  backend.CascadeSpec
	ctx   backend.Context
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
				host := loadFixture(t, fx)
				f, err := policies.New("cascade", p)
				if err != nil {
					t.Fatal(err)
				}
				fake := &hostCascader{Backend: cpu.New(0), f: f, shape: shapeOf(host)}
				dev, err := model.Load(filepath.Join("..", "runtime", "model", "testdata", fx), fake)
				if err != nil {
					t.Fatal(err)
				}
				prompt := randomIDs(90, host.Vocab, uint64(i))
				run := func(m *model.Model) ([][]float32, *policies.Cache) {
					c, err := policies.NewCache(m.Backend(), f, shapeOf(m), backend.F32)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(c.Free)
					s := m.NewSession(c, 13)
					t.Cleanup(s.Close)
					rows := prefillLogits(t, s, prompt[:70], m.Vocab)
					return append(rows, decodeLogits(t, s, prompt[70:])...), c
				}
				want, hc := run(host)
				got, dc := run(dev)
				if hc.OnDevice(0) || !dc.OnDevice(0) {
					t.Fatalf("OnDevice: host cache %v, device cache %v", hc.OnDevice(0), dc.OnDevice(0))
				}
				if len(fake.made) != host.Layers {
					t.Fatalf("the backend made %d device cascades for %d layers", len(fake.made), host.Layers)
				}
				if worst, at := maxDiff(got, want); worst != 0 {
					t.Fatalf("logits differ by %g at position %d", worst, at)
				}
				for l := range host.Layers {
					for h := range host.KVHeads {
						if a, b := dc.Held(l, h), hc.Held(l, h); !slices.Equal(a, b) {
							t.Fatalf("layer %d head %d holds %v on the device path, %v on the host", l, h, a, b)
						}
						type scorer interface {
							Scores(int, []float32) []float32
						}
						a, b := dc.Policy(l).(scorer).Scores(h, nil), hc.Policy(l).(scorer).Scores(h, nil)
						if !slices.Equal(a, b) {
							t.Fatalf("layer %d head %d scores differ", l, h)
						}
					}
				}
				if dc.Bytes() <= 0 {
					t.Errorf("device cache reports %d bytes", dc.Bytes())
				}
			})
		}
	}
}
