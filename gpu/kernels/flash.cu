// Flash attention of a chunk over [view ; chunk] on tensor cores (package
// gpu, kvcascade): bf16 operands, float32 accumulation, mma.sync
// m16n8k16 (sm_80 and later). Compiled by NVRTC once per head dimension
// (-DHEAD_DIM=64 or 128); no header is included.
//
// The semantics are those of attention.cu's attention and attention_mass,
// with bf16 storage:
//
//   q [S, Hq·HD] bf16 (before RoPE); k, v [S, Hkv·HD] bf16 (the chunk, k
//   before RoPE); ck, cv [Hkv, cap, HD] bf16 (the cache storage, keys
//   before RoPE); slots, pos [Hkv·L] int32 (the view of KV head h is
//   entries h·L … h·L+L−1; a negative slot is padding); qpos [Hkv] int32
//   (position of the chunk's first token per KV head); cos, sin [P, HD/2]
//   float32 (the RoPE table); out [S, Hq·HD] bf16; stats [2, Hq, S]
//   float32 (each query's row max m of the scaled scores, then the
//   denominator l = Σ exp(s − m)); weights [S] float32; mass [Hq, L+S]
//   float32. bf16 values are raw bit patterns (unsigned short).
//
// Key j is view entry j when j < L (rotated by pos[h·L+j]), else chunk
// token j−L (rotated by qpos[h]+j−L); query i is rotated by qpos[h]+i and
// sees key j when the key is not padding and j ≤ L+i. Query head qh uses
// KV head qh / (Hq/Hkv). RoPE pairs dimension d with d+HD/2:
// (x₁, x₂) → (x₁·cos − x₂·sin, x₂·cos + x₁·sin), in float32 with each
// product and sum rounded (no contraction, so the host reference can
// reproduce it bit for bit), then rounded to bf16 for the tensor cores.
//
// A call runs four kernels, in stream order:
//
//   flash_keys     gathers the n = L+S keys of each KV head through the
//                  view's slots, rotated, into kr [Hkv, NP, HD] bf16, the
//                  values into vr [Hkv, NP, HD] and a validity bit per key
//                  into bits [Hkv, NP/32] (NP = n rounded up to KTILE;
//                  padding and rows past n are zeros with bit 0);
//   flash_queries  rotates the queries into qr [Hq, SP, HD] bf16 (SP = S
//                  rounded up to BQ; rows past S are zeros);
//   flash_fwd      attention over the contiguous, rotated kr and vr (with
//                  weights also each query's (m·log2 e, w/l) in qstat);
//   flash_mass     (with weights) the attention mass from qstat.
//
// The two gathers are bandwidth-bound and read every byte once; the two
// tensor-core kernels then stream whole tiles with cp.async and never
// rotate, index through slots or test bounds inside their loops.
//
// flash_fwd (FlashAttention-2's layout): WARPS warps of 32 query rows each
// (two m16 tiles, so that each key fragment read from shared memory feeds
// two mma), the block's queries in shared memory, key and value tiles of
// BK rows double-buffered in shared memory (tile t+1 copied while tile t
// computes, one barrier per tile; with HD 128 each tile is scored,
// softmaxed and multiplied into the output in halves of KH keys, so that
// the registers hold it), the output accumulator [32][HD] per warp and the
// row statistics in registers, exp2 with the scale folded into one fma,
// the output's rescaling skipped where no row's max moved.
//
// flash_mass: WARPS warps of 32 keys each (their A fragments held in
// registers), query tiles of BQM rows double-buffered through shared
// memory with each query's exponent base and weight; every thread sums its
// keys' terms over the query tiles of every query head of the group, and
// the quad adds them up: deterministic, no atomics.

#ifndef HEAD_DIM
#error "compile with -DHEAD_DIM=<head dimension>"
#endif
#if HEAD_DIM != 64 && HEAD_DIM != 128
#error "flash.cu takes HEAD_DIM 64 or 128"
#endif

#define HD HEAD_DIM
#define HALF (HD / 2)
#define HDP (HD + 8)      // padded bf16 row of an mma tile: ldmatrix rows fall in distinct banks
#define WARPS 4
#define THREADS (WARPS * 32)
#define BQ (32 * WARPS)   // queries per flash_fwd block
#define BK 64             // keys per flash_fwd tile
#if HD == 128
#define KH 32             // keys per half tile: scored, softmaxed and multiplied into o in one go
#define KH_MASK 0xffffffffull
#else
#define KH 64
#define KH_MASK ~0ull
#endif
#define BKM (32 * WARPS)  // keys per flash_mass block
#define BQM 64            // queries per flash_mass tile
#define KTILE BKM         // kr, vr and bits hold whole blocks of BKM keys (a multiple of BK and 32)
#define GR 32             // rows per block of flash_keys and flash_queries
#define PIECES (HALF / 8) // rotation pieces (8 dimension pairs) per row
#define CPR (HD / 8)      // 16-byte pieces per bf16 row
#define FULL_MASK 0xffffffffu
#define NEG_INF __int_as_float(0xff800000)
#define LN2 0.69314718055994531f
#define LOG2E 1.44269504088896341f
#if KTILE % BK != 0 || BQ % BQM != 0
#error "tile sizes must nest"
#endif

// Shared memory (bytes).
// flash_fwd: queries [BQ][HDP], keys [2][BK][HDP], values [2][BK][HDP].
#define FWD_SHARED ((BQ + 4 * BK) * HDP * 2)
// flash_mass: keys [BKM][HDP], queries [2][BQM][HDP], per-query exponent
// base and weight/denominator [2][BQM] (float2).
#define MASS_SHARED ((BKM + 2 * BQM) * HDP * 2 + 4 * BQM * 4)

typedef unsigned short bf16; // raw bf16 bits
typedef unsigned int u32;

