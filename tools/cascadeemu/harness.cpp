// Runs cascade.cu's cascade_walk and cascade_step in the host emulation
// (tools/flashemu/emu.h) on random chunks and states and compares every
// output (slot, pos, score, start, stored, top, next, place, and the free
// stack below its top) bit for bit with the walk as it was before staging
// (reference.cu). Each case launches the walk with several sizes of shared
// memory: what the host gives (cascade.go's cascadeWalkShared, at most
// 227 KiB), only WALK_HEAD bytes (the global fallback), and for one head
// exactly the bytes its windows need (WALK_SHARED_MIN: staged, but for the
// mass and place), with the mass and place too (WALK_SHARED), to walk in
// parallel (WALK_PAR_SHARED), and a byte less than each; WALK_TRACE checks
// which path each head took, WALK_CHECK that the staged walks stay inside
// their windows. One-token chunks also go through cascade_step, and some
// caches are decoded token by token by it from empty; each step also
// stores the token's rows in its slot, and nothing else in the cache.
// Built by run.sh (with WALK_PAR_MIN 1, so that short chunks walk in
// parallel too).
// cascade_reduce_scores is compared bit for bit with cascade_reduce over
// the mass that decode_mass's terms give (mass_term), on random scores
// (some −∞), statistics and weights (some 0), with and without aging.
// Arguments: number of random cases (default 400), seed (default 1);
// TRACE=1 prints the path of each launch.
#include <algorithm>
#include <numeric>
#include <random>
#include <string>

#include "cascade_sub.cu" // cascade.cu with its extern shared array made the block's buffer
#include "reference.cu"

struct Spec {
	int hkv, sinks, size, C, W, eager;
	std::vector<long long> every;
};

struct State {
	std::vector<int> slot, start, stored, freed, top, next, place;
	std::vector<long long> pos;
	std::vector<float> score;
};

static std::mt19937_64 rng;
static long long rnd(long long lo, long long hi) { return std::uniform_int_distribution<long long>(lo, hi)(rng); }
template <class T> static const T &pick(std::initializer_list<T> l) { return l.begin()[rnd(0, (long long)l.size() - 1)]; }

// garbage fills v with random bits, as uninitialised device memory might hold.
template <class T> static void garbage(std::vector<T> &v, size_t n) {
	v.resize(n);
	for (auto &x : v) {
		uint64_t b = rng();
		memcpy(&x, &b, sizeof(T));
	}
}

// massMode: 0 a few levels (many ties), 1 uniform, 2 levels with ±0, ∞ and NaN.
static float massValue(int mode) {
	switch (mode) {
	case 0:
		return pick({0.f, 0.25f, 0.5f, 1.f, 2.f});
	case 1:
		return std::uniform_real_distribution<float>(0, 1)(rng);
	default:
		switch (rnd(0, 9)) {
		case 0:
			return NAN;
		case 1:
			return -0.f;
		case 2:
			return INFINITY;
		case 3:
			return -1.f;
		default:
			return pick({0.f, 0.5f, 1.f});
		}
	}
}

static void reference(const Spec &sp, State &s, const std::vector<float> &a, long long first, int n, int L) {
	for (int h = 0; h < sp.hkv; h++) {
		blockIdx = {(unsigned)h, 0, 0};
		reference_walk(s.slot.data(), s.pos.data(), s.score.data(), s.start.data(), s.stored.data(), s.freed.data(),
			       s.top.data(), s.next.data(), s.place.data(), a.data(), sp.every.data(), first, n, L, L + n,
			       sp.sinks, sp.size, sp.C, sp.W, sp.eager);
	}
}

static void kernel(const Spec &sp, State &s, const std::vector<float> &a, long long first, int n, int L, int threads,
		   int smem) {
	emu_launch({(unsigned)sp.hkv, 1, 1}, threads, smem, [&] {
		cascade_walk(s.slot.data(), s.pos.data(), s.score.data(), s.start.data(), s.stored.data(), s.freed.data(),
			     s.top.data(), s.next.data(), s.place.data(), a.data(), sp.every.data(), first, n, L, L + n,
			     sp.sinks, sp.size, sp.C, sp.W, sp.eager, smem);
	});
}

