// Flash-decoding attention for the CUDA backend (package gpu): a chunk of
// 1–16 queries over [view ; chunk], compiled by NVRTC after
// kernels/storage.cuh once per head dimension (-DHEAD_DIM=64 or 128), for
// bf16 storage. Layouts and semantics are attention.cu's: q [S, Hq·HD];
// k, v [S, Hkv·HD] (the chunk); ck, cv [Hkv, cap, HD] (the cache); slots,
// pos [Hkv·L] (the view; a negative slot is padding); qpos [Hkv]; cos, sin
// [P, HD/2] (the RoPE table); out [S, Hq·HD]; stats [2, Hq, S]; mass
// [Hq, L+S]. Key j < L is view entry j, key j ≥ L chunk token j−L; query i
// sees key j when the key is not padding and j ≤ L+i. Keys and queries are
// rotated by RoPE as they are loaded.
//
// decode_attention splits the keys into runs (split-K), one block per
// (group of DEC_HEADS KV heads, tile of 16 query rows, run), and reads each
// key and value row once for all the rows of its tile: the query heads of
// the KV head's GQA group times the chunk's queries. A block's warps are
// split among its DEC_HEADS heads, WPH warps each; each warp takes 16 keys
// of a step on the tensor cores (mma.sync m16n8k16): S = Q·Kᵀ, the rows of
// the tile against two 8-key tiles, and O += P·V. The keys and values
// stream through shared memory with cp.async, DEC_STAGES steps deep (one
// computed, the rest in flight), each key row in 16-byte chunks whose
// position within the row is XORed with the key's index mod 8, so that
// ldmatrix reads 8 keys' chunks without bank conflicts; the keys' RoPE rows
// (cos, sin) go beside them, once per block where its heads see the same
// positions. RoPE rotates the key fragments in registers: dimensions d and
// d + HD/2 sit in the same lane. To keep float32 accuracy (the tests' bound
// is 1e-5 plus one bf16 rounding of the output), every bf16 operand that is
// not stored data is split in two, x = hi + lo with hi = bf16(x) and lo =
// bf16(x − hi): S = qhi·khi + qhi·klo + qlo·khi and O += Phi·V + Plo·V,
// accumulated in float32; the terms dropped are about 2⁻¹⁶ of the product.
// Each thread keeps the online softmax of its two rows (the quad's four
// threads share a row); the warps of a head merge through shared memory at
// the end of the run, in a fixed order, and the run's partial result
// (unnormalised accumulator, max, denominator) goes to part. Scores, where
// asked for, are stored from the fragments (8 bytes, contiguous runs per
// row). decode_combine merges the runs in run order and rounds the output
// once; decode_mass turns the scores into the attention mass using the
// merged row max and denominator. Nothing uses atomics: results are the
// same on every run.

#ifndef HEAD_DIM
#error "compile with -DHEAD_DIM=64 or 128"
#endif

typedef bf16 T;

#define HD HEAD_DIM
#define HALF (HD / 2)
#define VEC 8          // bf16 per 16-byte chunk
#define LPK (HD / VEC) // chunks per key row: 8 or 16
#ifndef DEC_HEADS
#define DEC_HEADS 1 // KV heads per block, sharing the keys' RoPE rows
#endif
#ifndef DEC_WARPS
#define DEC_WARPS (DEC_HEADS > 4 ? DEC_HEADS : 4)
#endif
#define DEC_THREADS (DEC_WARPS * 32)
#define WPH (DEC_WARPS / DEC_HEADS) // warps per KV head
#define TILE 16                     // keys a warp takes per step
#define STEP_KEYS (WPH * TILE)      // keys per KV head a block takes per step
#define CPT 4                       // chunks of a key's row a thread copies (key, value, RoPE each)
#define TPK (LPK / CPT)             // threads that copy a key
#define KPI (32 * WPH / TPK)        // keys a head's threads copy at once
#define DEC_UNROLL (STEP_KEYS / KPI) // keys a thread copies per step
#ifndef DEC_MINBLOCKS
#define DEC_MINBLOCKS (DEC_WARPS > 8 ? 1 : 8 / DEC_WARPS) // blocks per multiprocessor the registers must allow
#endif
#ifndef DEC_STAGES
#define DEC_STAGES 2 // steps in shared memory: one computed, the rest in flight
#endif
// A stage: the keys [DEC_HEADS][STEP_KEYS][LPK] chunks, the values alike,
// then the RoPE rows [STEP_KEYS][2][ROPE_ROW] floats (cos, sin), a row
// padded by 8 floats so that the 8 keys of a fragment read different banks.
#define ROPE_ROW (HALF + 8)
#define KV_CHUNKS (DEC_HEADS * STEP_KEYS * LPK)
#define STAGE_BYTES (2 * KV_CHUNKS * 16 + STEP_KEYS * 2 * ROPE_ROW * 4)
#define DEC_SHARED (DEC_STAGES * STAGE_BYTES) // dynamic shared bytes
#define DEC_ROWS 16            // query rows (query head, query) per block: one m16 tile
#define COMBINE_THREADS 512 // 16 warps share a row's runs: few loads of each in a row
#define MASS_THREADS 256
#define MASS_KEYS 4 // keys per decode_mass thread, MASS_THREADS apart
#define COMBINE_WARPS (COMBINE_THREADS / 32)
#define MAX_SPLIT 1024         // runs decode_combine merges at most
#define FULL_MASK 0xffffffffu
#define NEG_INF __int_as_float(0xff800000)
#define LOG2E 1.44269504088896341f

