// The walk as gpu/kernels/cascade.cu had it before staging (one thread per
// KV head on global memory), kept verbatim but for the names
// (ref_ prefixes, reference_walk): the harness's reference, run one head
// after another in the host emulation.
// refState is one KV head's state while its chunk is walked.
struct refState {
	int *slot;
	long long *pos;
	float *score;
	int *freed;
	int top, next;   // pool: freed[0…top) and fresh slots from next
	int *place;      // [n] this head's row
	long long first; // original position of the chunk's first token
};

__device__ __forceinline__ int ref_pool_get(refState &s) {
	if (s.top > 0) {
		return s.freed[--s.top];
	}
	return s.next++;
}

// drop frees the slot of a token leaving the cache; a token of the current
// chunk loses its place. Slot −1 is the walked token, not stored yet.
__device__ __forceinline__ void ref_drop(refState &s, int slot, long long pos) {
	if (slot < 0) {
		return;
	}
	s.freed[s.top++] = slot;
	if (pos >= s.first) {
		s.place[pos - s.first] = -1;
	}
}

// reference_walk walks the chunk's tokens one by one through the cascades of
// one KV head (one block of one thread per head: the walk is sequential).
// The first `accepting` cascades accept token t; a full cascade that
// accepts passes its oldest token on to the next; one that does not accept
// lets the carried token compete with its newest entry (the reference's
// (start − 1) mod stored, taken as Python takes it). Grid (Hkv).
extern "C" __global__ void __launch_bounds__(1) reference_walk(
	int *slot, long long *pos, float *score, int *start, int *stored, int *freed, int *top, int *next, int *place,
	const float *a, const long long *every, long long first, int n, int L, int Wd, int sinks, int size, int C, int W,
	int eager) {
	int h = blockIdx.x;
	__shared__ int st_[64], s0_[64];
	for (int i = 0; i < C; i++) {
		st_[i] = stored[h * C + i];
		s0_[i] = start[h * C + i];
	}
	refState s;
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
				ref_drop(s, slot[newest], pos[newest]);
				slot[newest] = cslot, pos[newest] = cpos, score[newest] = cscore;
				if (cslot < 0) {
					rest = newest;
				}
			} else {
				ref_drop(s, cslot, cpos);
			}
			break;
		}
		if (i == C) {
			ref_drop(s, cslot, cpos); // pushed out of the last cascade
		}
		if (rest >= 0) {
			int got = ref_pool_get(s);
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
