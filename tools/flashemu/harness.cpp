// Runs flash.cu's kernels in the host emulation (emu.h) on random cases and
// compares them with a float64 reference, with the tolerances of
// gpu/flash_test.go. Built by run.sh once per head dimension.
#include <random>

#ifdef KVC_WGMMA
#include "wgmma.h" // the Hopper operations: flash_fwd90 and flash_mass90 run in flash_fwd's and flash_mass's place
#endif
#include "flash_sub.cu" // flash.cu with its extern __shared__ array made a pointer to emu_smem

struct Case {
	const char *name;
	int hq, hkv, s, l, cap, padFirst;
	bool pad; // every third view entry is padding
	int posBase;
	bool mass;
	float qscale;
};

struct Check {
	const char *what;
	double worst = 0, ratio = 0;
	int bad = 0;
	void at(long i, double got, double want, double tol) {
		double d = std::fabs(got - want);
		if (!(d <= tol)) {
			if (bad < 5) printf("  FAIL %s[%ld] = %g, want %g (tolerance %g)\n", what, i, got, want, tol);
			bad++;
		}
		worst = std::max(worst, d);
		if (tol > 0) ratio = std::max(ratio, d / tol);
	}
};

static int failures;

static void run(const Case &c) {
	std::mt19937 rng(c.s * 1000 + c.l);
	std::normal_distribution<float> nd;
	int hq = c.hq, hkv = c.hkv, S = c.s, L = c.l, cap = c.cap, n = L + S, group = hq / hkv;
	auto normal = [&](size_t cnt, float sc) {
		std::vector<uint16_t> v(cnt);
		for (auto &x : v) x = f2bf(nd(rng) * sc);
		return v;
	};
	auto q = normal((size_t)S * hq * HD, c.qscale), k = normal((size_t)S * hkv * HD, 1), v = normal((size_t)S * hkv * HD, 1);
	std::vector<uint16_t> ck((size_t)hkv * cap * HD, 0x7fc0), cv((size_t)hkv * cap * HD, 0x7fc0); // unused slots are NaN
	std::vector<int> slots, pos, qpos;
	int maxPos = 0;
	for (int h = 0; h < hkv; h++) {
		std::vector<int> perm(cap);
		for (int i = 0; i < cap; i++) perm[i] = i;
		std::shuffle(perm.begin(), perm.end(), rng);
		for (int j = 0; j < L; j++) {
			int slot = cap > 0 ? perm[j] : -1;
			if ((c.pad && j % 3 == 1) || j < c.padFirst) slot = -1;
			slots.push_back(slot);
			int p = c.posBase + (int)(rng() % (3 * L + 1));
			pos.push_back(p);
			maxPos = std::max(maxPos, p);
			if (slot >= 0) {
				for (int d = 0; d < HD; d++) {
					ck[((size_t)h * cap + slot) * HD + d] = f2bf(nd(rng));
					cv[((size_t)h * cap + slot) * HD + d] = f2bf(nd(rng));
				}
			}
		}
		qpos.push_back(c.posBase + 3 * L + 1 + h);
		maxPos = std::max(maxPos, qpos.back() + S - 1);
	}
	int P = maxPos + 1;
	std::vector<float> cosT((size_t)P * HALF), sinT((size_t)P * HALF);
	for (int p = 0; p < P; p++) {
		for (int d = 0; d < HALF; d++) {
			double x = p * std::pow(10000.0, -2.0 * d / HD);
			cosT[(size_t)p * HALF + d] = (float)std::cos(x);
			sinT[(size_t)p * HALF + d] = (float)std::sin(x);
		}
	}
	std::vector<float> w(S);
	for (int i = 0; i < S; i++) w[i] = (i % 5 == 3) ? 0.0f : float(i + 1) / S;

	const int guard = 64;
	std::vector<uint16_t> out((size_t)S * hq * HD + guard, 0x7fc0);
	std::vector<float> stats(2 * hq * S + guard, NAN), mass((size_t)hq * n + guard, NAN);
	float scale = 1.0f / std::sqrt((float)HD), scale2 = (float)(scale * 1.4426950408889634);
	const uint16_t *ckp = cap ? ck.data() : nullptr, *cvp = cap ? cv.data() : nullptr;
	int NP = (n + KTILE - 1) / KTILE * KTILE, SP = (S + BQ - 1) / BQ * BQ;
	// Scratch starts as NaN: the kernels must write every row they read.
	std::vector<uint16_t> kr((size_t)hkv * NP * HD, 0x7fc0), vr((size_t)hkv * NP * HD, 0x7fc0), qr((size_t)hq * SP * HD, 0x7fc0);
	std::vector<unsigned> bits((size_t)hkv * NP / 32, 0xdeadbeefu);
	std::vector<float2> qstat((size_t)hq * SP, float2{NAN, NAN});
	emu_launch({(unsigned)(NP / GR), (unsigned)hkv, 1}, THREADS, 0, [&] {
		flash_keys(kr.data(), vr.data(), bits.data(), k.data(), v.data(), ckp, cvp, slots.data(), pos.data(), qpos.data(),
			   cosT.data(), sinT.data(), S, L, cap, hkv, NP);
	});
	emu_launch({(unsigned)(SP / GR), (unsigned)hq, 1}, THREADS, 0, [&] {
		flash_queries(qr.data(), q.data(), qpos.data(), cosT.data(), sinT.data(), S, hq, hkv, SP);
	});
#ifdef KVC_WGMMA
	emu_launch({(unsigned)(SP / W_BQ), (unsigned)hq, 1}, W_THREADS, W_SHARED, [&] {
		flash_fwd90(out.data(), stats.data(), c.mass ? qstat.data() : nullptr, w.data(), qr.data(), kr.data(), vr.data(),
			    bits.data(), S, SP, L, NP, hq, hkv, scale2);
	});
#else
	emu_launch({(unsigned)(SP / BQ), (unsigned)hq, 1}, THREADS, FWD_SHARED, [&] {
		flash_fwd(out.data(), stats.data(), c.mass ? qstat.data() : nullptr, w.data(), qr.data(), kr.data(), vr.data(),
			  bits.data(), S, SP, L, NP, hq, hkv, scale2);
	});
#endif
	if (c.mass) {
#ifdef KVC_WGMMA
		emu_launch({(unsigned)(NP / W_MK), (unsigned)hkv, 1}, W_THREADS, W_MSHARED, [&] {
			flash_mass90(mass.data(), qstat.data(), qr.data(), kr.data(), bits.data(), S, SP, L, NP, hq, hkv, scale2);
		});
#else
		emu_launch({(unsigned)(NP / BKM), (unsigned)hkv, 1}, THREADS, MASS_SHARED, [&] {
			flash_mass(mass.data(), qstat.data(), qr.data(), kr.data(), bits.data(), S, SP, L, NP, hq, hkv, scale2);
		});
#endif
	}

	// The reference: operands rotated as the kernels do, then float64.
	auto rot = [&](const uint16_t *x, int p, std::vector<double> &y) {
		for (int d = 0; d < HALF; d++) {
			float x1 = bf2f(x[d]), x2 = bf2f(x[d + HALF]);
			float cc = cosT[(size_t)p * HALF + d], ss = sinT[(size_t)p * HALF + d];
			y[d] = bf2f(f2bf(__fsub_rn(__fmul_rn(x1, cc), __fmul_rn(x2, ss))));
			y[d + HALF] = bf2f(f2bf(__fadd_rn(__fmul_rn(x2, cc), __fmul_rn(x1, ss))));
		}
	};
	Check co{"out"}, cm{"m"}, cl{"l"}, cmass{"mass"};
	for (int h = 0; h < hkv; h++) {
		std::vector<std::vector<double>> kr(n, std::vector<double>(HD)), vr(n, std::vector<double>(HD));
		std::vector<bool> valid(n);
		for (int j = 0; j < n; j++) {
			const uint16_t *ks, *vs;
			int p;
			if (j < L) {
				int s = slots[h * L + j];
				if (s < 0) continue;
				ks = &ck[((size_t)h * cap + s) * HD];
				vs = &cv[((size_t)h * cap + s) * HD];
				p = pos[h * L + j];
			} else {
				ks = &k[((size_t)(j - L) * hkv + h) * HD];
				vs = &v[((size_t)(j - L) * hkv + h) * HD];
				p = qpos[h] + j - L;
			}
			valid[j] = true;
			rot(ks, p, kr[j]);
			for (int d = 0; d < HD; d++) vr[j][d] = bf2f(vs[d]);
		}
		for (int qh = h * group; qh < (h + 1) * group; qh++) {
			std::vector<double> mref(n, 0.0), qr(HD), sc(n);
			for (int i = 0; i < S; i++) {
				rot(&q[((size_t)i * hq + qh) * HD], qpos[h] + i, qr);
				double m = -INFINITY, l = 0;
				for (int j = 0; j <= L + i; j++) {
					if (!valid[j]) continue;
					double dot = 0;
					for (int d = 0; d < HD; d++) dot += qr[d] * kr[j][d];
					sc[j] = dot * scale;
					m = std::max(m, sc[j]);
				}
				for (int j = 0; j <= L + i; j++) if (valid[j]) l += std::exp(sc[j] - m);
				for (int d = 0; d < HD; d++) {
					double o = 0, a = 0;
					for (int j = 0; j <= L + i; j++) {
						if (!valid[j]) continue;
						double p = std::exp(sc[j] - m) / l;
						o += p * vr[j][d];
						a += p * std::fabs(vr[j][d]);
					}
					long idx = ((long)i * hq + qh) * HD + d;
					co.at(idx, bf2f(out[idx]), o, std::ldexp(1.0, -7) * (std::fabs(o) + a) + 1e-6);
				}
				cm.at(qh * S + i, stats[qh * S + i], m, 1e-3 * (1 + std::fabs(m)));
				cl.at(qh * S + i, stats[(hq + qh) * S + i], l, 1e-3 * l);
				for (int j = 0; j <= L + i; j++) if (valid[j]) mref[j] += w[i] * std::exp(sc[j] - m) / l;
			}
			if (c.mass) {
				double top = 0;
				for (double x : mref) top = std::max(top, x);
				for (int j = 0; j < n; j++) cmass.at((long)qh * n + j, mass[(size_t)qh * n + j], mref[j], 2e-3 * mref[j] + 1e-4 * top + 1e-7);
			}
		}
	}
	int bad = co.bad + cm.bad + cl.bad + cmass.bad;
	for (int i = 0; i < guard; i++) {
		if (out[(size_t)S * hq * HD + i] != 0x7fc0 || !std::isnan(stats[2 * hq * S + i]) || !std::isnan(mass[(size_t)hq * n + i])) {
			printf("  FAIL: a guard past the end was overwritten\n");
			bad++;
			break;
		}
	}
	failures += bad;
#ifdef KVC_WGMMA
	const char *fwd = "sm_90a";
#else
	const char *fwd = "mma.sync";
#endif
	printf("%-24s %-11s HD=%d: |Δ|/tolerance at most out %.2f, m %.3f, l %.3f, mass %.3f; %d failures\n", c.name, fwd, HD,
	       co.ratio, cm.ratio, cl.ratio, cmass.ratio, bad);
}

