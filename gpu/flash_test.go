package gpu

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"kvcascade/gpu/cuda"
)

// flashDevice is the backend the flash tests share, opened on first use.
var flashDevice struct {
	sync.Once
	b   *Backend
	err error
}

// openFlash returns a backend on GPU 0, skipping the test as the other
// device tests do where there is no GPU (unless KVCASCADE_REQUIRE_GPU is
// set), and where the GPU is older than sm_80.
func openFlash(t testing.TB) *Backend {
	t.Helper()
	flashDevice.Do(func() {
		flashDevice.b, flashDevice.err = New(0)
		if flashDevice.err == nil {
			t.Logf("%s", flashDevice.b.Info())
		}
	})
	if err := flashDevice.err; err != nil {
		noGPU := errors.Is(err, cuda.ErrNoDriver) || errors.Is(err, cuda.ErrNoDevice)
		if noGPU && os.Getenv("KVCASCADE_REQUIRE_GPU") == "" {
			t.Skipf("no CUDA driver: %v", err)
		}
		t.Fatal(err)
	}
	b := flashDevice.b
	if b.dev.Major < flashMinArch {
		t.Skipf("flash attention needs sm_80 or later, the device is %s", b.dev.Arch())
	}
	return b
}

// bf16NaN is a quiet NaN in bf16, and bf16NaNs two of them in a word.
const (
	bf16NaN  = uint16(0x7fc0)
	bf16NaNs = uint32(bf16NaN) | uint32(bf16NaN)<<16
)

// packBF16 puts bf16 values two to a word, the first in the low half, as
// they lie in memory (cuda.Upload takes no 16-bit type).
func packBF16(h []uint16) []uint32 {
	if len(h)%2 != 0 {
		panic("packBF16 of an odd count")
	}
	w := make([]uint32, len(h)/2)
	for i := range w {
		w[i] = uint32(h[2*i]) | uint32(h[2*i+1])<<16
	}
	return w
}

func unpackBF16(w []uint32) []uint16 {
	h := make([]uint16, 2*len(w))
	for i, x := range w {
		h[2*i], h[2*i+1] = uint16(x), uint16(x>>16)
	}
	return h
}

// flashPut copies data to a new device buffer that the test frees when it
// ends; no data gives address 0.
func flashPut[T cuda.Plain](t testing.TB, b *Backend, data []T) cuda.DevicePtr {
	t.Helper()
	if len(data) == 0 {
		return 0
	}
	bytes := len(data) * int(unsafe.Sizeof(data[0]))
	p, err := b.dev.Alloc(bytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.dev.Free(p) })
	if err := cuda.Upload(b.dev, p, data); err != nil {
		t.Fatal(err)
	}
	return p
}

// flashCase is one flash attention call: s queries of hq heads over a view
// of l cached keys per KV head (of hkv) in a cache of capacity slots, head
// dimension hd.
type flashCase struct {
	name                   string
	hq, hkv, hd, s, l, cap int
	pad                    bool    // every third view entry is padding
	padFirst               int     // so are the first padFirst entries
	posBase                int     // added to every position
	mass                   bool    // also the attention mass
	qScale                 float32 // queries are N(0, qScale²): larger is a sharper softmax
}

