// Ordered token lists on the device (package gpu, tokens.go): the
// bookkeeping of the policies that keep, per KV head, their tokens in
// original order and evict by score (policies/tokens.go: h2o, snapkv), with
// the host's rules, so that no per-token data leaves the device while a
// prompt is read.
//
// State of one layer, per KV head h, entry j < cap at h·cap + j:
//   pos (int64), slot, score  the list, in original order; two copies, the
//                             current one and the target of a compaction
//   freed                     the slot pool: a stack of freed slots, most
//                             recently freed last
// Every head holds the same number of tokens L, and its pool the same number
// of freed slots F and the same lowest slot never handed out (next): these
// do not depend on scores, so the host tracks them and passes them in.
// Per chunk of n tokens (T = L + n once appended):
//   vslot, vpos [Hkv, L]  the view: storage slot and RoPE position
//   mass [Hq, T]          written by the attention kernel
//   a [Hkv, T]            mass reduced over each GQA group (cascade_reduce)
//   place [Hkv, n]        slot of each chunk token, or −1
//   pooled [Hkv, m]       pooled scores of the candidates (snapkv)
//   thresh [Hkv]          key of the lowest-ranked candidate kept
//
// Ranking. A token ranks above another when its score is higher or, on
// equal scores, when it is more recent. Candidate j (its index in the list,
// which is in original order) gets the 64-bit key (f(score) << 32) | j,
// where f maps float bits to unsigned integers in the order of the floats
// (−0 as +0, since the host's == does not tell them apart): keys are
// distinct and order candidates as the host's comparison does, so the k
// best are exactly those whose key is at least the k-th largest key, which
// a radix select finds (tokens_select).
//
// Arithmetic that decides which tokens stay is written with __fadd_rn,
// __fmul_rn and __fdiv_rn so that it rounds as the host's float32 does (no
// contraction into fused multiply-adds).

#define FULL_MASK 0xffffffffu
#define NEG_INF __int_as_float(0xff800000)
#define LIST_THREADS 1024 // threads of the per-head kernels (select, compact)

// tl_key is candidate j's rank key.
__device__ __forceinline__ unsigned long long tl_key(float s, int j) {
	unsigned int u = __float_as_uint(s);
	if (u == 0x80000000u) {
		u = 0; // −0 ranks as +0
	}
	u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
	return ((unsigned long long)u << 32) | (unsigned int)j;
}

// tokens_plan lays out the view: each head's tokens in order, at their
// view index or original position. Grid (⌈L/blockDim⌉, Hkv).
extern "C" __global__ void tokens_plan(int *vslot, int *vpos, const int *slot, const long long *pos, int cap, int L,
                                       int original) {
	int h = blockIdx.y;
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= L) {
		return;
	}
	long long e = (long long)h * cap + j, o = (long long)h * L + j;
	vslot[o] = slot[e];
	vpos[o] = original ? (int)pos[e] : j;
}

// tokens_absorb adds the reduced mass a [Hkv, L+n] (nil: zero) to the
// scores of the L held tokens and appends the chunk's n tokens, whose first
// has original position first, with their own mass as score and no slot
// yet; every chunk token's place is −1 until it gets a slot. Grid
// (⌈(L+n)/blockDim⌉, Hkv).
extern "C" __global__ void tokens_absorb(long long *pos, int *slot, float *score, int *place, const float *a, int cap,
                                         int L, int n, long long first) {
	int h = blockIdx.y;
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= L + n) {
		return;
	}
	long long e = (long long)h * cap + j;
	float x = a ? a[(long long)h * (L + n) + j] : 0.0f;
	if (j < L) {
		score[e] = __fadd_rn(score[e], x);
		return;
	}
	pos[e] = first + (j - L);
	slot[e] = -1;
	score[e] = x;
	place[(long long)h * n + (j - L)] = -1;
}

// tokens_pool sets pooled[h, i], i < m, to the maximum of score[h, i−r …
// i+r] (r = k/2) within [0, m), or to their float32 sum in order divided by
// k: F.max_pool1d / F.avg_pool1d with stride 1 and padding r. Grid
// (⌈m/blockDim⌉, Hkv).
extern "C" __global__ void tokens_pool(float *pooled, const float *score, int cap, int m, int k, int avg) {
	int h = blockIdx.y;
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= m) {
		return;
	}
	const float *s = score + (long long)h * cap;
	int r = k / 2;
	int lo = i - r < 0 ? 0 : i - r, hi = i + r + 1 > m ? m : i + r + 1;
	float x;
	if (avg) {
		x = 0.0f;
		for (int t = lo; t < hi; t++) {
			x = __fadd_rn(x, s[t]);
		}
		x = __fdiv_rn(x, (float)k);
	} else {
		x = NEG_INF;
		for (int t = lo; t < hi; t++) {
			x = fmaxf(x, s[t]);
		}
	}
	pooled[(long long)h * m + i] = x;
}

