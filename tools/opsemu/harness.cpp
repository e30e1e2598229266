// Runs kernels of ops.cu in the host emulation (tools/flashemu/emu.h):
// gemv_nt on random products against a float64 reference (float32 outputs
// within 1e-5 relative to the sum of |x·w|, bf16 outputs within one bf16
// rounding more), and add_rmsnorm against add then rmsnorm, bit for bit,
// into h itself as the model calls it. Built by run.sh.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "ops_sub.cu"

static int failures;

template <typename C> static float out_f32(C v);
template <> float out_f32<f32>(f32 v) { return v; }
template <> float out_f32<bf16>(bf16 v) { return bf2f(v); }

template <typename C> static void run(const char *name, int n, int k, bool withBias) {
	std::mt19937 rng(n * 131 + k);
	std::normal_distribution<float> nd;
	std::vector<uint16_t> x(k), w((size_t)n * k);
	std::vector<C> bias(n), c(n);
	for (auto &e : x) e = f2bf(nd(rng));
	for (auto &e : w) e = f2bf(nd(rng));
	for (auto &e : bias) e = from_f32<C>(nd(rng));
	for (auto &e : c) e = from_f32<C>(NAN);
	emu_launch({(unsigned)((n + GV_WARPS * GV_ROWS - 1) / (GV_WARPS * GV_ROWS)), 1, 1}, GV_WARPS * 32, 0, [&] {
		gemv_nt_t<C>(c.data(), x.data(), w.data(), withBias ? bias.data() : nullptr, n, k);
	});
	int bad = 0;
	double worst = 0;
	for (int o = 0; o < n; o++) {
		double ref = withBias ? out_f32(bias[o]) : 0, mag = std::fabs(ref);
		for (int i = 0; i < k; i++) {
			double p = (double)bf2f(x[i]) * bf2f(w[(size_t)o * k + i]);
			ref += p, mag += std::fabs(p);
		}
		double got = out_f32(c[o]), diff = std::fabs(got - ref);
		double tol = 1e-5 * mag + (sizeof(C) == 2 ? std::fabs(ref) / 256 : 0);
		worst = std::max(worst, diff / (mag + 1e-30));
		if (!(diff <= tol)) {
			if (bad++ < 5) printf("  FAIL c[%d] = %g, want %g\n", o, got, ref);
		}
	}
	printf("%-28s n %6d k %6d bias %d: worst |Δ|/Σ|x·w| %.2e %s\n", name, n, k, withBias, worst, bad ? "FAIL" : "ok");
	failures += bad != 0;
}

// addnorm runs add_rmsnorm over rows × dim random bf16 values and add then
// rmsnorm over the same, and requires the same bits of the sum and the norm.
static void addnorm(int rows, int dim, int threads) {
	std::mt19937 rng(rows * 7 + dim);
	std::normal_distribution<float> nd;
	std::vector<uint16_t> x(rows * dim), h(rows * dim), w(dim);
	for (auto &e : x) e = f2bf(nd(rng));
	for (auto &e : h) e = f2bf(nd(rng));
	for (auto &e : w) e = f2bf(nd(rng));
	auto x1 = x, h1 = h, x2 = x, h2 = h;
	std::vector<uint16_t> d1(rows * dim, 0x7fc0);
	long long n = (long long)rows * dim;
	emu_launch({1, 1, 1}, 256, 0, [&] { add_t(x1.data(), h1.data(), n); });
	emu_launch({(unsigned)rows, 1, 1}, threads, 0, [&] { rmsnorm_t(d1.data(), x1.data(), w.data(), dim, 1e-5f); });
	emu_launch({(unsigned)rows, 1, 1}, threads, 0,
		[&] { add_rmsnorm_t(h2.data(), x2.data(), h2.data(), w.data(), dim, 1e-5f); });
	int bad = x1 != x2 || d1 != h2;
	printf("add_rmsnorm %d × %-5d on %d threads: %s\n", rows, dim, threads, bad ? "FAIL" : "same bits as add, rmsnorm");
	failures += bad;
}

int main() {
	addnorm(3, 100, 128);
	addnorm(2, 4096, 256);
	addnorm(1, 5120, 1024);
	for (bool b : {false, true}) {
		run<f32>("f32, one block", 13, 8, b);
		run<f32>("f32, rows past n", 37, 264, b);
		run<bf16>("bf16, k not a multiple of 256", 50, 1000, b);
		run<f32>("f32, k past one unrolled pass", 33, 2056, b);
		run<bf16>("bf16, many blocks", 300, 4096, b);
	}
	if (failures) {
		printf("%d cases failed\n", failures);
		return 1;
	}
	return 0;
}
