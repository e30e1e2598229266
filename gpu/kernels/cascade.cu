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
// times 1/g, as the host does. mass [Hq, Wd], a [Hkv, Wd]. Where score is
// not null it also ages the held entries of the view's first L keys
// (ventry [Hkv, L], −1 for none): score = βⁿ·score + a, in two roundings,
// bn = βⁿ. Grid (⌈Wd/blockDim⌉, Hkv).
extern "C" __global__ void cascade_reduce(float *a, const float *mass, int hq, int hkv, int Wd, int reduce_max,
                                          int homogeneous, float *score, const int *ventry, int L, float bn) {
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
	if (score != 0 && j < L) {
		int e = ventry[(long long)h * L + j];
		if (e >= 0) {
			score[e] = __fadd_rn(__fmul_rn(bn, score[e]), x);
		}
	}
}

// ---- The walk ----
//
// cascade_walk walks the chunk's tokens one by one through the cascades of
// one KV head; the walk is sequential, so one thread of the head's block
// does it (walk_tokens, below), and the block's other threads stage its
// data in shared memory first and write it back after.
//
// In one chunk, cascade i only touches a circular window of its ring that
// starts at its newest entry (st−1 when not full, start−1 when full, 0 when
// empty) and is min(W, acc_i + 1) entries long, acc_i bounding the tokens
// it accepts: at most A_i, the chunk's tokens past the sinks whose
// `accepting` is above i, and at most what cascade i − 1 passes on
// (walk_plan); and the free stack only moves within [top − n, top + 1)
// (each token pushes at most one slot, and only when it takes one back
// after).
// The staged walk, for chunks whose windows fit the smem_bytes of
// dynamic shared memory the host gives:
//   1. the block computes every token's `accepting` (acc, one byte each)
//      and counts them (hist), so that A_i = Σ_{a>i} hist[a] (the walk
//      then reads acc instead of dividing by the periods);
//   2. thread 0 lays out the windows;
//   3. the block loads (coalesced) each ring's window of slot, pos and
//      score, the stack's window and the chunk's mass row ah[0…n);
//   4. thread 0 walks the chunk against those copies (place is kept in
//      shared memory too);
//   5. the block writes the windows, the stack's window and place back.
// Shared memory (dynamic, 16-byte aligned), WALK_SHARED(n, E) bytes for E
// window entries, E ≤ C·min(W, n + 1):
//   walkHead            WALK_HEAD bytes: rings, window lengths, counts
//   acc  [n] bytes      rounded up to 16
//   ent  [E] walkEntry  the windows, ring after ring (16 bytes an entry)
//   stk  [n+1] int      freed[slo…shi), slo = max(0, top−n), shi = min(size, top+1)
//   place[n] int
//   ah   [n] float
// Where only the part up to stk fits (WALK_SHARED_MIN(n, E) bytes), the
// walk reads the mass and writes place in global memory instead. At the
// 8B shape (W = 8,192, every = 1, 2, 4, …, 128, n = 4,096) E is 8,168,
// WALK_SHARED 185,988 bytes (an H100 allows 227 KiB a block) and
// WALK_SHARED_MIN 153,220 (an A100 allows 163 KiB). A chunk that does not
// fit even so, or a state that is not as the walk leaves it (a ring not
// full whose start is not 0, a fill, start or top out of range), falls
// back to the same walk on global memory (thread 0 alone, as before
// staging). The host gives at least WALK_HEAD bytes.

#ifndef WALK_THREADS
#define WALK_THREADS 512 // threads of a walk block (cascade.go: cascadeWalkThreads)
#endif
#define WALK_HEAD 2048 // bytes of walkHead's room (cascade.go: cascadeWalkHead)
#define WALK_MAXC 64   // most cascades (NewCascade checks)
#define WALK_ROUND16(x) (((x) + 15) / 16 * 16)
#define WALK_SHARED_MIN(n, E) (WALK_HEAD + WALK_ROUND16(n) + 16 * (E) + 4 * ((n) + 1))
#define WALK_SHARED(n, E) (WALK_SHARED_MIN(n, E) + 8 * (n))