__device__ __forceinline__ float lo_f(u32 w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float hi_f(u32 w) { return __uint_as_float(w & 0xffff0000u); }

__device__ __forceinline__ float quad_max(float x) {
	x = fmaxf(x, __shfl_xor_sync(FULL_MASK, x, 1));
	return fmaxf(x, __shfl_xor_sync(FULL_MASK, x, 2));
}

__device__ __forceinline__ float quad_sum(float x) {
	x += __shfl_xor_sync(FULL_MASK, x, 1);
	return x + __shfl_xor_sync(FULL_MASK, x, 2);
}

// rot1 rotates one pair (x1 at d, x2 at d+HALF) by cos c and sin s.
__device__ __forceinline__ void rot1(float &y1, float &y2, float x1, float x2, float c, float s) {
	y1 = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
	y2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
}

// rotate8 rotates 8 pairs: xl holds bf16 dimensions d … d+7, xh d+HALF …
// d+HALF+7, c and s their 8 cosines and sines; yl and yh receive the
// rotated dimensions as bf16.
__device__ __forceinline__ void rotate8(uint4 &yl, uint4 &yh, uint4 xl, uint4 xh, const float c[8], const float s[8]) {
	u32 a[4] = {xl.x, xl.y, xl.z, xl.w}, b[4] = {xh.x, xh.y, xh.z, xh.w}, ra[4], rb[4];
#pragma unroll
	for (int w = 0; w < 4; w++) {
		float p0, p1, q0, q1;
		rot1(p0, q0, lo_f(a[w]), lo_f(b[w]), c[2 * w], s[2 * w]);
		rot1(p1, q1, hi_f(a[w]), hi_f(b[w]), c[2 * w + 1], s[2 * w + 1]);
		ra[w] = pack2(p0, p1);
		rb[w] = pack2(q0, q1);
	}
	yl = make_uint4(ra[0], ra[1], ra[2], ra[3]);
	yh = make_uint4(rb[0], rb[1], rb[2], rb[3]);
}

// Piece is one rotation piece in registers: bf16 dimensions d … d+7 (xl)
// and d+HALF … d+HALF+7 (xh) of a row, with the cos and sin of its
// position at d … d+7.
struct Piece {
	uint4 xl, xh;
	float4 c0, c1, s0, s1;
};

// load_piece reads the piece at dimension c of bf16 row x and of the cos
// and sin rows cr and sr, or zeros when !ok (nothing is read then).
__device__ __forceinline__ void load_piece(Piece &u, const bf16 *x, const float *cr, const float *sr, int c, bool ok) {
	if (ok) {
		u.xl = *(const uint4 *)(x + c);
		u.xh = *(const uint4 *)(x + c + HALF);
		u.c0 = *(const float4 *)(cr + c);
		u.c1 = *(const float4 *)(cr + c + 4);
		u.s0 = *(const float4 *)(sr + c);
		u.s1 = *(const float4 *)(sr + c + 4);
	} else {
		u.xl = u.xh = make_uint4(0, 0, 0, 0);
		u.c0 = u.c1 = u.s0 = u.s1 = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
	}
}

// store_piece rotates u into dimensions c … c+7 and c+HALF … c+HALF+7 of
// the bf16 row y in shared memory (a zero piece stays zero).
__device__ __forceinline__ void store_piece(bf16 *y, const Piece &u, int c) {
	float cs[8] = {u.c0.x, u.c0.y, u.c0.z, u.c0.w, u.c1.x, u.c1.y, u.c1.z, u.c1.w};
	float sn[8] = {u.s0.x, u.s0.y, u.s0.z, u.s0.w, u.s1.x, u.s1.y, u.s1.z, u.s1.w};
	uint4 yl, yh;
	rotate8(yl, yh, u.xl, u.xh, cs, sn);
	*(uint4 *)(y + c) = yl;
	*(uint4 *)(y + c + HALF) = yh;
}

// key_meta locates key j of KV head h: slot is its cache slot (j < L) or
// chunk token (j ≥ L), p its position, or −1 for padding and j ≥ L+S.
__device__ __forceinline__ void key_meta(int &slot, int &p, int j, int L, int n, const int *__restrict__ slots,
					 const int *__restrict__ pos, int h, int base) {
	slot = 0;
	p = -1;
	if (j < L) {
		long long e = (long long)h * L + j;
		int s = slots[e];
		if (s >= 0) {
			slot = s;
			p = pos[e];
		}
	} else if (j < n) {
		slot = j - L;
		p = base + (j - L);
	}
}

// Gather is where a KV head's keys and values live.
struct Gather {
	const bf16 *k, *v, *ck, *cv;
	const float *cosT, *sinT;
	int L, cap, hkv, h;
};

// key_row returns the start of key (or, with vals, value) row slot of
// source j (cache when j < L, chunk else).
__device__ __forceinline__ const bf16 *key_row(const Gather &G, int j, int slot, bool vals) {
	if (j < G.L) {
		return (vals ? G.cv : G.ck) + ((long long)G.h * G.cap + slot) * HD;
	}
	return (vals ? G.v : G.k) + ((long long)slot * G.hkv + G.h) * HD;
}

// flash_keys gathers GR keys of KV head blockIdx.y (rows blockIdx.x·GR …)
// into kr (rotated), vr and bits: grid (NP/GR, Hkv), THREADS threads, no
// shared memory. np is NP.
extern "C" __global__ void __launch_bounds__(THREADS) flash_keys(
	bf16 *__restrict__ kr, bf16 *__restrict__ vr, u32 *__restrict__ bits, const bf16 *__restrict__ k,
	const bf16 *__restrict__ v, const bf16 *__restrict__ ck, const bf16 *__restrict__ cv,
	const int *__restrict__ slots, const int *__restrict__ pos, const int *__restrict__ qpos,
	const float *__restrict__ cosT, const float *__restrict__ sinT, int S, int L, int cap, int hkv, int np) {
	int tid = threadIdx.x, h = blockIdx.y, j0 = blockIdx.x * GR;
	int base = qpos[h], n = L + S;
	Gather G = {k, v, ck, cv, cosT, sinT, L, cap, hkv, h};
	bf16 *kd = kr + ((long long)h * np + j0) * HD, *vd = vr + ((long long)h * np + j0) * HD;
	for (int e = tid; e < GR * PIECES; e += THREADS) {
		int t = e / PIECES, c = e % PIECES * 8, slot, p;
		key_meta(slot, p, j0 + t, L, n, slots, pos, h, base);
		Piece u;
		long long tab = p >= 0 ? (long long)p * HALF : 0;
		load_piece(u, p >= 0 ? key_row(G, j0 + t, slot, false) : k, cosT + tab, sinT + tab, c, p >= 0);
		store_piece(kd + t * HD, u, c);
	}
	for (int e = tid; e < GR * CPR; e += THREADS) {
		int t = e / CPR, c = e % CPR * 8, slot, p;
		key_meta(slot, p, j0 + t, L, n, slots, pos, h, base);
		uint4 x = make_uint4(0, 0, 0, 0);
		if (p >= 0) {
			x = *(const uint4 *)(key_row(G, j0 + t, slot, true) + c);
		}
		*(uint4 *)(vd + t * HD + c) = x;
	}
	if (tid < 32) {
		int slot, p;
		key_meta(slot, p, j0 + tid, L, n, slots, pos, h, base);
		u32 b = __ballot_sync(FULL_MASK, p >= 0);
		if (tid == 0) {
			bits[((long long)h * np + j0) / 32] = b;
		}
	}
}

// flash_queries rotates GR queries of query head blockIdx.y (rows
// blockIdx.x·GR …) into qr [Hq, sp, HD]: grid (sp/GR, Hq), THREADS
// threads, no shared memory. Rows past S are zeros.
extern "C" __global__ void __launch_bounds__(THREADS) flash_queries(
	bf16 *__restrict__ qr, const bf16 *__restrict__ q, const int *__restrict__ qpos, const float *__restrict__ cosT,
	const float *__restrict__ sinT, int S, int hq, int hkv, int sp) {
	int qh = blockIdx.y, i0 = blockIdx.x * GR, base = qpos[qh / (hq / hkv)];
	bf16 *qd = qr + ((long long)qh * sp + i0) * HD;
	for (int e = threadIdx.x; e < GR * PIECES; e += THREADS) {
		int t = e / PIECES, c = e % PIECES * 8, i = i0 + t;
		bool ok = i < S;
		long long tab = ok ? (long long)(base + i) * HALF : 0;
		Piece u;
		load_piece(u, ok ? q + ((long long)i * hq + qh) * HD : q, cosT + tab, sinT + tab, c, ok);
		store_piece(qd + t * HD, u, c);
	}
}

// row_stats stores, from the lane with t4 == 0, the statistics of query
// row i of head qh once its last key tile is done (m the row's running max
// of the raw scores, lr its denominator summed over the quad) and returns
// the factor 1/l of its output; for a padding row (i ≥ S) it zeroes qstat
// and returns −1.
__device__ __forceinline__ float row_stats(float *stats, float2 *qstat, const float *weights, int i, int qh, int S,
					   int sp, int hq, int t4, float m, float lr, float scale2) {
	if (i >= S) {
		if (qstat != 0 && t4 == 0) {
			qstat[(long long)qh * sp + i] = make_float2(0.0f, 0.0f);
		}
		return -1.0f;
	}
	if (t4 == 0) {
		float mn = m * scale2 * LN2; // natural units
		if (stats != 0) {
			stats[(long long)qh * S + i] = mn;
			stats[(long long)(hq + qh) * S + i] = lr;
		}
		if (qstat != 0) {
			qstat[(long long)qh * sp + i] = make_float2(mn * LOG2E, lr > 0.0f ? weights[i] / lr : 0.0f);
		}
	}
	return lr > 0.0f ? 1.0f / lr : 0.0f;
}

// store_row writes a query's output row y (HD bf16) from the thread's part
// of its accumulator: dimensions 8n+2t4 and +1 are x[4n] and x[4n+1]
// (n < HD/8), times inv.
__device__ __forceinline__ void store_row(bf16 *y, const float *x, float inv, int t4) {
	u32 *w = (u32 *)(y + 2 * t4);
#pragma unroll
	for (int n = 0; n < HD / 8; n++) {
		w[n * 4] = pack2(x[4 * n] * inv, x[4 * n + 1] * inv);
	}
}

// copy_rows starts the copies of ROWS contiguous bf16 rows of HD from src
// into dst [ROWS][HDP] in shared memory (no commit): thread t copies chunk
// t mod CPR of rows t / CPR + k·CR_STEP, each one offset from the first.
#define CR_STEP (THREADS / CPR) // rows the block copies at once
template <int ROWS> __device__ __forceinline__ void copy_rows(bf16 *dst, const bf16 *src) {
	static_assert(ROWS % CR_STEP == 0, "copy_rows copies whole passes of rows");
	int c = threadIdx.x % CPR * 8, r0 = threadIdx.x / CPR;
	dst += r0 * HDP + c;
	src += r0 * HD + c;
#pragma unroll
	for (int k = 0; k < ROWS / CR_STEP; k++) {
		cp_async16(dst + k * CR_STEP * HDP, src + k * CR_STEP * HD, true);
	}
}

// flash_fwd computes out (and stats unless null) for BQ queries of one
// query head per block from flash_queries' qr and flash_keys' kr, vr and
// bits: grid (SP/BQ, Hq), THREADS threads, FWD_SHARED bytes of dynamic
// shared memory. Blocks run the last (longest) query tiles first. scale2
// is scale·log2(e). Unless qstat is null it also writes, for flash_mass,
// qstat [Hq, SP] = (m·log2(e), weights[i]/l) of each query, (0, 0) past S.
extern "C" __global__ void __launch_bounds__(THREADS, 2) flash_fwd(
	bf16 *__restrict__ out, float *__restrict__ stats, float2 *__restrict__ qstat, const float *__restrict__ weights,
	const bf16 *__restrict__ qr, const bf16 *__restrict__ kr, const bf16 *__restrict__ vr,
	const u32 *__restrict__ bits, int S, int sp, int L, int np, int hq, int hkv, float scale2) {
	extern __shared__ __align__(16) unsigned char smem[];
	bf16 *qs = (bf16 *)smem;       // [BQ][HDP]
	bf16 *ksm = qs + BQ * HDP;     // [2][BK][HDP]
	bf16 *vsm = ksm + 2 * BK * HDP; // [2][BK][HDP]

	int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
	int qh = blockIdx.y, h = qh / (hq / hkv);
	int q0 = (gridDim.x - 1 - blockIdx.x) * BQ, qw = q0 + 32 * warp;
	int nb = L + min(S, q0 + BQ); // keys this block's queries can see: a prefix
	int T = (nb + BK - 1) / BK;   // key tiles, ≥ 1
	const bf16 *kh = kr + (long long)h * np * HD, *vh = vr + (long long)h * np * HD;
	const u32 *bh = bits + (long long)h * np / 32;

	copy_rows<BQ>(qs, qr + ((long long)qh * sp + q0) * HD);
	copy_rows<BK>(ksm, kh);
	copy_rows<BK>(vsm, vh);
	cp_async_commit();

	float o[2][HD / 8][4];
#pragma unroll
	for (int mt = 0; mt < 2; mt++) {
#pragma unroll
		for (int d = 0; d < HD / 8; d++) {
			o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.0f;
		}
	}
	// Rows r = 2·mt + half: query qw + 16·mt + g + 8·half. m is the
	// running max of the raw scores (scale2 > 0 keeps the order), l this
	// thread's part of the running denominator.
	float m[4], l[4];
#pragma unroll
	for (int r = 0; r < 4; r++) {
		m[r] = NEG_INF;
		l[r] = 0.0f;
	}

	for (int it = 0; it < T; it++) {
		int st = it % 2, j0 = it * BK;
		cp_async_wait();
		__syncthreads(); // tile it is in ksm[st] and vsm[st]; tile it−1 is consumed
		if (it + 1 < T) {
			copy_rows<BK>(ksm + (1 - st) * BK * HDP, kh + (long long)(j0 + BK) * HD);
			copy_rows<BK>(vsm + (1 - st) * BK * HDP, vh + (long long)(j0 + BK) * HD);
			cp_async_commit();
		}
		if (qw >= S || j0 > L + qw + 31) { // no key of the tile is visible to the warp
			continue;
		}
		// validity of the tile's keys, loaded before the mma so that its
		// latency hides behind them
		unsigned long long vb64 = bh[j0 / 32] | (unsigned long long)bh[j0 / 32 + 1] << 32;
		const bf16 *kb = ksm + st * BK * HDP, *vb = vsm + st * BK * HDP;
		// The tile in two halves of KH keys, each scored, softmaxed and
		// multiplied into o before the next: half the score registers,
		// so that o, the scores and P fit without spilling.
#pragma unroll
		for (int hk = 0; hk < BK / KH; hk++) {
			int jh = j0 + hk * KH;
			if (jh > L + qw + 31) { // the half is past every row of the warp
				break;
			}
			const bf16 *kbh = kb + hk * KH * HDP, *vbh = vb + hk * KH * HDP;
			unsigned long long vbh64 = vb64 >> (hk * KH);
			float sc[2][KH / 8][4];
#pragma unroll
			for (int mt = 0; mt < 2; mt++) {
#pragma unroll
				for (int nt = 0; nt < KH / 8; nt++) {
					sc[mt][nt][0] = sc[mt][nt][1] = sc[mt][nt][2] = sc[mt][nt][3] = 0.0f;
				}
			}
#pragma unroll
			for (int ks = 0; ks < HD / 16; ks++) {
				u32 a[2][4];
#pragma unroll
				for (int mt = 0; mt < 2; mt++) {
					ldsm4(a[mt], qs + (32 * warp + 16 * mt + lane % 16) * HDP + ks * 16 + lane / 16 * 8);
				}
#pragma unroll
				for (int np2 = 0; np2 < KH / 16; np2++) {
					u32 b[4];
					ldsm4(b, kbh + (np2 * 16 + lane % 8 + lane / 16 * 8) * HDP + ks * 16 + lane / 8 % 2 * 8);
#pragma unroll
					for (int mt = 0; mt < 2; mt++) {
						mma(sc[mt][2 * np2], a[mt], b[0], b[1]);
						mma(sc[mt][2 * np2 + 1], a[mt], b[2], b[3]);
					}
				}
			}
			bool full = (vbh64 & KH_MASK) == KH_MASK && jh + KH - 1 <= L + qw; // nothing masked for the warp
			if (!full) {
#pragma unroll
				for (int mt = 0; mt < 2; mt++) {
#pragma unroll
					for (int nt = 0; nt < KH / 8; nt++) {
#pragma unroll
						for (int e = 0; e < 4; e++) {
							int col = nt * 8 + 2 * t4 + e % 2, i = qw + 16 * mt + g + 8 * (e / 2);
							bool vis = (vbh64 >> col & 1) && jh + col <= L + i;
							sc[mt][nt][e] = vis ? sc[mt][nt][e] : NEG_INF;
						}
					}
				}
			}
			float c[4], mu[4]; // per row: the factor on the old sums, the max subtracted (scaled)
			bool same = true;  // no row's max moved: the old sums stay as they are
#pragma unroll
			for (int r = 0; r < 4; r++) {
				int mt = r / 2, e0 = r % 2 * 2;
				float mx = m[r];
#pragma unroll
				for (int nt = 0; nt < KH / 8; nt++) {
					mx = fmaxf(mx, fmaxf(sc[mt][nt][e0], sc[mt][nt][e0 + 1]));
				}
				mx = quad_max(mx);
				// Subtract 0 while a row has seen no key, so that −∞ − −∞
				// never happens; its p, l and o are then all 0.
				mu[r] = mx == NEG_INF ? 0.0f : mx * scale2;
				c[r] = ex2(m[r] * scale2 - mu[r]);
				same = same && mx == m[r];
				m[r] = mx;
			}
			u32 pa[2][KH / 16][4]; // P as A fragments of the P·V mma
#pragma unroll
			for (int mt = 0; mt < 2; mt++) {
				float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
				for (int nt = 0; nt < KH / 8; nt++) {
					float p0 = ex2(fmaf(sc[mt][nt][0], scale2, -mu[2 * mt]));
					float p1 = ex2(fmaf(sc[mt][nt][1], scale2, -mu[2 * mt]));
					float p2 = ex2(fmaf(sc[mt][nt][2], scale2, -mu[2 * mt + 1]));
					float p3 = ex2(fmaf(sc[mt][nt][3], scale2, -mu[2 * mt + 1]));
					rs0 += p0 + p1;
					rs1 += p2 + p3;
					pa[mt][nt / 2][nt % 2 * 2] = pack2(p0, p1);
					pa[mt][nt / 2][nt % 2 * 2 + 1] = pack2(p2, p3);
				}
				l[2 * mt] = l[2 * mt] * c[2 * mt] + rs0;
				l[2 * mt + 1] = l[2 * mt + 1] * c[2 * mt + 1] + rs1;
			}
			if (!__all_sync(FULL_MASK, same)) { // c is 1 where the max stayed: skip o's rescaling then
#pragma unroll
				for (int mt = 0; mt < 2; mt++) {
#pragma unroll
					for (int d = 0; d < HD / 8; d++) {
						o[mt][d][0] *= c[2 * mt];
						o[mt][d][1] *= c[2 * mt];
						o[mt][d][2] *= c[2 * mt + 1];
						o[mt][d][3] *= c[2 * mt + 1];
					}
				}
			}
#pragma unroll
			for (int kk = 0; kk < KH / 16; kk++) {
#pragma unroll
				for (int dp = 0; dp < HD / 16; dp++) {
					u32 b[4];
					ldsm4t(b, vbh + (kk * 16 + lane % 8 + lane / 8 % 2 * 8) * HDP + dp * 16 + lane / 16 * 8);
#pragma unroll
					for (int mt = 0; mt < 2; mt++) {
						mma(o[mt][2 * dp], pa[mt][kk], b[0], b[1]);
						mma(o[mt][2 * dp + 1], pa[mt][kk], b[2], b[3]);
					}
				}
			}
		}
	}
	cp_async_wait(); // nothing may be left in flight (warps that skipped their last tiles)

#pragma unroll
	for (int r = 0; r < 4; r++) {
		int mt = r / 2, half = r % 2, i = qw + 16 * mt + g + 8 * half;
		float inv = row_stats(stats, qstat, weights, i, qh, S, sp, hq, t4, m[r], quad_sum(l[r]), scale2);
		if (inv < 0.0f) {
			continue;
		}
		store_row(out + ((long long)i * hq + qh) * HD, &o[mt][0][2 * half], inv, t4);
	}
}

// copy_stats starts the copies of BQM float2 query statistics from src
// into dst in shared memory (no commit).
__device__ __forceinline__ void copy_stats(float2 *dst, const float2 *src) {
	if (threadIdx.x < BQM / 2) {
		cp_async16(dst + 2 * threadIdx.x, src + 2 * threadIdx.x, true);
	}
}

// flash_mass sets mass[qh, j] = Σᵢ wᵢ·p(qh, i, j) from the qstat that
// flash_fwd wrote, over flash_queries' qr and flash_keys' kr and bits:
// grid (NP/BKM, Hkv), THREADS threads, MASS_SHARED bytes of dynamic shared
// memory. A block owns BKM keys of one KV head (32 per warp, kept as A
// fragments) and walks the query tiles that can see them, for each query
// head of the group in turn, recomputing the scores kᵀq with mma and each
// probability from the query's m and l. Padding keys get 0.
extern "C" __global__ void __launch_bounds__(THREADS) flash_mass(
	float *__restrict__ mass, const float2 *__restrict__ qstat, const bf16 *__restrict__ qr,
	const bf16 *__restrict__ kr, const u32 *__restrict__ bits, int S, int sp, int L, int np, int hq, int hkv,
	float scale2) {
	extern __shared__ __align__(16) unsigned char smem[];
	bf16 *ksm = (bf16 *)smem;                 // [BKM][HDP]
	bf16 *qsm = ksm + BKM * HDP;              // [2][BQM][HDP]
	float2 *qst = (float2 *)(qsm + 2 * BQM * HDP); // [2][BQM]: m·log2(e) and w/l per query

	int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
	int h = blockIdx.y, group = hq / hkv;
	int j0 = blockIdx.x * BKM, jw = j0 + 32 * warp;
	int n = L + S;
	int istart = max(0, j0 - L) / BQM * BQM;             // earlier queries see none of the block's keys
	int QT = (S - istart + BQM - 1) / BQM, T = group * QT; // query tiles per head, in all
	const u32 *bh = bits + (long long)h * np / 32;

	copy_rows<BKM>(ksm, kr + ((long long)h * np + j0) * HD);
	copy_rows<BQM>(qsm, qr + ((long long)(h * group) * sp + istart) * HD);
	copy_stats(qst, qstat + (long long)(h * group) * sp + istart);
	cp_async_commit();
	cp_async_wait();
	__syncthreads();
	u32 kf[2][HD / 16][4];
#pragma unroll
	for (int mt = 0; mt < 2; mt++) {
#pragma unroll
		for (int kq = 0; kq < HD / 16; kq++) {
			ldsm4(kf[mt][kq], ksm + (32 * warp + 16 * mt + lane % 16) * HDP + kq * 16 + lane / 16 * 8);
		}
	}
	u32 kb = bh[jw / 32]; // validity of the warp's 32 keys

	float acc[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}}; // keys jw + 16·mt + g + 8·half
	for (int it = 0; it < T; it++) {
		int st = it % 2, qh = h * group + it / QT, i0 = istart + it % QT * BQM;
		if (it > 0) {
			cp_async_wait();
			__syncthreads(); // tile it is in qsm[st]; tile it−1 is consumed
		}
		if (it + 1 < T) {
			int qn = h * group + (it + 1) / QT, in = istart + (it + 1) % QT * BQM;
			copy_rows<BQM>(qsm + (1 - st) * BQM * HDP, qr + ((long long)qn * sp + in) * HD);
			copy_stats(qst + (1 - st) * BQM, qstat + (long long)qn * sp + in);
			cp_async_commit();
		}

		int ilast = min(S, i0 + BQM) - 1;
		if (jw < n && jw <= L + ilast) { // some query of the tile sees some key of the warp
			const bf16 *qb = qsm + st * BQM * HDP;
			const float2 *qs2 = qst + st * BQM;
			float sc[2][BQM / 8][4];
#pragma unroll
			for (int mt = 0; mt < 2; mt++) {
#pragma unroll
				for (int nt = 0; nt < BQM / 8; nt++) {
					sc[mt][nt][0] = sc[mt][nt][1] = sc[mt][nt][2] = sc[mt][nt][3] = 0.0f;
				}
			}
#pragma unroll
			for (int kq = 0; kq < HD / 16; kq++) {
#pragma unroll
				for (int np2 = 0; np2 < BQM / 16; np2++) {
					u32 b[4];
					ldsm4(b, qb + (np2 * 16 + lane % 8 + lane / 16 * 8) * HDP + kq * 16 + lane / 8 % 2 * 8);
#pragma unroll
					for (int mt = 0; mt < 2; mt++) {
						mma(sc[mt][2 * np2], kf[mt][kq], b[0], b[1]);
						mma(sc[mt][2 * np2 + 1], kf[mt][kq], b[2], b[3]);
					}
				}
			}
			bool full = jw + 31 <= L + i0; // every query of the tile sees every key of the warp
#pragma unroll
			for (int nt = 0; nt < BQM / 8; nt++) {
#pragma unroll
				for (int e2 = 0; e2 < 2; e2++) {
					int col = nt * 8 + 2 * t4 + e2; // query i0+col
					float2 ms = qs2[col];
					float mmc = ms.x, wlc = ms.y;
#pragma unroll
					for (int mt = 0; mt < 2; mt++) {
#pragma unroll
						for (int half = 0; half < 2; half++) {
							float x = fmaf(sc[mt][nt][2 * half + e2], scale2, -mmc);
							if (!full && jw + 16 * mt + g + 8 * half > L + i0 + col) {
								x = NEG_INF;
							}
							acc[mt][half] += ex2(x) * wlc;
						}
					}
				}
			}
		}
		if (it % QT == QT - 1) { // the last tile of query head qh
#pragma unroll
			for (int mt = 0; mt < 2; mt++) {
#pragma unroll
				for (int half = 0; half < 2; half++) {
					float a = quad_sum(acc[mt][half]);
					int r = 16 * mt + g + 8 * half, j = jw + r;
					if (t4 == 0 && j < n) {
						mass[(long long)qh * n + j] = (kb >> r & 1) ? a : 0.0f;
					}
					acc[mt][half] = 0.0f;
				}
			}
		}
	}
}