// TestFlashAttention runs the tensor-core kernels on bf16 inputs and
// compares them with a float64 reference computed on the same inputs: the
// same bf16 values, keys and queries rotated in float32 by the table the
// kernels read (each product and sum rounded, as the kernels do) and
// rounded to bf16, so that the rotated operands agree bit for bit and only
// the arithmetic after them differs. Outputs start as NaN, with a poisoned
// guard after each, so that unwritten and overrun entries fail.
//
// Tolerances. u = 2⁻⁸ is bf16's unit roundoff (8-bit significands).
//   - out: the kernel rounds each probability to bf16 for the P·V mma
//     (relative error ≤ u each, so ≤ u·Σⱼ pⱼ|vⱼ| in all) and the output to
//     bf16 (≤ u·|out|); the scores differ from the reference only by
//     float32 accumulation (~1e-6 relative), and exp2 by ex2.approx
//     (2⁻²²). So |Δ| ≤ u·(|out| + Σⱼ pⱼ|vⱼ|) plus terms far smaller; the
//     test allows twice that, 2⁻⁷·(|out| + Σⱼ pⱼ|vⱼ|) + 1e-6.
//   - stats: m is a max of scores (|m| of a few units) that differ only
//     by float32 accumulation, about 1e-6: 1e-3·(1 + |m|); l sums
//     exp(s − m) with the same score errors and ex2.approx's: 1e-3
//     relative.
//   - mass: each term wᵢ·exp(sᵢⱼ − mᵢ)/lᵢ carries the errors above, about
//     1e-5 relative, and all terms are positive, so the sum has the same
//     relative error: 2e-3 relative, plus 1e-4 of the head's largest mass
//     and 1e-7 absolute for sums too small for a relative bound to matter.
//     (Mistakes such as one query or one key too many or too few move
//     entries by a probability, 1e-3 or more of the sum.)
//
// Every case runs with each variant of flashVariants: on Hopper also with
// the forward and mass kernels on warpgroup MMA (flash_fwd90,
// flash_mass90) in each compilation the benchmarks time.
func TestFlashAttention(t *testing.T) {
	b := openFlash(t)
	if !HasWGMMA(b, 128) {
		t.Logf("no warpgroup MMA on %s: flash_fwd90 and flash_mass90 not run", b.dev.Arch())
	}
	for _, v := range flashVariants(b, 128) {
		t.Run(v.name, func(t *testing.T) {
			defer v.use(b)()
			for _, tc := range flashCases {
				t.Run(tc.name, func(t *testing.T) { runFlash(t, b, tc) })
			}
		})
	}
}

// flashVariant is one way of running flash attention: mma.sync, or
// warpgroup MMA compiled with W_STAGES = stages (0: the default), W_PIPE =
// pipe, W_PINGPONG = pingPong and W_MPOLY = massPoly.
type flashVariant struct {
	name     string
	wgmma    bool
	stages   int
	pipe     bool
	pingPong bool
	massPoly bool
}

// flashVariants are the variants b's GPU runs at head dimension hd: mma.sync
// everywhere; on Hopper also the default warpgroup MMA (three stages), its
// consumer warpgroups in ping-pong, the mass with ex2_fma, both, two
// stages, and two stages without the overlap of a tile's softmax with the
// previous tile's P·V.
func flashVariants(b *Backend, hd int) []flashVariant {
	vs := []flashVariant{{name: "mma.sync"}}
	if HasWGMMA(b, hd) {
		vs = append(vs, flashVariant{"wgmma", true, 0, true, false, false},
			flashVariant{"wgmma_pingpong", true, 0, true, true, false},
			flashVariant{"wgmma_mpoly", true, 0, true, false, true},
			flashVariant{"wgmma_pingpong_mpoly", true, 0, true, true, true},
			flashVariant{"wgmma_s2", true, 2, true, false, false}, flashVariant{"wgmma_s2_nopipe", true, 2, false, false, false})
	}
	return vs
}

// use switches b to v and returns what switches it back to the default.
func (v flashVariant) use(b *Backend) func() {
	SetWGMMA(b, v.wgmma)
	SetWGMMATuning(b, v.stages, v.pipe, v.pingPong, v.massPoly)
	return func() {
		SetWGMMATuning(b, 0, true, false, false)
		SetWGMMA(b, true)
	}
}

