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

// reduce_group is cascade_reduce's work for key j < Wd of KV head h, with
// mass(q) the mass of the key for query head q: it combines the mass of
// the GQA group (or of all query heads when homogeneous), the maximum, or
// the float32 sum in head order times 1/g, as the host does, into a [Hkv,
// Wd]; where score is not null it also ages the held entries of the view's
// first L keys (ventry [Hkv, L], −1 for none): score = βⁿ·score + a, in
// two roundings, bn = βⁿ.
template <typename Mass>
__device__ __forceinline__ void reduce_group(float *a, Mass mass, int hq, int hkv, int Wd, int reduce_max, int homogeneous,
					     float *score, const int *ventry, int L, float bn, int h, int j) {
	int g = hq / hkv;
	int q0 = homogeneous ? 0 : h * g, q1 = homogeneous ? hq : (h + 1) * g;
	float x = mass(q0);
	for (int q = q0 + 1; q < q1; q++) {
		float y = mass(q);
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

// cascade_reduce is reduce_group over the mass [Hq, Wd] of a chunk.
// Grid (⌈Wd/blockDim⌉, Hkv).
extern "C" __global__ void cascade_reduce(float *a, const float *mass, int hq, int hkv, int Wd, int reduce_max,
                                          int homogeneous, float *score, const int *ventry, int L, float bn) {
	int h = blockIdx.y;
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= Wd) {
		return;
	}
	reduce_group(a, [=](int q) { return mass[(long long)q * Wd + j]; }, hq, hkv, Wd, reduce_max, homogeneous, score,
		     ventry, L, bn, h, j);
}

// cascade_reduce_scores is cascade_reduce for a decoding step, one query of
// weight w, from what decode.cu's kernels leave instead of its mass: the
// scores [Hq, Wd] and each row's max and denominator, stats [2, Hq]. A
// query head's mass of a key is decode_mass's term (mass_term), so that a
// is the same bit for bit as decode_mass then cascade_reduce give, without
// writing the mass of every query head and reading it back. Grid
// (⌈Wd/blockDim⌉, Hkv).
extern "C" __global__ void cascade_reduce_scores(float *a, const float *scores, const float *stats, float w, int hq, int hkv,
						 int Wd, int reduce_max, int homogeneous, float *score, const int *ventry,
						 int L, float bn) {
	int h = blockIdx.y;
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= Wd) {
		return;
	}
	reduce_group(
		a, [=](int q) { return mass_term(0.0f, w, scores[(long long)q * Wd + j], stats[q], 1.0f / stats[hq + q]); }, hq,
		hkv, Wd, reduce_max, homogeneous, score, ventry, L, bn, h, j);
}

// ---- The walk ----
//
// cascade_walk walks the chunk's tokens one by one through the cascades of
// one KV head: either one thread of the head's block walks them in order
// (walk_tokens, below) while the block's other threads stage its data in
// shared memory first and write it back after, or, for chunks of at least
// WALK_PAR_MIN tokens whose event lists fit too, the whole block walks
// every cascade's events at once (walk_parallel, further below), to the
// same end state.
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
#ifndef WALK_KMAX
#define WALK_KMAX 16 // most events a thread of the parallel walk holds per cascade
#endif
#ifndef WALK_PAR_MIN
#define WALK_PAR_MIN 64 // shortest chunk the parallel walk takes (decoding steps walk on one thread)
#endif
#define WALK_PAR_SHARED(n, E, T) \
	(WALK_HEAD + WALK_ROUND16(n) + 16 * (E) + 16 * (n) + 2 * WALK_ROUND16(2 * (n)) + 16 * (T))