// WALK_CHECK and WALK_TRACE are hooks for the host emulation
// (tools/cascadeemu): a bounds check of the staged windows and the path
// taken (0 global memory, 1 staged but for the mass and place, 2 staged).
#ifndef WALK_CHECK
#define WALK_CHECK(cond)
#endif
#ifndef WALK_TRACE
#define WALK_TRACE(staged)
#endif

// walkRing is one cascade's ring while its chunk is walked: fill, oldest
// entry and, when staged, the offset of its window in ent and the ring
// index of the window's first entry.
struct __align__(16) walkRing {
	int st, s0, base, lo;
};

// walkEntry is one ring entry in a staged window.
struct __align__(16) walkEntry {
	long long pos;
	int slot;
	float score;
};

// walkHead is the start of the walk's shared memory.
struct walkHead {
	walkRing ring[WALK_MAXC + 1]; // one more, read ahead but not used
	int len[WALK_MAXC];           // staged window lengths
	int hist[WALK_MAXC + 1];      // chunk tokens by `accepting`
	int staged, slo, shi;         // staged: the path, as WALK_TRACE's
};
static_assert(sizeof(walkHead) <= WALK_HEAD, "walkHead outgrows WALK_HEAD");

// cascade_accepting is how many cascades, from the first, accept token t
// (t ≥ sinks): all while eager filling, else those whose periods all
// divide t − sinks.
__device__ __forceinline__ int cascade_accepting(long long t, const long long *every, int sinks, int size, int C,
						 int eager) {
	if (eager && t <= (long long)(size + sinks)) {
		return C;
	}
	long long k = t - sinks;
	int a = 0;
	while (a < C && k % every[a] == 0) {
		a++;
	}
	return a;
}

// walkGlobal is the walk's storage in global memory (the fallback): one
// head's rows of slot, pos, score and freed, and its row of place; entry
// e of cascade i is i·W + e.
struct walkGlobal {
	int *slot;
	long long *pos;
	float *score;
	int *freed, *place;
	const float *ah;
	const long long *every;
	long long first;
	int sinks, size, C, W, eager;

	__device__ __forceinline__ int at(const walkRing &, int i, int e) const { return i * W + e; }
	__device__ __forceinline__ walkEntry get(int e) const {
		walkEntry v;
		v.pos = pos[e], v.slot = slot[e], v.score = score[e];
		return v;
	}
	__device__ __forceinline__ void put(int e, const walkEntry &v) { slot[e] = v.slot, pos[e] = v.pos, score[e] = v.score; }
	__device__ __forceinline__ void set_slot(int e, int v) { slot[e] = v; }
	__device__ __forceinline__ int &freed_at(int k) { return freed[k]; }
	__device__ __forceinline__ int &place_at(long long q) { return place[q]; }
	__device__ __forceinline__ int accepting(int q) const {
		return cascade_accepting(first + q, every, sinks, size, C, eager);
	}
	__device__ __forceinline__ float mass(int q) const { return ah[q]; }
};

// walkStaged is the walk's storage in shared memory: entry e of cascade
// i is ent[base + (e − lo) mod W] (walkRing), freed[k] is stk[k − slo];
// place and ah are in shared memory too, or the global rows when they do
// not fit.
struct walkStaged {
	walkEntry *ent;
	int *stk, *place;
	const float *ah;
	const unsigned char *acc;
	const int *len; // for WALK_CHECK
	int W, slo, shi, n;

	__device__ __forceinline__ int at(const walkRing &r, int i, int e) const {
		int d = e - r.lo;
		if (d < 0) {
			d += W;
		}
		WALK_CHECK(d >= 0 && d < len[i]);
		return r.base + d;
	}
	__device__ __forceinline__ walkEntry get(int e) const { return ent[e]; }
	__device__ __forceinline__ void put(int e, const walkEntry &v) { ent[e] = v; }
	__device__ __forceinline__ void set_slot(int e, int v) { ent[e].slot = v; }
	__device__ __forceinline__ int &freed_at(int k) {
		WALK_CHECK(k >= slo && k < shi);
		return stk[k - slo];
	}
	__device__ __forceinline__ int &place_at(long long q) {
		WALK_CHECK(q >= 0 && q < n);
		return place[q];
	}
	__device__ __forceinline__ int accepting(int q) const { return acc[q]; }
	__device__ __forceinline__ float mass(int q) const { return ah[q]; }
};

