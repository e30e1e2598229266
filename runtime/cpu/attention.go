package cpu

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas/blas32"

	"kvcascade/runtime/backend"
)

// attnScratch holds the state of one attention call: its arguments, the
// rotated keys and queries, and the probabilities. It is pooled, and it is
// the job the worker pool runs, in two phases, so a call allocates nothing.
//
// The gathered arrays are per view head: a KV head, or a query head when the
// view has a row per query head (View.PerQueryHead).
type attnScratch struct {
	keysT []float32 // [Hv, hd, np] rotated keys, transposed: view then chunk; [Hv, L+S, hd] when rowKeys
	vals  []float32 // [Hv, L+S, hd] values: view then chunk
	valid []bool    // [Hv, L+S]
	bad   []int32   // [Hv, L]: the first nbad[h] are view head h's invalid view slots
	nbad  []int     // [Hv]
	sums  []float32 // [workers, S] 1 / the softmax denominators
	qrot  []float32 // [Hq, S, hd] rotated queries
	flash []float32 // [workers, 2, N] float16 sums and block sums of MassFlashReference (N: L+S padded)
	probs []float32 // [workers, S, np] attention probabilities
	gmax  []float32 // [workers, S, np] a group's largest probabilities, for MassGroupMax

	a                  *backend.Attention
	rt                 *ropeTable
	out, q, k, v       []float32
	ck, cv             []float32 // cache storage [Hkv, capacity, hd], or a pool [1, capacity, hd]
	stride             int       // rows from one head's slot 0 to the next's: capacity, or 0 in a pool
	hd, hq, hkv, group int
	// vh view heads, vgroup query heads per view head, share view heads
	// per KV head: Hkv, group, 1, or with PerQueryHead Hq, 1, group.
	vh, vgroup, share int
	groupMax          bool // MassGroupMax: attend KV head by KV head
	l, s, n           int
	np                int  // L+S rounded up to 32: the row stride of keysT and probs
	rowKeys           bool // keys stored row by row, for scores by dot products (decoding)
	kern              kernels
	gather            bool // phase: gather and rotate (true) or attend (false)
}

// run does the part [lo, hi) of the current phase: view heads when
// gathering, query heads when attending (KV heads, whose groups' query
// heads it attends, for MassGroupMax).
func (sc *attnScratch) run(worker, lo, hi int) {
	switch {
	case sc.gather:
		sc.gatherHeads(lo, hi)
	case sc.groupMax:
		sc.attendHeads(worker, lo*sc.group, hi*sc.group)
	default:
		sc.attendHeads(worker, lo, hi)
	}
}

// resize returns s with length n, reallocating with headroom so that a
// slowly growing size (decoding with a growing cache) reallocates rarely.
func resize[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n, n+n/2)
}