// WALK_CHECK and WALK_TRACE are hooks for the host emulation
// (tools/cascadeemu): a bounds check of the staged windows and the path
// taken (0 global memory, 1 staged but for the mass and place, 2 staged,
// 3 the parallel walk).
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
	int win0, more[3];            // the parallel walk's (walk_parallel)
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
__device__ __forceinline__ int walk_plan(walkHead *hd, int top0, int n, int size, int C, int W, int smem, int T) {
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
	if (n >= WALK_PAR_MIN && n <= 65535 && (n + T - 1) / T <= WALK_KMAX &&
	    (long long)WALK_PAR_SHARED((long long)n, (long long)total, (long long)T) <= smem) {
		hd->slo = hd->shi = 0; // the parallel walk stages no stack
		return 3;
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

// ---- The parallel walk ----
//
// The staged walk above is one thread's pass over the chunk's tokens.
// Where the windows, the chunk's event lists and a scan's scratch fit
// (WALK_PAR_SHARED bytes), and each thread holds at most WALK_KMAX of a
// cascade's events, the block walks the chunk cascade by cascade instead,
// every cascade's events at once, to the same end state bit for bit:
//
// Cascade i sees, in token order, the events of the tokens whose walk
// reaches it: the walked token itself in cascade 0, afterwards the token
// that the accepting cascade before it passed on. An event accepts (A)
// when the walked token's `accepting` is above i (or when the ring is
// empty: it takes entry 0) and competes (C) otherwise. The ring is a FIFO
// of items: the st items it holds (oldest first) and then one per A, so
// the A numbered m pushes item st + m and, once st + m ≥ W, passes item
// st + m − W on to cascade i + 1 (out of the last cascade: drops it).
// A C competes with the newest item, which the C's after an A (or after
// the chunk's start) replace whenever their score is ≥ its own: the items
// of a segment (its A, or the newest held item, then its C's) end as the
// last of their maxima (a NaN that starts a segment stays; one that
// competes never wins), a segmented scan (walk_combine) over the block;
// each C drops one item, its loser. Cascade i + 1's events are then the
// items cascade i passed on, with the tokens of the A's that passed them.
//
// Each token's walk ends in at most one drop: its token, if the walked
// token lost at once (it rests in cascade 0 or nowhere), else one whose
// slot it takes (drop ≥ 0, or a chunk token's, resolved by pointer
// jumping), else none: it pops the free stack, in token order (an
// exclusive count). The stack below its final top is untouched.
//
// Shared memory after the staged windows (16-byte aligned):
//   evI  [2][n] int             two cascades' event items (the next one's
//                               doubles as its segments' winners first)
//   drop [n] int                each token's drop, then its slot
//   loc  [n] int                the ring entry a chunk token ends in, or −1
//   evT  [2][n] unsigned short  the events' tokens, each rounded up to 16 bytes
//   sums [T] walkSum            the scan's
// An item is an index into the staged windows (below total) or total + q
// for chunk token q.

// walkSum is a run of a cascade's events as the scan sees it: its A's
// (cnt), the winner of its last segment (key, item) and flags (1: it has
// events, 2: one of them is an A).
struct __align__(16) walkSum {
	int cnt, key, item, flags;
};

// walk_key orders scores as the walk compares them: ±0 equal, a NaN that
// starts a segment above everything and one that competes below.
__device__ __forceinline__ int walk_key(float x, bool start) {
	if (x != x) {
		return start ? 0x7fffffff : (int)0x80000000;
	}
	int i = __float_as_int(x);
	return i >= 0 ? i : -(i & 0x7fffffff);
}

// walk_combine is the scan's operator: run l, then run r.
__device__ __forceinline__ walkSum walk_combine(walkSum l, walkSum r) {
	if (!(r.flags & 1)) {
		return l;
	}
	if (!(l.flags & 1)) {
		return r;
	}
	bool take = (r.flags & 2) || r.key >= l.key;
	walkSum o;
	o.cnt = l.cnt + r.cnt;
	o.flags = 1 | ((l.flags | r.flags) & 2);
	o.key = take ? r.key : l.key;
	o.item = take ? r.item : l.item;
	return o;
}

// walk_scan makes sums[0…T) inclusive prefixes (Hillis–Steele).
__device__ __forceinline__ void walk_scan(walkSum *sums, int tid, int T) {
	__syncthreads();
	for (int d = 1; d < T; d *= 2) {
		walkSum v = sums[tid];
		if (tid >= d) {
			v = walk_combine(sums[tid - d], v);
		}
		__syncthreads();
		sums[tid] = v;
		__syncthreads();
	}
}

// walk_enc is what token tok's drop of item means for its slot.
__device__ __forceinline__ int walk_enc(int item, int tok, const walkEntry *ent, int total) {
	if (item < total) {
		int s = ent[item].slot;
		return s < 0 ? -1 : s; // a held token without a slot frees none
	}
	int q = item - total;
	return q == tok ? -2 : -(q + 3);
}

// walkPar is the parallel walk's shared memory and one head's rows.
struct walkPar {
	walkHead *hd;
	const unsigned char *acc;
	const walkEntry *ent;
	int *evI[2], *drop, *loc;
	unsigned short *evT[2];
	walkSum *sums;
	int *slot, *freed, *place;
	long long *pos;
	float *score;
	const float *ah;
	long long first;
	int total, n, sinks, C, W;

	__device__ __forceinline__ float mass_of(int item) const {
		return item < total ? ent[item].score : ah[item - total];
	}
	// store writes item into ring i's entry e.
	__device__ __forceinline__ void store(int i, int e, int item) const {
		long long g = (long long)i * W + e;
		if (item < total) {
			walkEntry v = ent[item];
			pos[g] = v.pos, slot[g] = v.slot, score[g] = v.score;
		} else {
			int q = item - total;
			pos[g] = first + q, score[g] = ah[q];
			loc[q] = (int)g; // its slot once resolved
		}
	}
};

// walk_parallel walks head h's chunk (above); the windows are staged.
__device__ void walk_parallel(walkPar &s, int *top, int *next, int h, int tid, int T) {
	walkHead *hd = s.hd;
	int n = s.n, W = s.W, total = s.total;
	int q0 = s.first >= s.sinks ? 0 : (int)min((long long)n, s.sinks - s.first);
	for (int q = tid; q < n; q += T) {
		s.drop[q] = -1, s.loc[q] = -1;
		if (q >= q0) {
			s.evI[0][q - q0] = total + q, s.evT[0][q - q0] = (unsigned short)q;
		}
	}
	if (tid == 0) {
		hd->more[0] = 0;
	}
	__syncthreads();
	int m = n - q0, cur = 0;
	for (int i = 0; i < s.C; i++, cur ^= 1) {
		const int *evI = s.evI[cur];
		const unsigned short *evT = s.evT[cur];
		int *evIn = s.evI[cur ^ 1];
		walkRing r = hd->ring[i];
		int st = r.st, K = (m + T - 1) / T, k0 = min(m, tid * K), k1 = min(m, k0 + K);
		if (tid == 0) {
			hd->win0 = r.base; // the newest held item, until a C replaces it
		}
		// 1. each thread's run, scanned
		walkSum run = {0, 0, 0, 0};
		for (int k = k0; k < k1; k++) {
			int it = evI[k];
			bool a = s.acc[evT[k]] > i || (k == 0 && st == 0);
			walkSum e = {a ? 1 : 0, walk_key(s.mass_of(it), a), it, a ? 3 : 1};
			run = walk_combine(run, e);
		}
		s.sums[tid] = run;
		walk_scan(s.sums, tid, T);
		walkSum init = {0, 0, 0, 0};
		if (st > 0) {
			init.key = walk_key(s.ent[r.base].score, true), init.item = r.base, init.flags = 1;
		}
		walkSum none = {0, 0, 0, 0};
		walkSum pre = walk_combine(init, tid > 0 ? s.sums[tid - 1] : none);
		int nA = s.sums[T - 1].cnt;
		int keep = max(0, st + nA - W); // the first item still held at the end
		// 2. the thread's events in order: drops, segments' winners, and
		// the winners the ring keeps
		int mA = pre.cnt, wkey = pre.key, witem = pre.item;
		for (int k = k0; k < k1; k++) {
			int it = evI[k], tok = evT[k];
			if (s.acc[tok] > i || (k == 0 && st == 0)) {
				mA++, wkey = walk_key(s.mass_of(it), true), witem = it;
			} else {
				int ck = walk_key(s.mass_of(it), false), loser = it;
				if (ck >= wkey) {
					loser = witem, wkey = ck, witem = it;
				}
				s.drop[tok] = walk_enc(loser, tok, s.ent, total);
			}
			if (k + 1 == m || s.acc[evT[k + 1]] > i) { // the segment ends
				int seg = mA - 1;                    // −1: the newest held item's
				if (seg >= 0) {
					evIn[seg] = witem;
				} else {
					hd->win0 = witem;
				}
				int p = st + seg;
				if (p >= keep) {
					int e = r.s0 + p;
					s.store(i, e % W, witem);
				}
			}
		}
		__syncthreads();
		// 3. the items the A's pass on (out of the last cascade: drop)
		int passed[WALK_KMAX];
		mA = pre.cnt;
#pragma unroll
		for (int j = 0; j < WALK_KMAX; j++) {
			int k = k0 + j;
			if (k < k1 && (s.acc[evT[k]] > i || (k == 0 && st == 0))) {
				int p = st + mA - W;
				if (p >= 0) {
					int it;
					if (p < st - 1) { // held before the chunk: in the window
						WALK_CHECK(p + 1 + W - st < hd->len[i]);
						it = r.base + p + 1 + W - st;
					} else {
						it = p == st - 1 ? hd->win0 : evIn[p - st];
					}
					passed[j] = it;
					if (i == s.C - 1) {
						s.drop[evT[k]] = walk_enc(it, evT[k], s.ent, total);
					}
				}
				mA++;
			}
		}
		__syncthreads();
		// 4. the next cascade's events
		if (i + 1 < s.C) {
			mA = pre.cnt;
#pragma unroll
			for (int j = 0; j < WALK_KMAX; j++) {
				int k = k0 + j;
				if (k < k1 && (s.acc[evT[k]] > i || (k == 0 && st == 0))) {
					int d = mA - (W - st);
					if (d >= 0) {
						evIn[d] = passed[j];
						s.evT[cur ^ 1][d] = evT[k];
					}
					mA++;
				}
			}
		}
		if (tid == 0) {
			hd->ring[i].st = min(W, st + nA);
			hd->ring[i].s0 = (r.s0 + keep) % W;
		}
		m = keep;
		__syncthreads();
	}
	// 5. slots: pops in token order, then the slots of dropped chunk
	// tokens by pointer jumping (a token takes the slot of an earlier one)
	int top0 = top[h], next0 = next[h];
	int K = (n + T - 1) / T, a0 = min(n, tid * K), a1 = min(n, a0 + K), cnt = 0;
	for (int q = max(a0, q0); q < a1; q++) {
		cnt += s.drop[q] == -1;
	}
	walkSum c = {cnt, 0, 0, 1};
	s.sums[tid] = c;
	walk_scan(s.sums, tid, T);
	int pops = s.sums[T - 1].cnt, k = tid > 0 ? s.sums[tid - 1].cnt : 0;
	for (int q = max(a0, q0); q < a1; q++) {
		if (s.drop[q] == -1) {
			s.drop[q] = k < top0 ? s.freed[top0 - 1 - k] : next0 + (k - top0);
			k++;
		}
	}
	__syncthreads();
	for (int round = 0;; round++) {
		int f = round % 3;
		bool more = false;
		for (int q = q0 + tid; q < n; q += T) {
			int v = s.drop[q];
			if (v <= -3) {
				s.drop[q] = s.drop[-v - 3];
				more = true;
			}
		}
		if (more) {
			hd->more[f] = 1;
		}
		if (tid == 0) {
			hd->more[(round + 1) % 3] = 0;
		}
		__syncthreads();
		if (!hd->more[f]) {
			break;
		}
	}
	for (int q = tid; q < n; q += T) {
		if (q < q0) {
			s.place[q] = (int)(s.first + q);
			continue;
		}
		int g = s.loc[q], v = s.drop[q];
		if (g >= 0) {
			s.slot[g] = v;
		}
		s.place[q] = g >= 0 ? v : -1;
	}
	if (tid == 0) {
		top[h] = max(0, top0 - pops);
		next[h] = next0 + max(0, pops - top0);
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
		hd->staged = staged ? walk_plan(hd, top[h], n, size, C, W, smem_bytes, T) : 0;
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
	if (hd->staged == 3) { // every cascade's events at once
		walkPar s;
		s.hd = hd, s.acc = acc, s.ent = ent, s.total = total;
		s.evI[0] = (int *)(ent + total), s.evI[1] = s.evI[0] + n;
		s.drop = s.evI[1] + n, s.loc = s.drop + n;
		s.evT[0] = (unsigned short *)(s.loc + n);
		s.evT[1] = (unsigned short *)((unsigned char *)s.evT[0] + WALK_ROUND16(2 * n));
		s.sums = (walkSum *)((unsigned char *)s.evT[1] + WALK_ROUND16(2 * n));
		s.slot = slot + base, s.pos = pos + base, s.score = score + base, s.freed = freed + base;
		s.place = place + (long long)h * n, s.ah = ah;
		s.first = first, s.n = n, s.sinks = sinks, s.C = C, s.W = W;
		__syncthreads();
		walk_parallel(s, top, next, h, tid, T);
		__syncthreads();
		for (int i = tid; i < C; i += T) {
			stored[h * C + i] = hd->ring[i].st;
			start[h * C + i] = hd->ring[i].s0;
		}
		return;
	}
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

// step_store copies head h's key and value rows of a one-token chunk (kn,
// vn [Hkv, rowBytes]) into slot s of the cache (kc, vc [Hkv, cap,
// rowBytes]) with the lanes of a warp, 16 bytes each at a time; nothing
// where kc is null or s < 0.
__device__ __forceinline__ void step_store(unsigned char *kc, unsigned char *vc, const unsigned char *kn,
					   const unsigned char *vn, long long cap, int rowBytes, int h, int s, int lane) {
	if (kc == 0 || s < 0) {
		return;
	}
	long long dst = ((long long)h * cap + s) * rowBytes, src = (long long)h * rowBytes;
	for (int o = 16 * lane; o < rowBytes; o += 16 * 32) {
		*(uint4 *)(kc + dst + o) = *(const uint4 *)(kn + src + o);
		*(uint4 *)(vc + dst + o) = *(const uint4 *)(vn + src + o);
	}
}

// step_end is cascade_step's end, on one lane: it places what reaches
// cascade end (the token, or the entry carried out of the cascade before),
// gives the token its slot and returns it (−1 where the token itself is
// dropped), as place[h] receives it.
__device__ int step_end(int *slot, long long *pos, float *score, int *stored, int *freed, int *top, int *next, int *place,
			walkEntry tok, const int *s_st, const int *s_s0, const walkEntry *s_old, long long base, int h, int end,
			int acc, int C, int W) {
	walkEntry c = end == 0 ? tok : s_old[end - 1]; // what reaches cascade end
	long long rest = end > 0 ? base + s_s0[0] : -1; // where the token lies
	int dropped = -1;                               // a slot freed
	bool lost = false;                              // the token itself dropped
	if (end < C) {
		int st = s_st[end], s0 = s_s0[end];
		long long gb = base + (long long)end * W, g = -1;
		if (end < acc || st == 0) { // appended, or the first of an empty cascade
			g = gb + (end < acc ? st : 0);
			stored[h * C + end] = st + 1;
		} else if (c.score >= s_old[end].score) {
			dropped = s_old[end].slot;
			g = gb + (s0 > 0 ? s0 - 1 : st - 1);
		} else if (end == 0) {
			lost = true;
		} else {
			dropped = c.slot;
		}
		if (g >= 0) {
			pos[g] = c.pos, slot[g] = c.slot, score[g] = c.score;
			if (end == 0) {
				rest = g;
			}
		}
	} else {
		dropped = c.slot; // out of the last cascade (end = C > 0)
	}
	if (lost) {
		place[h] = -1;
		return -1;
	}
	int got;
	if (dropped >= 0) {
		got = dropped; // pushed and taken back at once
	} else if (top[h] > 0) {
		got = freed[base + --top[h]];
	} else {
		got = next[h]++;
	}
	slot[rest] = got;
	place[h] = got;
	return got;
}

// cascade_step walks one token (a decoding step) through the cascades of
// head blockIdx.x with one warp, to the same end state as cascade_walk:
// the token's walk passes through the accepting cascades that are full,
// each giving its oldest entry to the token carried in and carrying that
// entry on, and ends at the first accepting cascade that is not full
// (appended), at the first cascade that does not accept (entry 0 when
// empty, else the carried token competes with its newest entry), or out
// of the last cascade. The entries it reads do not depend on each other,
// so the lanes read them at once. Where kc is not null, the warp also
// stores the token's key and value rows, kn and vn [Hkv, rowBytes] (a
// chunk of one token), into its slot of the cache kc and vc [Hkv, cap,
// rowBytes] (rowBytes a multiple of 16, every row 16-byte aligned), as
// scatter would after it. Block 32 threads, grid (Hkv).
extern "C" __global__ void __launch_bounds__(32) cascade_step(
	int *slot, long long *pos, float *score, int *start, int *stored, int *freed, int *top, int *next, int *place,
	const float *a, const long long *every, long long t, int L, int Wd, int sinks, int size, int C, int W, int eager,
	unsigned char *kc, unsigned char *vc, const unsigned char *kn, const unsigned char *vn, long long cap, int rowBytes) {
	__shared__ int s_st[WALK_MAXC], s_s0[WALK_MAXC];
	__shared__ walkEntry s_old[WALK_MAXC]; // the oldest entry of each cascade passed, the newest of the last
	__shared__ int s_acc, s_end, s_place;
	int h = blockIdx.x, lane = threadIdx.x;
	long long base = (long long)h * size;
	if (t < sinks) {
		if (lane == 0) {
			place[h] = (int)t;
		}
		step_store(kc, vc, kn, vn, cap, rowBytes, h, (int)t, lane);
		return;
	}
	for (int i = lane; i < C; i += 32) {
		s_st[i] = stored[h * C + i], s_s0[i] = start[h * C + i];
	}
	if (lane == 0) {
		s_acc = cascade_accepting(t, every, sinks, size, C, eager);
	}
	__syncwarp();
	if (lane == 0) {
		int e = s_acc;
		for (int i = 0; i < s_acc; i++) {
			if (s_st[i] < W) {
				e = i;
				break;
			}
		}
		s_end = e;
	}
	__syncwarp();
	int acc = s_acc, end = s_end;
	for (int i = lane; i <= end && i < C; i += 32) {
		int st = s_st[i], s0 = s_s0[i], e = -1;
		if (i < end) {
			e = s0; // full and accepting: its oldest moves on
		} else if (i >= acc && st > 0) {
			e = s0 > 0 ? s0 - 1 : st - 1; // the newest, to compete with
		}
		if (e >= 0) {
			long long g = base + (long long)i * W + e;
			walkEntry v;
			v.pos = pos[g], v.slot = slot[g], v.score = score[g];
			s_old[i] = v;
		}
	}
	__syncwarp();
	walkEntry tok;
	tok.pos = t, tok.slot = -1, tok.score = a[(long long)h * Wd + L];
	for (int i = lane; i < end; i += 32) {
		walkEntry c = i == 0 ? tok : s_old[i - 1];
		int s0 = s_s0[i];
		long long g = base + (long long)i * W + s0;
		pos[g] = c.pos, slot[g] = c.slot, score[g] = c.score;
		start[h * C + i] = s0 + 1 == W ? 0 : s0 + 1;
	}
	if (lane == 0) {
		s_place = step_end(slot, pos, score, stored, freed, top, next, place, tok, s_st, s_s0, s_old, base, h, end, acc, C, W);
	}
	__syncwarp();
	step_store(kc, vc, kn, vn, cap, rowBytes, h, s_place, lane);
}
