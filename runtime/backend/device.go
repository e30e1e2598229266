package backend

// Device-side policies.
//
// A policy's bookkeeping normally runs on the host: it reads the attention
// mass of every chunk back from the backend and uploads the slots of the
// next view. A backend whose device can run a policy itself implements that
// policy's interface below; the policy then keeps its state on the device,
// plans the view there (Context.Device) and consumes the mass where the
// attention wrote it, so that no per-token data crosses to the host while a
// prompt is read.

// DeviceView is a view that a policy planned on a backend's device. Only
// the backend that made it reads it: Attention takes the view's slots and
// positions from it and writes the attention mass into it.
type DeviceView interface {
	// Len returns the number of cached keys each KV head attends to.
	Len() int
}

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
	NewCascade(spec CascadeSpec) (DeviceCascade, error)
}

// DeviceCascade is one layer's cascade state on a device. Its methods
// mirror the host policy: the walk of every chunk token through the
// cascades, with the rules of the reference kernel, runs on the device.
type DeviceCascade interface {
	// Plan lays out the view of the next chunk of n tokens, whose first
	// token has original position start: the sunk sinks, then the
	// cascades from the last to the first, each from its oldest entry to
	// its newest; viewLen is their number per KV head (the host knows it,
	// as fills do not depend on scores).
	Plan(start int64, n, sunk, viewLen int) DeviceView
	// Commit consumes the mass the chunk's attention wrote into the view:
	// it ages the held tokens' scores (s ← βⁿ·s + mass), walks the chunk's
	// tokens through the cascades and copies the rows of the tokens that
	// stay from the chunk's keys and values chunkK, chunkV [n, Hkv·hd] into
	// the storage k, v [Hkv, Cap, hd].
	Commit(k, v, chunkK, chunkV Tensor)
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