// Attention computes attention of a chunk over [view ; chunk (causal)] with
// RoPE applied by position, and the weighted attention mass per key. Keys
// outside a sliding window (Attention.Window) get no attention.
func (b *Backend) Attention(a *backend.Attention) {
	out, q, k, v := tensor(a.Out).data, tensor(a.Q).data, tensor(a.K).data, tensor(a.V).data
	hd, hq, hkv := a.HeadDim, a.QHeads, a.KVHeads
	group := hq / hkv
	view := &a.View
	if view.Device != nil {
		panic(fmt.Sprintf("cpu: Attention over a view planned on another device (%T)", view.Device))
	}
	l := view.ViewLen
	s := len(q) / (hq * hd)
	n := l + s
	vh, vgroup, share := hkv, group, 1
	if view.PerQueryHead {
		vh, vgroup, share = hq, 1, group
	}
	if len(view.Slots) < vh*l || len(view.Pos) < vh*l || len(view.QueryPos) < vh {
		panic(fmt.Sprintf("cpu: a view of %d keys for %d view heads has %d slots, %d positions and %d query positions", l, vh, len(view.Slots), len(view.Pos), len(view.QueryPos)))
	}
	groupMax := a.Mass != nil && view.MassMode == backend.MassGroupMax

	maxPos := 0
	for _, p := range view.Pos {
		maxPos = max(maxPos, int(p))
	}
	for _, p := range view.QueryPos {
		maxPos = max(maxPos, int(p)+s)
	}
	rt := b.table(a.InvFreq, a.AttnFactor, maxPos+1)

	sc := b.scratch.Get().(*attnScratch)
	defer b.scratch.Put(sc)
	np := (n + 31) / 32 * 32
	sc.keysT = resize(sc.keysT, vh*hd*np)
	sc.vals = resize(sc.vals, vh*n*hd)
	sc.valid = resize(sc.valid, vh*n)
	sc.bad = resize(sc.bad, vh*l)
	sc.nbad = resize(sc.nbad, vh)
	sc.sums = resize(sc.sums, min(b.workers, hq)*s)
	sc.qrot = resize(sc.qrot, hq*s*hd)
	sc.probs = resize(sc.probs, min(b.workers, hq)*s*np)
	if a.Mass != nil && view.MassMode == backend.MassFlashReference {
		checkFlash(view, l, s)
		sc.flash = resize(sc.flash, min(b.workers, hq)*2*roundUp(n, backend.FlashBlockM))
	}
	if groupMax {
		sc.gmax = resize(sc.gmax, min(b.workers, hkv)*s*np)
	}
	sc.np, sc.kern = np, b.kern
	// A query or two (decoding) score by dot products over keys stored row
	// by row, which gathers without the transposed layout's strided writes.
	sc.rowKeys = s < 3
	sc.a, sc.rt, sc.out, sc.q, sc.k, sc.v = a, rt, out, q, k, v
	sc.ck, sc.cv, sc.stride = nil, nil, 0
	if view.K != nil {
		sc.ck, sc.cv = tensor(view.K).data, tensor(view.V).data
		sc.stride = headStride(tensor(view.K).shape, hkv)
	}
	sc.hd, sc.hq, sc.hkv, sc.group, sc.l, sc.s, sc.n = hd, hq, hkv, group, l, s, n
	sc.vh, sc.vgroup, sc.share, sc.groupMax = vh, vgroup, share, groupMax
	sc.gather = true
	b.split(vh, sc)
	sc.gather = false
	if groupMax {
		b.split(hkv, sc)
	} else {
		b.split(hq, sc)
	}
	sc.a, sc.out, sc.q, sc.k, sc.v, sc.ck, sc.cv = nil, nil, nil, nil, nil, nil, nil
}

// gatherHeads gathers and rotates the keys and values of view heads
// [lo, hi) and rotates the queries that read them.
func (sc *attnScratch) gatherHeads(lo, hi int) {
	view := &sc.a.View
	hd, hq, hkv, group, l, s, n, np := sc.hd, sc.hq, sc.hkv, sc.vgroup, sc.l, sc.s, sc.n, sc.np
	rt, ck, cv, stride0, q, k, v := sc.rt, sc.ck, sc.cv, sc.stride, sc.q, sc.k, sc.v
	// Key j of head h starts at keysT[keyAt(h, j)], its elements stride apart.
	stride := np
	keyAt := func(h, j int) int { return h*hd*np + j }
	if sc.rowKeys {
		stride = 1
		keyAt = func(h, j int) int { return (h*n + j) * hd }
	}
	for h := lo; h < hi; h++ {
		kv := h / sc.share // the KV head whose storage and chunk h reads
		sc.nbad[h] = 0
		for j := 0; j < l; j++ {
			slot := view.Slots[h*l+j]
			dv := sc.vals[(h*n+j)*hd : (h*n+j+1)*hd]
			if slot < 0 {
				sc.valid[h*n+j] = false
				sc.bad[h*l+sc.nbad[h]] = int32(j)
				sc.nbad[h]++
				for d, at := 0, keyAt(h, j); d < hd; d++ {
					sc.keysT[at+d*stride] = 0
				}
				clear(dv)
				continue
			}
			sc.valid[h*n+j] = true
			off := (kv*stride0 + int(slot)) * hd
			rt.rotateInto(sc.keysT[keyAt(h, j):], stride, ck[off:off+hd], int(view.Pos[h*l+j]))
			copy(dv, cv[off:off+hd])
		}
		qp := int(view.QueryPos[h])
		for i := 0; i < s; i++ {
			src := k[(i*hkv+kv)*hd : (i*hkv+kv+1)*hd]
			rt.rotateInto(sc.keysT[keyAt(h, l+i):], stride, src, qp+i)
			copy(sc.vals[(h*n+l+i)*hd:(h*n+l+i+1)*hd], v[(i*hkv+kv)*hd:(i*hkv+kv+1)*hd])
			sc.valid[h*n+l+i] = true
		}
		for g := 0; g < group; g++ {
			qh := h*group + g
			for i := 0; i < s; i++ {
				rt.rotate(sc.qrot[(qh*s+i)*hd:(qh*s+i+1)*hd], q[(i*hq+qh)*hd:(i*hq+qh+1)*hd], qp+i)
			}
		}
	}
}