#if HD != 64 && HD != 128
#error "decode.cu takes head dimensions 64 and 128"
#endif
#if DEC_STAGES < 2
#error "DEC_STAGES must be at least 2"
#endif
#if KPI % 8 != 0 || STEP_KEYS % KPI != 0
#error "a head's threads must copy a multiple of 8 keys at once, and a step a multiple of that"
#endif
#if DEC_WARPS % DEC_HEADS != 0
#error "DEC_WARPS must be a multiple of DEC_HEADS"
#endif
#if DEC_WARPS * DEC_ROWS * HD * 4 > DEC_SHARED
#error "the warps' accumulators must fit in the stages' shared memory"
#endif

// split2 rounds x and y to bf16 (hi, one word) and their remainders (lo).
__device__ __forceinline__ void split2(float x, float y, unsigned &hi, unsigned &lo) {
	hi = pack2(x, y);
	lo = pack2(x - __uint_as_float(hi << 16), y - __uint_as_float(hi & 0xffff0000u));
}

// prefetch_view loads the slots and positions of keys j + u·KPI, u <
// DEC_UNROLL, of KV head h that are view entries before je (−1 for the
// others): each head's own positions with DEC_HEADS = 1; else those that
// all the block's heads share, the view index where index is set, else
// the first head's row.
__device__ __forceinline__ void prefetch_view(int *slot, int *p, const int *slots, const int *pos, int h, int L, int je, int j, int index) {
#pragma unroll
	for (int u = 0; u < DEC_UNROLL; u++) {
		int ju = j + u * KPI;
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
	__shared__ float sm_m[DEC_WARPS][DEC_ROWS], sm_l[DEC_WARPS][DEC_ROWS];
	__shared__ unsigned char sm_ok[DEC_STAGES][DEC_HEADS][STEP_KEYS]; // a key of the step is real

	int G = hq / hkv, R = G * S, groups = (R + DEC_ROWS - 1) / DEC_ROWS;
	int hb = blockIdx.x / groups, rt = blockIdx.x % groups, z = blockIdx.y;
	int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	int hw = warp / WPH, wi = warp % WPH, h = hb * DEC_HEADS + hw; // the warp's KV head
	int g = lane / 4, t4 = lane % 4;
	int n = L + S, base = qpos[h];

	// The tile's rows g and g+8 as A fragments: rotated, scaled, split.
	// Row r's dimensions 16ks + 2t4, +1 (a[0], a[1] for rows g, g+8) and
	// 16ks + 8 + 2t4, +1 (a[2], a[3]).
	unsigned qh[HD / 16][4], ql[HD / 16][4];
	int lim[2];  // row g + 8r sees keys j ≤ lim[r] (−1: no such row)
	int srow[2]; // and its row of scores, qh·S+i (−1: no such row)
#pragma unroll
	for (int r = 0; r < 2; r++) {
		int rg = rt * DEC_ROWS + g + 8 * r;
		lim[r] = -1, srow[r] = -1;
		float x[HD / 16][4]; // dimensions 16ks + 2t4 + {0, 1, 8, 9}
#pragma unroll
		for (int ks = 0; ks < HD / 16; ks++) {
#pragma unroll
			for (int e = 0; e < 4; e++) {
				x[ks][e] = 0.0f;
			}
		}
		if (rg < R) {
			int qhd = h * G + rg / S, i = rg % S;
			lim[r] = L + i, srow[r] = qhd * S + i;
			const T *qp = q + ((long long)i * hq + qhd) * HD;
			const float *cp = cosT + (long long)(base + i) * HALF, *sp = sinT + (long long)(base + i) * HALF;
#pragma unroll
			for (int ks = 0; ks < HALF / 16; ks++) {
#pragma unroll
				for (int e = 0; e < 4; e++) {
					int d = 16 * ks + 2 * t4 + e % 2 + 8 * (e / 2);
					float x1 = to_f32(qp[d]), x2 = to_f32(qp[d + HALF]), c = cp[d], s = sp[d];
					x[ks][e] = (x1 * c - x2 * s) * scale;
					x[ks + HALF / 16][e] = (x2 * c + x1 * s) * scale;
				}
			}
		}
#pragma unroll
		for (int ks = 0; ks < HD / 16; ks++) {
			// a[r] (dims 2t4, +1) and a[2 + r] (dims 8 + 2t4, +1)
			split2(x[ks][0], x[ks][1], qh[ks][r], ql[ks][r]);
			split2(x[ks][2], x[ks][3], qh[ks][2 + r], ql[ks][2 + r]);
		}
	}

	float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f}; // rows g, g+8; l this thread's part
	float o[HD / 8][4];                                   // rows g (o[.][0..1]), g+8; dims 8dt + 2t4, +1
#pragma unroll
	for (int dt = 0; dt < HD / 8; dt++) {
#pragma unroll
		for (int e = 0; e < 4; e++) {
			o[dt][e] = 0.0f;
		}
	}

	int jb = z * per, je = min(n, jb + per);
	int steps = je > jb ? (je - jb + STEP_KEYS - 1) / STEP_KEYS : 0;
	// A thread copies chunks kp + c·TPK (c < CPT) of keys kk0 + u·KPI of
	// its head's step: one address for CPT chunks, and a warp's copies of
	// a key are 16·TPK contiguous bytes. KPI is a multiple of 8, so the
	// chunks' places in a key row (swizzled by the key's index mod 8, see
	// above) are the same for all its keys: chunk kp + c·TPK lands at
	// kp ^ (x mod TPK) + TPK·(c ^ x/TPK) for x = kk0 mod 8.
	int th = wi * 32 + lane, kp = th % TPK, kk0 = th / TPK;
	int at[CPT]; // chunk c's place in the head's keys of a stage, key kk0
#pragma unroll
	for (int c = 0; c < CPT; c++) {
		at[c] = (hw * STEP_KEYS + kk0) * LPK + (kp ^ (kk0 % TPK)) + TPK * (c ^ (kk0 % 8 / TPK));
	}
	const float *cb = cosT + 4 * kp, *sb0 = sinT + 4 * kp; // the thread's floats of a RoPE row
	// The view's slots and positions of the next step to copy, loaded a
	// step ahead so that its copies do not wait for them.
	int nslot[DEC_UNROLL], npos[DEC_UNROLL];
	prefetch_view(nslot, npos, slots, pos, h, L, je, jb + kk0, index);
	// stage_copy queues the copies of step t into stage st and loads the
	// view of step t+1. A key's RoPE row goes to the stage once: the
	// thread of chunk cc of the key copies the cos and sin floats 4cc ..
	// 4cc+3 (HALF/4 = LPK chunks each); with DEC_HEADS > 1, the first
	// head's threads copy the cos and the second head's the sin.
	auto stage_copy = [&](int t, int st) {
		unsigned char *sb = smem + st * STAGE_BYTES;
		uint4 *kst = (uint4 *)sb, *vst = kst + KV_CHUNKS;
		float *rope = (float *)(sb + 2 * KV_CHUNKS * 16) + kk0 * 2 * ROPE_ROW + 4 * kp;
#pragma unroll
		for (int u = 0; u < DEC_UNROLL; u++) {
			int kk = kk0 + u * KPI, j = jb + t * STEP_KEYS + kk;
			// View key j < L is row nslot of the cache, chunk token j − L row
			// (j − L)·hkv + h of k and v; selected without branches. A key
			// that is padding or past the run reads as zeros (its source
			// is then not read).
			bool in = j < je, view = j < L;
			bool ok = in && (!view || nslot[u] >= 0);
			bool rok = DEC_HEADS == 1 ? ok : in; // every position is in the table
			int p = !in ? 0 : view ? npos[u] : base + (j - L);
			long long row = view ? (long long)h * cap + nslot[u] : (long long)(j - L) * hkv + h;
			row = ok ? row : 0;
			const T *kr = (view ? ck : k) + row * HD + kp * VEC, *vr = (view ? cv : v) + row * HD + kp * VEC;
			const float *cr = cb + (long long)p * HALF, *sr = sb0 + (long long)p * HALF;
			float *rr = rope + u * KPI * 2 * ROPE_ROW;
#pragma unroll
			for (int c = 0; c < CPT; c++) {
				int a = at[c] + u * KPI * LPK;
				cp_async16(kst + a, kr + c * TPK * VEC, ok);
				cp_async16(vst + a, vr + c * TPK * VEC, ok);
				if (DEC_HEADS == 1 || hw == 0) {
					cp_async16(rr + 4 * TPK * c, cr + 4 * TPK * c, rok);
				}
				if (DEC_HEADS == 1 || hw == 1) {
					cp_async16(rr + ROPE_ROW + 4 * TPK * c, sr + 4 * TPK * c, rok);
				}
			}
			if (kp == 0) {
				sm_ok[st][hw][kk] = ok;
			}
		}
		prefetch_view(nslot, npos, slots, pos, h, L, je, jb + (t + 1) * STEP_KEYS + kk0, index);
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
		int j0 = jb + t * STEP_KEYS + TILE * wi; // the warp's first key
		cp_async_wait_pending<DEC_STAGES - 2>(); // step t's copies are done
		// The copies of step t (and its flags) are visible to every thread
		// that reads them, and every read of step t−1's stage is done.
		__syncthreads();
		// Refill the stage step t−1 used with step t + DEC_STAGES − 1.
		if (t + DEC_STAGES - 1 < steps) {
			stage_copy(t + DEC_STAGES - 1, cur == 0 ? DEC_STAGES - 1 : cur - 1);
		}
		cp_async_commit();
		const unsigned char *sb = smem + cur * STAGE_BYTES;
		const bf16 *kst = (const bf16 *)sb + (hw * STEP_KEYS + TILE * wi) * HD;
		const bf16 *vst = kst + KV_CHUNKS * VEC;
		const float *rope = (const float *)(sb + 2 * KV_CHUNKS * 16) + TILE * wi * 2 * ROPE_ROW;
		const unsigned char *okp = sm_ok[cur][hw] + TILE * wi;
		cur = cur == DEC_STAGES - 1 ? 0 : cur + 1;

		// S = Q·Kᵀ: s[nt] holds rows g, g+8 × keys 8nt + 2t4, +1 of the
		// warp's 16. ldmatrix hands lane (g, t4) key g (+8) dimensions
		// 16ks + 2t4, +1 (b[0], b[2]) and 16ks + 8 + 2t4, +1 (b[1], b[3]);
		// RoPE pairs them with the same of ks + HALF/16.
		float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
		int mi = lane / 8, kr8 = lane % 8; // this lane's ldmatrix row: key (mi/2)·8 + kr8, chunk 2ks + mi%2
		int lk = (mi / 2) * 8 + kr8;
#pragma unroll
		for (int ks = 0; ks < HALF / 16; ks++) {
			unsigned b1[4], b2[4];
			ldsm4(b1, kst + (lk * LPK + ((2 * ks + mi % 2) ^ (lk & 7))) * VEC);
			ldsm4(b2, kst + (lk * LPK + ((2 * ks + HALF / 8 + mi % 2) ^ (lk & 7))) * VEC);
			unsigned h1[4], l1[4], h2[4], l2[4];
#pragma unroll
			for (int w = 0; w < 4; w++) {
				int key = g + 8 * (w / 2), d = 16 * ks + 8 * (w % 2) + 2 * t4;
				float2 c = *(const float2 *)(rope + key * 2 * ROPE_ROW + d);
				float2 sn = *(const float2 *)(rope + key * 2 * ROPE_ROW + ROPE_ROW + d);
				float x1a = __uint_as_float(b1[w] << 16), x1b = __uint_as_float(b1[w] & 0xffff0000u);
				float x2a = __uint_as_float(b2[w] << 16), x2b = __uint_as_float(b2[w] & 0xffff0000u);
				split2(x1a * c.x - x2a * sn.x, x1b * c.y - x2b * sn.y, h1[w], l1[w]);
				split2(x2a * c.x + x1a * sn.x, x2b * c.y + x1b * sn.y, h2[w], l2[w]);
			}
#pragma unroll
			for (int nt = 0; nt < 2; nt++) {
				mma(s[nt], qh[ks], h1[2 * nt], h1[2 * nt + 1]);
				mma(s[nt], qh[ks], l1[2 * nt], l1[2 * nt + 1]);
				mma(s[nt], ql[ks], h1[2 * nt], h1[2 * nt + 1]);
				mma(s[nt], qh[ks + HALF / 16], h2[2 * nt], h2[2 * nt + 1]);
				mma(s[nt], qh[ks + HALF / 16], l2[2 * nt], l2[2 * nt + 1]);
				mma(s[nt], ql[ks + HALF / 16], h2[2 * nt], h2[2 * nt + 1]);
			}
		}
		// Mask: padding, keys past the run, keys after a row's query.
#pragma unroll
		for (int nt = 0; nt < 2; nt++) {
#pragma unroll
			for (int e = 0; e < 4; e++) {
				int kk = 8 * nt + 2 * t4 + e % 2, j = j0 + kk, r = e / 2;
				bool vis = okp[kk] && j <= lim[r];
				s[nt][e] = vis ? s[nt][e] : NEG_INF;
			}
		}
		if (scores != 0) {
#pragma unroll
			for (int r = 0; r < 2; r++) {
				if (srow[r] >= 0) {
					long long at = (long long)srow[r] * n + j0 + 2 * t4;
#pragma unroll
					for (int nt = 0; nt < 2; nt++) {
						int j = j0 + 8 * nt + 2 * t4;
						float *sp = scores + at + 8 * nt;
						if (j + 1 < je && (at + 8 * nt) % 2 == 0) {
							*(float2 *)sp = make_float2(s[nt][2 * r], s[nt][2 * r + 1]);
						} else {
							if (j < je) {
								sp[0] = s[nt][2 * r];
							}
							if (j + 1 < je) {
								sp[1] = s[nt][2 * r + 1];
							}
						}
					}
				}
			}
		}
		// Online softmax per row (the quad's four threads hold a row).
		unsigned ph[4], pl[4]; // P as the A fragment of P·V, hi and lo
#pragma unroll
		for (int r = 0; r < 2; r++) {
			float mx = fmaxf(fmaxf(s[0][2 * r], s[0][2 * r + 1]), fmaxf(s[1][2 * r], s[1][2 * r + 1]));
			mx = fmaxf(m[r], fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, 1)));
			mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, 2));
			// e^(x − mx) as 2^(x·log₂e − mx·log₂e); 0 for −∞, and nothing
			// visible yet leaves p = 0 (mx2 = 0 then).
			float mx2 = mx == NEG_INF ? 0.0f : mx * LOG2E;
			float p[2][2];
