// Greedy sampling on the device for the CUDA backend (package gpu), so
// that a decoding step reads back a token instead of the logits. Compiled by
// NVRTC after kernels/storage.cuh.

#define FULL_MASK 0xffffffffu
#define NONE 0x7fffffff

// better reports whether value v at index i beats value bv at index bi:
// larger, or equal and earlier; a NaN never beats anything, and anything
// that is not a NaN beats NONE.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
	if (v != v || i == NONE) {
		return false;
	}
	return bi == NONE || v > bv || (v == bv && i < bi);
}

// warp_best leaves the best of the warp's (bv, bi) pairs in every lane.
__device__ __forceinline__ void warp_best(float &bv, int &bi) {
	for (int o = 16; o > 0; o /= 2) {
		float ov = __shfl_xor_sync(FULL_MASK, bv, o);
		int oi = __shfl_xor_sync(FULL_MASK, bi, o);
		if (better(ov, oi, bv, bi)) {
			bv = ov, bi = oi;
		}
	}
}

// argmax_part finds, for part p = blockIdx.x of row r = blockIdx.y of x
// (values [p·per, min(n, (p+1)·per)) of the row's n), the largest value
// and its index, the first on ties (NONE where the part holds only NaNs or
// nothing), and whether every value is finite, into pv, pi and pbad at [r ·
// gridDim.x + p]. blockDim.x is a multiple of 32, at most 1024. better is a
// total order, so the parts and their threads may be merged in any order
// and give the same pick.
template <typename X>
__device__ __forceinline__ void argmax_part(float *pv, int *pi, int *pbad, const X *x, int n, int per) {
	__shared__ float wv[32];
	__shared__ int wi[32], wbad[32];
	const X *row = x + (long long)blockIdx.y * n;
	int lo = blockIdx.x * per, hi = min(n, lo + per);
	float bv = 0.0f;
	int bi = NONE;
	bool finite = true;
	for (int i = lo + threadIdx.x; i < hi; i += blockDim.x) {
		float v = to_f32(row[i]);
		finite = finite && fabsf(v) <= 3.402823466e38f; // false for NaN and ±Inf
		if (better(v, i, bv, bi)) {
			bv = v, bi = i;
		}
	}
	warp_best(bv, bi);
	bool bad = __any_sync(FULL_MASK, !finite);
	int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
	if (lane == 0) {
		wv[warp] = bv, wi[warp] = bi, wbad[warp] = bad;
	}
	__syncthreads();
	if (threadIdx.x == 0) {
		for (int w = 1; w < (int)blockDim.x / 32; w++) {
			if (better(wv[w], wi[w], bv, bi)) {
				bv = wv[w], bi = wi[w];
			}
			bad = bad || wbad[w];
		}
		int at = blockIdx.y * gridDim.x + blockIdx.x;
		pv[at] = bv, pi[at] = bi, pbad[at] = bad;
	}
}

extern "C" __global__ void argmax_part_f32(float *pv, int *pi, int *pbad, const f32 *x, int n, int per) {
	argmax_part(pv, pi, pbad, x, n, per);
}
extern "C" __global__ void argmax_part_bf16(float *pv, int *pi, int *pbad, const bf16 *x, int n, int per) {
	argmax_part(pv, pi, pbad, x, n, per);
}

// argmax_merge sets dst[r] for row r = blockIdx.x to the pick of its parts
// parts of argmax_part: the index of the largest value, the first on ties,
// as the host's model.Argmax scans the row, or −1 when the row holds a NaN
// or ±Inf (the caller then reads the row back to say where it went wrong).
// One warp a row.
extern "C" __global__ void argmax_merge(int *dst, const float *pv, const int *pi, const int *pbad, int parts) {
	float bv = 0.0f;
	int bi = NONE;
	bool bad = false;
	for (int p = threadIdx.x; p < parts; p += 32) {
		int at = blockIdx.x * parts + p;
		if (better(pv[at], pi[at], bv, bi)) {
			bv = pv[at], bi = pi[at];
		}
		bad = bad || pbad[at];
	}
	warp_best(bv, bi);
	bad = __any_sync(FULL_MASK, bad);
	if (threadIdx.x == 0) {
		dst[blockIdx.x] = bad ? -1 : bi == NONE ? 0 : bi;
	}
}