// walk_drop frees the slot of a token leaving the cache; a token of the
// current chunk loses its place. Slot −1 is the walked token, not stored
// yet. The slot pushed is the one the walked token takes (cand).
template <class S>
__device__ __forceinline__ void walk_drop(S &s, int &top, int &cand, long long first, int slot, long long pos) {
	if (slot < 0) {
		return;
	}
	s.freed_at(top++) = slot;
	cand = slot;
	if (pos >= first) {
		s.place_at(pos - first) = -1;
	}
}

// walk_tokens walks the chunk's n tokens through the C cascades of W
// entries of one head, whose rings are ring[0…C) and whose pool is
// freed[0…top) and the fresh slots from next. The first `accepting`
// cascades accept token t; a full cascade that accepts passes its oldest
// token on to the next; one that does not accept lets the carried token
// compete with its newest entry (the reference's (start − 1) mod stored,
// taken as Python takes it). The walked token has no slot until the walk
// is over: it takes one from the pool once it came to rest. What a step
// reads next is read ahead (the next token's accepting and mass, the next
// cascade's ring, the slot a pop would give) and the first cascade's ring
// kept in registers, so that a step waits for one read, not two.
template <class S>
__device__ __forceinline__ void walk_tokens(S &s, walkRing *ring, int &top, int &next, long long first, int n, int sinks,
					    int C, int W) {
	walkRing r0 = ring[0]; // the first cascade's ring, kept up to date
	int acc_next = 0;      // the next token's accepting and mass, once read
	float mass_next = 0;
	for (int q = 0; q < n; q++) {
		long long t = first + q;
		if (t < sinks) {
			s.place_at(q) = (int)t;
			continue;
		}
		s.place_at(q) = -1;
		int accepting = acc_next;
		walkEntry c; // the carried token
		c.pos = t, c.slot = -1, c.score = mass_next;
		if (q == 0 || t == sinks) { // nothing read ahead for t
			accepting = s.accepting(q), c.score = s.mass(q);
		}
		if (q + 1 < n) {
			acc_next = s.accepting(q + 1), mass_next = s.mass(q + 1);
		}
		// the slot the pool gives t: the stack's top unless t's walk frees one
		int cand = top > 0 ? s.freed_at(top - 1) : 0;
		int rest = -1; // entry where t came to rest
		int i = 0;
		walkRing r = r0;
		for (; i < C; i++) {
			walkRing rn = ring[i + 1]; // ring has C + 1 entries
			int st = r.st, s0 = r.s0;
			if (i < accepting) {
				if (st < W) { // not full, so start is 0: append
					int e = s.at(r, i, st);
					s.put(e, c);
					if (c.slot < 0) {
						rest = e;
					}
					ring[i].st = r.st = st + 1;
					break;
				}
				// full: the carried token takes the oldest entry, whose token
				// is carried on to the next cascade
				int e = s.at(r, i, s0);
				walkEntry o = s.get(e);
				s.put(e, c);
				if (c.slot < 0) {
					rest = e;
				}
				c = o;
				if (++s0 == W) {
					s0 = 0;
				}
				ring[i].s0 = r.s0 = s0;
				if (i == 0) {
					r0 = r;
				}
				r = rn;
				continue;
			}
			if (st == 0) { // empty, so start is 0
				int e = s.at(r, i, 0);
				s.put(e, c);
				if (c.slot < 0) {
					rest = e;
				}
				ring[i].st = r.st = 1;
				break;
			}
			// not accepted: the carried token competes with the newest entry
			int e = s.at(r, i, s0 > 0 ? s0 - 1 : st - 1);
			walkEntry o = s.get(e);
			if (c.score >= o.score) {
				walk_drop(s, top, cand, first, o.slot, o.pos);
				s.put(e, c);
				if (c.slot < 0) {
					rest = e;
				}
			} else {
				walk_drop(s, top, cand, first, c.slot, c.pos);
			}
			break;
		}
		if (i == C) {
			walk_drop(s, top, cand, first, c.slot, c.pos); // pushed out of the last cascade
		} else if (i == 0) {
			r0 = r;
		}
		if (rest >= 0) {
			int got = next;
			if (top > 0) {
				got = cand, top--;
			} else {
				next++;
			}
			s.set_slot(rest, got);
			s.place_at(q) = got;
		}
	}
}

