// Row and element kernels of the CUDA backend (package gpu), compiled once
// per device with NVRTC after kernels/storage.cuh. Tensors are row-major,
// stored as f32 or bf16; arithmetic is float32 whatever the storage. Each
// kernel is a template over the storage types of its tensors with one
// extern "C" wrapper per combination (EACH2, EACH3), named
// kernel_<type of the first tensor>_<type of the second>[_<third>]. Sizes
// are element counts; long long where a tensor may exceed 2^31 elements.

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
template <typename D, typename S>
__device__ __forceinline__ void embed_t(D *dst, const S *table, const int *ids, int dim) {
	const S *src = table + (long long)ids[blockIdx.x] * dim;
	D *out = dst + (long long)blockIdx.x * dim;
	for (int d = threadIdx.x; d < dim; d += blockDim.x) {
		out[d] = from_f32<D>(to_f32(src[d]));
	}
}
#define EMBED(D, S)                                                                         \
	extern "C" __global__ void embed_##D##_##S(D *dst, const S *table, const int *ids, int dim) { \
		embed_t(dst, table, ids, dim);                                                      \
	}
EACH2(EMBED)

// norm_row finishes an RMS norm: with ss this thread's part of the sum of
// squares of the row in, it sets out = w·in/rms(in), rounded once; every
// thread of the block calls it, with its own elements d = threadIdx.x,
// threadIdx.x + blockDim.x, ….
template <typename D, typename X, typename W>
__device__ __forceinline__ void norm_row(D *out, const X *in, const W *w, int dim, float eps, float ss) {
	ss = block_sum(ss);
	float inv = 1.0f / sqrtf(ss / (float)dim + eps);
#pragma unroll 4
	for (int d = threadIdx.x; d < dim; d += blockDim.x) {
		out[d] = from_f32<D>(to_f32(w[d]) * (to_f32(in[d]) * inv));
	}
}

// rmsnorm sets row r of dst to w·x/rms(x) for row r of x, rounded once;
// one block per row. dst may be x.
template <typename D, typename X, typename W>
__device__ __forceinline__ void rmsnorm_t(D *dst, const X *x, const W *w, int dim, float eps) {
	const X *in = x + (long long)blockIdx.x * dim;
	D *out = dst + (long long)blockIdx.x * dim;
	float ss = 0.0f;
#pragma unroll 4
	for (int d = threadIdx.x; d < dim; d += blockDim.x) {
		float v = to_f32(in[d]);
		ss += v * v;
	}
	norm_row(out, in, w, dim, eps, ss);
}
#define RMSNORM(D, X, W)                                                                                      \
	extern "C" __global__ void rmsnorm_##D##_##X##_##W(D *dst, const X *x, const W *w, int dim, float eps) { \
		rmsnorm_t(dst, x, w, dim, eps);                                                                       \
	}
EACH3(RMSNORM)

// add_rmsnorm adds row r of h to row r of x (one rounding of the float32
// sum, as add does) and sets row r of dst to w·x/rms(x) of the sum, as
// rmsnorm does, with the same threads and order: the residual sum and the
// norm after it in one pass. dst may be h.
template <typename D, typename X, typename W>
__device__ __forceinline__ void add_rmsnorm_t(D *dst, X *x, const X *h, const W *w, int dim, float eps) {
	X *in = x + (long long)blockIdx.x * dim;
	const X *hr = h + (long long)blockIdx.x * dim;
	D *out = dst + (long long)blockIdx.x * dim;
	float ss = 0.0f;
#pragma unroll 4
	for (int d = threadIdx.x; d < dim; d += blockDim.x) {
		X r = from_f32<X>(to_f32(in[d]) + to_f32(hr[d]));
		in[d] = r;
		float v = to_f32(r);
		ss += v * v;
	}
	norm_row(out, in, w, dim, eps, ss);
}
#define ADD_RMSNORM(D, X, W)                                                                                          \
	extern "C" __global__ void add_rmsnorm_##D##_##X##_##W(D *dst, X *x, const X *h, const W *w, int dim, float eps) { \
		add_rmsnorm_t(dst, x, h, w, dim, eps);                                                                        \
	}
