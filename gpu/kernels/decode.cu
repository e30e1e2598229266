// Flash-decoding attention for the CUDA backend (package gpu): a chunk of
// 1–16 queries over [view ; chunk], compiled by NVRTC after
// kernels/storage.cuh once per head dimension (-DHEAD_DIM=64, 128 or 256),
// for bf16 storage. Layouts and semantics are attention.cu's: q [S, Hq·HD];
// k, v [S, Hkv·HD] (the chunk); ck, cv [Hkv, cap, HD] (the cache); slots,
// pos [Hkv·L] (the view; a negative slot is padding); qpos [Hkv]; cos, sin
// [P, HD/2] (the RoPE table); out [S, Hq·HD]; stats [2, Hq, S]; mass
// [Hq, L+S]. Key j < L is view entry j, key j ≥ L chunk token j−L; query i
// sees key j when the key is not padding and j ≤ L+i. Keys and queries are
// rotated by RoPE as they are loaded; all arithmetic is float32.
//
// decode_attention splits the keys into runs (split-K), one block per
// (group of DEC_HEADS KV heads, group of DEC_ROWS query rows, run), and
// reads each key and value row once for all the rows of its group: the
// query heads of the KV head's GQA group times the chunk's queries. A
// block's warps are split among its DEC_HEADS heads, WPH warps each. Each
// key row is taken by LPK lanes (a "unit"). The keys, values and RoPE
// rows stream through shared memory with cp.async, DEC_STAGES steps of
// STEP_KEYS keys per head deep: while a step is computed, the copies of
// the next DEC_STAGES−1 are in flight. Each lane copies 16 bytes of the
// key and of the value (8 consecutive dimensions) and computes with the 4
// dimensions dl.. of the lower half of the head and the 4 at HALF+dl..,
// so that the RoPE pairs it rotates are its own and it needs 4 cos and 4
// sin per key, which it copies itself (DEC_HEADS = 1): a warp waits for
// its own copies only. Where the block's heads see the same positions
// (the host says so: `index`, or one row of positions for all heads), a
// key's RoPE row goes to shared memory once for the block, copied by the
// lanes of its first two heads, and the block waits at a barrier. The
// lanes of a unit keep their own online softmax state per row; units merge
// through shuffles and shared memory at the end of the run, in a fixed
// order, and the run's partial result (unnormalised accumulator, max,
// denominator) goes to part. decode_combine merges the runs in run order
// and rounds the output once; decode_mass turns the scores decode_attention
// saved into the attention mass using the merged row max and denominator.
// Nothing uses atomics: results are the same on every run.

#ifndef HEAD_DIM
#error "compile with -DHEAD_DIM=64, 128 or 256"
#endif

typedef bf16 T;

#define HD HEAD_DIM
#define HALF (HD / 2)
#define VEC 8                 // bf16 per 16-byte load
#define LPK (HD / VEC)        // lanes per key row: 8, 16 or 32
#define KPW (32 / LPK)        // keys a warp loads at once
#ifndef DEC_HEADS
#define DEC_HEADS 1 // KV heads per block, sharing the keys' RoPE rows
#endif
#ifndef DEC_WARPS
#define DEC_WARPS (DEC_HEADS > 4 ? DEC_HEADS : 4)
#endif
#define DEC_THREADS (DEC_WARPS * 32)
#define WPH (DEC_WARPS / DEC_HEADS) // warps per KV head
#define HUNITS (WPH * KPW)          // key units per KV head
// The defaults are BenchmarkDecodeStep's best on an H100 (2026-12-07):
// 4 keys per unit and step, 8 warps per multiprocessor (two blocks of 4
// warps, up to 255 registers a thread), 3 stages (60 KiB of shared
// memory a block with 4 heads), 4 heads per block where positions agree:
// 9.94 ms per 8B decoding step after 32K tokens, against 10.57 with one
// head per block.
#ifndef DEC_UNROLL
#define DEC_UNROLL 4 // keys per unit per step
#endif
#ifndef DEC_MINBLOCKS
#define DEC_MINBLOCKS (DEC_WARPS > 8 ? 1 : 8 / DEC_WARPS) // blocks per multiprocessor the registers must allow
#endif
#ifndef DEC_STAGES
#define DEC_STAGES 3 // steps in shared memory: one computed, the rest in flight
#endif
#define STEP_KEYS (HUNITS * DEC_UNROLL) // keys per KV head a block takes per step
// A stage holds a step's copies: first the keys and values, 16 bytes per
// key and lane, at [(u·2 + c)·DEC_THREADS + thread] (c = 0 key, 1 value);
// then the RoPE rows, 2·LPK chunks per key kk = u·HUNITS + unit of a
// head, at KV_CHUNKS + kk·2·LPK + c·LPK + ul for the 4 cos (c = 0) and
// the 4 sin (c = 1) that lane ul of the unit uses.
#define KV_CHUNKS (DEC_UNROLL * 2 * DEC_THREADS)
#define ROPE_CHUNKS (STEP_KEYS * 2 * LPK)
#define STAGE_CHUNKS (KV_CHUNKS + ROPE_CHUNKS)
#define DEC_SHARED (DEC_STAGES * STAGE_CHUNKS * 16) // dynamic shared bytes
#define DEC_ROWS 4             // query rows (query head, query) per block
#define COMBINE_THREADS 128
#define COMBINE_WARPS (COMBINE_THREADS / 32)
#define MAX_SPLIT 1024         // runs decode_combine merges at most
#define FULL_MASK 0xffffffffu
#define NEG_INF __int_as_float(0xff800000)
#define LOG2E 1.44269504088896341f

