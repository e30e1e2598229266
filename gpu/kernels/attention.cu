// Attention of a chunk over [view ; chunk] for the CUDA backend (package
// gpu), compiled by NVRTC after kernels/storage.cuh once per head dimension
// and storage type (-DHEAD_DIM=... -DSTORAGE=f32|bf16), with keys and
// queries rotated by RoPE as they are loaded, at the positions the cache
// gives (cache-relative RoPE). q, k, v, the cache ck, cv and out are stored
// as STORAGE; every load is widened to float32, and shared memory, scores,
// softmax statistics, accumulators, the split runs' partial results (part),
// stats and mass are float32. Each output is rounded to STORAGE once.
//
// Layouts: q [S, Hq·HD]; k, v [S, Hkv·HD] (the chunk); ck, cv [Hkv, cap,
// HD] (the cache storage); slots, pos [Hkv·L] (the view, a negative slot is
// padding); qpos [Hkv] (position of the chunk's first token per KV head);
// cos, sin [P, HD/2] (the RoPE table, already scaled); out [S, Hq·HD];
// stats [2, Hq, S] (row max m and denominator l of every query's softmax);
// mass [Hq, L+S].
//
// Key j (0 ≤ j < L+S) is view entry j when j < L, else chunk token j−L;
// query i sees key j when the key is not padding and j ≤ L+i (causal inside
// the chunk).

#ifndef HEAD_DIM
#error "compile with -DHEAD_DIM=<head dimension>"
#endif
#ifndef STORAGE
#error "compile with -DSTORAGE=f32 or -DSTORAGE=bf16"
#endif

typedef STORAGE T; // element type of q, k, v, ck, cv and out

#define HD HEAD_DIM
#define HALF (HD / 2)
#define KS (HD + 1)          // padded key row: lane t reading row t hits bank t
#define DPL ((HD + 31) / 32) // output dimensions per lane
#define BK 32                // keys per tile, one per lane
#define ROWS 4               // query rows per warp
#define WARPS 4
#define BQ (ROWS * WARPS)    // query rows per block
#define FULL_MASK 0xffffffffu
#define NEG_INF __int_as_float(0xff800000) // −∞ (NVRTC has no <math.h>)

__device__ __forceinline__ float warp_max(float v) {
	for (int o = 16; o > 0; o /= 2) {
		v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
	}
	return v;
}

__device__ __forceinline__ float warp_sum(float v) {
	for (int o = 16; o > 0; o /= 2) {
		v += __shfl_xor_sync(FULL_MASK, v, o);
	}
	return v;
}

// Keys describes where keys and values come from.
struct Keys {
	const T *k, *v;   // the chunk's, [S, Hkv·HD]
	const T *ck, *cv; // the cache's, [Hkv, cap, HD]
	const int *slots, *pos;
	const float *cosT, *sinT;
	int L, S, cap, hkv;
};

// load_key_tile stores keys [j0, j0+BK) of KV head h, rotated, in ks
// [BK][KS], their values in vs [BK][HD] unless vs is null, and whether each
// is a real key in valid. Missing keys are zeros, so that a zero
// probability never meets a NaN. All threads of the block take part.
__device__ void load_key_tile(float *ks, float *vs, int *valid, const Keys &K, int h, int base, int j0) {
	int n = K.L + K.S;
	for (int e = threadIdx.x; e < BK * HALF; e += blockDim.x) {
		int t = e / HALF, d = e % HALF, j = j0 + t;
		const T *kr = 0, *vr = 0;
		int p = 0;
		if (j < K.L) {
			int slot = K.slots[(long long)h * K.L + j];
			if (slot >= 0) {
				long long off = ((long long)h * K.cap + slot) * HD;
				kr = K.ck + off;
				vr = K.cv + off;
				p = K.pos[(long long)h * K.L + j];
			}
		} else if (j < n) {
			long long off = ((long long)(j - K.L) * K.hkv + h) * HD;
			kr = K.k + off;
			vr = K.v + off;
			p = base + (j - K.L);
		}
		float k1 = 0.0f, k2 = 0.0f, v1 = 0.0f, v2 = 0.0f;
		if (kr != 0) {
			float c = K.cosT[(long long)p * HALF + d], s = K.sinT[(long long)p * HALF + d];
			float x1 = to_f32(kr[d]), x2 = to_f32(kr[d + HALF]);
			k1 = x1 * c - x2 * s;
			k2 = x2 * c + x1 * s;
			if (vs != 0) {
				v1 = to_f32(vr[d]);
				v2 = to_f32(vr[d + HALF]);
			}
		}
		ks[t * KS + d] = k1;
		ks[t * KS + d + HALF] = k2;
		if (vs != 0) {
			vs[t * HD + d] = v1;
			vs[t * HD + d + HALF] = v2;
		}
		if (d == 0) {
			valid[t] = kr != 0;
		}
	}
}