EACH3(ADD_RMSNORM)

// swiglu sets dst = silu(gate)·up elementwise; dst may be gate or up.
template <typename D, typename G, typename U>
__device__ __forceinline__ void swiglu_t(D *dst, const G *gate, const U *up, long long n) {
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
		float g = to_f32(gate[i]);
		dst[i] = from_f32<D>(g / (1.0f + expf(-g)) * to_f32(up[i]));
	}
}
#define SWIGLU(D, G, U)                                                                                    \
	extern "C" __global__ void swiglu_##D##_##G##_##U(D *dst, const G *gate, const U *up, long long n) { \
		swiglu_t(dst, gate, up, n);                                                                        \
	}
EACH3(SWIGLU)

// add sets dst += x elementwise (one rounding of the float32 sum).
template <typename D, typename X>
__device__ __forceinline__ void add_t(D *dst, const X *x, long long n) {
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
		dst[i] = from_f32<D>(to_f32(dst[i]) + to_f32(x[i]));
	}
}
#define ADD(D, X)                                                                 \
	extern "C" __global__ void add_##D##_##X(D *dst, const X *x, long long n) { \
		add_t(dst, x, n);                                                         \
	}
EACH2(ADD)

// add_bias adds bias [cols] to every row of dst [rows, cols].
template <typename D, typename B>
__device__ __forceinline__ void add_bias_t(D *dst, const B *bias, long long n, int cols) {
	for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
		dst[i] = from_f32<D>(to_f32(dst[i]) + to_f32(bias[i % cols]));
	}
}
#define ADD_BIAS(D, B)                                                                                \
	extern "C" __global__ void add_bias_##D##_##B(D *dst, const B *bias, long long n, int cols) { \
		add_bias_t(dst, bias, n, cols);                                                               \
	}
EACH2(ADD_BIAS)

// scatter writes row i of head h of src [S, Hkv·hd] into slot
// slots[h·S+i] of dst [Hkv, cap, hd], and with grid.z = 2 row i of src2
// into dst2 alike (the keys and the values of a chunk in one launch); a
// negative slot skips the row. The host has already dropped all but the
// last row naming a slot, so no two blocks write one slot. Grid (S, Hkv,
// 1 or 2).
template <typename D, typename S>
__device__ __forceinline__ void scatter_t(D *dst, const S *src, D *dst2, const S *src2, const int *slots, int rows,
					  int hkv, int cap, int hd) {
	int i = blockIdx.x, h = blockIdx.y;
	int slot = slots[h * rows + i];
	if (slot < 0) {
		return;
	}
	if (blockIdx.z == 1) {
		dst = dst2, src = src2;
	}
	const S *in = src + ((long long)i * hkv + h) * hd;
	D *out = dst + ((long long)h * cap + slot) * hd;
	for (int d = threadIdx.x; d < hd; d += blockDim.x) {
		out[d] = from_f32<D>(to_f32(in[d]));
	}
}
#define SCATTER(D, S)                                                                                              \
	extern "C" __global__ void scatter_##D##_##S(D *dst, const S *src, D *dst2, const S *src2, const int *slots, \
						     int rows, int hkv, int cap, int hd) {                        \
		scatter_t(dst, src, dst2, src2, slots, rows, hkv, cap, hd);                                         \
	}
EACH2(SCATTER)