#if HD != 64 && HD != 128 && HD != 256
#error "decode.cu takes head dimensions 64, 128 and 256"
#endif
#if DEC_STAGES < 2 || DEC_STAGES * DEC_UNROLL > 32
#error "DEC_STAGES must be at least 2, and DEC_STAGES·DEC_UNROLL at most 32"
#endif
#if DEC_WARPS % DEC_HEADS != 0
#error "DEC_WARPS must be a multiple of DEC_HEADS"
#endif
#if DEC_WARPS * DEC_ROWS * HD * 4 > DEC_SHARED
#error "the warps' accumulators must fit in the stages' shared memory"
#endif

// widen4 widens the 4 bf16 of u into x.
__device__ __forceinline__ void widen4(uint2 u, float *x) {
	x[0] = __uint_as_float(u.x << 16);
	x[1] = __uint_as_float(u.x & 0xffff0000u);
	x[2] = __uint_as_float(u.y << 16);
	x[3] = __uint_as_float(u.y & 0xffff0000u);
}

// load_dims widens this lane's 8 dimensions of the bf16 row at p (16-byte
// aligned): the 4 at dl = 4·ul and the 4 at HALF + dl.
__device__ __forceinline__ void load_dims(const T *p, int dl, float *x) {
	widen4(*(const uint2 *)(p + dl), x);
	widen4(*(const uint2 *)(p + HALF + dl), x + 4);
}

// load4 copies the 4 floats at p (16-byte aligned) into x.
__device__ __forceinline__ void load4(const void *p, float *x) {
	float4 u = *(const float4 *)p;
	x[0] = u.x, x[1] = u.y, x[2] = u.z, x[3] = u.w;
}

// rotate applies RoPE to a lane's 8 dimensions x, the 4 pairs (x[e],
// x[4+e]) of dimensions (d, d + HALF), with cos c and sin s of d:
// x·c − x'·s for the lower, x'·c + x·s for the upper, as attention.cu
// computes k1 and k2.
__device__ __forceinline__ void rotate(float *x, const float *c, const float *s) {
#pragma unroll
	for (int e = 0; e < 4; e++) {
		float x1 = x[e], x2 = x[4 + e];
		x[e] = x1 * c[e] - x2 * s[e];
		x[4 + e] = x2 * c[e] + x1 * s[e];
	}
}

// unit_sum returns the sum of v over the LPK lanes of a unit to each.
__device__ __forceinline__ float unit_sum(float v) {
#pragma unroll
	for (int o = LPK / 2; o > 0; o /= 2) {
		v += __shfl_xor_sync(FULL_MASK, v, o);
	}
	return v;
}

