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
// Structure (both kernels, WARPS warps, 16 rows of the mma M dimension per
// warp): the operand that stays (queries in flash_fwd, keys in flash_mass)
// is rotated once into shared memory and kept in registers as mma A
// fragments; the operand that streams (key tiles, query tiles) comes in
// tiles of TR rows, one tile ahead: each thread loads one piece of the next
// tile (8 dimension pairs of one row, with their cos and sin) into
// registers while the current tile computes, then rotates it into the
// other half of a double-buffered shared tile; values are copied with
// cp.async, also one tile ahead. One barrier per tile.

#ifndef HEAD_DIM
#error "compile with -DHEAD_DIM=<head dimension>"
#endif
#if HEAD_DIM != 64 && HEAD_DIM != 128
#error "flash.cu takes HEAD_DIM 64 or 128"
#endif

#define HD HEAD_DIM
#define HALF (HD / 2)
#define HDP (HD + 8)     // padded bf16 row of an mma tile: ldmatrix rows fall in distinct banks
#define TR (4096 / HD)   // rows of a streamed tile: 32 keys or queries for HD 128, 64 for HD 64
#define WARPS 8
#define THREADS (WARPS * 32)
#define BQ (16 * WARPS)  // queries per flash_fwd block
#define BKM (16 * WARPS) // keys per flash_mass block
#define PIECES (HALF / 8) // rotation pieces (8 dimension pairs) per row
#define CPR (HD / 8)     // 16-byte pieces per bf16 row
#define FULL_MASK 0xffffffffu
#define NEG_INF __int_as_float(0xff800000)
#define LN2 0.69314718055994531f
#define LOG2E 1.44269504088896341f
#if TR * PIECES != THREADS
#error "a streamed tile must have one rotation piece per thread"
#endif

// Shared memory (bytes). TILE_BYTES is one mma tile [TR][HDP] bf16.
#define TILE_BYTES (TR * HDP * 2)
// flash_fwd: rotated keys [2][TR][HDP], values [2][TR][HDP], queries
// [BQ][HDP], key metadata (slot and position [3][TR] each, validity bits
// [3][2]).
#define FWD_SHARED (4 * TILE_BYTES + BQ * HDP * 2 + 6 * TR * 4 + 6 * 4)
// flash_mass: rotated queries [2][TR][HDP], keys [BKM][HDP], per-query
// exponent base and weight/denominator [2][TR] each.
#define MASS_SHARED (2 * TILE_BYTES + BKM * HDP * 2 + 4 * TR * 4)

typedef unsigned short bf16; // raw bf16 bits
typedef unsigned int u32;

#ifndef FLASH_HOST_EMULATION
// The PTX this file uses. (A host emulation for development may supply
// these instead.)

// smem_addr is p's address in the shared window, as ldmatrix and cp.async
// take it.
__device__ __forceinline__ u32 smem_addr(const void *p) {
	u32 a;
	asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
	return a;
}

// cp_async16 copies 16 bytes from global src to shared dst in the
// background, or writes 16 zero bytes when !ok (src is then not read).
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool ok) {
	asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(ok ? 16 : 0)
		     : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// cp_async_wait waits for all of this thread's copies.
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// ldsm4 loads four 8×8 bf16 matrices: lane l gives the address of row l%8
// of matrix l/8; r[m] receives row lane/4, columns 2·(lane%4) and +1 of
// matrix m.
__device__ __forceinline__ void ldsm4(u32 r[4], const bf16 *p) {
	asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
		     : "r"(smem_addr(p)));
}

// ldsm4t is ldsm4 of the transposed matrices: r[m] receives rows
// 2·(lane%4) and +1, column lane/4.
__device__ __forceinline__ void ldsm4t(u32 r[4], const bf16 *p) {
	asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
		     : "r"(smem_addr(p)));
}

