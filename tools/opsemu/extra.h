// What ops.cu's emulated kernels need beyond tools/flashemu/emu.h's subset of CUDA.
#pragma once
#undef __device__
#undef __forceinline__
#define __device__
#define __forceinline__ inline
template <typename P> static inline P __ldg(const P *p) { return *p; }