#pragma unroll
			for (int nt = 0; nt < 2; nt++) {
#pragma unroll
				for (int e = 0; e < 2; e++) {
					p[nt][e] = ex2(fmaf(s[nt][2 * r + e], LOG2E, -mx2));
				}
			}
			if (mx != m[r]) { // else the factor on the old sums is 1
				float corr = ex2(fmaf(m[r], LOG2E, -mx2)); // 0 while m is −∞
				l[r] *= corr;
#pragma unroll
				for (int dt = 0; dt < HD / 8; dt++) {
					o[dt][2 * r] *= corr;
					o[dt][2 * r + 1] *= corr;
				}
			}
			m[r] = mx;
			l[r] += (p[0][0] + p[0][1]) + (p[1][0] + p[1][1]);
			// a[r]: keys 2t4, +1 (tile 0); a[2 + r]: keys 8 + 2t4, +1
			split2(p[0][0], p[0][1], ph[r], pl[r]);
			split2(p[1][0], p[1][1], ph[2 + r], pl[2 + r]);
		}
		// O += P·V: ldmatrix.trans hands lane (g, t4) keys 2t4, +1 (b[0],
		// b[2]) and 8 + 2t4, +1 (b[1], b[3]) of dimension g of chunks 2dp
		// and 2dp + 1.
		int lv = (mi % 2) * 8 + kr8; // this lane's row: key lv, chunk 2dp + mi/2