// flashCases are the calls TestFlashAttention checks.
var flashCases = []flashCase{
	{"llama 32/8 hd128", 32, 8, 128, 100, 300, 400, true, 0, 0, true, 1},
	{"gqa 8/2 hd64 positions past 70000", 8, 2, 64, 130, 257, 300, true, 0, 70000, true, 1},
	{"chunk only hd128", 8, 2, 128, 200, 0, 0, false, 0, 0, true, 1},
	{"chunk only 32/8 hd64", 32, 8, 64, 64, 0, 0, false, 0, 3, true, 1},
	// Whole key tiles of padding before the first real key: rows
	// that have seen nothing must not turn NaN.
	{"padded start of view hd128", 8, 2, 128, 65, 150, 200, false, 70, 70000, true, 1},
	{"view all padding without cache", 4, 1, 128, 64, 40, 0, false, 40, 0, true, 1},
	{"sharp softmax hd64", 4, 1, 64, 300, 90, 128, true, 0, 70001, true, 4},
	{"no mass 32/8 hd128 long view", 32, 8, 128, 77, 1000, 1100, true, 0, 70001, false, 1},
	{"whole tiles hd128", 8, 2, 128, 128, 64, 64, false, 0, 5, true, 1},
	{"many tiles 8/2 hd128", 8, 2, 128, 520, 700, 1000, true, 0, 70000, true, 1},
	{"many tiles 8/2 hd64", 8, 2, 64, 300, 500, 600, true, 0, 7, true, 2},
}

// flashInput is the host side of a flash case.
type flashInput struct {
	q, k, v, ck, cv []uint16 // bf16
	slots, pos      []int32
	qpos            []int32
	weights         []float32
	inv             []float32 // RoPE inverse frequencies
	maxPos          int
}

func newFlashInput(tc flashCase, rng *rand.Rand) *flashInput {
	normal := func(n int, scale float32) []uint16 {
		h := make([]uint16, n)
		for i := range h {
			h[i] = toBF16(float32(rng.NormFloat64()) * scale)
		}
		return h
	}
	in := &flashInput{
		q: normal(tc.s*tc.hq*tc.hd, tc.qScale),
		k: normal(tc.s*tc.hkv*tc.hd, 1), v: normal(tc.s*tc.hkv*tc.hd, 1),
		ck: make([]uint16, tc.hkv*tc.cap*tc.hd), cv: make([]uint16, tc.hkv*tc.cap*tc.hd),
	}
	// Slots the view does not use stay NaN: reading one spoils the result.
	for i := range in.ck {
		in.ck[i], in.cv[i] = bf16NaN, bf16NaN
	}
	for h := 0; h < tc.hkv; h++ {
		perm := rng.Perm(tc.cap) // scattered slots
		for j := 0; j < tc.l; j++ {
			slot := int32(-1)
			if j < tc.cap && !(tc.pad && j%3 == 1) && j >= tc.padFirst {
				slot = int32(perm[j])
				row := (h*tc.cap + int(slot)) * tc.hd
				for d := 0; d < tc.hd; d++ {
					in.ck[row+d] = toBF16(float32(rng.NormFloat64()))
					in.cv[row+d] = toBF16(float32(rng.NormFloat64()))
				}
			}
			p := tc.posBase + rng.IntN(3*tc.l+1) // in no particular order
			in.slots = append(in.slots, slot)
			in.pos = append(in.pos, int32(p))
			in.maxPos = max(in.maxPos, p)
		}
		qp := tc.posBase + 3*tc.l + 1 + h
		in.qpos = append(in.qpos, int32(qp))
		in.maxPos = max(in.maxPos, qp+tc.s-1)
	}
	for i := 0; i < tc.s; i++ {
		w := float32(i+1) / float32(tc.s)
		if i%5 == 3 {
			w = 0
		}
		in.weights = append(in.weights, w)
	}
	in.inv = make([]float32, tc.hd/2)
	for i := range in.inv {
		in.inv[i] = float32(1 / math.Pow(10000, float64(2*i)/float64(tc.hd)))
	}
	return in
}

// flashRun fills in the RoPE table of c for positions [0, positions) of
// the frequencies inv and runs c, holding b.mu as Backend.Attention does.
func flashRun(b *Backend, c *flashCall, inv []float32, positions int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	rt := b.table(inv, 1, positions)
	c.cos, c.sin = rt.cos(), rt.sin()
	return b.flashAttention(c)
}

// flashGuard is the number of poisoned words after each output.
const flashGuard = 64

