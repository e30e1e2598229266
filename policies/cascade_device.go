package policies

import (
	"errors"
	"fmt"

	"kvcascade/policies/device"
	"kvcascade/runtime/backend"
)

// cascadeDevice is one layer of the cascading cache with its entries,
// scores and slot pools on the backend's device (device.Cascader). The
// host keeps only what does not depend on scores: the sinks stored and the
// fill of head 0's rings, which every head shares and which size the view.
type cascadeDevice struct {
	c      *cascadeConfig
	s      Shape
	w      int     // entries per cascade
	sunk   int     // sinks stored
	stored []int32 // [C] number of entries of each of head 0's rings

	dev     device.Cascade
	step    Step
	weights []float32 // [n] query weights of the last chunk size
}

// newCascadeDevice returns the cascade of shape s on b's device, or nil
// when b does not run the cascade there. The rule of the older reference
// class (compareOldest) stays on the host.
func newCascadeDevice(c *cascadeConfig, s Shape, b backend.Backend) (devicePolicy, error) {
	cb, ok := b.(device.Cascader)
	if !ok || c.compareOldest {
		return nil, nil
	}
	if err := checkShape(s); err != nil {
		return nil, err
	}
	d, err := cb.NewCascade(device.CascadeSpec{
		QHeads: s.QHeads, KVHeads: s.KVHeads,
		Sinks: c.sinks, Size: c.size, Cascades: c.cascades, Every: c.every, Beta: c.beta,
		ReduceMax: c.reduce == reduceMax, Homogeneous: c.homogeneous, EagerFill: c.eagerFill,
		Original: c.positions == originalPositions,
	})
	if errors.Is(err, errors.ErrUnsupported) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cascade on the device: %w", err)
	}
	return &cascadeDevice{c: c, s: s, w: c.size / c.cascades, stored: make([]int32, c.cascades), dev: d}, nil
}

// Reserve returns sinks + size: the storage never grows.
func (p *cascadeDevice) Reserve(int) int { return p.c.sinks + p.c.size }

// Plan sizes the view (sinks, then every cascade entry) and has the device
// lay it out.
func (p *cascadeDevice) Plan(step Step, view *backend.View) {
	p.step = step
	L := p.sunk + sum32(p.stored)
	view.ViewLen, view.Slots, view.Pos = L, view.Slots[:0], view.Pos[:0]
	view.QueryPos = grow(view.QueryPos, p.s.KVHeads)
	queryPos(view.QueryPos, L, step, p.c.positions)
	p.weights = p.c.queryWeights(p.weights, step.N)
	view.QueryWeights = p.weights
	view.Device = p.dev.Plan(step.Start, step.N, p.sunk, L)
}

// Commit is not called: the mass stays on the device, and the Cache calls
// commitDevice instead.
func (p *cascadeDevice) Commit([]float32, []int32) {
	panic("policies: Commit of a cascade on the device; the Cache commits it with commitDevice")
}

// commitDevice runs the chunk's walk on the device, storing the kept rows
// there too, and advances the fills the host keeps.
func (p *cascadeDevice) commitDevice(k, v, chunkK, chunkV backend.Tensor) {
	p.dev.Commit(k, v, chunkK, chunkV)
	for i := range p.step.N {
		if t := p.step.Start + int64(i); t >= int64(p.c.sinks) {
			p.fill(t)
		}
	}
	p.sunk = int(min(int64(p.c.sinks), p.step.Start+int64(p.step.N)))
}

// fill advances head 0's ring fills by token t as the walk does, without
// the scores: a cascade that accepts t takes it while not full and passes a
// token on when full; one that does not takes it only when empty.
func (p *cascadeDevice) fill(t int64) {
	accepting := p.c.accepting(t)
	for i := range p.c.cascades {
		if i < accepting {
			if p.stored[i] < int32(p.w) {
				p.stored[i]++
				return
			}
			continue
		}
		if p.stored[i] == 0 {
			p.stored[i] = 1
		}
		return
	}
}

// Held returns the sinks, then the cascades' tokens in attention order, as
// the device holds them.
func (p *cascadeDevice) Held(h int, dst []int64) []int64 {
	return p.dev.Held(h, appendSinks(dst, p.sunk))
}

// Scores returns the scores of the tokens head h holds in its cascades, in
// attention order (sinks have none), appended to dst.
func (p *cascadeDevice) Scores(h int, dst []float32) []float32 { return p.dev.Scores(h, dst) }

// MetaBytes counts the device state and the query weights.
func (p *cascadeDevice) MetaBytes() int64 { return p.dev.Bytes() + int64(cap(p.weights))*4 }

func (p *cascadeDevice) deviceBytes() int64 { return p.dev.Bytes() }

// release frees the device state.
func (p *cascadeDevice) release() { p.dev.Free() }

func (p *cascadeDevice) String() string { return p.c.String() }