// load_query_tile stores queries [i0, i0+rows) of query head qh, rotated,
// in qs [rows][HD]; rows past the chunk are zeros.
__device__ void load_query_tile(float *qs, int rows, const T *q, const Keys &K, int qh, int hq, int base, int i0) {
	for (int e = threadIdx.x; e < rows * HALF; e += blockDim.x) {
		int r = e / HALF, d = e % HALF, i = i0 + r;
		float q1 = 0.0f, q2 = 0.0f;
		if (i < K.S) {
			const T *x = q + ((long long)i * hq + qh) * HD;
			long long p = (long long)(base + i) * HALF + d;
			float c = K.cosT[p], s = K.sinT[p];
			float x1 = to_f32(x[d]), x2 = to_f32(x[d + HALF]);
			q1 = x1 * c - x2 * s;
			q2 = x2 * c + x1 * s;
		}
		qs[r * HD + d] = q1;
		qs[r * HD + d + HALF] = q2;
	}
}

// score is scale·(q·k) over one query row and one key row in shared memory.
__device__ __forceinline__ float score(const float *qr, const float *kr, float scale) {
	float dot = 0.0f;
#pragma unroll 8
	for (int d = 0; d < HD; d++) {
		dot += qr[d] * kr[d];
	}
	return dot * scale;
}

// attention computes out for BQ queries of one query head per block, grid
// (⌈S/BQ⌉, Hq, split), WARPS·32 threads: key tiles of BK keys are rotated
// into shared memory once and used by all the block's queries; each warp
// owns ROWS queries and keeps, per query, the running max m, the running
// denominator l and the output accumulator (lane d holds dimensions d,
// d+32, ...), rescaled as larger scores arrive (online softmax), so no
// score matrix is ever stored. stats, when not null, receives m and l.
//
// With split > 1 (few queries, many keys: decoding) block z takes only the
// z-th of split equal runs of key tiles and writes its unnormalised
// accumulator, m and l to part (acc [split, S, Hq, HD], then m and l
// [split, Hq, S] each); attention_combine then merges the runs.
extern "C" __global__ void __launch_bounds__(WARPS * 32) attention(
	T *out, float *stats, const T *q, const T *k, const T *v,
	const T *ck, const T *cv, const int *slots, const int *pos, const int *qpos,
	const float *cosT, const float *sinT, int S, int L, int cap, int hq, int hkv, float scale,
	int split, float *part) {
	extern __shared__ float smem[];
	float *qs = smem;           // [BQ][HD]
	float *ks = qs + BQ * HD;   // [BK][KS]
	float *vs = ks + BK * KS;   // [BK][HD]
	__shared__ int valid[BK];

	Keys K = {k, v, ck, cv, slots, pos, cosT, sinT, L, S, cap, hkv};
	int qh = blockIdx.y, h = qh / (hq / hkv);
	int q0 = blockIdx.x * BQ;
	int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	int base = qpos[h];

	load_query_tile(qs, BQ, q, K, qh, hq, base, q0);

	float m[ROWS], l[ROWS], acc[ROWS][DPL];
#pragma unroll
	for (int r = 0; r < ROWS; r++) {
		m[r] = NEG_INF;
		l[r] = 0.0f;
#pragma unroll
		for (int c = 0; c < DPL; c++) {
			acc[r][c] = 0.0f;
		}
	}

	int n = L + min(S, q0 + BQ); // keys any query of this block sees
	int tiles = (n + BK - 1) / BK, per = (tiles + split - 1) / split;
	int jbegin = blockIdx.z * per * BK, jend = min(n, (blockIdx.z + 1) * per * BK);
	for (int j0 = jbegin; j0 < jend; j0 += BK) {
		__syncthreads(); // the previous tile is consumed (and qs is written)
		load_key_tile(ks, vs, valid, K, h, base, j0);
		__syncthreads();
		int j = j0 + lane;
#pragma unroll
		for (int r = 0; r < ROWS; r++) {
			int row = warp * ROWS + r, i = q0 + row;
			if (i >= S) {
				continue; // the same for the whole warp
			}
			float s = NEG_INF;
			if (valid[lane] && j <= L + i) {
				s = score(qs + row * HD, ks + lane * KS, scale);
			}
			float mn = fmaxf(m[r], warp_max(s));
			if (mn == NEG_INF) {
				continue; // nothing visible yet, for the whole warp
			}
			float p = expf(s - mn);        // 0 for s = −∞
			float corr = expf(m[r] - mn);  // 0 while m is −∞
			l[r] = l[r] * corr + warp_sum(p);
			m[r] = mn;
#pragma unroll
			for (int c = 0; c < DPL; c++) {
				acc[r][c] *= corr;
			}
			for (int t = 0; t < BK; t++) {
				float pt = __shfl_sync(FULL_MASK, p, t);
#pragma unroll
				for (int c = 0; c < DPL; c++) {
					int d = lane + 32 * c;
					if (d < HD) {
						acc[r][c] += pt * vs[t * HD + d];
					}
				}
			}
		}
	}

	long long rows = (long long)S * hq; // queries × heads
#pragma unroll
	for (int r = 0; r < ROWS; r++) {
		int i = q0 + warp * ROWS + r;
		if (i >= S) {
			continue;
		}
		if (split > 1) {
			// A run that saw no key leaves m = −∞, l = 0, acc = 0, which
			// the combination weighs by 0.
			float *o = part + (blockIdx.z * rows + (long long)i * hq + qh) * HD;
#pragma unroll
			for (int c = 0; c < DPL; c++) {
				int d = lane + 32 * c;
				if (d < HD) {
					o[d] = acc[r][c];
				}
			}
			if (lane == 0) {
				float *pm = part + split * rows * HD;
				pm[blockIdx.z * rows + (long long)qh * S + i] = m[r];
				pm[(split + blockIdx.z) * rows + (long long)qh * S + i] = l[r];
			}
			continue;
		}
		float inv = 1.0f / l[r];
		T *o = out + ((long long)i * hq + qh) * HD;
#pragma unroll
		for (int c = 0; c < DPL; c++) {
			int d = lane + 32 * c;
			if (d < HD) {
				o[d] = from_f32<T>(acc[r][c] * inv);
			}
		}
		if (stats != 0 && lane == 0) {
			stats[(long long)qh * S + i] = m[r];
			stats[(long long)(hq + qh) * S + i] = l[r];
		}
	}
}