// prefetch_view loads the slots and positions of keys j + u·HUNITS, u <
// DEC_UNROLL, of KV head h that are view entries before je (−1 for the
// others): each head's own positions with DEC_HEADS = 1; else those that
// all the block's heads share, the view index where index is set, else
// the first head's row.
__device__ __forceinline__ void prefetch_view(int *slot, int *p, const int *slots, const int *pos, int h, int L, int je, int j, int index) {
#pragma unroll
	for (int u = 0; u < DEC_UNROLL; u++) {
		int ju = j + u * HUNITS;
		slot[u] = -1, p[u] = 0;
		if (ju < je && ju < L) {
			slot[u] = slots[(long long)h * L + ju];
			if (DEC_HEADS == 1) {
				p[u] = pos[(long long)h * L + ju];
			} else {
				p[u] = index ? ju : pos[ju];
			}
		}
	}
}

// decode_attention: grid (Hkv/DEC_HEADS·groups, split), DEC_THREADS
// threads, where groups = ⌈G·S/DEC_ROWS⌉ for G = Hq/Hkv: block
// (hb·groups+g, z) takes rows r = g·DEC_ROWS .. of KV heads
// hb·DEC_HEADS .. (hb+1)·DEC_HEADS−1 (row r of head h is query head
// h·G + r/S, query r%S) over keys [z·per, (z+1)·per) ∩ [0, L+S). It
// writes, for each of its rows rr = qh·S+i, the unnormalised accumulator
// to part[(z·rows+rr)·HD ..] (rows = Hq·S), the row max to
// part[split·rows·HD + z·rows + rr] and the denominator to
// part[split·rows·HD + (split+z)·rows + rr], and, when scores is not
// null, every scaled score of its keys (−∞ where the key is padding or
// masked) to scores[rr·(L+S) + j]. With DEC_HEADS > 1, Hkv must be a
// multiple of DEC_HEADS, every head must see its view keys at the same
// positions (view key j at j where index is set, else at pos[j], the
// first head's row) and qpos must be the same for all heads.
extern "C" __global__ void __launch_bounds__(DEC_THREADS, DEC_MINBLOCKS) decode_attention(
	float *part, float *scores, const T *q, const T *k, const T *v,
	const T *ck, const T *cv, const int *slots, const int *pos, const int *qpos,
	const float *cosT, const float *sinT, int S, int L, int cap, int hq, int hkv, float scale,
	int per, int split, int index) {
	extern __shared__ __align__(16) unsigned char smem[]; // DEC_SHARED bytes: the stages
	uint4 *stage = (uint4 *)smem;
	__shared__ float sm_m[DEC_WARPS][DEC_ROWS], sm_l[DEC_WARPS][DEC_ROWS];
	// A step's scores, for coalesced stores; two buffers, so that a step's
	// writes never meet the previous step's reads.
	__shared__ float sm_sc[2][DEC_HEADS][DEC_ROWS][STEP_KEYS];

	int G = hq / hkv, R = G * S, groups = (R + DEC_ROWS - 1) / DEC_ROWS;
	int hb = blockIdx.x / groups, g = blockIdx.x % groups, z = blockIdx.y;
	int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	int hw = warp / WPH, h = hb * DEC_HEADS + hw; // the warp's KV head
	int ul = lane % LPK, unit = warp % WPH * KPW + lane / LPK;
	// A lane copies dimensions d0 .. d0+7 of its unit's keys and values
	// (16 bytes) and computes with dl .. dl+3 and HALF+dl .. HALF+dl+3,
	// the two halves of its 4 RoPE pairs, so that RoPE needs no other
	// lane.
	int d0 = ul * VEC, dl = ul * 4;
	int n = L + S, base = qpos[h];

	// The group's query rows, rotated: this lane's 8 dimensions of each.
	float qr[DEC_ROWS][VEC];
	int lim[DEC_ROWS]; // a row sees keys j ≤ lim (−1: no such row)
#pragma unroll
	for (int r = 0; r < DEC_ROWS; r++) {
		int rg = g * DEC_ROWS + r;
		lim[r] = -1;
#pragma unroll
		for (int e = 0; e < VEC; e++) {
			qr[r][e] = 0.0f;
		}
		if (rg < R) {
			int qh = h * G + rg / S, i = rg % S;
			lim[r] = L + i;
			load_dims(q + ((long long)i * hq + qh) * HD, dl, qr[r]);
			float c[4], s[4];
			load4(cosT + (long long)(base + i) * HALF + dl, c);
			load4(sinT + (long long)(base + i) * HALF + dl, s);
			rotate(qr[r], c, s);
		}
	}

	float m[DEC_ROWS], l[DEC_ROWS], acc[DEC_ROWS][VEC];
#pragma unroll
	for (int r = 0; r < DEC_ROWS; r++) {
		m[r] = NEG_INF, l[r] = 0.0f;
#pragma unroll
		for (int e = 0; e < VEC; e++) {
			acc[r][e] = 0.0f;
		}
	}

	int jb = z * per, je = min(n, jb + per);
	int steps = je > jb ? (je - jb + STEP_KEYS - 1) / STEP_KEYS : 0;
	// The view's slots and positions of the next step to copy, loaded a
	// step ahead so that its copies do not wait for them.
	int nslot[DEC_UNROLL], npos[DEC_UNROLL];
	prefetch_view(nslot, npos, slots, pos, h, L, je, jb + unit, index);
	unsigned okbits = 0; // bit st·DEC_UNROLL+u: key u of stage st is real
	// stage_copy queues the copies of step t into stage st and loads the
	// view of step t+1. The RoPE row of a key goes to the stage once: each
	// lane of a unit copies the 4 cos and the 4 sin it uses; with
	// DEC_HEADS > 1, the first head's lanes copy the cos and the second
	// head's the sin.
	auto stage_copy = [&](int t, int st) {
		uint4 *kv = stage + st * STAGE_CHUNKS + threadIdx.x;
		uint4 *rope = stage + st * STAGE_CHUNKS + KV_CHUNKS + ul;
#pragma unroll
		for (int u = 0; u < DEC_UNROLL; u++) {
			int kk = u * HUNITS + unit, j = jb + t * STEP_KEYS + kk;
			const T *kr = ck, *vr = cv;
			int p = 0;
			bool ok = false, in = j < je;
			if (in) {
				if (j < L) {
					if (nslot[u] >= 0) {
						long long off = ((long long)h * cap + nslot[u]) * HD;
						kr = ck + off, vr = cv + off;
						ok = true;
					}
					p = npos[u];
				} else {
					long long off = ((long long)(j - L) * hkv + h) * HD;
					kr = k + off, vr = v + off;
					p = base + (j - L), ok = true;
				}
			}
			// a key that is padding or past the run reads as zeros
			cp_async16(kv + (u * 2 + 0) * DEC_THREADS, kr + d0, ok);
			cp_async16(kv + (u * 2 + 1) * DEC_THREADS, vr + d0, ok);
			long long tp = (long long)p * HALF + dl;
			bool rok = DEC_HEADS == 1 ? ok : in; // every position is in the table
			if (DEC_HEADS == 1 || hw == 0) {
				cp_async16(rope + kk * 2 * LPK, cosT + tp, rok);
			}
			if (DEC_HEADS == 1 || hw == 1) {
				cp_async16(rope + kk * 2 * LPK + LPK, sinT + tp, rok);
			}
			unsigned bit = 1u << (st * DEC_UNROLL + u);
			okbits = ok ? okbits | bit : okbits & ~bit;
		}
		prefetch_view(nslot, npos, slots, pos, h, L, je, jb + (t + 1) * STEP_KEYS + unit, index);
	};
#pragma unroll
	for (int t = 0; t < DEC_STAGES - 1; t++) {
		if (t < steps) {
			stage_copy(t, t);
		}
		cp_async_commit(); // a group per step, empty or not, keeps the count
	}
	int cur = 0; // stage of step t
	for (int t = 0; t < steps; t++) {
		int j0 = jb + t * STEP_KEYS;
		cp_async_wait_pending<DEC_STAGES - 2>(); // step t's copies are done
		// The copies of step t are visible to every lane that reads them
		// (the partner lane's, or with DEC_HEADS > 1 the other warps'), and
		// every read of step t−1's stage is done.
		if (DEC_HEADS == 1) {
			__syncwarp();
		} else {
			__syncthreads();
		}
		// Refill the stage step t−1 used with step t + DEC_STAGES − 1.
		if (t + DEC_STAGES - 1 < steps) {
			stage_copy(t + DEC_STAGES - 1, cur == 0 ? DEC_STAGES - 1 : cur - 1);
		}
		cp_async_commit();
		float kx[DEC_UNROLL][VEC], vx[DEC_UNROLL][VEC], c[DEC_UNROLL][4], sn[DEC_UNROLL][4];
		int jj[DEC_UNROLL];
		bool ok[DEC_UNROLL];
		// The unit's key and value rows as the unit's lanes copied them,
		// 16 bytes each, read 8 bytes at a time by the dimensions a lane
		// computes with.
		const T *kv = (const T *)(stage + cur * STAGE_CHUNKS + threadIdx.x - ul);
		const uint4 *rope = stage + cur * STAGE_CHUNKS + KV_CHUNKS;
#pragma unroll
		for (int u = 0; u < DEC_UNROLL; u++) {
			int kk = u * HUNITS + unit;
			jj[u] = j0 + kk;
			ok[u] = (okbits >> (cur * DEC_UNROLL + u)) & 1u;
			load_dims(kv + (u * 2 + 0) * DEC_THREADS * VEC, dl, kx[u]);
			load_dims(kv + (u * 2 + 1) * DEC_THREADS * VEC, dl, vx[u]);
			const uint4 *row = rope + kk * 2 * LPK;
			load4(row + ul, c[u]);
			load4(row + LPK + ul, sn[u]);
		}
		cur = cur == DEC_STAGES - 1 ? 0 : cur + 1;
		float sc[DEC_UNROLL][DEC_ROWS];
#pragma unroll
		for (int u = 0; u < DEC_UNROLL; u++) {
			rotate(kx[u], c[u], sn[u]);
#pragma unroll
			for (int r = 0; r < DEC_ROWS; r++) {
				float dot = 0.0f;
#pragma unroll
				for (int e = 0; e < VEC; e++) {
					dot += qr[r][e] * kx[u][e];
				}
				dot = unit_sum(dot) * scale;
				sc[u][r] = ok[u] && jj[u] <= lim[r] ? dot : NEG_INF;
			}
		}
		if (scores != 0) {
			// Through shared memory, so that each row's scores of the step
			// go out as one contiguous run instead of 4-byte stores
			// scattered over DEC_ROWS rows. The warps of a KV head store
			// its scores: with one warp a head they wait for no other
			// warp. The buffer this step writes was last read two steps
			// ago, before the previous step's barrier (or, with one warp
			// a head, before this warp's own previous barrier).
			float(*buf)[STEP_KEYS] = sm_sc[t & 1][hw];
			if (ul == 0) {
#pragma unroll
				for (int u = 0; u < DEC_UNROLL; u++) {
#pragma unroll
					for (int r = 0; r < DEC_ROWS; r++) {
						buf[r][u * HUNITS + unit] = sc[u][r];
					}
				}
			}
			if (WPH == 1) {
				__syncwarp();
			} else {
				__syncthreads();
			}
			for (int e = threadIdx.x % (WPH * 32); e < DEC_ROWS * STEP_KEYS; e += WPH * 32) {
				int r = e / STEP_KEYS, kk = e % STEP_KEYS;
				int j = j0 + kk, rg = g * DEC_ROWS + r;
				if (j < je && rg < R) {
					long long rr = (long long)(h * G + rg / S) * S + rg % S;
					scores[rr * n + j] = buf[r][kk];
				}
			}
		}
		// Online softmax over this step's keys, per row, within the unit
		// (every lane of a unit holds the same scores).
#pragma unroll
		for (int r = 0; r < DEC_ROWS; r++) {
			float mx = m[r];
#pragma unroll
			for (int u = 0; u < DEC_UNROLL; u++) {
				mx = fmaxf(mx, sc[u][r]);
			}
			if (mx == NEG_INF) {
				continue; // nothing visible yet
			}
			// e^(x − mx) as 2^(x·log₂e − mx·log₂e): one fma and ex2 (the
			// rounding of mx·log₂e is common to the row's terms).
			float mx2 = mx * LOG2E;
			float p[DEC_UNROLL], ps = 0.0f;
#pragma unroll
			for (int u = 0; u < DEC_UNROLL; u++) {
				p[u] = ex2(fmaf(sc[u][r], LOG2E, -mx2)); // 0 for −∞
				ps += p[u];
			}
			if (mx != m[r]) { // else the factor on the old sums is 1
				float corr = ex2(fmaf(m[r], LOG2E, -mx2)); // 0 while m is −∞
				l[r] *= corr;
#pragma unroll
				for (int e = 0; e < VEC; e++) {
					acc[r][e] *= corr;
				}
			}
			l[r] += ps;
			m[r] = mx;
#pragma unroll
			for (int e = 0; e < VEC; e++) {
				float a = acc[r][e];
#pragma unroll
				for (int u = 0; u < DEC_UNROLL; u++) {
					a += p[u] * vx[u][e];
				}
				acc[r][e] = a;
			}
		}
	}

	// Merge the units of each warp (lanes LPK, 2·LPK, ... apart).
#pragma unroll
	for (int o = LPK; o < 32; o *= 2) {
#pragma unroll
		for (int r = 0; r < DEC_ROWS; r++) {
			float mo = __shfl_xor_sync(FULL_MASK, m[r], o);
			float lo = __shfl_xor_sync(FULL_MASK, l[r], o);
			float mx = fmaxf(m[r], mo);
			float cs = m[r] == NEG_INF ? 0.0f : expf(m[r] - mx);
			float co = mo == NEG_INF ? 0.0f : expf(mo - mx);
			l[r] = l[r] * cs + lo * co;
			m[r] = mx;
#pragma unroll
			for (int e = 0; e < VEC; e++) {
				float ao = __shfl_xor_sync(FULL_MASK, acc[r][e], o);
				acc[r][e] = acc[r][e] * cs + ao * co;
			}
		}
	}
	// The warps' accumulators take the stages' place.
	cp_async_wait();
	__syncthreads();
	float(*sm_acc)[DEC_ROWS][HD] = (float(*)[DEC_ROWS][HD])smem;
	if (lane < LPK) {
#pragma unroll
		for (int r = 0; r < DEC_ROWS; r++) {
#pragma unroll
			for (int e = 0; e < 4; e++) {
				sm_acc[warp][r][dl + e] = acc[r][e];
				sm_acc[warp][r][HALF + dl + e] = acc[r][4 + e];
			}
			if (lane == 0) {
				sm_m[warp][r] = m[r];
				sm_l[warp][r] = l[r];
			}
		}
	}
	__syncthreads();

	// Merge the warps of each head, in warp order, and write the run's
	// partial result.
	long long rows = (long long)hq * S;
	float *pm = part + split * rows * HD, *pl = pm + split * rows;
	for (int e = threadIdx.x; e < DEC_HEADS * DEC_ROWS * HD; e += DEC_THREADS) {
		int he = e / (DEC_ROWS * HD), r = e / HD % DEC_ROWS, d = e % HD, rg = g * DEC_ROWS + r;
		if (rg >= R) {
			continue;
		}
		int w0 = he * WPH;
		float mx = NEG_INF;
		for (int w = w0; w < w0 + WPH; w++) {
			mx = fmaxf(mx, sm_m[w][r]);
		}
		float a = 0.0f, den = 0.0f;
		for (int w = w0; w < w0 + WPH; w++) {
			float f = sm_m[w][r] == NEG_INF ? 0.0f : expf(sm_m[w][r] - mx);
			a += sm_acc[w][r][d] * f;
			den += sm_l[w][r] * f;
		}
		long long rr = (long long)((hb * DEC_HEADS + he) * G + rg / S) * S + rg % S;
		part[(z * rows + rr) * HD + d] = a;
		if (d == 0) {
			pm[z * rows + rr] = mx;
			pl[z * rows + rr] = den;
		}
	}
}