// walk_plan lays out the staged windows in the head (thread 0) and says
// how much of the chunk's walk can be staged in smem bytes (walkHead's
// staged). Cascade i accepts
// at most acc_i = min(A_i, pass_{i−1}) of the chunk's tokens, pass_{i−1}
// being how many its predecessor can pass on: a ring passes a token on
// for each token it accepts once full, and it fills after W − st accepts
// (W − 1 when empty: a token it does not accept may take entry 0).
__device__ __forceinline__ int walk_plan(walkHead *hd, int top0, int n, int size, int C, int W, int smem) {
	if (top0 < 0 || top0 > size) {
		return 0;
	}
	for (int i = C - 1, A = 0; i >= 0; i--) { // A_i = Σ_{a>i} hist[a]
		A += hd->hist[i + 1];
		hd->len[i] = A;
	}
	int total = 0, pass = n;
	for (int i = 0; i < C; i++) {
		walkRing &r = hd->ring[i];
		if (r.st < 0 || r.st > W || r.s0 < 0 || r.s0 >= W || (r.st < W && r.s0 != 0)) {
			return 0;
		}
		int acc = min(hd->len[i], pass);
		pass = max(0, acc - (W - r.st - (r.st == 0 ? 1 : 0)));
		r.lo = r.st == 0 ? 0 : r.st < W ? r.st - 1 : (r.s0 > 0 ? r.s0 - 1 : W - 1);
		r.base = total;
		hd->len[i] = min(W, acc + 1);
		total += hd->len[i];
	}
	if ((long long)WALK_SHARED_MIN((long long)n, (long long)total) > smem) {
		return 0;
	}
	hd->slo = max(0, top0 - n);
	hd->shi = min(size, top0 + 1);
	return (long long)WALK_SHARED((long long)n, (long long)total) <= smem ? 2 : 1;
}

// walk_copy copies head h's windows (rows from base) and its stack's
// window between global memory and the staged copies: in, or back out.
__device__ __forceinline__ void walk_copy(bool back, const walkHead *hd, walkEntry *ent, int *stk, int slo, int shi,
					  int *slot, long long *pos, float *score, int *freed, long long base, int C,
					  int W, int tid, int T) {
	for (int i = 0; i < C; i++) {
		int lo = hd->ring[i].lo, b = hd->ring[i].base, m = hd->len[i];
		for (int k = tid; k < m; k += T) {
			int r = lo + k;
			if (r >= W) {
				r -= W;
			}
			long long g = base + (long long)i * W + r;
			walkEntry &v = ent[b + k];
			if (back) {
				pos[g] = v.pos, slot[g] = v.slot, score[g] = v.score;
			} else {
				v.pos = pos[g], v.slot = slot[g], v.score = score[g];
			}
		}
	}
	for (int k = slo + tid; k < shi; k += T) {
		if (back) {
			freed[base + k] = stk[k - slo];
		} else {
			stk[k - slo] = freed[base + k];
		}
	}
}