#ifdef KVC_WGMMA
// check_ex2_fma compares flash.cu's ex2_fma with exp2 in double over
// [−130, 2] in steps of 2⁻¹² and at ±∞'s neighbours: relative error at
// most 3·10⁻⁷ where 2^y ≥ 2⁻¹²⁶, 0 below; returns the failures.
static int check_ex2_fma() {
	double worst = 0;
	int bad = 0;
	for (long k = -130L * 4096; k <= 2L * 4096; k++) {
		float y = (float)k / 4096;
		double want = y < -126 ? 0 : std::exp2((double)y), got = ex2_fma(y);
		double err = want == 0 ? std::fabs(got) : std::fabs(got / want - 1);
		worst = want == 0 ? worst : std::max(worst, err);
		if ((want == 0 && got != 0) || err > 3e-7) {
			if (bad++ < 5) printf("  FAIL: ex2_fma(%.9g) = %.9g, want %.9g\n", y, got, want);
		}
	}
	if (ex2_fma(-INFINITY) != 0 || ex2_fma(-1e30f) != 0) {
		printf("  FAIL: ex2_fma of −∞ is not 0\n");
		bad++;
	}
	printf("ex2_fma: relative error at most %.3g; %d failures\n", worst, bad);
	return bad;
}
#endif

int main(int argc, char **argv) {
#ifdef KVC_WGMMA
	failures += check_ex2_fma();
#endif
	std::vector<Case> cases = {
		{"view with padding", 4, 1, 70, 50, 64, 0, true, 0, true, 1},
		{"chunk only", 4, 2, 100, 0, 0, 0, false, 0, true, 1},
		{"padded start, long pos", 4, 2, 65, 150, 200, 70, false, 70000, true, 1},
		{"sharp softmax", 2, 1, 130, 90, 128, 0, true, 70000, true, 4},
		{"whole tiles", 2, 1, 128, 64, 64, 0, false, 5, true, 1},
		{"gqa 8/2", 8, 2, 130, 257, 300, 0, true, 70000, true, 1},
		{"all padding, no cache", 4, 1, 64, 40, 0, 40, false, 0, true, 1},
	};
	int only = argc > 1 ? atoi(argv[1]) : -1; // run only case number argv[1]
	for (int i = 0; i < (int)cases.size(); i++) {
		if (only < 0 || only == i) run(cases[i]);
	}
	printf(failures ? "FAIL\n" : "PASS\n");
	return failures != 0;
}