#ifdef KVC_WGMMA
// flash_fwd90: flash_fwd for Hopper (compiled for sm_90a with -DKVC_WGMMA),
// with the same arguments, outputs and semantics, on warpgroup MMA
// (wgmma.mma_async) instead of mma.sync. A block holds W_BQ queries: W_WGS
// consumer warpgroups of 64 query rows each (one wgmma m64 tile) and one
// producer warp that streams the key and value tiles of W_BK keys into a
// ring of W_STAGES stages with cp.async. Stage s is handed over through two
// mbarriers: full[s] completes when the producer's copies into it have
// landed (cp.async.mbarrier.arrive), empty[s] when every consumer warp is
// done with it. The warpgroups are never made to wait for each other, so
// one's softmax overlaps the other's MMAs.
//
// Shared memory holds each tile in wgmma's 128-byte swizzled layout: a row
// of HD bf16 is split into panels of 64 dimensions (128 bytes); panel p of
// a tile of R rows occupies R·128 bytes from p·R·128, row r at r·128, its
// 16-byte chunk c at (c ⊕ r mod 8)·16 (sw_off). A key tile is the B operand
// of S = Q·Kᵀ in K-major form (the dimension is contiguous), a value tile
// that of O += P·V in MN-major form (also the dimension contiguous): both
// are described by one matrix descriptor (wdesc) of stride 1024 bytes per 8
// rows, the value tile's panels LBO = W_BK·128 bytes apart. Queries are
// the A operand of the first product from shared memory; P is that of the
// second from registers, in the layout of mma.sync's A fragments (which is
// that of wgmma's accumulators of S).

