// Package device holds the contracts between the eviction policies and a
// backend that runs a policy's bookkeeping on its device.
//
// A policy's bookkeeping normally runs on the host: it reads the attention
// mass of every chunk back from the backend and uploads the slots of the
// next view. A backend whose device can run a policy itself implements that
// policy's interface here (Cascader, TokenLister, Patterner); the policies
// package then builds the policy's device variant once, when the cache is
// made, which keeps its state on the device, plans the view there (a
// backend.DeviceView, read by the backend's Attention) and consumes the mass
// where the attention wrote it, so that no per-token data crosses to the
// host while a prompt is read. The policies whose view is a fixed pattern
// (Patterner) have no mass and no per-token state: the device lays their
// view out from a few numbers per chunk instead of a list of slots.
//
// The package belongs to the policies: runtime/backend knows only the
// opaque view, and backends (gpu) implement the interfaces below.
package device

import "kvcascade/runtime/backend"

// CascadeSpec is the configuration of one layer of the cascading cache, as
// policies' cascade resolves it.
type CascadeSpec struct {
	QHeads, KVHeads int
	Sinks           int     // tokens kept for ever, in slots 0…Sinks−1
	Size            int     // cascade entries per KV head, all cascades together
	Cascades        int     // number of cascades; divides Size
	Every           []int64 // [Cascades] cascade i accepts token t when (t−Sinks) mod Every[i] == 0
	Beta            float64 // EMA factor of the scores per query
	ReduceMax       bool    // combine a GQA group's mass by max (else mean)
	Homogeneous     bool    // combine over all query heads
	EagerFill       bool    // every cascade accepts every token until the cache has been filled once
	Original        bool    // rotate the view's keys by their original positions (else by view index)
}

// Cascader is implemented by backends that run the cascade's bookkeeping
// on their device. NewCascade may return an error wrapping
// errors.ErrUnsupported, and the policy then stays on the host.
type Cascader interface {
	NewCascade(spec CascadeSpec) (Cascade, error)
}

// Cascade is one layer's cascade state on a device. Its methods
// mirror the host policy: the walk of every chunk token through the
// cascades, with the rules of the reference kernel, runs on the device.
type Cascade interface {
	// Plan lays out the view of the next chunk of n tokens, whose first
	// token has original position start: the sunk sinks, then the
	// cascades from the last to the first, each from its oldest entry to
	// its newest; viewLen is their number per KV head (the host knows it,
	// as fills do not depend on scores).
	Plan(start int64, n, sunk, viewLen int) backend.DeviceView
	// Commit consumes the mass the chunk's attention wrote into the view:
	// it ages the held tokens' scores (s ← βⁿ·s + mass), walks the chunk's
	// tokens through the cascades and copies the rows of the tokens that
	// stay from the chunk's keys and values chunkK, chunkV [n, Hkv·hd] into
	// the storage k, v [Hkv, Cap, hd].
	Commit(k, v, chunkK, chunkV backend.Tensor)
	// Held appends to dst the original positions of the tokens KV head h
	// holds in its cascades (sinks excluded), in attention order.
	Held(h int, dst []int64) []int64
	// Scores appends to dst the scores of those tokens, in the same order.
	Scores(h int, dst []float32) []float32
	// Bytes is the device memory the state holds.
	Bytes() int64
	// Free releases it.
	Free()
}

// TokenListSpec is the configuration of one layer of a policy that keeps,
// per KV head, a list of tokens in original order and evicts by score
// (policies' h2o and snapkv).
type TokenListSpec struct {
	QHeads, KVHeads int
	Original        bool // rotate the view's keys by their original positions (else by view index)
}

// TokenLister is implemented by backends that keep such token lists on
// their device. NewTokenList may return an error wrapping
// errors.ErrUnsupported, and the policy then stays on the host.
type TokenLister interface {
	NewTokenList(spec TokenListSpec) (TokenList, error)
}

// Eviction is what a token list does once a chunk's scores are in. A token
// ranks above another when its score is higher or, on equal scores, when it
// is more recent.
type Eviction struct {
	// Budget, when positive, bounds the tokens of each KV head: a head that
	// holds more keeps its last Recent tokens (Recent ≤ Budget) and, of
	// the others, the Budget−Recent that rank highest, in order. Zero keeps
	// every token.
	Budget, Recent int
	// Pool, when above 1 (and odd), ranks those others by their scores
	// pooled over the Pool neighbours centred on each, among the others
	// only: the maximum, or with PoolAvg the float32 sum in position order
	// divided by Pool (zero padding counted, as F.avg_pool1d does).
	Pool    int
	PoolAvg bool
	// Reset sets every score to zero afterwards.
	Reset bool
}

