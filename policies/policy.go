// Package policies holds the KV-cache eviction policies and the Cache that
// drives them.
//
// A Policy does bookkeeping only: for one layer of one sequence it decides
// which storage slot each key/value lives in, which slots a chunk attends to,
// in which order and at which RoPE positions, and which tokens are dropped.
// It never touches key or value data. The Cache owns the storage on a
// backend.Backend and moves rows as the policy says, so every policy runs
// unchanged on any backend.
//
// The life of a chunk of n tokens in one layer:
//
//	need := p.Reserve(n)       // slots per KV head the policy may use
//	p.Plan(step, &view)         // view, positions, query weights
//	... attention over view, returns mass per key ...
//	p.Commit(mass, place)      // slot of each chunk token, or -1
//
// The policies (Specs lists them with their parameters):
//
//   - full and truncated keep everything (truncated cuts the prompt first);
//   - cascade, the cascading KV cache, follows the reference Triton kernel
//     token for token (TestReferenceKernel replays its recordings); its
//     scoring = "reference" reproduces the official code's flash-path
//     scores, quirks included (docs/design.md), on the CPU backend;
//   - sink (StreamingLLM), h2o and snapkv evict by position or attention;
//   - bigbird keeps everything but shows each chunk a sparse view;
//   - logsearch keeps everything, shows each chunk sinks and a recent
//     window, and retrieves the top-k blocks of the rest from a tree of
//     key bounds (the Cache hands it queries and keys on the host); with
//     device_tokens its device storage is fixed and every token also goes
//     to a host tier (backend.HostTier) the retrieved rows are copied from.
//   - quest is Quest on logsearch's block index: every token kept, each
//     chunk attends to the top-k pages by their key bounds, sinks and the
//     current page;
//   - duo keeps every token in the retrieval heads a calibration run on
//     the model finds (Calibrator) and sinks + a window, or a cascade, in
//     the other heads;
//   - random, knorm, tova and expected_attention keep the best-scored
//     tokens in fixed memory (scored.go, expected.go), pyramidkv is snapkv
//     with budgets falling across layers, adakv is snapkv whose layer
//     budget its KV heads share by score (adakv.go).
//
// Every bounded policy also takes `budget` or `ratio`, split over its own
// keys by a default of its own (budget.go).
//
// Bounded policies (cascade, sink, h2o) reserve a constant number of slots.
// A token is written once into its slot and stays there until the policy
// drops it; moving it within the policy's bookkeeping costs no copy. Every
// evicting policy takes `positions`: "cache" rotates the view's keys by
// their index in the attention order and the chunk right after them (the
// paper's default), "original" by their original positions.
//
// cascade, h2o and snapkv also come as device variants, separate types that
// keep their bookkeeping on a backend that implements the contracts of
// policies/device; NewCache picks the variant of each layer once.
package policies

import "kvcascade/runtime/backend"

// Shape is what a policy needs to know about the model.
type Shape struct {
	Layers  int
	QHeads  int
	KVHeads int
	HeadDim int
}

// Group returns the number of query heads per KV head.
func (s Shape) Group() int { return s.QHeads / s.KVHeads }

// Step describes one chunk of tokens on its way through a layer.
type Step struct {
	// Start is the number of tokens the sequence had seen before the chunk,
	// that is, the original position of the chunk's first token.
	Start int64
	// N is the number of tokens in the chunk.
	N int
	// PromptEnd is the original position one past the prompt's last token
	// while a prompt is being read, and -1 during decoding. Policies that
	// look at the end of the prompt (SnapKV) use it.
	PromptEnd int64
}

// EndsPrompt reports whether the chunk holds the prompt's last token.
func (s Step) EndsPrompt() bool { return s.PromptEnd >= 0 && s.Start+int64(s.N) >= s.PromptEnd }

// Policy manages the cache of one layer of one sequence. Implementations
// are not safe for concurrent use.
type Policy interface {
	// Reserve returns the number of storage slots per KV head the policy
	// needs before it takes a chunk of n tokens. It never shrinks.
	Reserve(n int) int
	// Plan fills view's ViewLen, Slots, Pos, QueryPos and QueryWeights for
	// the chunk. The slices in view may be reused from the previous call.
	Plan(step Step, view *backend.View)
	// Commit receives the attention mass of the chunk, [Hq·(L+n)] as
	// described by backend.Attention (nil when Plan asked for none), and
	// writes into place [Hkv·n] the storage slot of each chunk token, or -1
	// when the token is not kept.
	Commit(mass []float32, place []int32)
	// Held appends to dst the original positions of the tokens head h holds,
	// in attention order, and returns the extended slice.
	Held(h int, dst []int64) []int64
	// MetaBytes is the memory the policy's own bookkeeping uses.
	MetaBytes() int64
}

// Factory makes the per-layer policies of one configured method.
type Factory interface {
	// Name is the registered name of the policy ("cascade", "sink", …).
	Name() string
	// NewLayer returns the policy of one layer.
	NewLayer(layer int, s Shape) (Policy, error)
}

// sizeView sets view's view length to l and sizes Slots and Pos for l keys
// of each of heads KV heads and QueryPos for heads.
func sizeView(view *backend.View, heads, l int) {
	view.ViewLen = l
	view.Slots = grow(view.Slots, heads*l)
	view.Pos = grow(view.Pos, heads*l)
	view.QueryPos = grow(view.QueryPos, heads)
}

// grow returns s resized to n elements, reusing its storage when it can and
// reallocating with headroom so that a slowly growing view reallocates rarely.
func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n, n+n/2)
}