func runFlash(t *testing.T, b *Backend, tc flashCase) {
	in := newFlashInput(tc, rand.New(rand.NewPCG(uint64(tc.s), uint64(tc.l*1000+tc.hd))))
	n := tc.l + tc.s
	outWords := tc.s * tc.hq * tc.hd / 2
	nanWords := func(n int, v uint32) []uint32 {
		w := make([]uint32, n)
		for i := range w {
			w[i] = v
		}
		return w
	}
	nan32 := math.Float32bits(float32(math.NaN()))

	c := &flashCall{
		out:   flashPut(t, b, nanWords(outWords+flashGuard, bf16NaNs)),
		stats: flashPut(t, b, nanWords(2*tc.hq*tc.s+flashGuard, nan32)),
		q:     flashPut(t, b, packBF16(in.q)), k: flashPut(t, b, packBF16(in.k)), v: flashPut(t, b, packBF16(in.v)),
		ck: flashPut(t, b, packBF16(in.ck)), cv: flashPut(t, b, packBF16(in.cv)),
		slots: flashPut(t, b, in.slots), pos: flashPut(t, b, in.pos), qpos: flashPut(t, b, in.qpos),
		s: tc.s, l: tc.l, capacity: tc.cap, hq: tc.hq, hkv: tc.hkv, hd: tc.hd,
		scale: float32(1 / math.Sqrt(float64(tc.hd))),
	}
	if tc.mass {
		c.weights = flashPut(t, b, in.weights)
		c.mass = flashPut(t, b, nanWords(tc.hq*n+flashGuard, nan32))
	}
	if !flashRun(b, c, in.inv, in.maxPos+1) {
		t.Fatalf("flashAttention declined %+v", tc)
	}

	get := func(p cuda.DevicePtr, n int) []uint32 {
		w := make([]uint32, n)
		if err := cuda.Download(b.dev, w, p); err != nil {
			t.Fatal(err)
		}
		return w
	}
	outW := get(c.out, outWords+flashGuard)
	statsW := get(c.stats, 2*tc.hq*tc.s+flashGuard)
	var massW []uint32
	if tc.mass {
		massW = get(c.mass, tc.hq*n+flashGuard)
	}
	half := tc.hd / 2
	cosT := make([]float32, (in.maxPos+1)*half)
	sinT := make([]float32, (in.maxPos+1)*half)
	if err := cuda.Download(b.dev, cosT, c.cos); err != nil {
		t.Fatal(err)
	}
	if err := cuda.Download(b.dev, sinT, c.sin); err != nil {
		t.Fatal(err)
	}
	checkFlash(t, tc, in, outW, statsW, massW, cosT, sinT)
}

// checkFlash compares the words the kernels wrote, guards included (massW
// is nil without mass), with the reference computed from the inputs and
// the RoPE table [P, hd/2] they read.
func checkFlash(t *testing.T, tc flashCase, in *flashInput, outW, statsW, massW []uint32, cosT, sinT []float32) {
	n := tc.l + tc.s
	outWords := tc.s * tc.hq * tc.hd / 2
	nan32 := math.Float32bits(float32(math.NaN()))
	for name, w := range map[string][]uint32{"out": outW[outWords:], "stats": statsW[2*tc.hq*tc.s:], "mass": tail(massW, flashGuard)} {
		for i, x := range w {
			if x != bf16NaNs && x != nan32 {
				t.Fatalf("%s: guard word %d past the end overwritten (%#x)", name, i, x)
			}
		}
	}

	ref := flashReference(tc, in, cosT, sinT)
	out := unpackBF16(outW[:outWords])
	u2 := math.Ldexp(1, -7)
	chk := flashChecker{t: t, what: "out"}
	for i, x := range out {
		chk.at(i, float64(fromBF16(x)), ref.out[i], u2*(math.Abs(ref.out[i])+ref.spread[i])+1e-6)
	}
	chk.done()
	chk = flashChecker{t: t, what: "stats m"}
	for i, m := range ref.m {
		chk.at(i, float64(math.Float32frombits(statsW[i])), m, 1e-3*(1+math.Abs(m)))
	}
	chk.done()
	chk = flashChecker{t: t, what: "stats l"}
	for i, l := range ref.l {
		chk.at(i, float64(math.Float32frombits(statsW[tc.hq*tc.s+i])), l, 1e-3*l)
	}
	chk.done()
	if !tc.mass {
		return
	}
	chk = flashChecker{t: t, what: "mass"}
	for qh := 0; qh < tc.hq; qh++ {
		row := ref.mass[qh*n : (qh+1)*n]
		top := 0.0
		for _, x := range row {
			top = max(top, x)
		}
		for j, want := range row {
			chk.at(qh*n+j, float64(math.Float32frombits(massW[qh*n+j])), want, 2e-3*want+1e-4*top+1e-7)
		}
	}
	chk.done()
}