// TokenList is one layer's token lists on a device: per KV head the
// tokens held, in original order, each with its storage slot and score.
// Every head holds the same number of tokens, and the storage slots each
// head uses are counted like policies' slot pools count them (freed slots
// first, then fresh ones), so the host knows both without reading the
// device.
type TokenList interface {
	// Len returns the number of tokens each KV head holds.
	Len() int
	// Reserve returns the storage slots per KV head the list needs before
	// it takes a chunk of n tokens: the slots handed out so far plus those
	// the chunk may need beyond the freed ones.
	Reserve(n int) int
	// Plan lays out the view of the next chunk of n tokens, whose first
	// token has original position start: each head's tokens in order, at
	// their view index or original position. With mass, the chunk's
	// attention writes its mass into the view (the view's QueryWeights must
	// be set); without, Commit takes the mass to be zero.
	Plan(start int64, n int, mass bool) backend.DeviceView
	// Commit consumes the chunk's mass: the mass of each key of
	// [view ; chunk], reduced over the query heads of its GQA group (the
	// float32 sum in head order times 1/g), is added to the score of each
	// held token and becomes the score of each chunk token, appended in
	// order. Each head then evicts as e says and gives the slots of the
	// evicted tokens back; the chunk's tokens that stay get slots, and
	// their rows are copied from the chunk's keys and values chunkK, chunkV
	// [n, Hkv·hd] into the storage k, v [Hkv, Cap, hd].
	Commit(k, v, chunkK, chunkV backend.Tensor, e Eviction)
	// Held appends to dst the original positions of the tokens KV head h
	// holds, in order.
	Held(h int, dst []int64) []int64
	// Scores appends to dst the scores of those tokens, in the same order.
	Scores(h int, dst []float32) []float32
	// Bytes is the device memory the state holds.
	Bytes() int64
	// Free releases it.
	Free()
}

// PatternSpec is the configuration of one layer of a policy whose view is a
// fixed pattern over the tokens it holds, which never depends on the
// attention (policies' sink and bigbird): where each token is stored
// follows from its position alone, so the device needs no lists, only the
// few numbers of each chunk's PatternView.
type PatternSpec struct {
	QHeads, KVHeads int
	// Sinks and Ring place the tokens: token t lives in slot t when Ring is
	// zero or t < Sinks, and otherwise in slot Sinks + (t−Sinks) mod Ring,
	// a ring that holds only the last Ring tokens after the sinks (sink).
	// With Ring zero every token is kept (bigbird).
	Sinks, Ring int
	Original    bool // rotate the view's keys by their original positions (else by view index)
}

// PatternView is the view of one chunk of a Pattern, in attention order:
// per KV head h, the tokens [0, Head); then, for each of the r =
// len(Blocks)/KVHeads block starts Blocks[h·r+i] (ascending), the tokens
// [Blocks[h·r+i], Blocks[h·r+i]+Block); then the tokens [Tail, Start). The
// host draws the blocks (bigbird's seeded draw), so that the device
// reproduces the host's generator nowhere; sink has none.
type PatternView struct {
	Start int64 // original position of the chunk's first token
	N     int   // tokens in the chunk
	Head  int64
	// Blocks [KVHeads·r] are original positions, each block held in full
	// and before Tail.
	Blocks []int32
	Block  int
	Tail   int64 // Head ≤ Tail ≤ Start
}

// Len returns the number of keys each of kvHeads KV heads attends to in v.
func (v *PatternView) Len(kvHeads int) int {
	return int(v.Head) + len(v.Blocks)/kvHeads*v.Block + int(v.Start-v.Tail)
}

// Patterner is implemented by backends that lay out such patterns on their
// device. NewPattern may return an error wrapping errors.ErrUnsupported,
// and the policy then stays on the host.
type Patterner interface {
	NewPattern(spec PatternSpec) (Pattern, error)
}

// Pattern is one layer's pattern on a device. It keeps no per-token state:
// the host keeps the policy's counters and hands each chunk's view over.
type Pattern interface {
	// Plan lays out the view v of the next chunk: every key's storage slot
	// (as the spec places tokens) and RoPE position (its original
	// position, or its index in the view). The chunk asks for no mass.
	Plan(v PatternView) backend.DeviceView
	// Commit stores the rows of the planned chunk's tokens that the
	// pattern keeps (with a Ring, those among the last Ring tokens after
	// the sinks; the others are dropped) from the chunk's keys and values
	// chunkK, chunkV [n, Hkv·hd] into their slots of the storage k, v
	// [Hkv, Cap, hd].
	Commit(k, v, chunkK, chunkV backend.Tensor)
	// Bytes is the device memory the state holds.
	Bytes() int64
	// Free releases it.
	Free()
}
