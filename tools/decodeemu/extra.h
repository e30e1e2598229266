// What decode.cu needs beyond tools/flashemu/emu.h's subset of CUDA.
#pragma once
#undef __device__
#undef __forceinline__
#define __device__
#define __forceinline__ inline
