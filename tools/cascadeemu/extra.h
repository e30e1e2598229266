// What cascade.cu needs beyond tools/flashemu/emu.h's subset of CUDA, and
// the walk's emulation hooks: WALK_CHECK aborts on an access outside the
// staged windows, WALK_TRACE counts the blocks that staged their walk (all of it:
// emu_walk_all; walked in parallel: emu_walk_par).
#pragma once
#undef __device__
#undef __forceinline__
#define __device__
#define __forceinline__ inline
static inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }
static inline int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static int emu_walk_blocks, emu_walk_staged, emu_walk_all, emu_walk_par; // written by thread 0 of each block
#define WALK_CHECK(cond)                                                                        \
	do {                                                                                    \
		if (!(cond)) {                                                                  \
			fprintf(stderr, "%s:%d: outside the staged windows: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                \
		}                                                                               \
	} while (0)
#define WALK_TRACE(staged) \
	(emu_walk_blocks++, emu_walk_staged += (staged) > 0, emu_walk_all += (staged) == 2, emu_walk_par += (staged) == 3)