// attendHeads runs query heads [lo, hi): each owns its rows of Mass and
// worker's [S, np] block of probabilities. Queries go three at a time, each
// block over the keys its last query sees: scores = Q·Kᵀ (keys stored
// transposed), masked softmax per row (normalised at the end), out = P·V,
// mass = wᵀ·P. For MassGroupMax, [lo, hi) covers whole GQA groups, and
// the group's probabilities are folded into worker's gmax block, summed
// at the group's last head.
func (sc *attnScratch) attendHeads(worker, lo, hi int) {
	a, view := sc.a, &sc.a.View
	hd, hq, group, l, s, n, np, out := sc.hd, sc.hq, sc.vgroup, sc.l, sc.s, sc.n, sc.np, sc.out
	p := sc.probs[worker*s*np : (worker+1)*s*np]
	sums := sc.sums[worker*s : (worker+1)*s]
	var gmax []float32
	if sc.groupMax {
		gmax = sc.gmax[worker*s*np : (worker+1)*s*np]
	}
	var rowsA, rowsC [3][]float32
	for qh := lo; qh < hi; qh++ {
		h := qh / group // view head
		vals := sc.vals[h*n*hd : (h+1)*n*hd]
		qrot := sc.qrot[qh*s*hd : (qh+1)*s*hd]
		if sc.rowKeys {
			keys := sc.keysT[h*n*hd : (h+1)*n*hd]
			for i := 0; i < s; i++ {
				sc.kern.matmulNT(p[i*np:(i+1)*np], qrot[i*hd:(i+1)*hd], keys, 1, np, hd, 0, l+i+1)
			}
		}
		kt := sc.keysT[h*hd*np : (h+1)*hd*np]
		for i0 := 0; i0 < s && !sc.rowKeys; i0 += 3 {
			m := min(3, s-i0)
			w := (l + i0 + m + 31) / 32 * 32 // the keys the block's last query sees, rounded up
			for r := 0; r < m; r++ {
				rowsA[r] = qrot[(i0+r)*hd : (i0+r+1)*hd]
				rowsC[r] = p[(i0+r)*np : (i0+r+1)*np]
			}
			sc.kern.mulRows(m, hd, rowsA, kt, np, w, rowsC)
		}
		if a.Mass != nil && view.MassMode == backend.MassFlashReference {
			// from the logits, before the softmax below overwrites them
			sc.flashMass(a.Mass[qh*n:(qh+1)*n], p, sc.valid[h*n:(h+1)*n], view.QueryWeights, worker, a.Scale)
		}
		// Softmax of each row over the keys its query sees; invalid slots
		// score −Inf. The rows stay unnormalised: sums holds 1/denominator.
		bad := sc.bad[h*l : h*l+sc.nbad[h]]
		for i := 0; i < s; i++ {
			row := p[i*np : (i+1)*np]
			last := l + i + 1 // keys visible to query i
			for _, j := range bad {
				row[j] = float32(math.Inf(-1))
			}
			if a.Window > 0 {
				sc.outsideWindow(h, i, func(j int) { row[j] = float32(math.Inf(-1)) })
			}
			m := sc.kern.maxRow(row[:last])
			sum := sc.kern.expRow(row[:last], m, a.Scale)
			for _, j := range bad {
				sum -= row[j]
				row[j] = 0
			}
			if a.Window > 0 {
				sc.outsideWindow(h, i, func(j int) { sum -= row[j]; row[j] = 0 })
			}
			sums[i] = 1 / sum
			clear(row[last:min(np, last+2)]) // read by P·V with the block's other rows
		}
		for i0 := 0; i0 < s; i0 += 3 {
			m := min(3, s-i0)
			for r := 0; r < m; r++ {
				rowsA[r] = p[(i0+r)*np : (i0+r+1)*np]
				rowsC[r] = out[((i0+r)*hq+qh)*hd : ((i0+r)*hq+qh+1)*hd]
			}
			sc.kern.mulRows(m, l+i0+m, rowsA, vals, hd, hd, rowsC)
			for r := 0; r < m; r++ {
				inv := sums[i0+r]
				for d := range rowsC[r] {
					rowsC[r][d] *= inv
				}
			}
		}
		if sc.groupMax {
			sc.foldGroupMax(gmax, p, sums, qh)
		}
		if a.Mass != nil && view.MassMode == backend.MassExact {
			mass := a.Mass[qh*n : (qh+1)*n]
			clear(mass)
			for i := 0; i < s; i++ {
				if w := view.QueryWeights[i]; w != 0 {
					blas32.Axpy(w*sums[i], blas32.Vector{N: l + i + 1, Inc: 1, Data: p[i*np:]}, blas32.Vector{N: l + i + 1, Inc: 1, Data: mass})
				}
			}
		}
	}
}

