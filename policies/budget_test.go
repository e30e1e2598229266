package policies

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestBudgetSplit checks each policy's documented split of a budget, the
// explicit keys that override it and the combinations that over-determine it.
func TestBudgetSplit(t *testing.T) {
	for _, c := range []struct {
		name string
		raw  map[string]any
		want map[string]any // resolved keys; nil: an error containing err
		err  string
	}{
		{"sink", map[string]any{"budget": 256}, map[string]any{"sinks": 4, "window": 252}, ""},
		{"streaming_llm", map[string]any{"budget": 128}, map[string]any{"sinks": 4, "window": 124}, ""},
		{"sink", map[string]any{"budget": 256, "sinks": 16}, map[string]any{"sinks": 16, "window": 240}, ""},
		{"sink", map[string]any{"budget": 256, "window": 200}, map[string]any{"sinks": 56, "window": 200}, ""},
		{"sink", map[string]any{"budget": 256, "window": 200, "sinks": 56}, map[string]any{"sinks": 56, "window": 200}, ""},
		{"sink", map[string]any{"budget": 256, "window": 200, "sinks": 4}, nil, "give budget or both"},
		{"sink", map[string]any{"budget": 256, "window": 300}, nil, "cannot hold"},
		{"h2o", map[string]any{"budget": 257}, map[string]any{"heavy": 128, "recent": 129}, ""},
		{"h2o", map[string]any{"budget": 256, "recent": 32}, map[string]any{"heavy": 224, "recent": 32}, ""},
		{"h2o", map[string]any{"budget": 256, "heavy": 32}, map[string]any{"heavy": 32, "recent": 224}, ""},
		{"cascade", map[string]any{"budget": 128}, map[string]any{"sinks": 8, "size": 120}, ""},
		{"cascade", map[string]any{"budget": 2048}, map[string]any{"sinks": 64, "size": 1984}, ""},
		{"cascade", map[string]any{"budget": 512, "cascades": 4}, map[string]any{"sinks": 4, "size": 508}, ""},
		{"cascade", map[string]any{"budget": 130}, map[string]any{"sinks": 10, "size": 120}, ""},
		{"cascade", map[string]any{"budget": 256, "sinks": 16}, map[string]any{"sinks": 16, "size": 240}, ""},
		{"cascade", map[string]any{"budget": 256, "sinks": 6}, nil, "not a multiple of cascades"},
		{"cascade", map[string]any{"budget": 256, "size": 128}, map[string]any{"sinks": 128, "size": 128}, ""},
		{"cascade", map[string]any{"budget": 10}, nil, "cannot hold"},
		{"bigbird", map[string]any{"budget": 512, "block": 16}, map[string]any{"global": 4, "random_blocks": 7, "window": 396}, ""},
		{"bigbird", map[string]any{"budget": 512, "block": 16, "window": 100}, map[string]any{"random_blocks": 25, "window": 100}, ""},
		{"bigbird", map[string]any{"budget": 512, "block": 16, "window": 100, "random_blocks": 2}, nil, "give budget or those"},
		{"hip_bigbird", map[string]any{"budget": 256}, map[string]any{"sinks": 16, "window": 240}, ""},
		{"truncated", map[string]any{"budget": 300}, map[string]any{"keep": 300}, ""},
		{"truncated", map[string]any{"budget": 300, "keep": 200}, nil, "give one of them"},
		{"snapkv", map[string]any{"budget": 300}, map[string]any{"budget": 300, "window": 32}, ""},
		{"quest", map[string]any{"budget": 256}, map[string]any{"sinks": 4, "window": 0, "topk": 14}, ""},
		{"quest", map[string]any{"budget": 256, "page": 32, "sinks": 0}, map[string]any{"topk": 7}, ""},
		{"quest", map[string]any{"budget": 256, "topk": 3}, nil, "give budget or topk"},
		{"quest", map[string]any{"budget": 19}, nil, "cannot hold"},
		{"duo", map[string]any{"budget": 256}, map[string]any{"sinks": 4, "window": 252}, ""},
		{"duo", map[string]any{"budget": 256, "sinks": 16, "streaming": "cascade"}, map[string]any{"sinks": 16, "window": 240}, ""},
		{"duo", map[string]any{"budget": 3, "sinks": 4}, nil, "cannot hold"},
		{"adakv", map[string]any{"budget": 300}, map[string]any{"budget": 300, "window": 32, "safeguard": 0.2}, ""},
		{"ada_snapkv", map[string]any{"budget": 20}, nil, "exceed window"},
		{"sink", map[string]any{"budget": 0}, nil, "must lie in [1"},
		{"sink", map[string]any{"budget": 256, "ratio": 0.5}, nil, "not both"},
		{"sink", map[string]any{"ratio": 1.5}, nil, "must lie in (0, 1]"},
		{"sink", map[string]any{"ratio": 0.0}, nil, "must lie in (0, 1]"},
		{"full", map[string]any{"budget": 10}, nil, "unknown parameter"},
	} {
		t.Run(fmt.Sprintf("%s%v", c.name, c.raw), func(t *testing.T) {
			s, ok := Lookup(c.name)
			if !ok {
				t.Fatalf("no policy %s", c.name)
			}
			v, err := s.Resolve(c.raw)
			if err == nil {
				_, err = New(c.name, c.raw)
			}
			if c.want == nil {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, x := range c.want {
				if v[k] != x {
					t.Errorf("%s = %v, want %v (all: %v)", k, v[k], x, v)
				}
			}
			// resolving the resolved values changes nothing (the runner
			// rebuilds policies from them)
			again, err := s.Resolve(v)
			if err != nil || !reflect.DeepEqual(again, v) {
				t.Errorf("resolved again: %v, %v; want %v", again, err, v)
			}
		})
	}
}

// TestBudgetUnsetAbsent: without budget or ratio, a policy resolves to the
// keys it had before the budget vocabulary, so point hashes stay.
func TestBudgetUnsetAbsent(t *testing.T) {
	for _, s := range Specs() {
		v, err := s.Resolve(nil)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if v.Has(ratioKey) || (v.Has(budgetKey) && s.split != nil) {
			t.Errorf("%s: defaults hold budget or ratio: %v", s.Name, v)
		}
	}
}

// TestBudgetRatio: a ratio resolves per prompt to round(ratio · n) and
// splits as that budget would; unresolved, the factory makes no layer and
// says why.
func TestBudgetRatio(t *testing.T) {
	f, err := New("sink", map[string]any{"ratio": 0.25, "sinks": 8})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.NewLayer(0, gqa); err == nil || !strings.Contains(err.Error(), "give budget instead") {
		t.Errorf("unresolved ratio: NewLayer error %v", err)
	}
	r, ok := f.(RatioFactory)
	if !ok {
		t.Fatalf("%T is not a RatioFactory", f)
	}
	if b := r.Budget(1001); b != 250 {
		t.Errorf("Budget(1001) = %d, want 250", b)
	}
	g, err := r.ForPrompt(1001)
	if err != nil {
		t.Fatal(err)
	}
	p, err := g.NewLayer(0, gqa)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Reserve(1); got != 250 {
		t.Errorf("ratio 0.25 of 1001 tokens reserves %d slots, want 250", got)
	}
	if s := p.(*sink); s.sinks != 8 || s.window != 242 {
		t.Errorf("sinks %d window %d, want 8 and 242", s.sinks, s.window)
	}
	c, err := New("truncated", map[string]any{"ratio": 0.5})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := c.(RatioFactory).ForPrompt(100)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(tr.(PromptCutter).CutPrompt(make([]int32, 100))); got != 50 {
		t.Errorf("truncated ratio 0.5 keeps %d of 100 tokens, want 50", got)
	}
	if _, err := New("cascade", map[string]any{"ratio": 0.001}); err != nil {
		t.Fatal(err)
	}
	cr, _ := New("cascade", map[string]any{"ratio": 0.001})
	if _, err := cr.(RatioFactory).ForPrompt(1000); err == nil || !strings.Contains(err.Error(), "budget 1") {
		t.Errorf("cascade ratio too small for its cascades: %v", err)
	}
}

// TestBudgetNeverExceeded runs every holding policy at several budgets and
// checks that no head ever holds, nor reserves, more than the budget, and
// that the sparse views never show more keys than it.
func TestBudgetNeverExceeded(t *testing.T) {
	mixed := []int{1, 7, 64, 3, 200, 1, 1, 33}
	for _, s := range Specs() {
		if !s.Bounded {
			continue
		}
		for _, b := range []int{48, 130, 256} {
			if s.Name == "truncated" {
				continue // cuts the prompt: TestBudgetRatio
			}
			t.Run(fmt.Sprintf("%s/%d", s.Name, b), func(t *testing.T) {
				raw := map[string]any{"budget": b}
				if s.Name == "bigbird" || s.Name == "hip_bigbird" {
					raw["block"] = 4
				}
				h := newHarness(t, s.Name, raw, gqa)
				h.mass = randomMass(rand.New(rand.NewPCG(5, 6)))
				prompt := int64(900)
				for h.seen < 1500 {
					n := mixed[int(h.seen)%len(mixed)]
					pe := prompt
					if h.seen >= prompt {
						pe = -1
					} else if h.seen+int64(n) > prompt {
						n = int(prompt - h.seen)
					}
					h.chunk(n, pe)
					afterPrompt := h.seen - prompt // tokens generated
					if h.pooled {                  // heads share the layer's KV heads × budget
						var held int64
						for kh := range gqa.KVHeads {
							held += int64(len(h.held(kh)))
						}
						if afterPrompt >= 0 && held > int64(gqa.KVHeads)*(int64(b)+afterPrompt) {
							t.Fatalf("at %d: %d held in %d heads, budget %d + %d generated each", h.seen, held, gqa.KVHeads, b, afterPrompt)
						}
						continue
					}
					for kh := range gqa.KVHeads {
						held := int64(len(h.held(kh)))
						switch {
						case s.Name == "duo":
							// the budget is a streaming head's; a retrieval
							// head keeps every token
							if d := h.p.(*duo); !slices.Contains(d.ret, kh) && held > int64(b) {
								t.Fatalf("at %d streaming head %d: %d held, budget %d", h.seen, kh, held, b)
							}
						case h.viewOnly:
							if h.ctx.ViewLen > b {
								t.Fatalf("at %d: view of %d keys, budget %d", h.seen, h.ctx.ViewLen, b)
							}
						case isPromptOnly(s.Name):
							if afterPrompt >= 0 && held > int64(b)+afterPrompt {
								t.Fatalf("at %d head %d: %d held, budget %d + %d generated", h.seen, kh, held, b, afterPrompt)
							}
						case held > int64(b) || h.reserve > b:
							t.Fatalf("at %d head %d: %d held, %d reserved, budget %d", h.seen, kh, held, h.reserve, b)
						}
					}
				}
			})
		}
	}
}

// isPromptOnly reports whether the named policy compresses the prompt once
// and then appends what it decodes (snapkv, pyramidkv): its budget bounds
// the prompt only.
func isPromptOnly(name string) bool { return name == "snapkv" || name == "pyramidkv" }