#define W_WGS 2                          // consumer warpgroups per block
#define W_BQ (64 * W_WGS)                // queries per block
#define W_BK 128                         // keys per tile
#ifndef W_STAGES
#define W_STAGES 3                       // stages of the ring: a warpgroup holds two (K of one tile, V of the one before)
#endif
#ifndef W_PIPE
#define W_PIPE 1                         // a tile's softmax overlaps the previous tile's P·V
#endif
#ifndef W_PINGPONG
#define W_PINGPONG 0                     // the two consumer warpgroups take turns to issue their MMAs (both kernels)
#endif
#ifndef W_MPOLY
#define W_MPOLY 0                        // if > 0, flash_mass90 takes one term in W_MPOLY's 2^y on the FMA pipe (ex2_fma)
#endif
#if W_MPOLY > 0
#define W_MPOLY_ON(t) ((t) % W_MPOLY == W_MPOLY - 1) // term t of a thread's tile (0 … 63) goes to ex2_fma
#else
#define W_MPOLY_ON(t) false
#endif
#if W_PINGPONG && W_WGS != 2
#error "ping-pong takes two consumer warpgroups"
#endif
#define W_THREADS (128 * (W_WGS + 1))    // the consumers and a producer warpgroup
#define W_PREGS 40                       // registers of a producer thread (setmaxnreg)
#define W_CREGS 232                      // of a consumer thread: 128·(W_PREGS + W_WGS·W_CREGS) ≤ 64K
#define W_QBYTES (W_BQ * HD * 2)         // the block's queries
#define W_TBYTES (W_BK * HD * 2)         // one key or value tile
// with room to align to 1024; per stage also two mbarriers and the tile's
// validity bits (16 bytes)
#define W_SHARED (1024 + W_QBYTES + 2 * W_STAGES * W_TBYTES + W_STAGES * (2 * 8 + 16))
#define W_MK (64 * W_WGS)                // keys per flash_mass90 block
#define W_MQ 128                         // queries per flash_mass90 tile
// flash_mass90: the block's keys, the query tiles and their statistics
// (float2 each), two mbarriers per stage.
#define W_MSHARED (1024 + W_MK * HD * 2 + W_STAGES * W_MQ * (HD * 2 + 8) + 2 * W_STAGES * 8)
#if W_BQ != BQ || KTILE % W_BK != 0 || W_MK != KTILE || BQ % W_MQ != 0 || W_BK != 128 || W_MQ != 128
#error "flash_fwd90 and flash_mass90 take flash_fwd's query blocks and flash_mass's key blocks, and B tiles of 128 rows (wg_ss128; flash_fwd90 stages 16 bytes of validity bits a tile)"
#endif