static int failures, launches, stagedLaunches, allLaunches, parLaunches, stepLaunches, storeFailures;

// step walks a one-token chunk with cascade_step, the decoding steps' walk,
// which also stores the token's key and value rows (random bytes) in the
// slot it gives the token: those rows, and no other byte of the cache,
// must change.
static void step(const Spec &sp, State &s, const std::vector<float> &a, long long first, int L) {
	int rowBytes = pick({16, 48, 256, 528}); // 528: past one pass of the warp's 512 bytes
	long long cap = sp.sinks + sp.size + 2;
	std::vector<unsigned char> kc, vc, kn, vn;
	garbage(kc, sp.hkv * cap * rowBytes), garbage(vc, kc.size()), garbage(kn, (size_t)sp.hkv * rowBytes), garbage(vn, kn.size());
	std::vector<unsigned char> kWant = kc, vWant = vc;
	emu_launch({(unsigned)sp.hkv, 1, 1}, 32, 0, [&] {
		cascade_step(s.slot.data(), s.pos.data(), s.score.data(), s.start.data(), s.stored.data(), s.freed.data(),
			     s.top.data(), s.next.data(), s.place.data(), a.data(), sp.every.data(), first, L, L + 1, sp.sinks,
			     sp.size, sp.C, sp.W, sp.eager, kc.data(), vc.data(), kn.data(), vn.data(), cap, rowBytes);
	});
	for (int h = 0; h < sp.hkv; h++) {
		int p = s.place[h];
		if (p >= cap) {
			storeFailures++;
			printf("FAIL step at %lld: head %d placed in slot %d of %lld\n", first, h, p, cap);
			return;
		}
		if (p >= 0) {
			memcpy(&kWant[(h * cap + p) * rowBytes], &kn[(size_t)h * rowBytes], rowBytes);
			memcpy(&vWant[(h * cap + p) * rowBytes], &vn[(size_t)h * rowBytes], rowBytes);
		}
	}
	if (kc != kWant || vc != vWant) {
		storeFailures++;
		printf("FAIL step at %lld: the cache's rows are not the token's in its slots alone (%d bytes a row)\n", first, rowBytes);
	}
}

// empty is the state NewCascade leaves, over garbage.
static State empty(const Spec &sp) {
	State s;
	size_t e = (size_t)sp.hkv * sp.size;
	garbage(s.slot, e), garbage(s.pos, e), garbage(s.score, e), garbage(s.freed, e);
	s.start.assign((size_t)sp.hkv * sp.C, 0), s.stored.assign((size_t)sp.hkv * sp.C, 0);
	s.top.assign(sp.hkv, 0), s.next.assign(sp.hkv, sp.sinks);
	return s;
}

