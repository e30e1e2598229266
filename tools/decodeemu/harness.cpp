// Runs decode.cu's kernels in the host emulation (tools/flashemu/emu.h) on
// random cases and compares them with a float64 reference: outputs within
// 1e-5 plus one bf16 rounding, the mass within 1e-5 (gpu/attention_test.go's
// bounds). Built by run.sh once per head dimension.
#include <random>

#include "decode_sub.cu" // decode.cu, its shared memory emulated

struct Case {
	const char *name;
	int hq, hkv, s, l, cap, split;
	bool pad;
	int posBase;
	// posMode 0: every head its own positions; 1: one row of positions for
	// all heads; 2: view key j at position j (padding at 0, as the
	// cascade's plan writes it), the chunk after the view. decode.cu takes
	// modes 1 and 2 only with DEC_HEADS > 1.
	int posMode;
};

static int failures;

static void run(const Case &c) {
	if (DEC_HEADS > 1 && (c.posMode == 0 || c.hkv % DEC_HEADS != 0)) {
		return; // the host takes the one-head kernel for these
	}
	std::mt19937 rng(c.s * 1000 + c.l + HD);
	std::normal_distribution<float> nd;
	int hq = c.hq, hkv = c.hkv, S = c.s, L = c.l, cap = c.cap, n = L + S, G = hq / hkv;
	auto normal = [&](size_t cnt) {
		std::vector<uint16_t> v(cnt);
		for (auto &x : v) x = f2bf(nd(rng));
		return v;
	};
	auto q = normal((size_t)S * hq * HD), k = normal((size_t)S * hkv * HD), v = normal((size_t)S * hkv * HD);
	auto ck = normal((size_t)hkv * cap * HD), cv = normal((size_t)hkv * cap * HD);
	std::vector<int> slots, pos, qpos;
	for (int h = 0; h < hkv; h++) {
		std::vector<int> perm(cap);
		for (int i = 0; i < cap; i++) perm[i] = i;
		std::shuffle(perm.begin(), perm.end(), rng);
		for (int j = 0; j < L; j++) {
			bool padded = c.pad && (j + (c.posMode == 0 ? h : 0)) % 3 == 1;
			slots.push_back(padded ? -1 : perm[j]);
			pos.push_back(c.posMode == 0 ? c.posBase + 3 * j + h : c.posMode == 1 ? c.posBase + 3 * j : padded ? 0 : j);
		}
		qpos.push_back(c.posMode == 0 ? c.posBase + 3 * L + h : c.posMode == 1 ? c.posBase + 3 * L : L);
	}
	int P = c.posBase + 3 * L + hkv + S + 1, half = HD / 2;
	std::vector<float> cosT((size_t)P * half), sinT((size_t)P * half);
	for (int p = 0; p < P; p++) {
		for (int i = 0; i < half; i++) {
			float a = (float)p * (float)(1 / std::pow(10000.0, 2.0 * i / HD));
			cosT[(size_t)p * half + i] = (float)std::cos((double)a);
			sinT[(size_t)p * half + i] = (float)std::sin((double)a);
		}
	}
	std::vector<float> w(S);
	for (int i = 0; i < S; i++) w[i] = i % 5 == 3 ? 0 : (float)(i + 1) / S;
	float scale = 1 / std::sqrt((float)HD);

	int groups = (G * S + DEC_ROWS - 1) / DEC_ROWS, split = c.split, per = (n + split - 1) / split;
	split = (n + per - 1) / per;
	long rows = (long)hq * S;
	std::vector<float> part(split * rows * (HD + 2), NAN), scores(rows * n, NAN), stats(2 * rows, NAN), mass((size_t)hq * n, NAN);
	std::vector<uint16_t> out((size_t)S * hq * HD, 0x7fc0);
	emu_launch({(unsigned)(hkv / DEC_HEADS * groups), (unsigned)split, 1}, DEC_THREADS, DEC_SHARED, [&] {
		decode_attention(part.data(), scores.data(), q.data(), k.data(), v.data(), ck.data(), cv.data(), slots.data(),
			pos.data(), qpos.data(), cosT.data(), sinT.data(), S, L, cap, hq, hkv, scale, per, split, c.posMode == 2);
	});
	emu_launch({(unsigned)rows, 1, 1}, COMBINE_THREADS, 0, [&] { decode_combine(out.data(), stats.data(), part.data(), S, hq, split); });
	emu_launch({(unsigned)((n + MASS_THREADS * MASS_KEYS - 1) / (MASS_THREADS * MASS_KEYS)), (unsigned)hq, 1}, MASS_THREADS, 0,
		[&] { decode_mass(mass.data(), scores.data(), stats.data(), w.data(), S, n, hq); });

	// float64 reference
	auto rot = [&](const uint16_t *x, int p, std::vector<double> &r) {
		r.assign(HD, 0);
		for (int d = 0; d < half; d++) {
			double cc = cosT[(size_t)p * half + d], ss = sinT[(size_t)p * half + d];
			double x1 = bf2f(x[d]), x2 = bf2f(x[d + half]);
			r[d] = x1 * cc - x2 * ss;
			r[d + half] = x2 * cc + x1 * ss;
		}
	};
	double worstOut = 0, worstMass = 0;
	int bad = 0;
	std::vector<double> refMass((size_t)hq * n, 0);
	for (int qh = 0; qh < hq; qh++) {
		int h = qh / G;
		for (int i = 0; i < S; i++) {
			std::vector<double> qr, kr, sc(n, -INFINITY);
			rot(&q[((size_t)i * hq + qh) * HD], qpos[h] + i, qr);
			double mx = -INFINITY;
			for (int j = 0; j < n && j <= L + i; j++) {
				const uint16_t *kp;
				int p;
				if (j < L) {
					int slot = slots[(size_t)h * L + j];
					if (slot < 0) continue;
					kp = &ck[((size_t)h * cap + slot) * HD];
					p = pos[(size_t)h * L + j];
				} else {
					kp = &k[((size_t)(j - L) * hkv + h) * HD];
					p = qpos[h] + j - L;
				}
				rot(kp, p, kr);
				double dot = 0;
				for (int d = 0; d < HD; d++) dot += qr[d] * kr[d];
				sc[j] = dot * scale;
				mx = std::max(mx, sc[j]);
			}
			double den = 0;
			for (int j = 0; j < n; j++) den += std::exp(sc[j] - mx);
			for (int d = 0; d < HD; d++) {
				double o = 0;
				for (int j = 0; j < n; j++) {
					if (sc[j] == -INFINITY) continue;
					const uint16_t *vp = j < L ? &cv[((size_t)h * cap + slots[(size_t)h * L + j]) * HD] : &v[((size_t)(j - L) * hkv + h) * HD];
					o += std::exp(sc[j] - mx) / den * bf2f(vp[d]);
				}
				double got = bf2f(out[((size_t)i * hq + qh) * HD + d]);
				double diff = std::fabs(got - o);
				worstOut = std::max(worstOut, diff);
				if (!(diff <= 1e-5 + std::fabs(o) / 256)) {
					if (bad++ < 5) printf("  FAIL out[i=%d qh=%d d=%d] = %g, want %g\n", i, qh, d, got, o);
				}
			}
			for (int j = 0; j < n; j++) refMass[(size_t)qh * n + j] += w[i] * std::exp(sc[j] - mx) / den;
		}
	}
	for (size_t e = 0; e < refMass.size(); e++) {
		double diff = std::fabs(mass[e] - refMass[e]);
		worstMass = std::max(worstMass, diff);
		if (!(diff <= 1e-5 + 1e-5 * refMass[e])) {
			if (bad++ < 10) printf("  FAIL mass[%zu] = %g, want %g\n", e, mass[e], refMass[e]);
		}
	}
	printf("HD=%d heads %d %-24s split %3d: |Δout| ≤ %.2e, |Δmass| ≤ %.2e %s\n", HD, DEC_HEADS, c.name, split, worstOut, worstMass, bad ? "FAIL" : "ok");
	failures += bad != 0;
}