#ifndef KVC_HOST_EMULATION
#define WG_D32 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define WG_D64 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define WG_C8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define WG_C32 WG_C8(0), WG_C8(8), WG_C8(16), WG_C8(24)
#define WG_C64 WG_C32, WG_C8(32), WG_C8(40), WG_C8(48), WG_C8(56)

// wg_ss128 issues d (+)= A·Bᵀ for the 64×16 A and 128×16 B (both K-major)
// that descriptors a and b describe: d = A·Bᵀ when acc is 0. d is the
// warpgroup's 64×128 float32 accumulator (lane 4g+t of warp w holds rows
// 16w+g and +8, columns 8n+2t and +1 in d[4n … 4n+3]).
__device__ __forceinline__ void wg_ss128(float d[64], unsigned long long a, unsigned long long b, int acc) {
	asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
		     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " WG_D64 ", %64, %65, p, 1, 1, 0, 0;\n}\n"
		     : WG_C64
		     : "l"(a), "l"(b), "r"(acc));
}

// wg_rs adds A·B to the 64×HD accumulator d: a is the 64×16 A in registers
// (mma.sync's A fragment of the warp's 16 rows), b describes the 16×HD B
// (MN-major: the HD dimension contiguous).
__device__ __forceinline__ void wg_rs(float d[HD / 2], const u32 a[4], unsigned long long b) {
#if HD == 128
	asm volatile("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " WG_D64 ", {%64, %65, %66, %67}, %68, 1, 1, 1, 1;\n"
		     : WG_C64
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
#else
	asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " WG_D32 ", {%32, %33, %34, %35}, %36, 1, 1, 1, 1;\n"
		     : WG_C32
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
#endif
}

// wg_fence orders the registers' earlier writes before the warpgroup's
// next wgmma; wg_commit closes the wgmmas issued since the last into a
// group; wg_wait<N> waits until at most the N groups committed last are
// still running.
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wg_wait() {
	asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// reg_fence keeps the compiler from moving uses of r across it (the
// accumulators of a wgmma are written behind the compiler's back until
// wg_wait).
__device__ __forceinline__ void reg_fence(float &r) { asm volatile("" : "+f"(r)::"memory"); }

// The mbarriers (8 bytes of shared memory each, at shared address a).
__device__ __forceinline__ void mbar_init(u32 a, int count) {
	asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(a), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
__device__ __forceinline__ void mbar_arrive(u32 a) {
	asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(a) : "memory");
}
// mbar_arrive_copies arrives on a once this thread's cp.async copies so far
// have landed (the arrival counts toward the barrier's expected count).
__device__ __forceinline__ void mbar_arrive_copies(u32 a) {
	asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(a) : "memory");
}
// mbar_wait waits until the phase of a with the given parity has completed.
__device__ __forceinline__ void mbar_wait(u32 a, u32 parity) {
	u32 done = 0;
	while (!done) {
		asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
			     : "=r"(done)
			     : "r"(a), "r"(parity)
			     : "memory");
	}
}
// proxy_fence makes shared memory written through the generic proxy
// (stores, cp.async) visible to the async proxy that wgmma reads through.
__device__ __forceinline__ void proxy_fence() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// set_regs_producer and set_regs_consumer move registers from the
// producer warpgroup to the consumers (setmaxnreg): each warpgroup runs
// its part of the kernel with W_PREGS or W_CREGS registers a thread.
__device__ __forceinline__ void set_regs_producer() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(W_PREGS)); }
__device__ __forceinline__ void set_regs_consumer() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(W_CREGS)); }
// warp_uniform returns x, which is the same in every lane of the warp, as
// lane 0's: the compiler then knows it is, and that branches on it do not
// diverge (wgmma instructions in divergent code are serialised).
__device__ __forceinline__ int warp_uniform(int x) { return __shfl_sync(FULL_MASK, x, 0); }
// wg_sync is a barrier among the 128 threads of consumer warpgroup wg.
__device__ __forceinline__ void wg_sync(int wg) { asm volatile("bar.sync %0, 128;\n" ::"r"(1 + wg) : "memory"); }
// pp_sync waits until consumer warpgroup wg may issue its MMAs: the other
// warpgroup has issued its own and called pp_arrive(wg) (named barrier
// 3 + wg of both warpgroups' 256 threads; W_PINGPONG).
__device__ __forceinline__ void pp_sync(int wg) { asm volatile("bar.sync %0, 256;\n" ::"r"(3 + wg) : "memory"); }
// pp_arrive hands the turn to consumer warpgroup wg without waiting.
__device__ __forceinline__ void pp_arrive(int wg) { asm volatile("bar.arrive %0, 256;\n" ::"r"(3 + wg) : "memory"); }
#endif // KVC_HOST_EMULATION

// sw_off is the byte offset of 16-byte chunk c of row r in a tile of rows
// rows in the 128-byte swizzled layout.
__device__ __forceinline__ u32 sw_off(int r, int c, int rows) {
	return (u32)((c / 8) * rows * 128 + r * 128 + ((c % 8) ^ (r % 8)) * 16);
}

// wdesc is the wgmma matrix descriptor of the operand at shared address
// addr (1024-byte aligned but for the offset of a 16-element step inside a
// row): 128-byte swizzle, 1024 bytes between groups of 8 rows, lbo bytes
// between panels of an MN-major operand (unused for K-major ones).
__device__ __forceinline__ unsigned long long wdesc(u32 addr, u32 lbo) {
	return (unsigned long long)((addr & 0x3ffff) >> 4) | (unsigned long long)(lbo >> 4) << 16 |
	       (unsigned long long)(1024 >> 4) << 32 | 1ull << 62;
}