// tail returns the last n elements of w, or nil when w is nil.
func tail(w []uint32, n int) []uint32 {
	if w == nil {
		return nil
	}
	return w[len(w)-n:]
}

// flashChecker compares values against tolerances, reporting the first few
// failures and the largest difference.
type flashChecker struct {
	t            *testing.T
	what         string
	worst, ratio float64 // largest |Δ| and |Δ|/tolerance
	bad          int
}

func (c *flashChecker) at(i int, got, want, tol float64) {
	d := math.Abs(got - want)
	if !(d <= tol) { // NaN fails
		if c.bad < 5 {
			c.t.Errorf("%s[%d] = %v, want %v (|Δ| %.3g > %.3g)", c.what, i, got, want, d, tol)
		}
		c.bad++
	}
	c.worst = max(c.worst, d)
	if tol > 0 {
		c.ratio = max(c.ratio, d/tol)
	}
}

func (c *flashChecker) done() {
	if c.bad > 0 {
		c.t.Errorf("%s: %d values out of tolerance", c.what, c.bad)
	}
	c.t.Logf("%s: max |Δ| %.3g, %.2f of the tolerance", c.what, c.worst, c.ratio)
}

// flashRef is the float64 reference of a flash case.
type flashRef struct {
	out    []float64 // [s, hq·hd]
	spread []float64 // [s, hq·hd]: Σⱼ pⱼ·|vⱼ| per output, for its tolerance
	m, l   []float64 // [hq, s]
	mass   []float64 // [hq, l+s]
}

// flashRotate rotates the bf16 row x by the table row at position p as
// the kernels do (float32, each product and sum rounded; the explicit
// conversions forbid fused multiply-adds) and rounds to bf16.
func flashRotate(y []float64, x []uint16, cosT, sinT []float32, p int) {
	half := len(x) / 2
	for d := 0; d < half; d++ {
		x1, x2 := fromBF16(x[d]), fromBF16(x[d+half])
		c, s := cosT[p*half+d], sinT[p*half+d]
		y[d] = float64(fromBF16(toBF16(float32(x1*c) - float32(x2*s))))
		y[d+half] = float64(fromBF16(toBF16(float32(x2*c) + float32(x1*s))))
	}
}

