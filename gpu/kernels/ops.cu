// Row and element kernels of the CUDA backend (package gpu), compiled once
// per device with NVRTC. Storage is float32, row-major. Sizes are element
// counts; long long where a tensor may exceed 2^31 elements.

#define WARP 32
#define FULL_MASK 0xffffffffu

// block_sum returns the sum of v over the block (blockDim.x a multiple of
// 32, at most 1024) to every thread.
__device__ float block_sum(float v) {
	__shared__ float partial[WARP];
	for (int o = WARP / 2; o > 0; o /= 2) {
		v += __shfl_xor_sync(FULL_MASK, v, o);
	}
	int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
	if (lane == 0) {
		partial[warp] = v;
	}
	__syncthreads();
	int warps = blockDim.x / WARP;
	v = lane < warps ? partial[lane] : 0.0f;
	for (int o = WARP / 2; o > 0; o /= 2) {
		v += __shfl_xor_sync(FULL_MASK, v, o);
	}
	return v;
}

// embed copies row ids[r] of table [V, dim] to row r of dst; one block per
// row.
extern "C" __global__ void embed(float *dst, const float *table, const int *ids, int dim) {
	const float *src = table + (long long)ids[blockIdx.x] * dim;
	float *out = dst + (long long)blockIdx.x * dim;
	for (int d = threadIdx.x; d < dim; d += blockDim.x) {
		out[d] = src[d];
	}
}

// rmsnorm sets row r of dst to w·x/rms(x) for row r of x; one block per
// row. dst may be x.
extern "C" __global__ void rmsnorm(float *dst, const float *x, const float *w, int dim, float eps) {
	const float *in = x + (long long)blockIdx.x * dim;
	float *out = dst + (long long)blockIdx.x * dim;
	float ss = 0.0f;
	for (int d = threadIdx.x; d < dim; d += blockDim.x) {
		ss += in[d] * in[d];
	}
	ss = block_sum(ss);
	float inv = 1.0f / sqrtf(ss / (float)dim + eps);
	for (int d = threadIdx.x; d < dim; d += blockDim.x) {
		out[d] = w[d] * (in[d] * inv);
	}
}

// swiglu sets dst = silu(gate)·up elementwise; dst may be gate or up.
extern "C" __global__ void swiglu(float *dst, const float *gate, const float *up, long long n) {
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
		float g = gate[i];
		dst[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

// add sets dst += x elementwise.
extern "C" __global__ void add(float *dst, const float *x, long long n) {
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
		dst[i] += x[i];
	}
}

// add_bias adds bias [cols] to every row of dst [rows, cols].
extern "C" __global__ void add_bias(float *dst, const float *bias, long long n, int cols) {
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
		dst[i] += bias[i % cols];
	}
}

// scatter writes row i of head h of src [S, Hkv·hd] into slot
// slots[h·S+i] of dst [Hkv, cap, hd]; a negative slot skips the row. The
// host has already dropped all but the last row naming a slot, so no two
// blocks write one slot. Grid (S, Hkv).
extern "C" __global__ void scatter(float *dst, const float *src, const int *slots, int rows, int hkv, int cap, int hd) {
	int i = blockIdx.x, h = blockIdx.y;
	int slot = slots[h * rows + i];
	if (slot < 0) {
		return;
	}
	const float *in = src + ((long long)i * hkv + h) * hd;
	float *out = dst + ((long long)h * cap + slot) * hd;
	for (int d = threadIdx.x; d < hd; d += blockDim.x) {
		out[d] = in[d];
	}
}

// copy_slots copies slots [0, n) of every head from src [Hkv, cap1, hd] to
// dst [Hkv, cap2, hd]: count = n·hd elements per head. Grid (blocks, Hkv).
extern "C" __global__ void copy_slots(float *dst, const float *src, long long count, int cap1, int cap2, int hd) {
	const float *in = src + (long long)blockIdx.y * cap1 * hd;
	float *out = dst + (long long)blockIdx.y * cap2 * hd;
	for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < count; e += (long long)gridDim.x * blockDim.x) {
		out[e] = in[e];
	}
}

// rope_table fills cos and sin [n, half] for positions [0, n): the angle
// p·f is rounded to float as the reference (and the CPU backend) do, its
// cosine and sine taken in double and rounded, then scaled by factor.
extern "C" __global__ void rope_table(float *cosT, float *sinT, const float *inv_freq, int half, long long n, float factor) {
	long long total = n * half;
	for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
		long long p = e / half;
		int i = (int)(e % half);
		float angle = __fmul_rn((float)p, inv_freq[i]);
		double s, c;
		sincos((double)angle, &s, &c);
		cosT[e] = (float)c * factor;
		sinT[e] = (float)s * factor;
	}
}

// sgemm_nt sets c [m, n] = a [m, k] · bᵀ with b [n, k], all row-major, the
// layout of x·wᵀ for a Hugging Face weight w. The fallback when cuBLAS is
// missing: 64×64 output tiles, 16-deep k slices staged in shared memory,
// 256 threads each computing 4×4 outputs strided by 16 so that the stores of
// a warp are contiguous.
#define GT 64
#define GK 16
extern "C" __global__ void __launch_bounds__(256) sgemm_nt(float *c, const float *a, const float *b, int m, int n, int k) {
	__shared__ float as[GK][GT + 1];
	__shared__ float bs[GK][GT + 1];
	int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
	int row0 = blockIdx.y * GT, col0 = blockIdx.x * GT;
	float acc[4][4];
#pragma unroll
	for (int i = 0; i < 4; i++) {
#pragma unroll
		for (int j = 0; j < 4; j++) {
			acc[i][j] = 0.0f;
		}
	}
	for (int k0 = 0; k0 < k; k0 += GK) {
		for (int e = threadIdx.x; e < GT * GK; e += blockDim.x) {
			int r = e / GK, kk = e % GK;
			int gk = k0 + kk;
			int ar = row0 + r, br = col0 + r;
			as[kk][r] = (ar < m && gk < k) ? a[(long long)ar * k + gk] : 0.0f;
			bs[kk][r] = (br < n && gk < k) ? b[(long long)br * k + gk] : 0.0f;
		}
		__syncthreads();
#pragma unroll
		for (int kk = 0; kk < GK; kk++) {
			float av[4], bv[4];
#pragma unroll
			for (int i = 0; i < 4; i++) {
				av[i] = as[kk][ty + 16 * i];
				bv[i] = bs[kk][tx + 16 * i];
			}
#pragma unroll
			for (int i = 0; i < 4; i++) {
#pragma unroll
				for (int j = 0; j < 4; j++) {
					acc[i][j] += av[i] * bv[j];
				}
			}
		}
		__syncthreads();
	}
#pragma unroll
	for (int i = 0; i < 4; i++) {
		int r = row0 + ty + 16 * i;
		if (r >= m) {
			continue;
		}
#pragma unroll
		for (int j = 0; j < 4; j++) {
			int col = col0 + tx + 16 * j;
			if (col < n) {
				c[(long long)r * n + col] = acc[i][j];
			}
		}
	}
}