// wdesc_add is the descriptor of the operand off bytes (a multiple of 16)
// past d's: the start address is d's low 14 bits in units of 16 bytes,
// and shared addresses stay below 2¹⁸, so the sum never carries out of
// them. One add, where wdesc would mask and shift again.
__device__ __forceinline__ unsigned long long wdesc_add(unsigned long long d, u32 off) { return d + (off >> 4); }

// load_rows starts the copies of N rows r₁ … r₁+N−1 (r₁ a multiple of 8)
// of a TILE-row operand from src (its row 0; rows of HD bf16) into the
// swizzled tile at dst, spread over 128 threads (t is the thread's index
// among them; no commit). Thread t copies chunk c = t mod CPR of rows r₁ +
// r₀ + k·LT_STEP, r₀ = t / CPR: LT_STEP is a multiple of 8, so the chunk's
// swizzled place moves by LT_STEP rows from one to the next, and every
// copy is one offset from the first.
#define LT_STEP (128 / CPR) // rows 128 threads copy at once
#if LT_STEP % 8 != 0
#error "load_rows needs the rows copied at once to be a multiple of 8"
#endif
template <int TILE, int N> __device__ __forceinline__ void load_rows(unsigned char *dst, const bf16 *src, int r1, int t) {
	static_assert(N % LT_STEP == 0 && N <= TILE, "load_rows copies whole passes of a tile's rows");
	int c = t % CPR, r = r1 + t / CPR;
	dst += sw_off(r, c, TILE);
	src += (long long)r * HD + c * 8;
#pragma unroll
	for (int k = 0; k < N / LT_STEP; k++) {
		cp_async16(dst + k * LT_STEP * 128, src + k * LT_STEP * HD, true);
	}
}

// load_tile starts the copies of a whole tile of ROWS rows, by the
// producer warpgroup's thread pt.
template <int ROWS> __device__ __forceinline__ void load_tile(unsigned char *dst, const bf16 *src, int pt) {
	load_rows<ROWS, ROWS>(dst, src, 0, pt);
}

// Ping-pong (W_PINGPONG) over R rounds, the tiles both consumer
// warpgroups compute: in round it < R, warpgroup wg waits for its turn
// (pp_turn), issues its MMAs, and hands the turn over (pp_pass); 0 goes
// first. Barrier 3 + w counts warpgroup w's pp_sync and the other's
// pp_arrive: warpgroup 1 arrives once before its first round (pp_start)
// and after every round but its last, 0 after each of its rounds, so every
// phase of both is complete at the end. Without W_PINGPONG they do
// nothing.
__device__ __forceinline__ void pp_start(int wg, int R) {
	if (W_PINGPONG && wg == 1 && R > 0) {
		pp_arrive(0);
	}
}
__device__ __forceinline__ void pp_turn(int wg, int it, int R) {
	if (W_PINGPONG && it < R) {
		pp_sync(wg);
	}
}
__device__ __forceinline__ void pp_pass(int wg, int it, int R) {
	if (W_PINGPONG && it < R && (wg == 0 || it < R - 1)) {
		pp_arrive(1 - wg);
	}
}

// w_ring_init sets up the ring's mbarriers (thread 0) before any thread
// uses them: full[s] counts the producer warpgroup's threads, empty[s]
// the consumer warps.
__device__ __forceinline__ void w_ring_init(u32 full, u32 empty) {
	if (threadIdx.x == 0) {
		for (int s = 0; s < W_STAGES; s++) {
			mbar_init(full + 8 * s, 128);
			mbar_init(empty + 8 * s, 4 * W_WGS);
		}
		mbar_init_fence();
	}
	__syncthreads();
}

// w_acquire waits, in the producer, until the stage of tile it is free:
// tile it−W_STAGES, which had it, is consumed.
__device__ __forceinline__ void w_acquire(u32 empty, int it) {
	if (it >= W_STAGES) {
		mbar_wait(empty + 8 * (it % W_STAGES), (it / W_STAGES - 1) & 1);
	}
}

// w_load_rows copies consumer warpgroup wg's 64 rows (64·wg …) of a
// block operand of ROWS rows from src (rows of HD bf16) into the swizzled
// tile at dst and waits for them: the warpgroup's wgmma may then read them.
template <int ROWS> __device__ __forceinline__ void w_load_rows(unsigned char *dst, const bf16 *src, int wg) {
	load_rows<ROWS, 64>(dst, src, 64 * wg, threadIdx.x % 128);
	cp_async_commit();
	cp_async_wait();
	proxy_fence();
	wg_sync(wg);
}

// w_scores issues sc = A·Bᵀ over the HD dimensions (committed): A is the
// warpgroup's 64 rows (64·wg …) of the arows-row tile at shared address a,
// B the 128-row tile at b, both swizzled, panel by panel in 16-dimension
// steps.
__device__ __forceinline__ void w_scores(float sc[64], u32 a, int arows, int wg, u32 b) {
	wg_fence();
	unsigned long long da = wdesc(a + 64 * wg * 128, 16), db = wdesc(b, 16);
#pragma unroll
	for (int ks = 0; ks < HD / 16; ks++) {
		wg_ss128(sc, wdesc_add(da, (ks / 4) * arows * 128 + ks % 4 * 32), wdesc_add(db, (ks / 4) * 128 * 128 + ks % 4 * 32), ks);
	}
	wg_commit();
}

// w_pv issues o += P·V for a tile: pa holds P (the warp's 16 rows of the
// 64, as A fragments), v is the shared address of the value tile (no
// fence, no commit).
__device__ __forceinline__ void w_pv(float o[HD / 2], const u32 pa[W_BK / 16][4], u32 v) {
	wg_fence();
	unsigned long long dv = wdesc(v, W_BK * 128);
#pragma unroll
	for (int kk = 0; kk < W_BK / 16; kk++) {
		wg_rs(o, pa[kk], wdesc_add(dv, kk * 16 * 128));
	}
}

// w_fence applies reg_fence to the n floats of r.
template <int N> __device__ __forceinline__ void w_fence(float (&r)[N]) {
#pragma unroll
	for (int i = 0; i < N; i++) {
		reg_fence(r[i]);
	}
}

// w_release hands a stage back to the producer: the warp is done with it
// (its barrier counts one arrival per consumer warp).
__device__ __forceinline__ void w_release(u32 empty, int lane) {
	__syncwarp();
	if (lane == 0) {
		mbar_arrive(empty);
	}
}

