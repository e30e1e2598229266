package policies

import (
	"kvcascade/policies/device"
	"kvcascade/runtime/backend"
)

// sinkSpec is StreamingLLM: attention sinks plus a sliding window.
func sinkSpec() Spec {
	return Spec{
		Name: "sink",
		Doc:  "StreamingLLM: the first `sinks` tokens plus a sliding window of the most recent `window` tokens, fixed memory",
		Params: []Param{
			{Name: "sinks", Kind: "int", Default: 4, Doc: "first tokens kept for ever (attention sinks)"},
			{Name: "window", Kind: "int", Default: 1020, Doc: "most recent tokens kept"},
			positionsParam(),
		},
		make: func(v Values) (Factory, error) {
			if err := atLeast("sink", v, 0, "sinks"); err != nil {
				return nil, err
			}
			if err := atLeast("sink", v, 1, "window"); err != nil {
				return nil, err
			}
			if v.Int("sinks")+v.Int("window") > maxSlots {
				return nil, paramError("sink", "window", "sinks + window is more than %d slots", maxSlots)
			}
			sinks, window, pos := v.Int("sinks"), v.Int("window"), positionsOf(v)
			newSink := func(_ int, s Shape) (*sink, error) {
				if err := checkShape(s); err != nil {
					return nil, err
				}
				return &sink{s: s, sinks: int64(sinks), window: int64(window), positions: pos}, nil
			}
			return dualFactory{
				factoryFunc: factoryFunc{"sink", func(l int, s Shape) (Policy, error) { return newSink(l, s) }},
				// On a backend that lays out patterns on its device, the
				// view is planned there from the counters.
				device: func(l int, s Shape, b backend.Backend) (devicePolicy, error) {
					p, err := newSink(l, s)
					if err != nil {
						return nil, err
					}
					return newPatternDevice(p, s, device.PatternSpec{Sinks: sinks, Ring: window}, b)
				},
			}, nil
		},
	}
}

// sink keeps tokens 0..sinks−1 in slots 0..sinks−1 and the window as a ring
// buffer: token t ≥ sinks lives in slot sinks + (t−sinks) mod window until
// token t+window overwrites it. Every head holds the same tokens.
type sink struct {
	s             Shape
	sinks, window int64
	positions     positions
	seen          int64 // tokens committed
	step          Step
}

func (p *sink) Reserve(int) int { return int(p.sinks + p.window) }

// first returns the oldest window token held after seen tokens.
func (p *sink) first(seen int64) int64 { return max(p.sinks, seen-p.window) }

func (p *sink) slotOf(t int64) int32 {
	if t < p.sinks {
		return int32(t)
	}
	return int32(p.sinks + (t-p.sinks)%p.window)
}

func (p *sink) Plan(step Step, view *backend.View) {
	p.step = step
	hk := p.s.KVHeads
	ns := min(p.seen, p.sinks)
	lo := p.first(p.seen)
	L := int(ns + max(0, p.seen-lo))
	sizeView(view, hk, L)
	for h := 0; h < hk; h++ {
		slots, pos := view.Slots[h*L:(h+1)*L], view.Pos[h*L:(h+1)*L]
		j := 0
		for t := int64(0); t < ns; t++ {
			slots[j], pos[j] = p.slotOf(t), int32(t)
			j++
		}
		for t := lo; t < p.seen; t++ {
			slots[j], pos[j] = p.slotOf(t), int32(j)
			if p.positions == originalPositions {
				pos[j] = int32(t)
			}
			j++
		}
		view.QueryPos[h] = int32(L)
		if p.positions == originalPositions {
			view.QueryPos[h] = int32(step.Start)
		}
	}
	view.QueryWeights = nil
}

// pattern is the view Plan lists: the sinks held, then the window.
func (p *sink) pattern(step Step) device.PatternView {
	p.step = step
	ns := min(p.seen, p.sinks)
	return device.PatternView{Start: step.Start, N: step.N, Head: ns, Tail: min(p.first(p.seen), p.seen)}
}

// advance counts n tokens committed.
func (p *sink) advance(n int) { p.seen += int64(n) }

func (p *sink) Commit(_ []float32, place []int32) {
	n := p.step.N
	end := p.seen + int64(n)
	lo := p.first(end)
	for i := 0; i < n; i++ {
		t := p.seen + int64(i)
		s := int32(-1)
		if t < p.sinks || t >= lo {
			s = p.slotOf(t)
		}
		for h := 0; h < p.s.KVHeads; h++ {
			place[h*n+i] = s
		}
	}
	p.seen = end
}

func (p *sink) Held(_ int, dst []int64) []int64 {
	for t := int64(0); t < min(p.seen, p.sinks); t++ {
		dst = append(dst, t)
	}
	for t := p.first(p.seen); t < p.seen; t++ {
		dst = append(dst, t)
	}
	return dst
}

func (p *sink) MetaBytes() int64 { return 0 }