// cascade_walk walks one KV head's chunk (above). Block WALK_THREADS,
// grid (Hkv), smem bytes of dynamic shared memory (at least WALK_HEAD).
extern "C" __global__ void __launch_bounds__(WALK_THREADS) cascade_walk(
	int *slot, long long *pos, float *score, int *start, int *stored, int *freed, int *top, int *next, int *place,
	const float *a, const long long *every, long long first, int n, int L, int Wd, int sinks, int size, int C, int W,
	int eager, int smem_bytes) {
	extern __shared__ __align__(16) unsigned char smem[];
	walkHead *hd = (walkHead *)smem;
	int h = blockIdx.x, tid = threadIdx.x, T = blockDim.x;
	long long base = (long long)h * size;
	const float *ah = a + (long long)h * Wd + L;
	unsigned char *acc = smem + WALK_HEAD;
	for (int i = tid; i < C; i += T) {
		walkRing &r = hd->ring[i];
		r.st = stored[h * C + i], r.s0 = start[h * C + i], r.base = 0, r.lo = 0;
	}
	for (int i = tid; i <= C; i += T) {
		hd->hist[i] = 0;
	}
	__syncthreads();
	// 1. every token's `accepting`, counted
	bool staged = WALK_HEAD + WALK_ROUND16((long long)n) <= (long long)smem_bytes;
	if (staged) {
		for (int q = tid; q < n; q += T) {
			long long t = first + q;
			if (t >= sinks) {
				int ac = cascade_accepting(t, every, sinks, size, C, eager);
				acc[q] = (unsigned char)ac;
				if (ac > 0) {
					atomicAdd(&hd->hist[ac], 1);
				}
			}
		}
	}
	__syncthreads();
	// 2. the windows
	if (tid == 0) {
		hd->staged = staged ? walk_plan(hd, top[h], n, size, C, W, smem_bytes) : 0;
		WALK_TRACE(hd->staged);
	}
	__syncthreads();
	if (!hd->staged) { // the walk on global memory
		if (tid == 0) {
			walkGlobal s;
			s.slot = slot + base, s.pos = pos + base, s.score = score + base;
			s.freed = freed + base, s.place = place + (long long)h * n, s.ah = ah;
			s.every = every, s.first = first, s.sinks = sinks, s.size = size, s.C = C, s.W = W, s.eager = eager;
			int tp = top[h], nx = next[h];
			walk_tokens(s, hd->ring, tp, nx, first, n, sinks, C, W);
			for (int i = 0; i < C; i++) {
				stored[h * C + i] = hd->ring[i].st;
				start[h * C + i] = hd->ring[i].s0;
			}
			top[h] = tp;
			next[h] = nx;
		}
		return;
	}
	int total = hd->ring[C - 1].base + hd->len[C - 1], slo = hd->slo, shi = hd->shi;
	bool all = hd->staged == 2; // the mass and place too
	walkEntry *ent = (walkEntry *)(acc + WALK_ROUND16(n));
	int *stk = (int *)(ent + total), *pl = all ? stk + n + 1 : place + (long long)h * n;
	float *staged_ah = (float *)(stk + 2 * n + 1);
	// 3. staged: the windows, the stack's and the mass
	walk_copy(false, hd, ent, stk, slo, shi, slot, pos, score, freed, base, C, W, tid, T);
	for (int q = tid; all && q < n; q += T) {
		staged_ah[q] = ah[q];
	}
	__syncthreads();
	// 4. the walk
	if (tid == 0) {
		walkStaged s;
		s.ent = ent, s.stk = stk, s.place = pl, s.ah = all ? staged_ah : ah, s.acc = acc, s.len = hd->len;
		s.W = W, s.slo = slo, s.shi = shi, s.n = n;
		int tp = top[h], nx = next[h];
		walk_tokens(s, hd->ring, tp, nx, first, n, sinks, C, W);
		top[h] = tp;
		next[h] = nx;
	}
	__syncthreads();
	// 5. back to global memory
	walk_copy(true, hd, ent, stk, slo, shi, slot, pos, score, freed, base, C, W, tid, T);
	for (int i = tid; i < C; i += T) {
		stored[h * C + i] = hd->ring[i].st;
		start[h * C + i] = hd->ring[i].s0;
	}
	for (int q = tid; all && q < n; q += T) {
		place[(long long)h * n + q] = pl[q];
	}
}
