// Element types of tensors in device memory, for the kernels of package
// gpu. Package gpu puts this file in front of every kernel source before
// NVRTC compiles it (no #include: NVRTC versions differ in the headers they
// ship, so cuda_bf16.h is not used either).
//
// Tensors are stored as f32 (IEEE single) or bf16 (bfloat16: the upper 16
// bits of a single, kept in an unsigned short). Kernels load any element
// with to_f32, compute in float32, and store with from_f32<T>, which rounds
// to the nearest bfloat16, ties to even, as runtime/safetensors and the
// host side of package gpu do.

#ifndef KVC_STORAGE_CUH
#define KVC_STORAGE_CUH

typedef float f32;
typedef unsigned short bf16;

// to_f32 widens an element to float32 (exact for both types).
__device__ __forceinline__ float to_f32(f32 v) { return v; }
__device__ __forceinline__ float to_f32(bf16 v) { return __uint_as_float((unsigned)v << 16); }

// from_f32<T> rounds a float32 to T: the identity for f32; for bf16 the
// nearest value, ties to even, overflowing to ±∞; a NaN stays a (quiet)
// NaN with its sign.
template <typename T> __device__ __forceinline__ T from_f32(float v);

template <> __device__ __forceinline__ f32 from_f32<f32>(float v) { return v; }

template <> __device__ __forceinline__ bf16 from_f32<bf16>(float v) {
	unsigned u = __float_as_uint(v);
	if ((u & 0x7fffffffu) > 0x7f800000u) {
		return (bf16)((u >> 16) | 0x40u);
	}
	return (bf16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// EACH2(M) and EACH3(M) expand M for every combination of storage types of
// a kernel's two or three tensors, so that one template body gets an
// extern "C" wrapper per combination, named after its types in argument
// order (e.g. rmsnorm_bf16_bf16_f32).
#define EACH2(M) M(f32, f32) M(f32, bf16) M(bf16, f32) M(bf16, bf16)
#define EACH3(M)                                                      \
	M(f32, f32, f32) M(f32, f32, bf16) M(f32, bf16, f32) M(f32, bf16, bf16) \
	M(bf16, f32, f32) M(bf16, f32, bf16) M(bf16, bf16, f32) M(bf16, bf16, bf16)

// mass_term adds to acc query weight w times the softmax probability of
// score x in a row of max m and inverse denominator inv: one term of the
// attention mass, as decode_mass and cascade_reduce_scores compute it
// (the same expression, so that both give the same bits); a −∞ score
// (padding, a key the query does not see) adds nothing.
__device__ __forceinline__ float mass_term(float acc, float w, float x, float m, float inv) {
	if (w != 0.0f && x != __int_as_float(0xff800000)) {
		acc += w * (expf(x - m) * inv);
	}
	return acc;
}

#ifndef KVC_HOST_EMULATION
// Asynchronous copies from global to shared memory (sm_80 and later), for
// the kernels that stream their operands, and the exp2 of the softmaxes.
// (A host emulation for
// development may supply these instead.)

// smem_addr is p's address in the shared window, as ldmatrix and cp.async
// take it.
__device__ __forceinline__ unsigned smem_addr(const void *p) {
	unsigned a;
	asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
	return a;
}

// cp_async16 copies 16 bytes from global src to shared dst in the
// background, or writes 16 zero bytes when !ok (src is then not read).
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool ok) {
	asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(ok ? 16 : 0)
		     : "memory");
}

// cp_async_commit closes the group of this thread's copies issued since
// the last commit.
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// cp_async_wait waits for all of this thread's copies.
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// cp_async_wait_pending<N> waits until at most the N groups this thread
// committed last are still in flight. The copies are then visible to this
// thread; other threads see them after a barrier (__syncwarp within a
// warp, __syncthreads within the block).
template <int N> __device__ __forceinline__ void cp_async_wait_pending() {
	asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ex2 is 2^x (ex2.approx: relative error about 2⁻²²; −∞ gives 0).
__device__ __forceinline__ float ex2(float x) {
	float y;
	asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
	return y;
}

// The tensor-core operations of the attention kernels (flash.cu,
// decode.cu), as the PTX ISA lays out their fragments.

// ldsm4 loads four 8×8 bf16 matrices: lane l gives the address of row l%8
// of matrix l/8; r[m] receives row lane/4, columns 2·(lane%4) and +1 of
// matrix m.
__device__ __forceinline__ void ldsm4(unsigned r[4], const bf16 *p) {
	asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
		     : "r"(smem_addr(p)));
}

// ldsm4t is ldsm4 of the transposed matrices: r[m] receives rows
// 2·(lane%4) and +1, column lane/4.
__device__ __forceinline__ void ldsm4t(unsigned r[4], const bf16 *p) {
	asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
		     : "r"(smem_addr(p)));
}

// mma adds A·B to the 16×8 float32 tile c: a is the 16×16 bf16 A
// fragment, b0 and b1 the 16×8 B fragment (see the PTX ISA for the
// layouts; lane = 4·g + t holds c rows g and g+8, columns 2t and 2t+1).
__device__ __forceinline__ void mma(float c[4], const unsigned a[4], unsigned b0, unsigned b1) {
	asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
	    : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
	    : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// pack2 rounds lo and hi to bf16 (to nearest even) into one word, lo in
// the low half as mma fragments and memory order want it.
__device__ __forceinline__ unsigned pack2(float lo, float hi) {
	unsigned r;
	asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
	return r;
}
#endif // KVC_HOST_EMULATION

#endif
