// Fixed attention patterns on the device (package gpu, pattern.go): the
// views of the policies whose view follows from counters and, for
// bigbird, a draw the host makes (policies/sink.go, policies/bigbird.go),
// laid out from a few numbers per chunk instead of a list of slots
// uploaded for every key. There is no state between chunks.
//
// Token t is stored in slot t when ring is 0 or t < sinks, and otherwise
// in slot sinks + (t − sinks) mod ring (sink's ring buffer).
// Per chunk of n tokens, the first at original position start:
//   blocks [Hkv, r]       first token of each of a head's random blocks,
//                         ascending (uploaded; bigbird only)
//   vslot, vpos [Hkv, L]  the view: storage slot and RoPE position
//   place [Hkv, n]        slot of each chunk token, or −1

// pattern_slot is the storage slot of token t.
__device__ __forceinline__ int pattern_slot(long long t, int sinks, int ring) {
	if (ring == 0 || t < sinks) {
		return (int)t;
	}
	return sinks + (int)((t - sinks) % ring);
}

// pattern_plan lays out the view: tokens [0, head), then head h's r blocks
// of block tokens, then tokens tail, tail+1, … up to the view's end, at
// their view index or original position. Grid (⌈L/blockDim⌉, Hkv).
extern "C" __global__ void pattern_plan(int *vslot, int *vpos, const int *blocks, int head, int r, int block,
                                        long long tail, int L, int sinks, int ring, int original) {
	int h = blockIdx.y;
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= L) {
		return;
	}
	long long t;
	int k = j - head;
	if (j < head) {
		t = j;
	} else if (k < r * block) {
		t = (long long)blocks[h * r + k / block] + k % block;
	} else {
		t = tail + (k - r * block);
	}
	long long o = (long long)h * L + j;
	vslot[o] = pattern_slot(t, sinks, ring);
	vpos[o] = original ? (int)t : j;
}

// pattern_place sets place[h, i] to the slot of the chunk's token start+i,
// or to −1 when a later token of the chunk takes that slot (with a ring,
// only the last ring tokens after the sinks stay). Grid (⌈n/blockDim⌉,
// Hkv).
extern "C" __global__ void pattern_place(int *place, long long start, int n, int sinks, int ring) {
	int h = blockIdx.y;
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= n) {
		return;
	}
	long long t = start + i;
	int s = -1;
	if (ring == 0 || t < sinks || t >= start + n - ring) {
		s = pattern_slot(t, sinks, ring);
	}
	place[(long long)h * n + i] = s;
}