// synthetic fills each ring empty, partly or wholly (starting anywhere),
// with distinct slots and positions before first, and the free stack with
// the slots handed out but not held; weird makes some rings not full with
// a start other than 0 (not a state the walk leaves: the kernel must fall
// back).
static State synthetic(const Spec &sp, long long first, bool weird, int massMode) {
	State s = empty(sp);
	int W = sp.W, C = sp.C;
	for (int h = 0; h < sp.hkv; h++) {
		int held = 0;
		int mode = (int)rnd(0, 3); // 0 random, 1 all full, 2 all empty but a few, 3 full up to one partial
		int partial = (int)rnd(0, C - 1);
		for (int i = 0; i < C; i++) {
			int kind = mode == 0 ? (int)rnd(0, 2) : mode == 1 ? 2 : mode == 2 ? (rnd(0, 3) == 0 ? 1 : 0) : i < partial ? 2 : i == partial ? 1 : 0;
			if (W == 1 && kind == 1) {
				kind = 2;
			}
			int st = kind == 0 ? 0 : kind == 1 ? (int)rnd(1, W - 1) : W;
			int s0 = st == W ? pick({0, W - 1, (int)rnd(0, W - 1)}) : 0;
			if (weird && st > 0 && st < W && rnd(0, 1)) {
				s0 = (int)rnd(1, W - 1);
			}
			s.stored[h * C + i] = st, s.start[h * C + i] = s0;
			held += st;
		}
		int room = sp.size - held;
		int topN = pick({0, (int)rnd(0, room), room, std::min(room, (int)rnd(0, 8))});
		int handed = held + topN;
		std::vector<int> perm(handed);
		for (int j = 0; j < handed; j++) {
			perm[j] = sp.sinks + j;
		}
		std::shuffle(perm.begin(), perm.end(), rng);
		int j = 0;
		for (int i = 0; i < C; i++) {
			int st = s.stored[h * C + i], s0 = s.start[h * C + i];
			for (int k = 0; k < st; k++) {
				size_t e = (size_t)h * sp.size + (size_t)i * W + (st == W ? (s0 + k) % W : k);
				s.slot[e] = perm[j++];
				s.pos[e] = first - 1 - rnd(0, 100000);
				s.score[e] = massValue(massMode);
			}
			if (st < W && s0 != 0) {
				// Such a ring's walk reads entries past st: make them
				// tokens without a slot, so that dropping them frees
				// nothing.
				for (int k = st; k < W; k++) {
					size_t e = (size_t)h * sp.size + (size_t)i * W + k;
					s.slot[e] = -1, s.pos[e] = first - 1 - rnd(0, 100000), s.score[e] = massValue(massMode);
				}
			}
		}
		for (int k = 0; k < topN; k++) {
			s.freed[(size_t)h * sp.size + k] = perm[j++];
		}
		s.top[h] = topN, s.next[h] = sp.sinks + handed;
	}
	return s;
}

static std::vector<float> masses(const Spec &sp, int n, int L, int mode) {
	std::vector<float> a((size_t)sp.hkv * (L + n));
	for (auto &x : a) {
		x = massValue(mode);
	}
	return a;
}

// windows is the number of entries of head h's staged windows for the
// chunk, counted here from the rules rather than by the kernel: cascade i
// sees at most acc_i accepts, the chunk's tokens whose `accepting` is
// above i and at most what cascade i − 1 passes on once full.
static long long windows(const Spec &sp, const State &s, int h, long long first, int n) {
	std::vector<long long> A(sp.C, 0);
	for (int q = 0; q < n; q++) {
		long long t = first + q;
		if (t < sp.sinks) {
			continue;
		}
		int acc = sp.C;
		if (!(sp.eager && t <= (long long)sp.size + sp.sinks)) {
			acc = 0;
			while (acc < sp.C && (t - sp.sinks) % sp.every[acc] == 0) {
				acc++;
			}
		}
		for (int i = 0; i < acc; i++) {
			A[i]++;
		}
	}
	long long E = 0, pass = n;
	for (int i = 0; i < sp.C; i++) {
		int st = s.stored[h * sp.C + i];
		long long acc = std::min(A[i], pass), room = st == 0 ? sp.W - 1 : sp.W - st;
		pass = std::max(0LL, acc - room);
		E += std::min<long long>(sp.W, acc + 1);
	}
	return E;
}

// hostShared is what cascade.go gives the walk of a block of threads on a
// device that allows 227 KiB a block.
static int hostShared(const Spec &sp, int n, int threads) {
	long long e = sp.C * (long long)std::min(sp.W, n + 1);
	long long b = std::max<long long>(WALK_SHARED((long long)n, e), WALK_PAR_SHARED((long long)n, e, (long long)threads));
	return (int)std::max<long long>(std::min<long long>(b, 227 * 1024), WALK_HEAD);
}