// flash_fwd90 is flash_fwd on wgmma (see above): grid (SP/W_BQ, Hq),
// W_THREADS threads, W_SHARED bytes of dynamic shared memory.
extern "C" __global__ void __launch_bounds__(W_THREADS, 1) flash_fwd90(
	bf16 *__restrict__ out, float *__restrict__ stats, float2 *__restrict__ qstat, const float *__restrict__ weights,
	const bf16 *__restrict__ qr, const bf16 *__restrict__ kr, const bf16 *__restrict__ vr,
	const u32 *__restrict__ bits, int S, int sp, int L, int np, int hq, int hkv, float scale2) {
	extern __shared__ __align__(16) unsigned char smem[];
	u32 pad = (1024 - smem_addr(smem) % 1024) % 1024;
	unsigned char *qsm = smem + pad, *ksm = qsm + W_QBYTES, *vsm = ksm + W_STAGES * W_TBYTES;
	u32 qa = smem_addr(qsm), ka = smem_addr(ksm), va = smem_addr(vsm);
	u32 full = va + W_STAGES * W_TBYTES, empty = full + 8 * W_STAGES; // mbarriers [W_STAGES] each
	u32 *bsm = (u32 *)(vsm + W_STAGES * W_TBYTES + 16 * W_STAGES);      // [W_STAGES][W_BK/32]: the tiles' validity

	int tid = threadIdx.x, warp = warp_uniform(tid / 32), lane = tid % 32;
	int qh = blockIdx.y, h = qh / (hq / hkv);
	int q0 = (gridDim.x - 1 - blockIdx.x) * W_BQ;
	int nb = L + min(S, q0 + W_BQ); // keys the block's queries can see: a prefix
	int T = (nb + W_BK - 1) / W_BK; // key tiles, ≥ 1
	const bf16 *kh = kr + (long long)h * np * HD, *vh = vr + (long long)h * np * HD;
	const u32 *bh = bits + (long long)h * np / 32;
	w_ring_init(full, empty);

	if (warp >= 4 * W_WGS) { // the producer
		set_regs_producer();
		int pt = tid - 128 * W_WGS;
		for (int it = 0; it < T; it++) {
			int s = it % W_STAGES;
			w_acquire(empty, it);
			load_tile<W_BK>(ksm + s * W_TBYTES, kh + (long long)it * W_BK * HD, pt);
			load_tile<W_BK>(vsm + s * W_TBYTES, vh + (long long)it * W_BK * HD, pt);
			if (pt == 0) {
				cp_async16(bsm + s * (W_BK / 32), bh + it * (W_BK / 32), true);
			}
			mbar_arrive_copies(full + 8 * s);
		}
		cp_async_wait();
		return;
	}
	set_regs_consumer();

	int wg = warp / 4, g = lane / 4, t4 = lane % 4;
	int qg = q0 + 64 * wg, qw = qg + 16 * (warp % 4); // the warpgroup's and the warp's first query
	w_load_rows<W_BQ>(qsm, qr + ((long long)qh * sp + q0) * HD, wg);

	float o[HD / 2]; // the warp's rows g and g+8, dimensions 8n+2t4 and +1 in o[4n … 4n+3]
#pragma unroll
	for (int i = 0; i < HD / 2; i++) {
		o[i] = 0.0f;
	}
	// Row r: query qw + g + 8r. m is the running max of the raw scores
	// (scale2 > 0 keeps the order), l this thread's part of the running
	// denominator.
	float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f};
	// The tiles the warpgroup sees are a prefix of the block's: Tw of them.
	int Tw = qg < S ? min(T, (L + qg + 63) / W_BK + 1) : 0;
	// Tile it's P·V is issued with tile it+1's scores and runs while those
	// are softmaxed (W_PIPE), so pa holds tile it's P until then.
	// Set before the loop although tile 0 issues no P·V: left undefined,
	// ptxas serialised every wgmma (C7513).
	u32 pa[W_BK / 16][4] = {};
	// Ping-pong (W_PINGPONG, pp_start): the first R tiles, those both
	// warpgroups compute, each issues while the other runs its softmax.
	int R = 0;
	if (W_PINGPONG && q0 + 64 < S) {
		R = min(T, (L + q0 + 63) / W_BK + 1); // warpgroup 0's Tw, at most warpgroup 1's
	}
	pp_start(wg, R);
	for (int it = 0; it < T; it++) {
		int s = it % W_STAGES, j0 = it * W_BK, sp1 = (it + W_STAGES - 1) % W_STAGES; // sp1: tile it−1's stage
		if (it == Tw && it > 0) { // the last P·V, then the rest of the tiles are only handed back
			w_pv(o, pa, va + sp1 * W_TBYTES);
			wg_commit();
			wg_wait<0>();
			w_fence(o);
			w_release(empty + 8 * sp1, lane);
		}
		mbar_wait(full + 8 * s, (it / W_STAGES) & 1);
		if (it >= Tw) {
			w_release(empty + 8 * s, lane);
			continue;
		}
		proxy_fence();
		uint4 v4 = *(const uint4 *)(bsm + s * (W_BK / 32)); // validity of the tile's keys
		u32 vb[W_BK / 32] = {v4.x, v4.y, v4.z, v4.w};
		float sc[W_BK / 2]; // S: rows g, g+8; keys 8n+2t4 and +1 in sc[4n … 4n+3]
		pp_turn(wg, it, R);
		w_scores(sc, qa, W_BQ, wg, ka + s * W_TBYTES);
		// One branch for the issue and the wait: split in two, ptxas
		// serialises every wgmma (C7514).
		if (it > 0) {
			w_pv(o, pa, va + sp1 * W_TBYTES);
			wg_commit();
			pp_pass(wg, it, R);
#if W_PIPE
			wg_wait<1>(); // the scores; P·V still runs
#else
			wg_wait<0>();
#endif
		} else {
			pp_pass(wg, it, R);
			wg_wait<0>();
		}
		w_fence(sc);
		bool all = true; // every key of the tile valid
#pragma unroll
		for (int w = 0; w < W_BK / 32; w++) {
			all = all && vb[w] == FULL_MASK;
		}
		if (!(all && j0 + W_BK - 1 <= L + qw)) { // something is masked for the warp
#pragma unroll
			for (int n8 = 0; n8 < W_BK / 8; n8++) {
#pragma unroll
				for (int e = 0; e < 4; e++) {
					int col = n8 * 8 + 2 * t4 + e % 2, i = qw + g + 8 * (e / 2);
					// col / 32 is n8 / 4 (2·t4 + 1 < 8): a constant index,
					// so vb stays in registers
					bool vis = (vb[n8 / 4] >> (col % 32) & 1) && j0 + col <= L + i;
					sc[4 * n8 + e] = vis ? sc[4 * n8 + e] : NEG_INF;
				}
			}
		}
		float c[2], mu[2]; // per row: the factor on the old sums, the max subtracted (scaled)
		bool same = true;  // no row's max moved: the old sums stay as they are
#pragma unroll
		for (int r = 0; r < 2; r++) {
			float mx = m[r];
#pragma unroll
			for (int n8 = 0; n8 < W_BK / 8; n8++) {
				mx = fmaxf(mx, fmaxf(sc[4 * n8 + 2 * r], sc[4 * n8 + 2 * r + 1]));
			}
			mx = quad_max(mx);
			// Subtract 0 while a row has seen no key, so that −∞ − −∞
			// never happens; its p, l and o are then all 0.
			mu[r] = mx == NEG_INF ? 0.0f : mx * scale2;
			c[r] = ex2(m[r] * scale2 - mu[r]);
			same = same && mx == m[r];
			m[r] = mx;
		}
		float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
		for (int n8 = 0; n8 < W_BK / 8; n8++) {
			sc[4 * n8] = ex2(fmaf(sc[4 * n8], scale2, -mu[0]));
			sc[4 * n8 + 1] = ex2(fmaf(sc[4 * n8 + 1], scale2, -mu[0]));
			sc[4 * n8 + 2] = ex2(fmaf(sc[4 * n8 + 2], scale2, -mu[1]));
			sc[4 * n8 + 3] = ex2(fmaf(sc[4 * n8 + 3], scale2, -mu[1]));
			rs0 += sc[4 * n8] + sc[4 * n8 + 1];
			rs1 += sc[4 * n8 + 2] + sc[4 * n8 + 3];
		}
		l[0] = l[0] * c[0] + rs0;
		l[1] = l[1] * c[1] + rs1;
#if W_PIPE
		// Unconditional (at it = 0 nothing runs): ptxas does not see that
		// this it > 0 is the one that issued the P·V, and serialises every
		// wgmma (C7514) if a path could read o before the wait.
		wg_wait<0>();
#endif
		if (it > 0) { // tile it−1's P·V is done: o is ours, its stage goes back, pa is free
			w_fence(o);
			w_release(empty + 8 * sp1, lane);
		}
		if (!__all_sync(FULL_MASK, same)) { // c is 1 where the max stayed: skip o's rescaling then
#pragma unroll
			for (int n8 = 0; n8 < HD / 8; n8++) {
				o[4 * n8] *= c[0];
				o[4 * n8 + 1] *= c[0];
				o[4 * n8 + 2] *= c[1];
				o[4 * n8 + 3] *= c[1];
			}
		}
#pragma unroll
		for (int n8 = 0; n8 < W_BK / 8; n8++) {
			pa[n8 / 2][n8 % 2 * 2] = pack2(sc[4 * n8], sc[4 * n8 + 1]);
			pa[n8 / 2][n8 % 2 * 2 + 1] = pack2(sc[4 * n8 + 2], sc[4 * n8 + 3]);
		}
	}
	if (Tw == T && T > 0) { // the last tile's P·V
		int s = (T - 1) % W_STAGES;
		w_pv(o, pa, va + s * W_TBYTES);
		wg_commit();
		wg_wait<0>();
		w_fence(o);
		w_release(empty + 8 * s, lane);
	}

#pragma unroll
	for (int r = 0; r < 2; r++) {
		int i = qw + g + 8 * r;
		float inv = row_stats(stats, qstat, weights, i, qh, S, sp, hq, t4, m[r], quad_sum(l[r]), scale2);
		if (inv < 0.0f) {
			continue;
		}
		store_row(out + ((long long)i * hq + qh) * HD, o + 2 * r, inv, t4);
	}
}

// MassCtx is what flash_mass90's consumer threads keep for the whole
// block (see m_step).
struct MassCtx {
	float *mass;
	const unsigned char *ssm;   // the query tiles' statistics [W_STAGES][W_MQ] float2
	u32 ka, qa, full, empty;    // shared addresses: keys, query tiles, mbarriers
	int T, QT, istart, L, S, n; // tiles in all and per head, the first tile's query, view length, queries, keys
	int qh0, wg, jw, g, t4, lane;
	u32 kb; // validity of the warp's 16 keys
	float scale2;
};

