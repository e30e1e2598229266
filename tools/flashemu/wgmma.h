// Host emulation of the Hopper operations that gpu/kernels/flash.cu's
// flash_fwd90 uses (built with -DKVC_WGMMA, see run.sh), on top of emu.h.
//
// wgmma reads its shared-memory operands through matrix descriptors in the
// 128-byte swizzled layout: the emulation decodes each descriptor (start
// address, leading and stride byte offsets), forms each element's byte
// address as the PTX ISA's canonical layouts give it and then applies the
// swizzle (address bits 4–6 XOR bits 7–9). An MMA is carried out at once
// when issued; the A fragments held in registers are exchanged through the
// warpgroup's barrier. mbarriers keep their expected count, pending count
// and phase in their 8 bytes of shared memory; a cp.async arrival first
// carries out the thread's pending copies. Like the rest of the emulation
// it checks the kernel's logic against these layouts, not the layouts
// themselves: those only a GPU can confirm.
#pragma once
#include <climits>
#include <mutex>

typedef unsigned int u32;

static inline u32 smem_addr(const void *p) {
	assert(in_smem(p, 1));
	return (u32)((const unsigned char *)p - emu_smem);
}

// emu_wg_elem returns the bf16 at row mn (M or N index) and column k (0 …
// 15) of the operand that desc describes, K-major or MN-major.
static inline uint16_t emu_wg_elem(unsigned long long desc, bool mnMajor, int mn, int k) {
	u32 start = (u32)(desc & 0x3fff) << 4, lbo = (u32)((desc >> 16) & 0x3fff) << 4, sbo = (u32)((desc >> 32) & 0x3fff) << 4;
	assert((desc >> 62) == 1 && ((desc >> 49) & 7) == 0); // 128-byte swizzle, no base offset
	assert(sbo == 1024);
	u32 a;
	if (!mnMajor) {
		assert((start % 128) + 32 <= 128); // the 16 elements stay inside the row
		a = start + (mn / 8) * sbo + (mn % 8) * 128 + k * 2;
	} else {
		assert(start % 1024 == 0);
		a = start + (mn / 64) * lbo + (k / 8) * sbo + (k % 8) * 128 + (mn % 64) * 2;
	}
	a ^= ((a >> 7) & 7) << 4;
	assert(a + 2 <= emu_smem_bytes);
	uint16_t v;
	memcpy(&v, emu_smem + a, 2);
	return v;
}

// emu_wg_out calls f(row, col, index) for each accumulator element of a
// 64×n wgmma this thread holds.
template <typename F> static inline void emu_wg_out(int n, F f) {
	int t = threadIdx.x % 128, w = t / 32, l = t % 32, g = l / 4, q = l % 4;
	for (int n8 = 0; n8 < n / 8; n8++) {
		for (int e = 0; e < 4; e++) {
			f(16 * w + g + 8 * (e / 2), 8 * n8 + 2 * q + e % 2, 4 * n8 + e);
		}
	}
}

static inline void wg_ss128(float d[64], unsigned long long a, unsigned long long b, int acc) {
	emu_wg_out(128, [&](int row, int col, int i) {
		float s = acc ? d[i] : 0.0f;
		for (int k = 0; k < 16; k++) s += bf2f(emu_wg_elem(a, false, row, k)) * bf2f(emu_wg_elem(b, false, col, k));
		d[i] = s;
	});
}

static inline void wg_rs(float d[HEAD_DIM / 2], const u32 a[4], unsigned long long b) {
	int t = threadIdx.x % 128, wg = threadIdx.x / 128;
	for (int i = 0; i < 4; i++) emu_blk->wa[wg][t][i] = a[i];
	emu_blk->wg[wg]->arrive_and_wait();
	static thread_local float A[64][16];
	for (int th = 0; th < 128; th++) {
		int w = th / 32, l = th % 32, g = l / 4, q = l % 4;
		auto put = [&](int row, int col, u32 word) { A[row][col] = bf2f(word & 0xffff); A[row][col + 1] = bf2f(word >> 16); };
		const u32 *x = emu_blk->wa[wg][th];
		put(16 * w + g, 2 * q, x[0]);
		put(16 * w + g + 8, 2 * q, x[1]);
		put(16 * w + g, 2 * q + 8, x[2]);
		put(16 * w + g + 8, 2 * q + 8, x[3]);
	}
	emu_blk->wg[wg]->arrive_and_wait();
	emu_wg_out(HEAD_DIM, [&](int row, int col, int i) {
		float s = d[i];
		for (int k = 0; k < 16; k++) s += A[row][k] * bf2f(emu_wg_elem(b, true, col, k));
		d[i] = s;
	});
}

static inline void wg_fence() {}
static inline void wg_commit() {}
template <int N> static inline void wg_wait() {}
static inline void reg_fence(float &) {}
static inline void proxy_fence() {}
static inline void wg_sync(int wg) { emu_blk->wg[wg]->arrive_and_wait(); }
static inline void pp_sync(int wg) { emu_blk->nb[3 + wg].arrive(256, true); }
static inline void pp_arrive(int wg) { emu_blk->nb[3 + wg].arrive(256, false); }
static inline void set_regs_producer() {}
static inline void set_regs_consumer() {}
static inline int warp_uniform(int x) { return x; }

struct EmuMbar {
	uint16_t expected, pending;
	uint32_t phase;
};
static_assert(sizeof(EmuMbar) == 8);
inline std::mutex emu_mbar_mu;

static inline EmuMbar *emu_mbar(u32 a) {
	assert(a % 8 == 0 && a + 8 <= emu_smem_bytes);
	return (EmuMbar *)(emu_smem + a);
}
static inline void mbar_init(u32 a, int count) {
	std::lock_guard<std::mutex> lk(emu_mbar_mu);
	assert(count > 0 && count < 65536);
	*emu_mbar(a) = {(uint16_t)count, (uint16_t)count, 0};
}
static inline void mbar_init_fence() {}
static inline void mbar_arrive(u32 a) {
	std::lock_guard<std::mutex> lk(emu_mbar_mu);
	EmuMbar *m = emu_mbar(a);
	assert(m->pending > 0 && m->pending <= m->expected);
	if (--m->pending == 0) {
		m->phase++;
		m->pending = m->expected;
	}
}
static inline void mbar_arrive_copies(u32 a) {
	emu_copy_until(LONG_MAX); // every copy this thread started, committed or not
	mbar_arrive(a);
}
static inline void mbar_wait(u32 a, u32 parity) {
	for (;;) {
		{
			std::lock_guard<std::mutex> lk(emu_mbar_mu);
			if ((emu_mbar(a)->phase & 1) != parity) return;
		}
		std::this_thread::yield();
	}
}