// foldGroupMax folds query head qh's probabilities p [S, np] (rows
// unnormalised, sums their 1/denominators) into gmax [S, np], the largest
// probability of each query and key over the heads of qh's GQA group so
// far; at the group's last head it writes Σᵢ wᵢ·gmax[i] into the Mass row
// of every head of the group (backend.MassGroupMax).
func (sc *attnScratch) foldGroupMax(gmax, p, sums []float32, qh int) {
	l, s, n, np, g := sc.l, sc.s, sc.n, sc.np, sc.group
	first := qh%g == 0
	for i := 0; i < s; i++ {
		last := l + i + 1
		row, m := p[i*np:i*np+last], gmax[i*np:i*np+last]
		inv := sums[i]
		if first {
			for j, x := range row {
				m[j] = x * inv
			}
			continue
		}
		for j, x := range row {
			m[j] = max(m[j], x*inv)
		}
	}
	if qh%g != g-1 {
		return
	}
	g0 := qh - g + 1
	mass := sc.a.Mass[g0*n : (g0+1)*n]
	clear(mass)
	for i := 0; i < s; i++ {
		if w := sc.a.View.QueryWeights[i]; w != 0 {
			blas32.Axpy(w, blas32.Vector{N: l + i + 1, Inc: 1, Data: gmax[i*np:]}, blas32.Vector{N: l + i + 1, Inc: 1, Data: mass})
		}
	}
	for h := g0 + 1; h <= qh; h++ {
		copy(sc.a.Mass[h*n:(h+1)*n], mass)
	}
}

// outsideWindow calls fn with the index in [0, L+S) of every key of KV head
// h that lies outside query i's sliding window: at a RoPE position up to the
// query's minus Attention.Window. Such keys get no attention.
func (sc *attnScratch) outsideWindow(h, i int, fn func(j int)) {
	view, w, l := &sc.a.View, sc.a.Window, sc.l
	lo := int(view.QueryPos[h]) + i - w // keys at positions ≤ lo are out
	for j, kp := range view.Pos[h*l : (h+1)*l] {
		if int(kp) <= lo {
			fn(j)
		}
	}
	for c := 0; c <= i-w; c++ { // chunk key c is at QueryPos+c
		fn(l + c)
	}
}

