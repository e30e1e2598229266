package gpu

import "kvcascade/gpu/cuda"

// viewState is the part of a device-side policy's state that the attention
// kernel reads and writes: the view of the chunk being processed and the
// mass the chunk's attention leaves for the policy. The cascade
// (deviceCascade) and the token lists (deviceTokens) embed it.
type viewState struct {
	b               *Backend
	qHeads, kvHeads int
	vslot, vpos     cuda.DevicePtr // [Hkv, L] storage slot and RoPE position of every view key
	// mass [Hq, L+n] is the attention's own buffer, not the backend's:
	// sessions sharing the backend may run attention between this call and
	// the policy's Commit.
	mass scratch
}

// deviceView is the view of the chunk being processed (backend.DeviceView):
// Attention reads its slots and positions and, when the chunk's query
// weights ask for it, leaves the mass in mass.
type deviceView struct {
	c        *viewState
	first    int64 // original position of the chunk's first token
	n        int   // tokens in the chunk
	l        int   // view length
	original bool  // keys at their original positions (else at their view index)
	// samePos: every KV head sees view key j at the same position (the
	// first head's, or j itself unless original), which lets decoding
	// attention share each key's RoPE row among the heads.
	samePos bool
	sunk    int // the cascade's sinks in the view
	mass    cuda.DevicePtr
}

// Len returns the view length.
func (v *deviceView) Len() int { return v.l }

// maxPos is the largest RoPE position the chunk's attention uses.
func (v *deviceView) maxPos() int {
	if v.original {
		return int(v.first) + v.n - 1
	}
	return v.l + v.n - 1
}