// tokens_select finds, for each head, the key of the k-th best of the
// candidates j < m ranked by s[h·stride + j] (0 < k < m) and stores it in
// thresh[h]: a most-significant-digit-first radix select over the 64-bit
// keys, eight bits a pass. Each pass counts, in a block-wide histogram of
// 256 bins, the digits of the candidates whose key agrees with the digits
// chosen so far, then picks the bin that holds the k-th best; it stops
// early once every candidate of that bin is wanted. The candidates are read
// from global memory in every pass, so any list length fits. Grid (Hkv),
// LIST_THREADS threads.
extern "C" __global__ void __launch_bounds__(LIST_THREADS)
	tokens_select(unsigned long long *thresh, const float *s, int stride, int m, int k) {
	__shared__ unsigned int hist[256], suf[256];
	__shared__ unsigned int pick, pickAbove, pickCount;
	int h = blockIdx.x, t = threadIdx.x, lane = t & 31;
	s += (long long)h * stride;
	unsigned long long prefix = 0; // the digits chosen so far, the rest 0
	unsigned int need = k;         // candidates still wanted among those agreeing with prefix
	for (int shift = 56; shift >= 0; shift -= 8) {
		if (t < 256) {
			hist[t] = 0;
		}
		__syncthreads();
		unsigned long long high = shift == 56 ? 0ull : ~0ull << (shift + 8);
		for (int b = 0; b < m; b += blockDim.x) {
			int j = b + t, digit = -1;
			if (j < m) {
				unsigned long long key = tl_key(s[j], j);
				if ((key & high) == prefix) {
					digit = (int)(key >> shift) & 255;
				}
			}
			// one atomic per distinct digit of the warp: ties are common
			unsigned int peers = __match_any_sync(FULL_MASK, digit);
			if (digit >= 0 && lane == __ffs(peers) - 1) {
				atomicAdd(&hist[digit], (unsigned int)__popc(peers));
			}
		}
		__syncthreads();
		// suf[d] = candidates with digit ≥ d (Hillis–Steele over the bins)
		if (t < 256) {
			suf[t] = hist[t];
		}
		__syncthreads();
		for (int o = 1; o < 256; o *= 2) {
			unsigned int v = t + o < 256 ? suf[t + o] : 0;
			__syncthreads();
			if (t < 256) {
				suf[t] += v;
			}
			__syncthreads();
		}
		if (t < 256) {
			unsigned int above = t < 255 ? suf[t + 1] : 0;
			if (suf[t] >= need && above < need) {
				pick = t, pickAbove = above, pickCount = hist[t];
			}
		}
		__syncthreads();
		prefix |= (unsigned long long)pick << shift;
		need -= pickAbove;
		bool done = pickCount == need; // every candidate of the bin is wanted
		__syncthreads();               // pick is read before the next pass writes it
		if (done) {
			break;
		}
	}
	if (t == 0) {
		thresh[h] = prefix;
	}
}

// block_scan returns the sum of v over the threads of the block before this
// one and sets *total to the sum over all of them. blockDim.x is a multiple
// of 32; every thread calls it. warp is 32 ints of shared memory.
__device__ __forceinline__ int block_scan(int v, int *total, int *warp) {
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	int x = v;
	for (int o = 1; o < 32; o *= 2) {
		int y = __shfl_up_sync(FULL_MASK, x, o);
		if (lane >= o) {
			x += y;
		}
	}
	if (lane == 31) {
		warp[w] = x;
	}
	__syncthreads();
	if (w == 0) {
		int y = lane < nw ? warp[lane] : 0;
		for (int o = 1; o < 32; o *= 2) {
			int z = __shfl_up_sync(FULL_MASK, y, o);
			if (lane >= o) {
				y += z;
			}
		}
		warp[lane] = y; // inclusive sums of the warps' totals
	}
	__syncthreads();
	int before = w > 0 ? warp[w - 1] : 0;
	*total = warp[nw - 1];
	__syncthreads(); // warp is reused by the next call
	return before + x - v;
}