// block_reduce returns the maximum (is_max) or the sum of v over the
// block to every thread, in a fixed order; blockDim.x is COMBINE_THREADS.
__device__ float block_reduce(float v, bool is_max) {
	__shared__ float part[COMBINE_THREADS / 32];
	for (int o = 16; o > 0; o /= 2) {
		float w = __shfl_xor_sync(FULL_MASK, v, o);
		v = is_max ? fmaxf(v, w) : v + w;
	}
	__syncthreads(); // part is free
	if (threadIdx.x % 32 == 0) {
		part[threadIdx.x / 32] = v;
	}
	__syncthreads();
	v = part[0];
	for (int w = 1; w < COMBINE_THREADS / 32; w++) {
		v = is_max ? fmaxf(v, part[w]) : v + part[w];
	}
	return v;
}

// decode_combine merges the split runs of decode_attention (at most
// MAX_SPLIT) for row rr = qh·S+i, grid (Hq·S), COMBINE_THREADS threads:
// with M the largest run maximum, out = Σ acc·e^(m−M) / Σ l·e^(m−M),
// rounded to bf16 once; stats, unless null, receives M at [rr] and the
// denominator at [Hq·S + rr]. The runs' statistics are read by all threads
// at once; warp w sums the accumulators of runs w, w + COMBINE_WARPS, …
// with 16-byte loads, and the warps' sums are added in warp order, so
// that many loads are in flight and the order is the same on every run.
extern "C" __global__ void __launch_bounds__(COMBINE_THREADS) decode_combine(
	T *out, float *stats, const float *part, int S, int hq, int split) {
	__shared__ float f[MAX_SPLIT]; // e^(m−M) of each run
	__shared__ __align__(16) float sum[COMBINE_WARPS][HD];
	long long rr = blockIdx.x, rows = (long long)hq * S;
	int qh = (int)(rr / S), i = (int)(rr % S);
	const float *pm = part + split * rows * HD, *pl = pm + split * rows;
	float M = NEG_INF;
	for (int z = threadIdx.x; z < split; z += COMBINE_THREADS) {
		M = fmaxf(M, pm[z * rows + rr]);
	}
	M = block_reduce(M, true);
	float den = 0.0f;
	for (int z = threadIdx.x; z < split; z += COMBINE_THREADS) {
		float mz = pm[z * rows + rr];
		float w = mz == NEG_INF ? 0.0f : expf(mz - M);
		f[z] = w;
		den += pl[z * rows + rr] * w;
	}
	den = block_reduce(den, false); // its barriers also publish f
	int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	for (int c = lane; c < HD / 4; c += 32) {
		float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
		for (int z = warp; z < split; z += COMBINE_WARPS) {
			float4 x = *(const float4 *)&part[(z * rows + rr) * HD + 4 * c];
			float w = f[z];
			a.x += x.x * w, a.y += x.y * w, a.z += x.z * w, a.w += x.w * w;
		}
		*(float4 *)&sum[warp][4 * c] = a;
	}
	__syncthreads();
	float inv = 1.0f / den;
	for (int d = threadIdx.x; d < HD; d += COMBINE_THREADS) {
		float a = sum[0][d];
#pragma unroll
		for (int w = 1; w < COMBINE_WARPS; w++) {
			a += sum[w][d];
		}
		out[((long long)i * hq + qh) * HD + d] = from_f32<T>(a * inv);
	}
	if (stats != 0 && threadIdx.x == 0) {
		stats[rr] = M;
		stats[rows + rr] = den;
	}
}

// decode_mass sets mass[qh, j] = Σᵢ wᵢ·p(qh, i, j) from the scores
// decode_attention saved ([Hq·S, L+S]) and the row max and denominator in
// stats, as attention_mass computes it; grid (⌈(L+S)/256⌉, Hq), 256
// threads, one key per thread, queries in order.
extern "C" __global__ void decode_mass(float *mass, const float *scores, const float *stats, const float *weights,
	int S, int n, int hq) {
	int qh = blockIdx.y;
	long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
	if (j >= n) {
		return;
	}
	long long rows = (long long)hq * S;
	float acc = 0.0f;
	for (int i = 0; i < S; i++) {
		long long rr = (long long)qh * S + i;
		float w = weights[i], s = scores[rr * n + j];
		if (w != 0.0f && s != NEG_INF) {
			acc += w * (expf(s - stats[rr]) * (1.0f / stats[rows + rr]));
		}
	}
	mass[(long long)qh * n + j] = acc;
}