// flashReference computes attention, its stats and its mass in float64
// from the bf16 inputs, the table and the rules of kernels/flash.cu.
func flashReference(tc flashCase, in *flashInput, cosT, sinT []float32) *flashRef {
	hd, n, group := tc.hd, tc.l+tc.s, tc.hq/tc.hkv
	scale := float64(float32(1 / math.Sqrt(float64(hd))))
	r := &flashRef{
		out: make([]float64, tc.s*tc.hq*hd), spread: make([]float64, tc.s*tc.hq*hd),
		m: make([]float64, tc.hq*tc.s), l: make([]float64, tc.hq*tc.s), mass: make([]float64, tc.hq*n),
	}
	kr, vr := make([][]float64, n), make([][]float64, n)
	qr := make([]float64, hd)
	sc := make([]float64, n)
	for h := 0; h < tc.hkv; h++ {
		for j := 0; j < n; j++ {
			kr[j], vr[j] = nil, nil
			var krow, vrow []uint16
			var p int
			if j < tc.l {
				slot := int(in.slots[h*tc.l+j])
				if slot < 0 {
					continue // padding
				}
				off := (h*tc.cap + slot) * hd
				krow, vrow, p = in.ck[off:off+hd], in.cv[off:off+hd], int(in.pos[h*tc.l+j])
			} else {
				off := ((j-tc.l)*tc.hkv + h) * hd
				krow, vrow, p = in.k[off:off+hd], in.v[off:off+hd], int(in.qpos[h])+j-tc.l
			}
			kr[j], vr[j] = make([]float64, hd), make([]float64, hd)
			flashRotate(kr[j], krow, cosT, sinT, p)
			for d := range vr[j] {
				vr[j][d] = float64(fromBF16(vrow[d]))
			}
		}
		for qh := h * group; qh < (h+1)*group; qh++ {
			for i := 0; i < tc.s; i++ {
				off := (i*tc.hq + qh) * hd
				flashRotate(qr, in.q[off:off+hd], cosT, sinT, int(in.qpos[h])+i)
				m := math.Inf(-1)
				for j := 0; j <= tc.l+i; j++ {
					if kr[j] == nil {
						continue
					}
					dot := 0.0
					for d, x := range qr {
						dot += x * kr[j][d]
					}
					sc[j] = dot * scale
					m = max(m, sc[j])
				}
				l := 0.0
				for j := 0; j <= tc.l+i; j++ {
					if kr[j] != nil {
						sc[j] = math.Exp(sc[j] - m)
						l += sc[j]
					}
				}
				o, a := r.out[off:off+hd], r.spread[off:off+hd]
				for j := 0; j <= tc.l+i; j++ {
					if kr[j] == nil {
						continue
					}
					p := sc[j] / l
					for d, x := range vr[j] {
						o[d] += p * x
						a[d] += p * math.Abs(x)
					}
					r.mass[qh*n+j] += float64(in.weights[i]) * p
				}
				r.m[qh*tc.s+i], r.l[qh*tc.s+i] = m, l
			}
		}
	}
	return r
}

// TestFlashAttentionDeclines checks the calls flashAttention leaves to
// the float32 kernels; it launches nothing for them, so no buffers are
// needed.
func TestFlashAttentionDeclines(t *testing.T) {
	b := openFlash(t)
	for _, c := range []struct {
		name string
		c    flashCall
	}{
		{"decoding", flashCall{s: 1, hq: 4, hkv: 1, hd: 128}},
		{"fewer queries than flashMinRows", flashCall{s: flashMinRows - 1, hq: 4, hkv: 1, hd: 128}},
		{"head dim 96", flashCall{s: 256, hq: 4, hkv: 1, hd: 96}},
		{"head dim 256", flashCall{s: 256, hq: 4, hkv: 1, hd: 256}},
		{"misaligned queries", flashCall{s: 256, hq: 4, hkv: 1, hd: 128, q: 8}},
		{"misaligned cache", flashCall{s: 256, hq: 4, hkv: 1, hd: 64, ck: 4096 + 2}},
	} {
		b.mu.Lock()
		ok := b.flashAttention(&c.c)
		b.mu.Unlock()
		if ok {
			t.Errorf("%s: flashAttention took the call", c.name)
		}
	}
}

// flashRandomBF16 returns n bf16 values in [−1, 1), two to a word, from a
// fast generator: benchmark inputs, where only the sizes matter.
func flashRandomBF16(n int, seed uint64) []uint32 {
	w := make([]uint32, n/2)
	x := seed | 1
	for i := range w {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		lo := toBF16(float32(int16(x)) / 32768)
		hi := toBF16(float32(int16(x>>16)) / 32768)
		w[i] = uint32(lo) | uint32(hi)<<16
	}
	return w
}