// copy_slots copies slots [0, n) of every head from src [Hkv, cap1, hd] to
// dst [Hkv, cap2, hd]: count = n·hd elements per head. Grid (blocks, Hkv).
template <typename D, typename S>
__device__ __forceinline__ void copy_slots_t(D *dst, const S *src, long long count, int cap1, int cap2, int hd) {
	const S *in = src + (long long)blockIdx.y * cap1 * hd;
	D *out = dst + (long long)blockIdx.y * cap2 * hd;
	for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < count; e += (long long)gridDim.x * blockDim.x) {
		out[e] = from_f32<D>(to_f32(in[e]));
	}
}
#define COPY_SLOTS(D, S)                                                                                                     \
	extern "C" __global__ void copy_slots_##D##_##S(D *dst, const S *src, long long count, int cap1, int cap2, int hd) { \
		copy_slots_t(dst, src, count, cap1, cap2, hd);                                                                       \
	}
EACH2(COPY_SLOTS)

// copy_rows copies, for head h and i < n, row src_rows[h·n+i] of head h of
// src [Hkv, scap, hd] into row dst_rows[h·n+i] of head h of dst [Hkv,
// dcap, hd]; a negative entry skips the pair (backend.HostTier). Either
// tensor may be page-locked host memory mapped into the device's address
// space (a logsearch host tier): the kernel reads and writes through
// device pointers alike. The host forbids two pairs naming one dst row of
// a head. Grid (n, Hkv).
template <typename D, typename S>
__device__ __forceinline__ void copy_rows_t(D *dst, const S *src, const int *dst_rows, const int *src_rows, int n,
					    int dcap, int scap, int hd) {
	int i = blockIdx.x, h = blockIdx.y;
	int dr = dst_rows[h * n + i], sr = src_rows[h * n + i];
	if (dr < 0 || sr < 0) {
		return;
	}
	const S *in = src + ((long long)h * scap + sr) * hd;
	D *out = dst + ((long long)h * dcap + dr) * hd;
	for (int d = threadIdx.x; d < hd; d += blockDim.x) {
		out[d] = from_f32<D>(to_f32(in[d]));
	}
}
#define COPY_ROWS(D, S)                                                                                         \
	extern "C" __global__ void copy_rows_##D##_##S(D *dst, const S *src, const int *dst_rows, const int *src_rows, \
						       int n, int dcap, int scap, int hd) {                          \
		copy_rows_t(dst, src, dst_rows, src_rows, n, dcap, scap, hd);                                        \
	}
EACH2(COPY_ROWS)

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

// gemm_nt sets c [m, n] = a [m, k] · bᵀ with b [n, k], all row-major, the
// layout of x·wᵀ for a Hugging Face weight w, accumulating in float32 and
// rounding each output once. The fallback where cuBLAS (float32) or
// cuBLASLt (bf16) is missing or has no algorithm: 64×64 output tiles,
// 16-deep k slices staged in shared memory as float32, 256 threads each
// computing 4×4 outputs strided by 16 so that the stores of a warp are
// contiguous.
#define GT 64
#define GK 16
template <typename C, typename A, typename B>
__device__ __forceinline__ void gemm_nt_t(C *c, const A *a, const B *b, int m, int n, int k) {
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
			as[kk][r] = (ar < m && gk < k) ? to_f32(a[(long long)ar * k + gk]) : 0.0f;
			bs[kk][r] = (br < n && gk < k) ? to_f32(b[(long long)br * k + gk]) : 0.0f;
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
				c[(long long)r * n + col] = from_f32<C>(acc[i][j]);
			}
		}
	}
}
#define GEMM_NT(C, A, B)                                                                                                       \
	extern "C" __global__ void __launch_bounds__(256) gemm_nt_##C##_##A##_##B(C *c, const A *a, const B *b, int m, int n, int k) { \
		gemm_nt_t(c, a, b, m, n, k);                                                                                           \
	}
EACH3(GEMM_NT)

