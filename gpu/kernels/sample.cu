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

// argmax_t sets dst[r] to the index of the largest of the n values of row r
// of x, the first on ties, as the host's model.Argmax scans them, or to −1
// when the row holds a NaN or ±Inf (the caller then reads the row back to
// say where it went wrong). One block per row, blockDim.x a multiple of 32,
// at most 1024.
template <typename X>
__device__ __forceinline__ void argmax_t(int *dst, const X *x, int n) {
	__shared__ float wv[32];
	__shared__ int wi[32];
	__shared__ int bad;
	if (threadIdx.x == 0) {
		bad = 0;
	}
	__syncthreads();
	const X *row = x + (long long)blockIdx.x * n;
	float bv = 0.0f;
	int bi = NONE;
	bool finite = true;
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		float v = to_f32(row[i]);
		finite = finite && fabsf(v) <= 3.402823466e38f; // false for NaN and ±Inf
		if (better(v, i, bv, bi)) {
			bv = v, bi = i;
		}
	}
	if (!finite) {
		bad = 1; // a benign race: every writer writes 1
	}
	for (int o = 16; o > 0; o /= 2) {
		float ov = __shfl_xor_sync(FULL_MASK, bv, o);
		int oi = __shfl_xor_sync(FULL_MASK, bi, o);
		if (better(ov, oi, bv, bi)) {
			bv = ov, bi = oi;
		}
	}
	int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
	if (lane == 0) {
		wv[warp] = bv;
		wi[warp] = bi;
	}
	__syncthreads();
	if (threadIdx.x == 0) {
		for (int w = 1; w < (int)blockDim.x / 32; w++) {
			if (better(wv[w], wi[w], bv, bi)) {
				bv = wv[w], bi = wi[w];
			}
		}
		float first = to_f32(row[0]);
		dst[blockIdx.x] = bad ? -1 : bi == NONE || first != first ? 0 : bi;
	}
}

extern "C" __global__ void argmax_f32(int *dst, const f32 *x, int n) { argmax_t(dst, x, n); }
extern "C" __global__ void argmax_bf16(int *dst, const bf16 *x, int n) { argmax_t(dst, x, n); }