#pragma unroll
		for (int dp = 0; dp < HD / 16; dp++) {
			unsigned b[4];
			ldsm4t(b, vst + (lv * LPK + ((2 * dp + mi / 2) ^ (lv & 7))) * VEC);
			mma(o[2 * dp], ph, b[0], b[1]);
			mma(o[2 * dp], pl, b[0], b[1]);
			mma(o[2 * dp + 1], ph, b[2], b[3]);
			mma(o[2 * dp + 1], pl, b[2], b[3]);
		}
	}

	// The warps' accumulators take the stages' place.
	cp_async_wait();
	__syncthreads();
	float(*sm_acc)[DEC_ROWS][HD] = (float(*)[DEC_ROWS][HD])smem;
#pragma unroll
	for (int r = 0; r < 2; r++) {
		float lr = l[r];
		lr += __shfl_xor_sync(FULL_MASK, lr, 1);
		lr += __shfl_xor_sync(FULL_MASK, lr, 2);
#pragma unroll
		for (int dt = 0; dt < HD / 8; dt++) {
			*(float2 *)&sm_acc[warp][g + 8 * r][8 * dt + 2 * t4] = make_float2(o[dt][2 * r], o[dt][2 * r + 1]);
		}
		if (t4 == 0) {
			sm_m[warp][g + 8 * r] = m[r];
			sm_l[warp][g + 8 * r] = lr;
		}
	}
	__syncthreads();

	// Merge the warps of each head, in warp order, and write the run's
	// partial result.
	long long rows = (long long)hq * S;
	float *pm = part + split * rows * HD, *pl = pm + split * rows;
	for (int e = threadIdx.x; e < DEC_HEADS * DEC_ROWS * HD; e += DEC_THREADS) {
		int he = e / (DEC_ROWS * HD), r = e / HD % DEC_ROWS, d = e % HD, rg = rt * DEC_ROWS + r;
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
// stats, as attention_mass computes it; grid (⌈(L+S)/(MASS_THREADS·
// MASS_KEYS)⌉, Hq), MASS_THREADS threads, MASS_KEYS keys per thread
// MASS_THREADS apart (independent loads in flight, coalesced), queries in
// order.
extern "C" __global__ void __launch_bounds__(MASS_THREADS) decode_mass(float *mass, const float *scores, const float *stats,
	const float *weights, int S, int n, int hq) {
	int qh = blockIdx.y;
	long long j0 = (long long)blockIdx.x * MASS_THREADS * MASS_KEYS + threadIdx.x;
	long long rows = (long long)hq * S;
	float acc[MASS_KEYS];
#pragma unroll
	for (int u = 0; u < MASS_KEYS; u++) {
		acc[u] = 0.0f;
	}
	for (int i = 0; i < S; i++) {
		long long rr = (long long)qh * S + i;
		float w = weights[i], m = stats[rr], inv = 1.0f / stats[rows + rr];
		float x[MASS_KEYS];
#pragma unroll
		for (int u = 0; u < MASS_KEYS; u++) {
			long long j = j0 + u * MASS_THREADS;
			x[u] = j < n ? scores[rr * n + j] : NEG_INF;
		}
#pragma unroll
		for (int u = 0; u < MASS_KEYS; u++) {
			acc[u] = mass_term(acc[u], w, x[u], m, inv);
		}
	}
#pragma unroll
	for (int u = 0; u < MASS_KEYS; u++) {
		long long j = j0 + u * MASS_THREADS;
		if (j < n) {
			mass[(long long)qh * n + j] = acc[u];
		}
	}
}
