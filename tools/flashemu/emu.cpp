#include "emu.h"
thread_local D3 threadIdx;
D3 blockIdx, gridDim, blockDim;
unsigned char *emu_smem;
size_t emu_smem_bytes;
EmuBlock *emu_blk;
thread_local std::vector<Pending> emu_pending;
thread_local long emu_groups;
void emu_launch(D3 grid, int threads, size_t shared, std::function<void()> f) {
  gridDim = grid; blockDim = {(unsigned)threads, 1, 1};
  for (unsigned z = 0; z < grid.z; z++) for (unsigned y = 0; y < grid.y; y++) for (unsigned x = 0; x < grid.x; x++) {
    blockIdx = {x, y, z};
    emu_smem = (unsigned char *)malloc(shared); emu_smem_bytes = shared;
    memset(emu_smem, 0xff, shared); // NaN-ish garbage
    std::barrier<> bar(threads);
    EmuBlock blk; blk.bar = &bar;
    std::vector<std::barrier<> *> wb;
    for (int i = 0; i < threads / 32; i++) { wb.push_back(new std::barrier<>(32)); blk.w[i].bar = wb.back(); }
    for (int i = 0; i < threads / 128; i++) { wb.push_back(new std::barrier<>(128)); blk.wg[i] = wb.back(); }
    emu_blk = &blk;
    std::vector<std::thread> th;
    for (int t = 0; t < threads; t++) th.emplace_back([&, t] { threadIdx = {(unsigned)t, 0, 0}; f(); assert(emu_pending.empty()); });
    for (auto &t : th) t.join();
    for (auto &b : blk.nb) assert(b.n == 0); // no phase left incomplete
    for (auto *b : wb) delete b;
    free(emu_smem);
  }
}