// roundUp returns n rounded up to a multiple of m.
func roundUp(n, m int) int { return (n + m - 1) / m * m }

// checkFlash panics when a view asks for MassFlashReference in a shape the
// official kernel cannot take: a programmer error of the policy.
func checkFlash(view *backend.View, l, s int) {
	if l%backend.FlashBlockM != 0 {
		panic(fmt.Sprintf("cpu: MassFlashReference needs a view length that is a multiple of %d, got %d", backend.FlashBlockM, l))
	}
	if want := roundUp(s, backend.FlashBlockM); len(view.QueryWeights) != want {
		panic(fmt.Sprintf("cpu: MassFlashReference needs %d query weights (S = %d padded), got %d", want, s, len(view.QueryWeights)))
	}
}

// flashMass sets mass [L+S] of one query head to the official flash
// kernel's estimate (backend.MassFlashReference) from the scores p [S, np]
// (q·k, before the softmax; scale multiplies them into logits) and valid
// [L+S], the keys that are not padding. Query rows past S are the kernel's
// zero queries: logit 0.
func (sc *attnScratch) flashMass(mass, p []float32, valid []bool, weights []float32, worker int, scale float32) {
	l, s, n, np := sc.l, sc.s, sc.n, sc.np
	const bm, bn = backend.FlashBlockM, backend.FlashBlockN
	nkv := roundUp(n, bm) // keys after the kernel's padding
	nb := nkv / bn
	buf := sc.flash[worker*2*nkv : (worker+1)*2*nkv]
	acc, blk := buf[:nkv], buf[nkv:]
	clear(acc)
	inf := float32(math.Inf(-1))
	logit := func(r, j int) float32 {
		if r >= s {
			return 0
		}
		return scale * p[r*np+j]
	}
	// visible reports whether query row r sees key j of the padded layout:
	// a view key that is not padding, or a chunk (or padding) key at or
	// before the row.
	visible := func(r, j int) bool {
		if j < l {
			return valid[j]
		}
		return j-l <= r
	}
	for r0 := 0; r0 < len(weights); r0 += bm {
		clear(blk)
		for r := r0; r < r0+bm; r++ {
			w := weights[r]
			if w == 0 {
				continue
			}
			m, sum := inf, float32(0)
			for b := 0; b < nb; b++ {
				j0, j1 := b*bn, (b+1)*bn
				mb := m
				for j := j0; j < j1; j++ {
					if visible(r, j) {
						mb = max(mb, logit(r, j))
					}
				}
				if mb == inf {
					continue // nothing seen yet: the kernel's credits are all masked
				}
				alpha := float32(math.Exp(float64(m - mb)))
				var e [bn]float32
				var lb float32
				for j := j0; j < j1; j++ {
					if visible(r, j) {
						e[j-j0] = float32(math.Exp(float64(logit(r, j) - mb)))
						lb += e[j-j0]
					}
				}
				sum = sum*alpha + lb
				adj := float32(nb-b-1) / float32(b+1)
				den := sum + sum*adj + 1e-6
				for j := j0; j < j1; j++ {
					blk[j] += e[j-j0] / den * w
				}
				m = mb
			}
		}
		for j, x := range blk {
			acc[j] = backend.RoundF16(acc[j] + backend.RoundF16(x))
		}
	}
	copy(mass, acc[:n])
}

// ReferenceMass reports that Attention computes backend.MassFlashReference.
func (b *Backend) ReferenceMass() bool { return true }

// Has reports that Attention honours every optional feature: the official
// flash kernel's mass, the group-max mass and per-query-head views.
func (b *Backend) Has(f backend.Feature) bool {
	switch f {
	case backend.FlashReferenceMass, backend.GroupMaxMass, backend.QueryHeadViews:
		return true
	}
	return false
}

var (
	_ backend.ReferenceMasser = (*Backend)(nil)
	_ backend.Featured        = (*Backend)(nil)
)
