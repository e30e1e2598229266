// What decode.cu needs beyond tools/flashemu/emu.h's subset of CUDA.
#pragma once
#undef __device__
#undef __forceinline__
#define __device__
#define __forceinline__ inline
static inline unsigned __float_as_uint(float f) { return fbits(f); }
static inline float __shfl_sync(unsigned mask, float v, int src) {
	assert(mask == 0xffffffffu && src >= 0 && src < 32);
	EmuWarp &w = emu_w();
	int l = threadIdx.x % 32;
	w.x[l][0] = fbits(v);
	w.bar->arrive_and_wait();
	float r = __uint_as_float(w.x[src][0]);
	w.bar->arrive_and_wait();
	return r;
}