template <class T> static bool sameBits(const std::vector<T> &a, const std::vector<T> &b) {
	return a.size() == b.size() && memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// freedBelowTop compares the free stacks below a's tops, the pool's
// state (what lies above is scratch).
static bool freedBelowTop(const State &a, const State &b, int size) {
	if (a.freed.size() != b.freed.size() || !sameBits(a.top, b.top)) {
		return false;
	}
	for (size_t h = 0; h < a.top.size(); h++) {
		if (memcmp(a.freed.data() + h * size, b.freed.data() + h * size, sizeof(int) * a.top[h]) != 0) {
			return false;
		}
	}
	return true;
}

static std::string differs(const State &a, const State &b, int size) {
	std::string d;
	auto chk = [&](bool ok, const char *name) {
		if (!ok) {
			d += d.empty() ? "" : ",", d += name;
		}
	};
	chk(sameBits(a.slot, b.slot), "slot"), chk(sameBits(a.pos, b.pos), "pos"), chk(sameBits(a.score, b.score), "score");
	chk(sameBits(a.start, b.start), "start"), chk(sameBits(a.stored, b.stored), "stored");
	chk(freedBelowTop(a, b, size), "freed"), chk(sameBits(a.top, b.top), "top"), chk(sameBits(a.next, b.next), "next");
	chk(sameBits(a.place, b.place), "place");
	return d;
}

// check walks one chunk from state s by the reference and by the kernel
// under each shared memory size, and compares.
static void check(const char *what, int id, const Spec &sp, const State &s, long long first, int n, int L, int threads,
		  int massMode) {
	// Head h stages when its rings are as the walk leaves them and its
	// windows fit.
	std::vector<bool> canonical(sp.hkv, true);
	std::vector<long long> least(sp.hkv), all(sp.hkv), par(sp.hkv); // bytes to stage the windows, the mass and place too, to walk in parallel
	bool parOK = n >= WALK_PAR_MIN && n <= 65535 && (n + threads - 1) / threads <= WALK_KMAX;
	for (int h = 0; h < sp.hkv; h++) {
		for (int i = 0; i < sp.C; i++) {
			canonical[h] = canonical[h] && (s.stored[h * sp.C + i] == sp.W || s.start[h * sp.C + i] == 0);
		}
		long long E = windows(sp, s, h, first, n);
		least[h] = WALK_SHARED_MIN((long long)n, E), all[h] = WALK_SHARED((long long)n, E);
		par[h] = WALK_PAR_SHARED((long long)n, E, (long long)threads);
	}
	auto a = masses(sp, n, L, massMode);
	State ref = s;
	garbage(ref.place, (size_t)sp.hkv * n);
	State init = ref; // the same garbage in place
	reference(sp, ref, a, first, n, L);
	// The host's bytes, WALK_HEAD, and one head's thresholds and a byte
	// less.
	int h = (int)rnd(0, sp.hkv - 1);
	std::vector<long long> sizes = {hostShared(sp, n, threads), WALK_HEAD, least[h], least[h] - 1, all[h], all[h] - 1, par[h], par[h] - 1};
	std::sort(sizes.begin(), sizes.end());
	sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
	if (n == 1) { // the decoding step's kernel too
		State got = init;
		step(sp, got, a, first, L);
		launches++, stepLaunches++;
		std::string d = differs(ref, got, sp.size);
		if (!d.empty()) {
			failures++;
			printf("FAIL %s case %d cascade_step: hkv %d C %d W %d sinks %d eager %d first %lld: differs in %s\n", what, id, sp.hkv,
			       sp.C, sp.W, sp.sinks, sp.eager, first, d.c_str());
		}
	}
	for (long long smem : sizes) {
		if (smem < WALK_HEAD) {
			continue;
		}
		State got = init;
		emu_walk_blocks = emu_walk_staged = emu_walk_all = emu_walk_par = 0;
		kernel(sp, got, a, first, n, L, threads, (int)smem);
		launches++;
		stagedLaunches += emu_walk_staged > 0, allLaunches += emu_walk_all > 0, parLaunches += emu_walk_par > 0;
		if (getenv("TRACE")) {
			printf("%s %d smem %lld: %d/%d staged, %d all, %d parallel\n", what, id, smem, emu_walk_staged, sp.hkv, emu_walk_all,
			       emu_walk_par);
		}
		std::string d = differs(ref, got, sp.size);
		int staged = 0, whole = 0, parallel = 0;
		for (int h = 0; h < sp.hkv; h++) {
			bool p = canonical[h] && parOK && par[h] <= smem;
			staged += canonical[h] && (p || least[h] <= smem);
			whole += canonical[h] && !p && all[h] <= smem;
			parallel += p;
		}
		bool pathOK = emu_walk_blocks == sp.hkv && emu_walk_staged == staged && emu_walk_all == whole && emu_walk_par == parallel;
		if (!d.empty() || !pathOK) {
			failures++;
			printf("FAIL %s case %d smem %lld: %d of %d heads staged (%d all, %d parallel), %d (%d, %d) expected: hkv %d C %d W %d sinks %d eager %d first %lld n %d threads %d: "
			       "%s%s\n",
			       what, id, smem, emu_walk_staged, sp.hkv, emu_walk_all, emu_walk_par, staged, whole, parallel, sp.hkv, sp.C, sp.W, sp.sinks,
			       sp.eager, first, n, threads, d.empty() ? "" : ("differs in " + d).c_str(),
			       pathOK ? "" : " (took the other path)");
		}
	}
}

static std::vector<long long> periods(int C) {
	std::vector<long long> e(C);
	switch (rnd(0, 4)) {
	case 0: // 1, 2, 4, …
		for (int i = 0; i < C; i++) {
			e[i] = 1LL << std::min(i, 40);
		}
		break;
	case 1: // 1, 3, 9, …
		for (int i = 0; i < C; i++) {
			e[i] = i == 0 ? 1 : std::min(e[i - 1] * 3, 1LL << 40);
		}
		break;
	case 2: // 2, 4, 8, …: the first cascade does not take every token
		for (int i = 0; i < C; i++) {
			e[i] = 2LL << std::min(i, 40);
		}
		break;
	case 3: // increasing, not powers
		for (int i = 0; i < C; i++) {
			e[i] = (i == 0 ? 1 : e[i - 1]) + rnd(0, 4);
		}
		break;
	default: // anything
		for (int i = 0; i < C; i++) {
			e[i] = rnd(1, 7);
		}
	}
	return e;
}

int main(int argc, char **argv) {
	int cases = argc > 1 ? atoi(argv[1]) : 400;
	rng.seed(argc > 2 ? atoll(argv[2]) : 1);
	int synth = 0, hist = 0, odd = 0;
	for (int id = 0; id < cases; id++) {
		Spec sp;
		sp.hkv = (int)rnd(1, 3);
		sp.C = rnd(0, 30) == 0 ? (int)rnd(9, 64) : (int)rnd(1, 8);
		sp.W = pick({1, 2, 3, 5, 8, 13, 16, 32, 64, (int)rnd(1, 64)});
		sp.size = sp.C * sp.W;
		sp.sinks = pick({0, 1, 4, 64});
		sp.eager = (int)rnd(0, 1);
		sp.every = periods(sp.C);
		int n = pick({1, 2, (int)rnd(1, 16), (int)rnd(1, 200), (int)rnd(1, 1000), (int)rnd(1, 1000)});
		if (rnd(0, 60) == 0) {
			n = 4096;
		}
		int L = (int)rnd(0, 40), threads = pick({1, 2, 7, 32, 33, 64, 96, (int)rnd(1, 40)}), massMode = (int)rnd(0, 2);
		if (rnd(0, 2) == 0) { // history: chunks from the empty cache, walked by the reference
			State s = empty(sp);
			long long t = 0, target = rnd(0, 3LL * sp.size + sp.sinks + 20);
			int most = pick({1, 7, 64, 300});
			while (t < target) {
				int m = (int)std::min<long long>(rnd(1, most), target - t);
				auto a = masses(sp, m, 0, massMode);
				garbage(s.place, (size_t)sp.hkv * m);
				reference(sp, s, a, t, m, 0);
				t += m;
			}
			check("history", id, sp, s, t, n, L, threads, massMode);
			hist++;
			continue;
		}
		long long first = pick({0LL, rnd(0, sp.sinks), (long long)sp.size + sp.sinks - rnd(0, n), rnd(sp.size + sp.sinks, 1LL << 40),
					rnd(0, 4LL * sp.size)});
		bool weird = rnd(0, 15) == 0;
		check(weird ? "weird" : "synthetic", id, sp, synthetic(sp, first, weird, massMode), first, n, L, threads, massMode);
		(weird ? odd : synth)++;
	}
	// Decoding: many one-token steps from the empty cache by cascade_step
	// and by the reference, compared at the end.
	int decoded = 0;
	for (int id = 0; id < cases / 16; id++) {
		Spec sp;
		sp.hkv = (int)rnd(1, 3);
		sp.C = (int)rnd(1, 8);
		sp.W = pick({1, 2, 3, 5, 8, 13, (int)rnd(1, 40)});
		sp.size = sp.C * sp.W;
		sp.sinks = pick({0, 1, 4});
		sp.eager = (int)rnd(0, 1);
		sp.every = periods(sp.C);
		int massMode = (int)rnd(0, 2);
		State ref = empty(sp), got = ref;
		long long steps = rnd(1, 2LL * sp.size + sp.sinks + 20);
		for (long long t = 0; t < steps; t++) {
			int L = (int)rnd(0, 5);
			auto a = masses(sp, 1, L, massMode);
			garbage(ref.place, (size_t)sp.hkv), got.place = ref.place;
			reference(sp, ref, a, t, 1, L);
			step(sp, got, a, t, L);
			launches++, stepLaunches++;
		}
		std::string d = differs(ref, got, sp.size);
		if (!d.empty()) {
			failures++;
			printf("FAIL decoding case %d: %lld steps, hkv %d C %d W %d sinks %d eager %d: differs in %s\n", id, steps, sp.hkv, sp.C, sp.W,
			       sp.sinks, sp.eager, d.c_str());
		}
		decoded++;
	}
	// The reduction of a decoding step's scores against that of its mass.
	int reduced = 0;
	for (int id = 0; id < std::max(8, cases / 20); id++) {
		int hkv = (int)rnd(1, 4), g = pick({1, 2, 4, (int)rnd(1, 8)}), hq = hkv * g;
		int Wd = (int)rnd(1, 1500), L = (int)rnd(0, Wd - 1), reduceMax = (int)rnd(0, 1), homogeneous = (int)rnd(0, 3) == 0;
		bool age = rnd(0, 1);
		float w = rnd(0, 5) == 0 ? 0.0f : std::uniform_real_distribution<float>(0.01f, 1.0f)(rng);
		float bn = std::uniform_real_distribution<float>(0.0f, 1.0f)(rng);
		std::vector<float> scores((size_t)hq * Wd), stats(2 * (size_t)hq), mass((size_t)hq * Wd);
		for (int q = 0; q < hq; q++) {
			stats[q] = std::uniform_real_distribution<float>(-5.0f, 30.0f)(rng);
			stats[hq + q] = std::uniform_real_distribution<float>(1.0f, 5000.0f)(rng);
			for (int j = 0; j < Wd; j++) {
				float x = rnd(0, 9) == 0 ? -INFINITY : stats[q] - std::uniform_real_distribution<float>(0.0f, 40.0f)(rng);
				scores[(size_t)q * Wd + j] = x;
				mass[(size_t)q * Wd + j] = mass_term(0.0f, w, x, stats[q], 1.0f / stats[hq + q]);
			}
		}
		// each entry in at most one place, as the cascade's views have them
		int entries = hkv * L + 1;
		std::vector<int> ventry(entries);
		std::iota(ventry.begin(), ventry.end(), 0);
		std::shuffle(ventry.begin(), ventry.end(), rng);
		ventry.resize((size_t)hkv * L);
		for (auto &e : ventry) {
			e = rnd(0, 4) == 0 ? -1 : e;
		}
		std::vector<float> held(entries);
		for (auto &x : held) {
			x = std::uniform_real_distribution<float>(0.0f, 3.0f)(rng);
		}
		std::vector<float> aWant((size_t)hkv * Wd), aGot(aWant.size()), heldWant = held, heldGot = held;
		int threads = pick({32, 256}), blocks = (Wd + threads - 1) / threads;
		emu_launch({(unsigned)blocks, (unsigned)hkv, 1}, threads, 0, [&] {
			cascade_reduce(aWant.data(), mass.data(), hq, hkv, Wd, reduceMax, homogeneous, age ? heldWant.data() : nullptr,
				       ventry.data(), L, bn);
		});
		emu_launch({(unsigned)blocks, (unsigned)hkv, 1}, threads, 0, [&] {
			cascade_reduce_scores(aGot.data(), scores.data(), stats.data(), w, hq, hkv, Wd, reduceMax, homogeneous,
					      age ? heldGot.data() : nullptr, ventry.data(), L, bn);
		});
		launches += 2;
		if (memcmp(aWant.data(), aGot.data(), 4 * aWant.size()) != 0 || memcmp(heldWant.data(), heldGot.data(), 4 * held.size()) != 0) {
			failures++;
			printf("FAIL reduction case %d: hq %d hkv %d Wd %d L %d max %d homogeneous %d aging %d w %g\n", id, hq, hkv, Wd, L,
			       reduceMax, homogeneous, (int)age, w);
		}
		reduced++;
	}
	// The 8B shape: 65,536 slots in 8 cascades of 8,192, 64 sinks, chunks
	// of 4,096, full rings and a cache filled chunk by chunk.
	int real = 0;
	for (int id = 0; id < 6; id++) {
		Spec sp{1, 64, 65536, 8, 8192, id % 2, {1, 2, 4, 8, 16, 32, 64, 128}};
		int n = 4096;
		if (id < 4) {
			long long first = id < 2 ? rnd(sp.size + sp.sinks, 1LL << 30) : sp.size + sp.sinks - rnd(0, n);
			check("8B full", id, sp, synthetic(sp, first, false, id % 3), first, n, 0, 512, id % 3);
		} else {
			State s = empty(sp);
			long long t = 0;
			for (int c = 0; c < 17 + id; c++, t += n) {
				auto a = masses(sp, n, 0, 0);
				garbage(s.place, (size_t)n);
				reference(sp, s, a, t, n, 0);
			}
			check("8B history", id, sp, s, t, n, 100, 512, 0);
		}
		real++;
	}
	printf("%d random cases (%d synthetic states, %d filled chunk by chunk, %d not as the walk leaves them), %d decoded token by token, %d reductions of scores and %d at the 8B shape: "
	       "%d launches (%d staged, %d of them with the mass and place, %d walked in parallel, %d one-token steps), %s\n",
	       cases, synth, hist, odd, decoded, reduced, real, launches, stagedLaunches, allLaunches, parLaunches, stepLaunches,
	       failures || storeFailures ? "FAILED" : "every output bit-identical to the reference (the free stack below its top)");
	if (failures || storeFailures) {
		printf("%d launches failed, %d one-token steps stored rows wrongly\n", failures, storeFailures);
		return 1;
	}
	return 0;
}