// gemv_nt sets c [n] = x [k] · wᵀ (+ bias [n], unless null) for one bf16
// row x and w [n, k] bf16 row-major: the products of a decoding step,
// which read every weight once, so that their speed is the rate at which
// w streams from memory. It accumulates in float32 and rounds each output
// once, as the cuBLASLt path does. A warp takes GV_ROWS consecutive rows
// of w; lane l reads the 16 bytes at offsets 8·l + 256·t of each row,
// GV_UNROLL offsets at a time, so that GV_ROWS·GV_UNROLL 16-byte loads of
// a lane are in flight; the lanes' sums meet by shuffles in a fixed
// order. k must be a multiple of 8 and x and w 16-byte aligned (the host
// checks). Grid ⌈n / (GV_WARPS·GV_ROWS)⌉, GV_WARPS·32 threads.
#define GV_WARPS 4
#define GV_ROWS 4
#define GV_UNROLL 4

// dot8 adds the products of the 8 bf16 of a and of b to acc.
__device__ __forceinline__ float dot8(uint4 a, uint4 b, float acc) {
	unsigned x[4] = {a.x, a.y, a.z, a.w}, y[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
	for (int e = 0; e < 4; e++) {
		acc += __uint_as_float(x[e] << 16) * __uint_as_float(y[e] << 16);
		acc += __uint_as_float(x[e] & 0xffff0000u) * __uint_as_float(y[e] & 0xffff0000u);
	}
	return acc;
}

template <typename C>
__device__ __forceinline__ void gemv_nt_t(C *c, const bf16 *x, const bf16 *w, const C *bias, int n, int k) {
	int lane = threadIdx.x % WARP;
	long long row0 = ((long long)blockIdx.x * GV_WARPS + threadIdx.x / WARP) * GV_ROWS;
	if (row0 >= n) {
		return; // the whole warp
	}
	const bf16 *wr[GV_ROWS];
	float acc[GV_ROWS];
#pragma unroll
	for (int r = 0; r < GV_ROWS; r++) {
		wr[r] = w + min(row0 + r, (long long)n - 1) * k; // rows past n repeat the last, unused
		acc[r] = 0.0f;
	}
	for (int i0 = lane * 8; i0 < k; i0 += 256 * GV_UNROLL) {
		uint4 xv[GV_UNROLL], wv[GV_UNROLL][GV_ROWS];
#pragma unroll
		for (int u = 0; u < GV_UNROLL; u++) {
			int i = i0 + 256 * u;
			xv[u] = make_uint4(0, 0, 0, 0);
#pragma unroll
			for (int r = 0; r < GV_ROWS; r++) {
				wv[u][r] = make_uint4(0, 0, 0, 0);
			}
			if (i < k) {
				xv[u] = *(const uint4 *)(x + i);
#pragma unroll
				for (int r = 0; r < GV_ROWS; r++) {
					wv[u][r] = __ldg((const uint4 *)(wr[r] + i));
				}
			}
		}
#pragma unroll
		for (int u = 0; u < GV_UNROLL; u++) {
#pragma unroll
			for (int r = 0; r < GV_ROWS; r++) {
				acc[r] = dot8(xv[u], wv[u][r], acc[r]);
			}
		}
	}
#pragma unroll
	for (int r = 0; r < GV_ROWS; r++) {
#pragma unroll
		for (int o = WARP / 2; o > 0; o /= 2) {
			acc[r] += __shfl_xor_sync(FULL_MASK, acc[r], o);
		}
	}
	if (lane == 0) {
#pragma unroll
		for (int r = 0; r < GV_ROWS; r++) {
			long long row = row0 + r;
			if (row < n) {
				float v = acc[r];
				if (bias != 0) {
					v += to_f32(bias[row]);
				}
				c[row] = from_f32<C>(v);
			}
		}
	}
}
#define GEMV_NT(C)                                                                                  \
	extern "C" __global__ void __launch_bounds__(GV_WARPS * 32) gemv_nt_##C(C *c, const bf16 *x, const bf16 *w, \
		const C *bias, int n, int k) {                                                              \
		gemv_nt_t(c, x, w, bias, n, k);                                                             \
	}
GEMV_NT(f32)
GEMV_NT(bf16)
