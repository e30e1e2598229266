package policies

import (
	"errors"
	"fmt"

	"kvcascade/policies/device"
	"kvcascade/runtime/backend"
)

// deviceLists is tokenLists on the backend's device (device.TokenLister):
// the lists, scores and slot pools live there, and the host knows only
// what does not depend on scores (the lists' length, the slots reserved).
// h2oDevice and snapkvDevice embed it.
type deviceLists struct {
	s         Shape
	positions positions
	dev       device.TokenList
}

// newDeviceLists returns empty token lists of shape s on b's device, with
// ok false when b does not keep token lists there.
func newDeviceLists(s Shape, pos positions, b backend.Backend) (l deviceLists, ok bool, err error) {
	tb, ok := b.(device.TokenLister)
	if !ok {
		return deviceLists{}, false, nil
	}
	if err := checkShape(s); err != nil {
		return deviceLists{}, false, err
	}
	d, err := tb.NewTokenList(device.TokenListSpec{QHeads: s.QHeads, KVHeads: s.KVHeads,
		Original: pos == originalPositions})
	if errors.Is(err, errors.ErrUnsupported) {
		return deviceLists{}, false, nil
	}
	if err != nil {
		return deviceLists{}, false, fmt.Errorf("token lists on the device: %w", err)
	}
	return deviceLists{s: s, positions: pos, dev: d}, true, nil
}

// plan sizes the view of the lists for the chunk of step, has the device
// lay it out and asks for the chunk's mass with weights (nil: none).
func (t *deviceLists) plan(step Step, view *backend.View, weights []float32) {
	view.QueryWeights = weights
	L := t.dev.Len()
	view.ViewLen, view.Slots, view.Pos = L, view.Slots[:0], view.Pos[:0]
	view.QueryPos = grow(view.QueryPos, t.s.KVHeads)
	queryPos(view.QueryPos, L, step, t.positions)
	view.Device = t.dev.Plan(step.Start, step.N, weights != nil)
}

// Commit is not called: the mass stays on the device, and the Cache calls
// commitDevice instead.
func (t *deviceLists) Commit([]float32, []int32) {
	panic("policies: Commit of token lists on the device; the Cache commits them with commitDevice")
}

// Held returns head h's tokens in order, as the device holds them.
func (t *deviceLists) Held(h int, dst []int64) []int64 { return t.dev.Held(h, dst) }

// Scores returns the scores of head h's tokens, in order, appended to dst.
func (t *deviceLists) Scores(h int, dst []float32) []float32 { return t.dev.Scores(h, dst) }

// release frees the device state.
func (t *deviceLists) release() { t.dev.Free() }

func (t *deviceLists) deviceBytes() int64 { return t.dev.Bytes() }

// h2oDevice is h2o with its token lists on the device: every chunk's mass
// is absorbed there and each head evicts down to heavy+recent tokens.
type h2oDevice struct {
	deviceLists
	heavy, recent int
	ones          []float32 // [n] query weights
}

func (p *h2oDevice) Reserve(int) int { return p.heavy + p.recent }

func (p *h2oDevice) Plan(step Step, view *backend.View) {
	p.ones = ones(p.ones, step.N)
	p.plan(step, view, p.ones)
}

// commitDevice is Commit on the device, storing the kept rows there too.
func (p *h2oDevice) commitDevice(k, v, chunkK, chunkV backend.Tensor) {
	p.dev.Commit(k, v, chunkK, chunkV, device.Eviction{Budget: p.heavy + p.recent, Recent: p.recent})
}

func (p *h2oDevice) MetaBytes() int64 { return p.dev.Bytes() + int64(cap(p.ones))*4 }

// snapkvDevice is snapkv with its token lists on the device: the prompt's
// mass never leaves it, and the chunk that ends a prompt compresses there.
type snapkvDevice struct {
	deviceLists
	c        snapkvConfig
	step     Step
	reserved int
	weights  []float32 // [n] query weights of the chunk
}

func (p *snapkvDevice) Reserve(n int) int {
	p.reserved = max(p.reserved, p.dev.Reserve(n))
	return p.reserved
}

func (p *snapkvDevice) Plan(step Step, view *backend.View) {
	p.step = step
	p.plan(step, view, p.c.queryWeights(&p.weights, step))
}

// commitDevice is Commit on the device, storing the kept rows there too:
// the chunk that ends a prompt compresses the lists and resets the scores.
func (p *snapkvDevice) commitDevice(k, v, chunkK, chunkV backend.Tensor) {
	var e device.Eviction
	if p.step.EndsPrompt() {
		e = device.Eviction{Budget: p.c.budget, Recent: p.c.window, Pool: p.c.kernel, PoolAvg: p.c.avg, Reset: true}
	}
	p.dev.Commit(k, v, chunkK, chunkV, e)
}

func (p *snapkvDevice) MetaBytes() int64 {
	return p.dev.Bytes() + int64(cap(p.weights))*4
}

// fullDevice is full (and truncated) with its token lists on the device:
// lists that never evict and ask for no mass, so the device lays out the
// view of every held token in order, each at its original position, which
// is also its index in the view.
type fullDevice struct {
	deviceLists
}

func (p *fullDevice) Reserve(n int) int { return p.dev.Reserve(n) }

func (p *fullDevice) Plan(step Step, view *backend.View) { p.plan(step, view, nil) }

// commitDevice appends the chunk's tokens to every head's list, storing
// their rows.
func (p *fullDevice) commitDevice(k, v, chunkK, chunkV backend.Tensor) {
	p.dev.Commit(k, v, chunkK, chunkV, device.Eviction{})
}

func (p *fullDevice) MetaBytes() int64 { return p.dev.Bytes() }
