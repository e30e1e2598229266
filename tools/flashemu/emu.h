// Host emulation of the CUDA subset that gpu/kernels/flash.cu uses, to run its
// kernels on a CPU (see run.sh): one std::thread per CUDA thread, blocks
// one after another, shared memory a fresh heap buffer of exactly the
// launch's size per block (filled with 0xff, so that reading unwritten
// bytes gives NaNs, and under AddressSanitizer overruns fault), warp
// collectives (shuffles, ballots, ldmatrix, mma) exchanged through
// per-warp barriers and computed from the PTX ISA's fragment layouts, and
// cp.async copies deferred to the wait, so that reading a buffer before
// waiting sees stale data. It checks logic (indices, fragment layouts,
// masks, barriers placement of the double buffers), not timing, and it
// cannot check the PTX itself: the layouts here are the ISA's as read by
// whoever wrote them.
#pragma once
#include <barrier>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>
#include <condition_variable>
#include <mutex>
#include <vector>
#include <algorithm>

struct uint4 { unsigned x, y, z, w; };
struct uint2 { unsigned x, y; };
struct float4 { float x, y, z, w; };
struct float2 { float x, y; };
static inline float2 make_float2(float a, float b) { return {a, b}; }
static inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
static inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
struct D3 { unsigned x, y, z; };
extern thread_local D3 threadIdx;
extern D3 blockIdx, gridDim, blockDim;
extern unsigned char *emu_smem;
extern size_t emu_smem_bytes;

struct EmuWarp { std::barrier<> *bar; uint32_t x[32][12]; const void *p[32]; };
// wg are the barriers of the block's whole warpgroups (128 threads) and wa
// their threads' A fragments of a wgmma (tools/flashemu/wgmma.h).
// EmuNamedBar is a named barrier (bar.sync / bar.arrive with a thread
// count): a phase completes when count threads have arrived, waiting or
// not; more arrivals than count in one phase, or a phase left incomplete
// when the block ends, fail an assertion.
struct EmuNamedBar {
  std::mutex mu; std::condition_variable cv; int count = 0, n = 0; long phase = 0;
  void arrive(int c, bool wait) {
    std::unique_lock<std::mutex> lk(mu);
    assert(c > 0 && (count == 0 || count == c)); count = c;
    long p = phase;
    if (++n == count) { n = 0; phase++; cv.notify_all(); return; }
    if (wait) cv.wait(lk, [&] { return phase != p; });
  }
};
// nb are the block's named barriers by number (bar.sync's first operand).
struct EmuBlock { std::barrier<> *bar; EmuWarp w[32]; std::barrier<> *wg[8]; uint32_t wa[8][128][4]; EmuNamedBar nb[16]; };
extern EmuBlock *emu_blk;

