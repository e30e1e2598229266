// Seeded normal fill for random models (Backend.RandomNormal in package
// gpu). Element i of a tensor drawn with key k is mean + std·z with
//
//	h  = splitmix64(k + (i+1)·0x9e3779b97f4a7c15)
//	u1 = (h>>32 + 1)·2⁻³², u2 = (h & 0xffffffff)·2⁻³²
//	z  = √(−2 ln u1)·cos(2π u2)
//
// in double precision, rounded to float once (and then to the storage type
// once more, as FromFloat32 rounds the host's numbers); runtime/model's host
// fallback (FillNormal) computes the same numbers, so a model drawn from a
// seed is the same model on every backend. Compiled after
// kernels/storage.cuh, with one wrapper per storage type (fill_normal_f32,
// fill_normal_bf16), so that bf16 weights are drawn without a float32 copy.

__device__ unsigned long long splitmix64(unsigned long long z) {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

// fill_normal writes n normal samples to dst; a grid-stride loop.
template <typename T>
__device__ __forceinline__ void fill_normal_t(T *dst, long long n, unsigned long long key, float mean, float std) {
	const double two32 = 2.3283064365386962890625e-10; // 2⁻³²
	const double twoPi = 6.283185307179586476925286766559;
	long long stride = (long long)gridDim.x * blockDim.x;
	for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
		unsigned long long h = splitmix64(key + (unsigned long long)(i + 1) * 0x9e3779b97f4a7c15ull);
		double u1 = ((double)(h >> 32) + 1.0) * two32;
		double u2 = (double)(h & 0xffffffffull) * two32;
		double z = sqrt(-2.0 * log(u1)) * cos(twoPi * u2);
		dst[i] = from_f32<T>((float)((double)mean + (double)std * z));
	}
}
#define FILL_NORMAL(T)                                                                                                  \
	extern "C" __global__ void fill_normal_##T(T *dst, long long n, unsigned long long key, float mean, float std) { \
		fill_normal_t(dst, n, key, mean, std);                                                                          \
	}
FILL_NORMAL(f32)
FILL_NORMAL(bf16)
