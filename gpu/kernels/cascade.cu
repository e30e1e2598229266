// The cascading KV cache's bookkeeping on the device (package gpu,
// cascade.go): the same rules as the host policy (policies/cascade.go) and
// the reference Triton kernel, so that no per-token data leaves the device
// while a prompt is read.
//
// State of one layer, per KV head h (E = size entries, C cascades of W):
//   slot, pos, score [Hkv, E]  entry e of cascade i is at h·E + i·W + e
//   start, stored [Hkv, C]     oldest entry and fill of each ring
//   freed [Hkv, E], top, next [Hkv]  the slot pool: a stack of freed slots
//                                    and the lowest slot never handed out
// Per chunk of n tokens over a view of L = sunk + held entries:
//   vslot, vpos, ventry [Hkv, L]  the view: storage slot, RoPE position and
//                                 entry of every key (−1 for a sink)
//   mass [Hq, L+n]                written by the attention kernel
//   a [Hkv, L+n]                  mass reduced over each GQA group
//   place [Hkv, n]                slot of each chunk token, or −1
//
// Arithmetic that decides which tokens stay is written with __fadd_rn and
// __fmul_rn so that it rounds as the host's float32 does (no contraction
// into fused multiply-adds).

// cascade_plan lays out the view: sinks 0…sunk−1 in slots 0…sunk−1, then
// the cascades from the last to the first, each from its oldest entry to
// its newest. Positions are the view index (cache-relative RoPE) or the
// token's original position. Grid (⌈L/blockDim⌉, Hkv).
extern "C" __global__ void cascade_plan(int *vslot, int *vpos, int *ventry, const int *slot, const long long *pos,
                                        const int *start, const int *stored, int size, int C, int W, int sunk, int L,
                                        int original) {
	int h = blockIdx.y;
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= L) {
		return;
	}
	long long o = (long long)h * L + j;
	if (j < sunk) {
		vslot[o] = j;
		vpos[o] = j;
		ventry[o] = -1;
		return;
	}
	int k = j - sunk;
	int e = -1;
	for (int i = C - 1; i >= 0; i--) {
		int st = stored[h * C + i];
		if (k < st) {
			int r = start[h * C + i] + k; // a ring that is not full starts at 0
			if (r >= W) {
				r -= W;
			}
			e = h * size + i * W + r;
			break;
		}
		k -= st;
	}
	// e < 0 would mean the host's fills disagree with the device's: mark the
	// key as padding rather than read out of bounds.
	vslot[o] = e < 0 ? -1 : slot[e];
	vpos[o] = e < 0 ? 0 : (original ? (int)pos[e] : j);
	ventry[o] = e;
}

// cascade_reduce combines the mass of each GQA group (or of all query
// heads when homogeneous): the maximum, or the float32 sum in head order
// times 1/g, as the host does. mass [Hq, Wd], a [Hkv, Wd]. Grid
// (⌈Wd/blockDim⌉, Hkv).
extern "C" __global__ void cascade_reduce(float *a, const float *mass, int hq, int hkv, int Wd, int reduce_max,
                                          int homogeneous) {
	int h = blockIdx.y;
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= Wd) {
		return;
	}
	int g = hq / hkv;
	int q0 = homogeneous ? 0 : h * g, q1 = homogeneous ? hq : (h + 1) * g;
	float x = mass[(long long)q0 * Wd + j];
	for (int q = q0 + 1; q < q1; q++) {
		float y = mass[(long long)q * Wd + j];
		if (reduce_max) {
			x = y > x ? y : x;
		} else {
			x = __fadd_rn(x, y);
		}
	}
	if (!reduce_max && q1 - q0 > 1) {
		x = __fmul_rn(x, __fdiv_rn(1.0f, (float)(q1 - q0)));
	}
	a[(long long)h * Wd + j] = x;
}

// cascade_age sets the score of every held entry to βⁿ·score + a, in two
// roundings. Grid (⌈L/blockDim⌉, Hkv).
extern "C" __global__ void cascade_age(float *score, const int *ventry, const float *a, int L, int Wd, float bn) {
	int h = blockIdx.y;
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= L) {
		return;
	}
	int e = ventry[(long long)h * L + j];
	if (e >= 0) {
		score[e] = __fadd_rn(__fmul_rn(bn, score[e]), a[(long long)h * Wd + j]);
	}
}

// walkState is one KV head's state while its chunk is walked.
struct walkState {
	int *slot;
	long long *pos;
	float *score;
	int *freed;
	int top, next;   // pool: freed[0…top) and fresh slots from next
	int *place;      // [n] this head's row
	long long first; // original position of the chunk's first token
};