// attention_combine merges the split runs of attention for query i and
// query head qh, grid (S, Hq), threads over HD: with M the largest run
// maximum, each run's accumulator and denominator count e^(m−M) times, and
// out = Σ acc·e^(m−M) / Σ l·e^(m−M); stats receives M and that denominator.
extern "C" __global__ void attention_combine(T *out, float *stats, const float *part, int S, int hq, int split) {
	int i = blockIdx.x, qh = blockIdx.y;
	long long rows = (long long)S * hq;
	const float *pm = part + split * rows * HD;
	const float *pl = pm + split * rows;
	long long at = (long long)qh * S + i;
	float M = NEG_INF;
	for (int z = 0; z < split; z++) {
		M = fmaxf(M, pm[z * rows + at]);
	}
	float denom = 0.0f;
	for (int z = 0; z < split; z++) {
		denom += pl[z * rows + at] * expf(pm[z * rows + at] - M);
	}
	float inv = 1.0f / denom;
	for (int d = threadIdx.x; d < HD; d += blockDim.x) {
		float sum = 0.0f;
		for (int z = 0; z < split; z++) {
			sum += part[(z * rows + (long long)i * hq + qh) * HD + d] * expf(pm[z * rows + at] - M);
		}
		out[((long long)i * hq + qh) * HD + d] = from_f32<T>(sum * inv);
	}
	if (stats != 0 && threadIdx.x == 0) {
		stats[at] = M;
		stats[(long long)hq * S + at] = denom;
	}
}

// attention_mass sets mass[qh, j] = Σᵢ wᵢ·p(qh, i, j), the attention key j
// received from the chunk's queries weighted by weights [S], recomputing
// each probability from its score and the row's saved m and l. One warp
// per block owns BK keys (one per lane) of one query head, grid
// (⌈(L+S)/BK⌉, Hq), and walks the queries that can see them in tiles of 32.
// Padding keys get 0.
extern "C" __global__ void __launch_bounds__(32) attention_mass(
	float *mass, const float *stats, const float *weights, const T *q, const T *k,
	const T *ck, const int *slots, const int *pos, const int *qpos,
	const float *cosT, const float *sinT, int S, int L, int cap, int hq, int hkv, float scale) {
	extern __shared__ float smem[];
	float *ks = smem;         // [BK][KS]
	float *qs = ks + BK * KS; // [32][HD]
	__shared__ float ws[32], ms[32], ls[32];
	__shared__ int valid[BK];

	Keys K = {k, 0, ck, 0, slots, pos, cosT, sinT, L, S, cap, hkv};
	int qh = blockIdx.y, h = qh / (hq / hkv);
	int lane = threadIdx.x;
	int n = L + S, j0 = blockIdx.x * BK, j = j0 + lane;
	int base = qpos[h];

	load_key_tile(ks, 0, valid, K, h, base, j0);
	float acc = 0.0f;
	for (int i0 = max(0, j0 - L); i0 < S; i0 += 32) {
		__syncthreads(); // keys loaded; the previous query tile consumed
		load_query_tile(qs, 32, q, K, qh, hq, base, i0);
		int i = i0 + lane;
		ws[lane] = i < S ? weights[i] : 0.0f;
		ms[lane] = i < S ? stats[(long long)qh * S + i] : 0.0f;
		ls[lane] = i < S ? stats[(long long)(hq + qh) * S + i] : 1.0f;
		__syncthreads();
		int rows = min(32, S - i0);
		for (int r = 0; r < rows; r++) {
			float w = ws[r];
			if (w != 0.0f && valid[lane] && j <= L + i0 + r) {
				float s = score(qs + r * HD, ks + lane * KS, scale);
				acc += w * (expf(s - ms[r]) * (1.0f / ls[r]));
			}
		}
	}
	if (j < n) {
		mass[(long long)qh * n + j] = acc;
	}
}