static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline unsigned fbits(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
static inline unsigned __float_as_uint(float f) { return fbits(f); }
static inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
static inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
static inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
using std::min; using std::max;

static inline void __syncthreads() { emu_blk->bar->arrive_and_wait(); }
static inline EmuWarp &emu_w() { return emu_blk->w[threadIdx.x / 32]; }
static inline float __shfl_xor_sync(unsigned mask, float v, int o) {
  assert(mask == 0xffffffffu);
  EmuWarp &w = emu_w(); int l = threadIdx.x % 32;
  w.x[l][0] = fbits(v); w.bar->arrive_and_wait();
  float r = __uint_as_float(w.x[l ^ o][0]); w.bar->arrive_and_wait(); return r;
}
static inline unsigned __ballot_sync(unsigned mask, bool p) {
  assert(mask == 0xffffffffu);
  EmuWarp &w = emu_w(); int l = threadIdx.x % 32;
  w.x[l][0] = p; w.bar->arrive_and_wait();
  unsigned r = 0; for (int i = 0; i < 32; i++) r |= (w.x[i][0] ? 1u : 0u) << i;
  w.bar->arrive_and_wait(); return r;
}
static inline bool __all_sync(unsigned mask, bool p) { return __ballot_sync(mask, p) == 0xffffffffu; }
static inline bool in_smem(const void *p, size_t n) {
  auto a = (const unsigned char *)p; return a >= emu_smem && a + n <= emu_smem + emu_smem_bytes;
}
// A copy belongs to the group its thread commits next (emu_groups counts
// the thread's commits so far).
struct Pending { void *dst; const void *src; bool ok; long group; };
extern thread_local std::vector<Pending> emu_pending;
extern thread_local long emu_groups;
static inline void cp_async16(void *dst, const void *src, bool ok) {
  assert(in_smem(dst, 16) && ((uintptr_t)dst & 15) == 0);
  assert(((uintptr_t)src & 15) == 0);
  emu_pending.push_back({dst, src, ok, emu_groups});
}
static inline void cp_async_commit() { emu_groups++; }
// emu_copy_until carries out the pending copies of groups before g.
static inline void emu_copy_until(long g) {
  std::vector<Pending> rest;
  for (auto &p : emu_pending) {
    if (p.group >= g) { rest.push_back(p); continue; }
    if (p.ok) memcpy(p.dst, p.src, 16); else memset(p.dst, 0, 16);
  }
  emu_pending.swap(rest);
}
static inline void cp_async_wait() { emu_copy_until(emu_groups); assert(emu_pending.empty() || !"copies never committed"); }
template <int N> static inline void cp_async_wait_pending() { emu_copy_until(emu_groups - N); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
  assert(mask == 0xffffffffu);
  emu_w().bar->arrive_and_wait();
}
static inline float bf2f(uint16_t b) { return __uint_as_float((unsigned)b << 16); }
static inline uint16_t f2bf(float f) {
  unsigned u = fbits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1); return (uint16_t)(u >> 16);
}
static inline unsigned pack2(float lo, float hi) { return (unsigned)f2bf(lo) | ((unsigned)f2bf(hi) << 16); }
static inline float ex2(float x) { return exp2f(x); }
static inline void ldsm_common(unsigned r[4], const uint16_t *p, bool trans) {
  assert(in_smem(p, 16) && ((uintptr_t)p & 15) == 0);
  EmuWarp &w = emu_w(); int l = threadIdx.x % 32, g = l / 4, t = l % 4;
  w.p[l] = p; w.bar->arrive_and_wait();
  for (int m = 0; m < 4; m++) {
    if (!trans) {
      const uint16_t *row = (const uint16_t *)w.p[8 * m + g];
      r[m] = row[2 * t] | ((unsigned)row[2 * t + 1] << 16);
    } else {
      const uint16_t *r0 = (const uint16_t *)w.p[8 * m + 2 * t], *r1 = (const uint16_t *)w.p[8 * m + 2 * t + 1];
      r[m] = r0[g] | ((unsigned)r1[g] << 16);
    }
  }
  w.bar->arrive_and_wait();
}
static inline void ldsm4(unsigned r[4], const uint16_t *p) { ldsm_common(r, p, false); }
static inline void ldsm4t(unsigned r[4], const uint16_t *p) { ldsm_common(r, p, true); }
static inline void mma(float c[4], const unsigned a[4], unsigned b0, unsigned b1) {
  EmuWarp &w = emu_w(); int l = threadIdx.x % 32;
  for (int i = 0; i < 4; i++) w.x[l][i] = a[i];
  w.x[l][4] = b0; w.x[l][5] = b1;
  w.bar->arrive_and_wait();
  float A[16][16], B[16][8];
  for (int L = 0; L < 32; L++) {
    int g = L / 4, t = L % 4;
    auto put = [&](int row, int col, unsigned word) { A[row][col] = bf2f(word & 0xffff); A[row][col + 1] = bf2f(word >> 16); };
    put(g, 2 * t, w.x[L][0]); put(g + 8, 2 * t, w.x[L][1]); put(g, 2 * t + 8, w.x[L][2]); put(g + 8, 2 * t + 8, w.x[L][3]);
    B[2 * t][g] = bf2f(w.x[L][4] & 0xffff); B[2 * t + 1][g] = bf2f(w.x[L][4] >> 16);
    B[2 * t + 8][g] = bf2f(w.x[L][5] & 0xffff); B[2 * t + 9][g] = bf2f(w.x[L][5] >> 16);
  }
  w.bar->arrive_and_wait();
  int g = l / 4, t = l % 4;
  int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
  for (int e = 0; e < 4; e++) {
    float s = c[e];
    for (int k = 0; k < 16; k++) s += A[rows[e]][k] * B[k][cols[e]];
    c[e] = s;
  }
}

#define __global__
#define __device__ static
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__
#define __align__(n)

// emu_launch runs kernel body f over grid × block with shared bytes.
void emu_launch(D3 grid, int threads, size_t shared, std::function<void()> f);