__device__ __forceinline__ int pool_get(walkState &s) {
	if (s.top > 0) {
		return s.freed[--s.top];
	}
	return s.next++;
}

// drop frees the slot of a token leaving the cache; a token of the current
// chunk loses its place. Slot −1 is the walked token, not stored yet.
__device__ __forceinline__ void drop(walkState &s, int slot, long long pos) {
	if (slot < 0) {
		return;
	}
	s.freed[s.top++] = slot;
	if (pos >= s.first) {
		s.place[pos - s.first] = -1;
	}
}

// cascade_walk walks the chunk's tokens one by one through the cascades of
// one KV head (one block of one thread per head: the walk is sequential).
// The first `accepting` cascades accept token t; a full cascade that
// accepts passes its oldest token on to the next; one that does not accept
// lets the carried token compete with its newest entry (the reference's
// (start − 1) mod stored, taken as Python takes it). Grid (Hkv).
extern "C" __global__ void __launch_bounds__(1) cascade_walk(
	int *slot, long long *pos, float *score, int *start, int *stored, int *freed, int *top, int *next, int *place,
	const float *a, const long long *every, long long first, int n, int L, int Wd, int sinks, int size, int C, int W,
	int eager) {
	int h = blockIdx.x;
	__shared__ int st_[64], s0_[64];
	for (int i = 0; i < C; i++) {
		st_[i] = stored[h * C + i];
		s0_[i] = start[h * C + i];
	}
	walkState s;
	s.slot = slot;
	s.pos = pos;
	s.score = score;
	s.freed = freed + (long long)h * size;
	s.top = top[h];
	s.next = next[h];
	s.place = place + (long long)h * n;
	s.first = first;
	const float *ah = a + (long long)h * Wd + L;
	long long base = (long long)h * size;

	for (int q = 0; q < n; q++) {
		long long t = first + q;
		if (t < sinks) {
			s.place[q] = (int)t;
			continue;
		}
		s.place[q] = -1;
		int accepting = C;
		if (!(eager && t <= (long long)(size + sinks))) {
			long long k = t - sinks;
			accepting = 0;
			while (accepting < C && k % every[accepting] == 0) {
				accepting++;
			}
		}
		int cslot = -1; // the carried token: t has no slot until the walk is over
		long long cpos = t;
		float cscore = ah[q];
		long long rest = -1; // entry where t came to rest
		int i = 0;
		for (; i < C; i++) {
			int st = st_[i], s0 = s0_[i];
			long long off = base + (long long)i * W;
			if (i < accepting) {
				if (st < W) { // not full, so start is 0: append
					long long e = off + st;
					slot[e] = cslot, pos[e] = cpos, score[e] = cscore;
					if (cslot < 0) {
						rest = e;
					}
					st_[i] = st + 1;
					break;
				}
				// full: the carried token takes the oldest entry, whose token
				// is carried on to the next cascade
				long long e = off + s0;
				int oslot = slot[e];
				long long opos = pos[e];
				float oscore = score[e];
				slot[e] = cslot, pos[e] = cpos, score[e] = cscore;
				if (cslot < 0) {
					rest = e;
				}
				cslot = oslot, cpos = opos, cscore = oscore;
				if (++s0 == W) {
					s0 = 0;
				}
				s0_[i] = s0;
				continue;
			}
			if (st == 0) { // empty, so start is 0
				slot[off] = cslot, pos[off] = cpos, score[off] = cscore;
				if (cslot < 0) {
					rest = off;
				}
				st_[i] = 1;
				break;
			}
			// not accepted: the carried token competes with the newest entry
			long long newest = off + (s0 > 0 ? s0 - 1 : st - 1);
			if (cscore >= score[newest]) {
				drop(s, slot[newest], pos[newest]);
				slot[newest] = cslot, pos[newest] = cpos, score[newest] = cscore;
				if (cslot < 0) {
					rest = newest;
				}
			} else {
				drop(s, cslot, cpos);
			}
			break;
		}
		if (i == C) {
			drop(s, cslot, cpos); // pushed out of the last cascade
		}
		if (rest >= 0) {
			int got = pool_get(s);
			slot[rest] = got;
			s.place[q] = got;
		}
	}
	for (int i = 0; i < C; i++) {
		stored[h * C + i] = st_[i];
		start[h * C + i] = s0_[i];
	}
	top[h] = s.top;
	next[h] = s.next;
}