// mma adds A·B to the 16×8 float32 tile c: a is the 16×16 bf16 A
// fragment, b0 and b1 the 16×8 B fragment (see the PTX ISA for the
// layouts; lane = 4·g + t holds c rows g and g+8, columns 2t and 2t+1).
__device__ __forceinline__ void mma(float c[4], const u32 a[4], u32 b0, u32 b1) {
	asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
	    : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
	    : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// exp2 of x (ex2.approx: relative error about 2⁻²²; −∞ gives 0).
__device__ __forceinline__ float ex2(float x) {
	float y;
	asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
	return y;
}

// pack2 rounds lo and hi to bf16 (to nearest even) into one word, lo in
// the low half as mma fragments and memory order want it.
__device__ __forceinline__ u32 pack2(float lo, float hi) {
	u32 r;
	asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
	return r;
}
#endif // FLASH_HOST_EMULATION

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

// load_key_piece reads this thread's piece of key tile [j0, j0+TR) (row
// threadIdx.x / PIECES) from the tile's metadata mslot and mpos.
__device__ __forceinline__ void load_key_piece(Piece &u, const Gather &G, const int *mslot, const int *mpos, int j0) {
	int t = threadIdx.x / PIECES, c = threadIdx.x % PIECES * 8;
	int p = mpos[t];
	const bf16 *x = G.k;
	long long tab = 0;
	if (p >= 0) {
		x = key_row(G, j0 + t, mslot[t], false);
		tab = (long long)p * HALF;
	}
	load_piece(u, x, G.cosT + tab, G.sinT + tab, c, p >= 0);
}

// issue_values starts the copies of the values of key tile [j0, j0+TR)
// into vdst [TR][HDP]; padding rows become zeros, so that a probability of
// 0 never meets a NaN. All threads take part, one commit group.
__device__ __forceinline__ void issue_values(bf16 *vdst, const int *mslot, const int *mpos, const Gather &G, int j0) {
	for (int e = threadIdx.x; e < TR * CPR; e += THREADS) {
		int t = e / CPR, c = e % CPR * 8;
		bool ok = mpos[t] >= 0;
		const bf16 *x = ok ? key_row(G, j0 + t, mslot[t], true) : G.v; // any readable address when !ok
		cp_async16(vdst + t * HDP + c, x + c, ok);
	}
	cp_async_commit();
}

// store_key_meta writes the metadata of key tile [j0, j0+TR) to mslot,
// mpos and the validity words mvalid[0 … TR/32−1]. Threads below TR (whole
// warps) call it.
__device__ __forceinline__ void store_key_meta(int *mslot, int *mpos, u32 *mvalid, int slot, int p) {
	int t = threadIdx.x;
	mslot[t] = slot;
	mpos[t] = p;
	u32 bits = __ballot_sync(FULL_MASK, p >= 0);
	if (t % 32 == 0) {
		mvalid[t / 32] = bits;
	}
}

// flash_fwd computes out (and stats unless null) for BQ queries of one
// query head per block: grid (⌈S/BQ⌉, Hq), THREADS threads, FWD_SHARED
// bytes of dynamic shared memory. Blocks run the last (longest) query
// tiles first. Each warp keeps 16 rotated queries as A fragments, and per
// row the running max m (in log2 units), the running denominator l (per
// thread, summed over the quad at the end) and the output accumulator
// [16][HD] in registers; key tiles of TR keys stream through shared memory
// (tile n+1 loads while tile n computes). scale2 is scale·log2(e).
extern "C" __global__ void __launch_bounds__(THREADS, 1) flash_fwd(
	bf16 *__restrict__ out, float *__restrict__ stats, const bf16 *__restrict__ q, const bf16 *__restrict__ k,
	const bf16 *__restrict__ v, const bf16 *__restrict__ ck, const bf16 *__restrict__ cv,
	const int *__restrict__ slots, const int *__restrict__ pos, const int *__restrict__ qpos,
	const float *__restrict__ cosT, const float *__restrict__ sinT, int S, int L, int cap, int hq, int hkv,
	float scale2) {
	extern __shared__ __align__(16) unsigned char smem[];
	bf16 *krot = (bf16 *)smem;              // [2][TR][HDP]
	bf16 *vbuf = krot + 2 * TR * HDP;       // [2][TR][HDP]
	bf16 *qs = vbuf + 2 * TR * HDP;         // [BQ][HDP]
	int *mslot = (int *)(qs + BQ * HDP);    // [3][TR]
	int *mpos = mslot + 3 * TR;             // [3][TR]
	u32 *mvalid = (u32 *)(mpos + 3 * TR);   // [3][2]: bit t of a tile's keys

	int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
	int qh = blockIdx.y, h = qh / (hq / hkv);
	int q0 = (gridDim.x - 1 - blockIdx.x) * BQ, qw = q0 + 16 * warp;
	int base = qpos[h], n = L + S;
	int nb = L + min(S, q0 + BQ);  // keys this block's queries can see: a prefix
	int T = (nb + TR - 1) / TR;    // key tiles, ≥ 1
	Gather G = {k, v, ck, cv, cosT, sinT, L, cap, hkv, h};
	int prow = tid / PIECES, pc = tid % PIECES * 8; // this thread's rotation piece of a streamed tile

	// Metadata of key tiles 0 and 1.
	if (tid < TR) {
		for (int tt = 0; tt < 2 && tt < T; tt++) {
			int slot, p;
			key_meta(slot, p, tt * TR + tid, L, n, slots, pos, h, base);
			store_key_meta(mslot + tt * TR, mpos + tt * TR, mvalid + tt * 2, slot, p);
		}
	}
	// The block's queries, rotated; rows past the chunk are zeros.
	for (int e = tid; e < BQ * PIECES; e += THREADS) {
		int r = e / PIECES, c = e % PIECES * 8, i = q0 + r;
		Piece u;
		long long tab = (long long)(base + i) * HALF;
		load_piece(u, q + ((long long)i * hq + qh) * HD, cosT + tab, sinT + tab, c, i < S);
		store_piece(qs + r * HDP, u, c);
	}
	__syncthreads();
	u32 qf[HD / 16][4];
#pragma unroll
	for (int ks = 0; ks < HD / 16; ks++) {
		ldsm4(qf[ks], qs + (16 * warp + lane % 16) * HDP + ks * 16 + lane / 16 * 8);
	}
	{ // key tile 0
		Piece u;
		load_key_piece(u, G, mslot, mpos, 0);
		issue_values(vbuf, mslot, mpos, G, 0);
		store_piece(krot + prow * HDP, u, pc);
		cp_async_wait();
	}

	float o[HD / 8][4];
#pragma unroll
	for (int d = 0; d < HD / 8; d++) {
		o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
	}
	float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.0f, l1 = 0.0f; // rows g and g+8 of the warp

	for (int it = 0; it < T; it++) {
		int st = it % 2, j0 = it * TR;
		__syncthreads(); // tile it is in krot[st] and vbuf[st]; tile it−1 is consumed
		Piece u;         // this thread's piece of tile it+1, rotated after the compute
		if (it + 1 < T) {
			const int *ms = mslot + (it + 1) % 3 * TR, *mp = mpos + (it + 1) % 3 * TR;
			load_key_piece(u, G, ms, mp, j0 + TR);
			issue_values(vbuf + (it + 1) % 2 * TR * HDP, ms, mp, G, j0 + TR);
		}
		int nslot = 0, npos = -1; // metadata of tile it+2, stored after the compute
		if (it + 2 < T && tid < TR) {
			key_meta(nslot, npos, j0 + 2 * TR + tid, L, n, slots, pos, h, base);
		}

		if (qw < S && j0 <= L + qw + 15) { // some key of the tile is visible to the warp
			const bf16 *ks_ = krot + st * TR * HDP, *vs = vbuf + st * TR * HDP;
			float sc[TR / 8][4];
#pragma unroll
			for (int nt = 0; nt < TR / 8; nt++) {
				sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
			}
#pragma unroll
			for (int ks = 0; ks < HD / 16; ks++) {
#pragma unroll
				for (int np = 0; np < TR / 16; np++) {
					u32 b[4];
					ldsm4(b, ks_ + (np * 16 + lane % 8 + lane / 16 * 8) * HDP + ks * 16 + lane / 8 % 2 * 8);
					mma(sc[2 * np], qf[ks], b[0], b[1]);
					mma(sc[2 * np + 1], qf[ks], b[2], b[3]);
				}
			}
			const u32 *mv = mvalid + it % 3 * 2;
			unsigned long long vb = mv[0];
#if TR == 64
			vb |= (unsigned long long)mv[1] << 32;
			bool all = vb == ~0ull;
#else
			bool all = vb == 0xffffffffull;
#endif
			bool full = all && j0 + TR - 1 <= L + qw; // no key of the tile is masked for the warp
			float mx0 = NEG_INF, mx1 = NEG_INF;
#pragma unroll
			for (int nt = 0; nt < TR / 8; nt++) {
#pragma unroll
				for (int e = 0; e < 4; e++) {
					float x = sc[nt][e] * scale2;
					if (!full) {
						int col = nt * 8 + 2 * t4 + e % 2, i = qw + g + 8 * (e / 2);
						bool vis = (vb >> col & 1) && j0 + col <= L + i;
						x = vis ? x : NEG_INF;
					}
					sc[nt][e] = x;
				}
				mx0 = fmaxf(mx0, fmaxf(sc[nt][0], sc[nt][1]));
				mx1 = fmaxf(mx1, fmaxf(sc[nt][2], sc[nt][3]));
			}
			float mn0 = fmaxf(m0, quad_max(mx0)), mn1 = fmaxf(m1, quad_max(mx1));
			// Subtract 0 while a row has seen no key, so that −∞ − −∞
			// never happens; its p, l and o are then all 0.
			float mu0 = mn0 == NEG_INF ? 0.0f : mn0, mu1 = mn1 == NEG_INF ? 0.0f : mn1;
			float c0 = ex2(m0 - mu0), c1 = ex2(m1 - mu1);
			m0 = mn0;
			m1 = mn1;
			float rs0 = 0.0f, rs1 = 0.0f;
			u32 pa[TR / 16][4]; // P as A fragments of the P·V mma
#pragma unroll
			for (int nt = 0; nt < TR / 8; nt++) {
				float p0 = ex2(sc[nt][0] - mu0), p1 = ex2(sc[nt][1] - mu0);
				float p2 = ex2(sc[nt][2] - mu1), p3 = ex2(sc[nt][3] - mu1);
				rs0 += p0 + p1;
				rs1 += p2 + p3;
				pa[nt / 2][nt % 2 * 2] = pack2(p0, p1);
				pa[nt / 2][nt % 2 * 2 + 1] = pack2(p2, p3);
			}
			l0 = l0 * c0 + rs0;
			l1 = l1 * c1 + rs1;
#pragma unroll
			for (int d = 0; d < HD / 8; d++) {
				o[d][0] *= c0;
				o[d][1] *= c0;
				o[d][2] *= c1;
				o[d][3] *= c1;
			}
#pragma unroll
			for (int kk = 0; kk < TR / 16; kk++) {
#pragma unroll
				for (int dp = 0; dp < HD / 16; dp++) {
					u32 b[4];
					ldsm4t(b, vs + (kk * 16 + lane % 8 + lane / 8 % 2 * 8) * HDP + dp * 16 + lane / 16 * 8);
					mma(o[2 * dp], pa[kk], b[0], b[1]);
					mma(o[2 * dp + 1], pa[kk], b[2], b[3]);
				}
			}
		}

		if (it + 1 < T) {
			store_piece(krot + (it + 1) % 2 * TR * HDP + prow * HDP, u, pc);
		}
		if (it + 2 < T && tid < TR) {
			int m3 = (it + 2) % 3;
			store_key_meta(mslot + m3 * TR, mpos + m3 * TR, mvalid + m3 * 2, nslot, npos);
		}
		cp_async_wait(); // the values of tile it+1
	}

	if (qw >= S) {
		return;
	}
	l0 = quad_sum(l0);
	l1 = quad_sum(l1);
	float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
	int i0 = qw + g, i1 = qw + g + 8;
	if (i0 < S) {
		u32 *y = (u32 *)(out + ((long long)i0 * hq + qh) * HD + 2 * t4);
#pragma unroll
		for (int d = 0; d < HD / 8; d++) {
			y[d * 4] = pack2(o[d][0] * inv0, o[d][1] * inv0);
		}
	}
	if (i1 < S) {
		u32 *y = (u32 *)(out + ((long long)i1 * hq + qh) * HD + 2 * t4);
#pragma unroll
		for (int d = 0; d < HD / 8; d++) {
			y[d * 4] = pack2(o[d][2] * inv1, o[d][3] * inv1);
		}
	}
	if (stats != 0 && t4 == 0) {
		if (i0 < S) {
			stats[(long long)qh * S + i0] = m0 * LN2;
			stats[(long long)(hq + qh) * S + i0] = l0;
		}
		if (i1 < S) {
			stats[(long long)qh * S + i1] = m1 * LN2;
			stats[(long long)(hq + qh) * S + i1] = l1;
		}
	}
}

// load_query_piece reads this thread's piece of query tile [i0, i0+TR) of
// query head qh (row threadIdx.x / PIECES); rows past the chunk are zeros.
__device__ __forceinline__ void load_query_piece(Piece &u, const bf16 *q, const float *cosT, const float *sinT, int S,
						 int hq, int qh, int base, int i0) {
	int i = i0 + threadIdx.x / PIECES, c = threadIdx.x % PIECES * 8;
	bool ok = i < S;
	long long tab = ok ? (long long)(base + i) * HALF : 0;
	load_piece(u, ok ? q + ((long long)i * hq + qh) * HD : q, cosT + tab, sinT + tab, c, ok);
}

// query_stats returns, for query i of query head qh, the exponent base
// m·log2(e) and the factor w/l that turn a score into its weighted
// probability; 0 and 0 past the chunk.
__device__ __forceinline__ void query_stats(float &mm, float &wl, const float *__restrict__ stats,
					    const float *__restrict__ weights, int S, int hq, int qh, int i) {
	mm = 0.0f;
	wl = 0.0f;
	if (i < S) {
		float m = stats[(long long)qh * S + i], l = stats[(long long)(hq + qh) * S + i];
		mm = m * LOG2E;
		wl = l > 0.0f ? weights[i] / l : 0.0f;
	}
}

// flash_mass sets mass[qh, j] = Σᵢ wᵢ·p(qh, i, j) from the stats that
// flash_fwd wrote: grid (⌈(L+S)/BKM⌉, Hkv), THREADS threads, MASS_SHARED
// bytes of dynamic shared memory. A block owns BKM keys of one KV head
// (16 per warp, rotated once, kept as A fragments) and walks the query
// tiles that can see them, for each query head of the group in turn,
// recomputing the scores kᵀq with mma and each probability from the
// query's m and l; each thread sums its keys' column terms and the quad
// adds them up, so there are no atomics and the result is deterministic.
// Padding keys get 0.
extern "C" __global__ void __launch_bounds__(THREADS, 1) flash_mass(
	float *__restrict__ mass, const float *__restrict__ stats, const float *__restrict__ weights,
	const bf16 *__restrict__ q, const bf16 *__restrict__ k, const bf16 *__restrict__ ck,
	const int *__restrict__ slots, const int *__restrict__ pos, const int *__restrict__ qpos,
	const float *__restrict__ cosT, const float *__restrict__ sinT, int S, int L, int cap, int hq, int hkv,
	float scale2) {
	extern __shared__ __align__(16) unsigned char smem[];
	bf16 *qrot = (bf16 *)smem;           // [2][TR][HDP]
	bf16 *ks = qrot + 2 * TR * HDP;      // [BKM][HDP]
	float *mmS = (float *)(ks + BKM * HDP); // [2][TR]: m·log2(e) per query
	float *wlS = mmS + 2 * TR;           // [2][TR]: w/l per query

	int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
	int h = blockIdx.y, group = hq / hkv;
	int j0 = blockIdx.x * BKM, jw = j0 + 16 * warp;
	int base = qpos[h], n = L + S;
	Gather G = {k, 0, ck, 0, cosT, sinT, L, cap, hkv, h};
	int prow = tid / PIECES, pc = tid % PIECES * 8; // this thread's rotation piece of a streamed tile

	// The block's keys, rotated; padding and keys past the end are zeros.
	for (int e = tid; e < BKM * PIECES; e += THREADS) {
		int t = e / PIECES, c = e % PIECES * 8, j = j0 + t;
		int slot, p;
		key_meta(slot, p, j, L, n, slots, pos, h, base);
		Piece u;
		long long tab = p >= 0 ? (long long)p * HALF : 0;
		load_piece(u, p >= 0 ? key_row(G, j, slot, false) : k, cosT + tab, sinT + tab, c, p >= 0);
		store_piece(ks + t * HDP, u, c);
	}
	bool kv0, kv1; // whether keys jw+g and jw+g+8 are real
	{
		int slot, p;
		key_meta(slot, p, jw + g, L, n, slots, pos, h, base);
		kv0 = p >= 0;
		key_meta(slot, p, jw + g + 8, L, n, slots, pos, h, base);
		kv1 = p >= 0;
	}
	int istart = max(0, j0 - L);                         // earlier queries see none of the block's keys
	int QT = (S - istart + TR - 1) / TR, T = group * QT; // query tiles per head, in all
	{ // query tile 0
		Piece u;
		load_query_piece(u, q, cosT, sinT, S, hq, h * group, base, istart);
		store_piece(qrot + prow * HDP, u, pc);
		if (tid < TR) {
			query_stats(mmS[tid], wlS[tid], stats, weights, S, hq, h * group, istart + tid);
		}
	}
	__syncthreads();
	u32 kf[HD / 16][4];
#pragma unroll
	for (int kq = 0; kq < HD / 16; kq++) {
		ldsm4(kf[kq], ks + (16 * warp + lane % 16) * HDP + kq * 16 + lane / 16 * 8);
	}

	float acc0 = 0.0f, acc1 = 0.0f; // this thread's terms for keys jw+g and jw+g+8
	for (int it = 0; it < T; it++) {
		int st = it % 2, qh = h * group + it / QT, i0 = istart + it % QT * TR;
		__syncthreads(); // tile it is in qrot[st]; tile it−1 is consumed
		Piece u;         // this thread's piece of tile it+1, rotated after the compute
		float nmm = 0.0f, nwl = 0.0f;
		if (it + 1 < T) {
			int qn = h * group + (it + 1) / QT, in = istart + (it + 1) % QT * TR;
			load_query_piece(u, q, cosT, sinT, S, hq, qn, base, in);
			if (tid < TR) {
				query_stats(nmm, nwl, stats, weights, S, hq, qn, in + tid);
			}
		}

		int ilast = min(S, i0 + TR) - 1;
		if (jw < n && jw <= L + ilast) { // some query of the tile sees some key of the warp
			const bf16 *qs = qrot + st * TR * HDP;
			const float *mmT = mmS + st * TR, *wlT = wlS + st * TR;
			float sc[TR / 8][4];
#pragma unroll
			for (int nt = 0; nt < TR / 8; nt++) {
				sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.0f;
			}
#pragma unroll
			for (int kq = 0; kq < HD / 16; kq++) {
#pragma unroll
				for (int np = 0; np < TR / 16; np++) {
					u32 b[4];
					ldsm4(b, qs + (np * 16 + lane % 8 + lane / 16 * 8) * HDP + kq * 16 + lane / 8 % 2 * 8);
					mma(sc[2 * np], kf[kq], b[0], b[1]);
					mma(sc[2 * np + 1], kf[kq], b[2], b[3]);
				}
			}
			bool full = jw + 15 <= L + i0; // every query of the tile sees every key of the warp
#pragma unroll
			for (int nt = 0; nt < TR / 8; nt++) {
#pragma unroll
				for (int e = 0; e < 4; e++) {
					int col = nt * 8 + 2 * t4 + e % 2; // query i0+col; key jw+g+8·(e/2)
					float x = sc[nt][e] * scale2 - mmT[col];
					if (!full && jw + g + 8 * (e / 2) > L + i0 + col) {
						x = NEG_INF;
					}
					float p = ex2(x) * wlT[col];
					if (e < 2) {
						acc0 += p;
					} else {
						acc1 += p;
					}
				}
			}
		}
		if (it % QT == QT - 1) { // the last tile of query head qh
			float a0 = quad_sum(acc0), a1 = quad_sum(acc1);
			if (t4 == 0) {
				int ja = jw + g, jb = jw + g + 8;
				if (ja < n) {
					mass[(long long)qh * n + ja] = kv0 ? a0 : 0.0f;
				}
				if (jb < n) {
					mass[(long long)qh * n + jb] = kv1 ? a1 : 0.0f;
				}
			}
			acc0 = acc1 = 0.0f;
		}
		if (it + 1 < T) {
			store_piece(qrot + (it + 1) % 2 * TR * HDP + prow * HDP, u, pc);
			if (tid < TR) {
				mmS[(it + 1) % 2 * TR + tid] = nmm;
				wlS[(it + 1) % 2 * TR + tid] = nwl;
			}
		}
	}
}