// tokens_compact evicts, per head, from the T tokens of the source list:
// the last T−m stay, and of the candidates j < m those whose key is at
// least thresh[h] (none when k is 0). The tokens that stay are copied in
// order into the destination list (score 0 with reset); the slots of those
// evicted are pushed onto the head's free stack above its F entries, in
// order, as the host's keep does; then the chunk's tokens that stay (the
// source's tokens from L on) get slots in order, popped from the stack,
// then fresh from next, as the host's store does, and their place. Grid
// (Hkv), LIST_THREADS threads.
extern "C" __global__ void __launch_bounds__(LIST_THREADS) tokens_compact(
	long long *dpos, int *dslot, float *dscore, const long long *spos, const int *sslot, const float *sscore,
	int *freed, int *place, const float *s, int stride, const unsigned long long *thresh, int cap, int L, int T, int m,
	int k, int F, int next, long long first, int n, int reset) {
	__shared__ int warp[32];
	__shared__ int oldKept;
	int h = blockIdx.x;
	long long base = (long long)h * cap;
	spos += base, sslot += base, sscore += base;
	dpos += base, dslot += base, dscore += base;
	freed += base;
	s += (long long)h * stride;
	place += (long long)h * n;
	unsigned long long key = k > 0 ? thresh[h] : 0;
	if (threadIdx.x == 0) {
		oldKept = 0;
	}
	__syncthreads();
	int kept = 0, pushed = 0, mine = 0; // kept and pushed are the same in every thread
	for (int b = 0; b < T; b += blockDim.x) {
		int j = b + threadIdx.x;
		int keep = 0, push = 0, slot = -1;
		if (j < T) {
			keep = j >= m || (k > 0 && tl_key(s[j], j) >= key);
			slot = sslot[j];
			push = !keep && slot >= 0;
		}
		int total;
		int before = block_scan(keep | push << 16, &total, warp); // a tile counts at most 1024 of each
		if (keep) {
			int d = kept + (before & 0xffff);
			dpos[d] = spos[j];
			dslot[d] = slot;
			dscore[d] = reset ? 0.0f : sscore[j];
			if (j < L) {
				mine++;
			}
		}
		if (push) {
			freed[F + pushed + (before >> 16)] = slot;
		}
		kept += total & 0xffff;
		pushed += total >> 16;
	}
	if (mine > 0) {
		atomicAdd(&oldKept, mine);
	}
	__syncthreads(); // also makes the pushed slots and copied positions visible to the block
	int k0 = oldKept, f = F + pushed;
	for (int r = threadIdx.x; k0 + r < kept; r += blockDim.x) {
		int d = k0 + r;
		int got = r < f ? freed[f - 1 - r] : next + (r - f);
		dslot[d] = got;
		place[dpos[d] - first] = got;
	}
}

// tokens_store gives slots to the n = T−L chunk tokens of a list that
// evicted nothing: token r of the chunk takes the r-th slot popped from the
// head's free stack of F, then fresh ones from next. With reset, every
// score becomes 0. Grid (⌈T/blockDim⌉, Hkv).
extern "C" __global__ void tokens_store(int *slot, float *score, int *place, const int *freed, int cap, int L, int T,
                                        int F, int next, int reset) {
	int h = blockIdx.y;
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= T) {
		return;
	}
	long long e = (long long)h * cap + j;
	if (reset) {
		score[e] = 0.0f;
	}
	if (j < L) {
		return;
	}
	int r = j - L;
	int got = r < F ? freed[(long long)h * cap + F - 1 - r] : next + (r - F);
	slot[e] = got;
	place[(long long)h * (T - L) + r] = got;
}

// tokens_move copies each head's L list entries and F freed slots from
// lists of ocap entries per head to lists of ncap, when the lists grow.
// Grid (⌈max(L, F)/blockDim⌉, Hkv).
extern "C" __global__ void tokens_move(long long *dpos, int *dslot, float *dscore, int *dfreed, const long long *spos,
                                       const int *sslot, const float *sscore, const int *sfreed, int ocap, int ncap,
                                       int L, int F) {
	int h = blockIdx.y;
	int j = blockIdx.x * blockDim.x + threadIdx.x;
	long long d = (long long)h * ncap + j, o = (long long)h * ocap + j;
	if (j < L) {
		dpos[d] = spos[o];
		dslot[d] = sslot[o];
		dscore[d] = sscore[o];
	}
	if (j < F) {
		dfreed[d] = sfreed[o];
	}
}