int main() {
	Case cases[] = {
		{"decode gqa", 8, 2, 1, 300, 320, 3, true, 0, 0},
		{"decode mha", 2, 2, 1, 70, 80, 1, false, 0, 0},
		{"chunk of 5", 8, 2, 5, 150, 160, 4, true, 100, 0},
		{"chunk of 16", 4, 1, 16, 90, 100, 2, false, 0, 0},
		{"gqa 3, chunk 3", 6, 2, 3, 40, 50, 5, true, 70000, 0},
		{"chunk only", 4, 2, 7, 0, 0, 1, false, 0, 0},
		{"many runs", 8, 2, 1, 1500, 1500, 100, true, 0, 0},
		{"8 heads, one row", 16, 8, 1, 300, 320, 5, true, 0, 1},
		{"8 heads, index", 16, 8, 1, 260, 300, 7, true, 0, 2},
		{"8 heads, chunk 4, index", 16, 8, 4, 150, 160, 3, true, 50, 2},
		{"4 heads mha, chunk 2", 4, 4, 2, 200, 220, 2, false, 10, 1},
		{"8 heads, chunk only", 16, 8, 3, 0, 0, 1, false, 0, 2},
		{"8 heads, many runs", 16, 8, 1, 700, 800, 60, true, 30000, 1},
	};
	for (auto &c : cases) run(c);
	if (failures) {
		printf("%d cases failed\n", failures);
		return 1;
	}
	return 0;
}