// BenchmarkFlashAttention times one layer's prefill attention at the
// Llama-3.1-8B shape (32 query heads, 8 KV heads, head dim 128): a
// 4096-token chunk over 4096 and 65,536 cached keys gathered through
// scattered slots, and a 16,384-token chunk over no cache, with and without
// the mass pass, in each variant of flashVariants (mma.sync, and on
// Hopper warpgroup MMA: flash_fwd90 and flash_mass90). TFLOP/s counts
// 4·S·(L+S/2)·hd·Hq flops (QKᵀ and PV over the visible pairs), and half as
// much again with mass (QKᵀ recomputed).
// Where $KVCASCADE_SDPA names the output of
// tools/bench_hf/sdpa_attention.py --out, run on the same GPU, it reports
// the best SDPA backend's TFLOP/s on the same shape next to it
// (SDPA-TFLOP/s) and the ratio (vs-SDPA; with mass, attention and mass
// together against SDPA's attention alone).
func BenchmarkFlashAttention(bm *testing.B) {
	b := openFlash(bm)
	sdpa := readSDPA(bm, os.Getenv("KVCASCADE_SDPA"))
	const hq, hkv, hd = 32, 8, 128
	for _, sh := range []struct{ s, l int }{{4096, 4096}, {4096, 65536}, {16384, 0}} {
		s, l := sh.s, sh.l
		slots, pos := make([]int32, hkv*l), make([]int32, hkv*l)
		rng := rand.New(rand.NewPCG(uint64(l), 7))
		for h := 0; h < hkv; h++ {
			for j, slot := range rng.Perm(l) {
				slots[h*l+j], pos[h*l+j] = int32(slot), int32(j)
			}
		}
		qpos := make([]int32, hkv)
		for h := range qpos {
			qpos[h] = int32(l)
		}
		weights := make([]float32, s)
		for i := range weights {
			weights[i] = 1 / float32(s)
		}
		inv := make([]float32, hd/2)
		for i := range inv {
			inv[i] = float32(1 / math.Pow(500000, float64(2*i)/hd))
		}
		base := flashCall{
			out: flashPut(bm, b, make([]uint32, s*hq*hd/2)), stats: flashPut(bm, b, make([]float32, 2*hq*s)),
			q: flashPut(bm, b, flashRandomBF16(s*hq*hd, 1)),
			k: flashPut(bm, b, flashRandomBF16(s*hkv*hd, 2)), v: flashPut(bm, b, flashRandomBF16(s*hkv*hd, 3)),
			ck: flashPut(bm, b, flashRandomBF16(hkv*l*hd, 4)), cv: flashPut(bm, b, flashRandomBF16(hkv*l*hd, 5)),
			slots: flashPut(bm, b, slots), pos: flashPut(bm, b, pos), qpos: flashPut(bm, b, qpos),
			s: s, l: l, capacity: l, hq: hq, hkv: hkv, hd: hd, scale: float32(1 / math.Sqrt(hd)),
		}
		weightsPtr, massPtr := flashPut(bm, b, weights), flashPut(bm, b, make([]float32, hq*(l+s)))
		for _, v := range flashVariants(b, hd) {
			for _, mass := range []bool{false, true} {
				bm.Run(fmt.Sprintf("S=%d/L=%d/mass=%v/%s", s, l, mass, v.name), func(bm *testing.B) {
					defer v.use(b)()
					c := base
					if mass {
						c.weights, c.mass = weightsPtr, massPtr
					}
					call := func() {
						if !flashRun(b, &c, inv, l+s) {
							bm.Fatal("flashAttention declined the call")
						}
					}
					sec := TimeCalls(bm, b, call)
					flops := 4 * float64(s) * (float64(l) + float64(s)/2) * hd * hq
					if mass {
						bm.ReportMetric(1.5*flops/sec/1e12, "TFLOP/s")
					} else {
						bm.ReportMetric(flops/sec/1e12, "TFLOP/s")
					}
					if ref, ok := sdpa[[2]int{s, l}]; ok && ref > 0 {
						bm.ReportMetric(ref, "SDPA-TFLOP/s")
						bm.ReportMetric(flops/sec/1e12/ref, "vs-SDPA")
					}
				})
			}
		}
	}
}

// readSDPA reads tools/bench_hf/sdpa_attention.py's --out file: per line
// S, L and the best SDPA backend's TFLOP/s (then each backend's). No name
// gives an empty map.
func readSDPA(tb testing.TB, name string) map[[2]int]float64 {
	m := map[[2]int]float64{}
	if name == "" {
		return m
	}
	data, err := os.ReadFile(name)
	if err != nil {
		tb.Fatalf("$KVCASCADE_SDPA: %v", err)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var s, l int
		var best float64
		if _, err := fmt.Sscan(line, &s, &l, &best); err != nil {
			tb.Fatalf("%s:%d: %q: %v", name, i+1, line, err)
		}
		m[[2]int{s, l}] = best
	}
	return m
}