// ex2_fma is 2^y on the FMA and integer pipes instead of the MUFU, whose
// 16 lanes per multiprocessor (against 128 for FMA) bound flash_mass90's
// sums: y is rounded to n by adding 1.5·2²³ (n lands in the low mantissa
// bits), 2^(y−n) comes from a degree-5 polynomial (relative error at most
// 2.2·10⁻⁷ on [−½, ½]; ex2.approx's is about 2⁻²²), and n is added to its
// exponent. y < −126 (−∞ included) gives 0, as ex2.approx.ftz gives for
// results below 2⁻¹²⁶. About 12 instructions where ex2 is one, but each
// MUFU instruction occupies its pipe for 8 cycles of a quarter SM.
__device__ __forceinline__ float ex2_fma(float y) {
	float yc = fmaxf(y, -127.0f);
	float t = __fadd_rn(yc, 12582912.0f);
	float f = __fsub_rn(yc, __fsub_rn(t, 12582912.0f)); // exact, in [−½, ½]
	float p = fmaf(fmaf(fmaf(fmaf(fmaf(0.00132764725f, f, 0.00967554096f), f, 0.0555071309f), f, 0.240221202f), f,
			    0.693146944f),
		       f, 1.00000012f);
	float r = __int_as_float((int)((unsigned)__float_as_int(p) + ((unsigned)__float_as_int(t) << 23)));
	return y < -126.0f ? 0.0f : r;
}

// m_issue waits for query tile it and issues sc = Kᵀ-block·Qᵀ-tile for the
// warpgroup's 64 keys (committed).
__device__ __forceinline__ void m_issue(const MassCtx &x, float sc[W_MQ / 2], int it) {
	int s = it % W_STAGES;
	mbar_wait(x.full + 8 * s, (it / W_STAGES) & 1);
	proxy_fence();
	w_scores(sc, x.ka, W_MK, x.wg, x.qa + s * W_MQ * HD * 2);
}

// m_terms adds the terms of the query tile whose scores are cur (queries
// i0 …, their statistics at qs2) to acc: w·2^(s·scale2 − m) per query,
// in query order. MASKED: some query of the tile comes before some key of
// the warp, so each term checks; else none does (the loop then has no
// compare and select per term).
template <bool MASKED>
__device__ __forceinline__ void m_terms(const MassCtx &x, float acc[2], const float cur[W_MQ / 2], const float2 *qs2, int i0) {
#pragma unroll
	for (int n8 = 0; n8 < W_MQ / 8; n8++) {
#pragma unroll
		for (int e2 = 0; e2 < 2; e2++) {
			int col = n8 * 8 + 2 * x.t4 + e2; // query i0+col
			float2 ms = qs2[col];
#pragma unroll
			for (int r = 0; r < 2; r++) {
				float y = fmaf(cur[4 * n8 + 2 * r + e2], x.scale2, -ms.x);
				if (MASKED && x.jw + x.g + 8 * r > x.L + i0 + col) {
					y = NEG_INF;
				}
				acc[r] += (W_MPOLY_ON(4 * n8 + 2 * e2 + r) ? ex2_fma(y) : ex2(y)) * ms.y;
			}
		}
	}
}

// m_step adds query tile it's terms to acc, hands the tile's stage back,
// and after a query head's last tile stores its mass. (The two consumer
// warpgroups overlap each other's MMAs and sums, in strict turns with
// W_PINGPONG; a pipeline across tiles within a warpgroup made ptxas
// serialise the MMAs.)
__device__ __forceinline__ void m_step(const MassCtx &x, float acc[2], int it) {
	int s = it % W_STAGES, qh = x.qh0 + it / x.QT, i0 = x.istart + it % x.QT * W_MQ;
	float cur[W_MQ / 2]; // Sᵀ: keys g, g+8; queries 8n+2t4 and +1 in cur[4n … 4n+3]
	pp_turn(x.wg, it, x.T); // every tile is a round: both warpgroups take all T
	m_issue(x, cur, it);
	pp_pass(x.wg, it, x.T);
	wg_wait<0>();
	w_fence(cur);
	const float2 *qs2 = (const float2 *)(x.ssm + s * W_MQ * 8);
	if (x.jw + 15 <= x.L + i0) { // every query of the tile sees every key of the warp
		m_terms<false>(x, acc, cur, qs2, i0);
	} else {
		m_terms<true>(x, acc, cur, qs2, i0);
	}
	w_release(x.empty + 8 * s, x.lane);
	if (it % x.QT == x.QT - 1) { // the last tile of query head qh
#pragma unroll
		for (int r = 0; r < 2; r++) {
			float a = quad_sum(acc[r]);
			int j = x.jw + x.g + 8 * r;
			if (x.t4 == 0 && j < x.n) {
				x.mass[(long long)qh * x.n + j] = (x.kb >> (x.g + 8 * r) & 1) ? a : 0.0f;
			}
			acc[r] = 0.0f;
		}
	}
}

// flash_mass90 is flash_mass on wgmma: grid (NP/W_MK, Hkv), W_THREADS
// threads, W_MSHARED bytes of dynamic shared memory. A block owns W_MK keys
// of one KV head, 64 per consumer warpgroup (the A operand of Sᵀ = K·Qᵀ,
// from shared memory), and the producer warp streams the query tiles of
// W_MQ rows that can see them, with each query's exponent base and weight,
// through the ring of stages, for each query head of the group in turn.
// Every thread sums its two keys' terms over the tiles in a fixed order and
// the quad adds them up: deterministic, no atomics, as flash_mass.
extern "C" __global__ void __launch_bounds__(W_THREADS, 1) flash_mass90(
	float *__restrict__ mass, const float2 *__restrict__ qstat, const bf16 *__restrict__ qr,
	const bf16 *__restrict__ kr, const u32 *__restrict__ bits, int S, int sp, int L, int np, int hq, int hkv,
	float scale2) {
	extern __shared__ __align__(16) unsigned char smem[];
	u32 pad = (1024 - smem_addr(smem) % 1024) % 1024;
	unsigned char *ksm = smem + pad, *qsm = ksm + W_MK * HD * 2, *ssm = qsm + W_STAGES * W_MQ * HD * 2;
	u32 ka = smem_addr(ksm), qa = smem_addr(qsm);
	u32 full = smem_addr(ssm + W_STAGES * W_MQ * 8), empty = full + 8 * W_STAGES; // mbarriers [W_STAGES] each

	int tid = threadIdx.x, warp = warp_uniform(tid / 32), lane = tid % 32;
	int h = blockIdx.y, group = hq / hkv, j0 = blockIdx.x * W_MK, n = L + S;
	int istart = max(0, j0 - L) / W_MQ * W_MQ;               // earlier queries see none of the block's keys
	int QT = (S - istart + W_MQ - 1) / W_MQ, T = max(0, group * QT); // query tiles per head, in all
	w_ring_init(full, empty);

	if (warp >= 4 * W_WGS) { // the producer
		set_regs_producer();
		int pt = tid - 128 * W_WGS;
		for (int it = 0; it < T; it++) {
			int s = it % W_STAGES, qh = h * group + it / QT, i0 = istart + it % QT * W_MQ;
			w_acquire(empty, it);
			load_tile<W_MQ>(qsm + s * W_MQ * HD * 2, qr + ((long long)qh * sp + i0) * HD, pt);
			float2 *st = (float2 *)(ssm + s * W_MQ * 8);
			if (pt < W_MQ / 2) {
				cp_async16(st + 2 * pt, qstat + (long long)qh * sp + i0 + 2 * pt, true);
			}
			mbar_arrive_copies(full + 8 * s);
		}
		cp_async_wait();
		return;
	}
	set_regs_consumer();

	int wg = warp / 4, g = lane / 4, t4 = lane % 4;
	int jw = j0 + 64 * wg + 16 * (warp % 4); // the warp's first key
	w_load_rows<W_MK>(ksm, kr + ((long long)h * np + j0) * HD, wg);
	const u32 *bh = bits + (long long)h * np / 32;
	u32 kb = bh[jw / 32] >> (jw % 32); // validity of the warp's 16 keys

	MassCtx x = {mass, ssm, ka, qa, full, empty, T, QT, istart, L, S, n, h * group, wg, jw, g, t4, lane, kb, scale2};
	float acc[2] = {0.0f, 0.0f}; // keys jw + g + 8r
	pp_start(wg, T);
	for (int it = 0; it < T; it++) {
		m_step(x, acc, it);
	}
}
#endif // KVC_WGMMA
