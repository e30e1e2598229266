package policies

import (
	"fmt"

	"kvcascade/runtime/backend"
)

// full keeps every token: exact attention with memory that grows with the
// sequence. Slot i holds original position i, so cache-relative and original
// positions coincide.
type full struct {
	s    Shape
	held int
}

func fullSpec() Spec {
	return Spec{
		Name: "full",
		Doc:  "every token kept: exact (quadratic) attention, memory grows with the sequence",
		make: func(Values) (Factory, error) { return fullFactory("full"), nil },
	}
}

// fullFactory makes full's layers: on the host, or on a backend that keeps
// token lists on its device (device.TokenLister) as lists that never
// evict, so that the view of every token is laid out there and nothing is
// uploaded per layer.
func fullFactory(name string) dualFactory {
	return dualFactory{
		factoryFunc: factoryFunc{name, newFull},
		device: func(_ int, s Shape, b backend.Backend) (devicePolicy, error) {
			l, ok, err := newDeviceLists(s, originalPositions, b)
			if !ok {
				return nil, err
			}
			return &fullDevice{deviceLists: l}, nil
		},
	}
}

func newFull(_ int, s Shape) (Policy, error) { return &full{s: s}, nil }

func (f *full) Reserve(n int) int { return f.held + n }

func (f *full) Plan(step Step, view *backend.View) {
	h := f.s.KVHeads
	sizeView(view, h, f.held)
	for kh := 0; kh < h; kh++ {
		for i := 0; i < f.held; i++ {
			view.Slots[kh*f.held+i] = int32(i)
			view.Pos[kh*f.held+i] = int32(i)
		}
		view.QueryPos[kh] = int32(f.held)
	}
	view.QueryWeights = nil
}

func (f *full) Commit(_ []float32, place []int32) {
	n := len(place) / f.s.KVHeads
	for kh := 0; kh < f.s.KVHeads; kh++ {
		for i := 0; i < n; i++ {
			place[kh*n+i] = int32(f.held + i)
		}
	}
	f.held += n
}

func (f *full) Held(_ int, dst []int64) []int64 {
	for i := 0; i < f.held; i++ {
		dst = append(dst, int64(i))
	}
	return dst
}

func (f *full) MetaBytes() int64 { return 0 }

// truncatedSpec is full attention over a prompt cut to a token budget before
// it reaches the model: the "Flash Attention (truncated)" baseline.
func truncatedSpec() Spec {
	return Spec{
		Name: "truncated",
		Doc:  "full attention over the prompt cut to its last (or first and last) `keep` tokens before prefill",
		Params: []Param{
			{Name: "keep", Kind: "int", Default: 4096, Doc: "prompt tokens kept"},
			{Name: "mode", Kind: "string", Default: "last", Choices: []string{"last", "middle"},
				Doc: "last: keep the final tokens; middle: drop the middle, keeping halves of the head and tail (LongBench)"},
		},
		make: func(v Values) (Factory, error) {
			if v.Int("keep") <= 0 {
				return nil, fmt.Errorf("policy truncated: keep must be positive, got %d", v.Int("keep"))
			}
			return truncated{fullFactory("truncated"), v.Int("keep"), v.String("mode")}, nil
		},
	}
}

// PromptCutter is implemented by factories whose policy works by shortening
// the prompt before prefill rather than by evicting from the cache.
type PromptCutter interface {
	// CutPrompt returns the tokens of prompt the model is to see.
	CutPrompt(prompt []int32) []int32
}

type truncated struct {
	dualFactory
	keep int
	mode string
}

// CutPrompt keeps the last t.keep tokens, or for mode "middle" the first and
// last halves of that budget.
func (t truncated) CutPrompt(prompt []int32) []int32 {
	if len(prompt) <= t.keep {
		return prompt
	}
	if t.mode == "middle" {
		head := t.keep / 2
		out := append([]int32(nil), prompt[:head]...)
		return append(out, prompt[len(prompt)-(t.keep-head):]...)
	}
	return prompt[len(prompt)-t.keep:]
}

// factoryFunc adapts a constructor to Factory.
type factoryFunc struct {
	name string
	fn   func(layer int, s Shape) (Policy, error)
}

func (f factoryFunc) Name() string                            { return f.name }
func (f factoryFunc) NewLayer(l int, s Shape) (Policy, error) { return f.fn(l, s) }
