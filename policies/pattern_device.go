package policies

import (
	"errors"
	"fmt"

	"kvcascade/policies/device"
	"kvcascade/runtime/backend"
)

// patterned is a host policy whose view is a fixed pattern over the tokens
// it holds (sink, bigbird, hip_bigbird): which tokens a chunk sees and
// where they are stored follow from counters and, for bigbird, a seeded
// draw, never from the attention. Its device variant (patternDevice) keeps
// these counters on the host and has the device lay the view out.
type patterned interface {
	Policy
	positioned
	// pattern returns the view that Plan would list for the chunk of step,
	// as the few numbers of a device.PatternView (valid until the next
	// call).
	pattern(step Step) device.PatternView
	// advance counts the chunk of n tokens as committed, as Commit does,
	// without placing them.
	advance(n int)
}

// patternDevice is a patterned policy whose views are laid out on the
// backend's device (device.Patterner): per chunk the host hands over the
// pattern's few numbers (bigbird's random blocks among them) instead of
// every view key's slot and position, and the device stores the chunk's
// rows where the pattern puts them.
type patternDevice struct {
	patterned
	s    Shape
	dev  device.Pattern
	step Step
}

// newPatternDevice returns host as a patternDevice on b, or nil (and no
// error) when b does not lay out patterns on its device.
func newPatternDevice(host patterned, s Shape, spec device.PatternSpec, b backend.Backend) (devicePolicy, error) {
	pb, ok := b.(device.Patterner)
	if !ok {
		return nil, nil
	}
	spec.QHeads, spec.KVHeads, spec.Original = s.QHeads, s.KVHeads, host.originalPositions()
	d, err := pb.NewPattern(spec)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pattern on the device: %w", err)
	}
	return &patternDevice{patterned: host, s: s, dev: d}, nil
}

// Plan sizes the view and has the device lay it out.
func (p *patternDevice) Plan(step Step, view *backend.View) {
	p.step = step
	v := p.pattern(step)
	L := v.Len(p.s.KVHeads)
	view.ViewLen, view.Slots, view.Pos = L, view.Slots[:0], view.Pos[:0]
	view.QueryPos = grow(view.QueryPos, p.s.KVHeads)
	queryPos(view.QueryPos, L, step, positions(p.originalPositions()))
	view.QueryWeights = nil
	view.Device = p.dev.Plan(v)
}

// Commit is not called: the Cache calls commitDevice instead.
func (p *patternDevice) Commit([]float32, []int32) {
	panic("policies: Commit of a pattern on the device; the Cache commits it with commitDevice")
}

// commitDevice stores the chunk's kept rows on the device and advances
// the host's counters.
func (p *patternDevice) commitDevice(k, v, chunkK, chunkV backend.Tensor) {
	p.dev.Commit(k, v, chunkK, chunkV)
	p.advance(p.step.N)
}

// MetaBytes counts the host's counters and scratch and the device state.
func (p *patternDevice) MetaBytes() int64 { return p.patterned.MetaBytes() + p.dev.Bytes() }

func (p *patternDevice) deviceBytes() int64 { return p.dev.Bytes() }

// release frees the device state.
func (p *patternDevice) release() { p.dev.Free() }
