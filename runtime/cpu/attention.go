package cpu

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"kvcascade/runtime/backend"
)

// attnScratch holds the state of one attention call: its arguments, the
// rotated keys and queries, and the probabilities. It is pooled, and it is
// the job the worker pool runs, in two phases, so a call allocates nothing.
type attnScratch struct {
	keys  []float32 // [Hkv, L+S, hd] rotated keys: view then chunk
	vals  []float32 // [Hkv, L+S, hd] values: view then chunk
	valid []bool    // [Hkv, L+S]
	qrot  []float32 // [Hq, S, hd] rotated queries
	probs []float32 // [workers, S, L+S] attention probabilities
	flash []float32 // [workers, 2, N] float16 sums and block sums of MassFlashReference (N: L+S padded)

	a                  *backend.Attention
	rt                 *ropeTable
	out, q, k, v       []float32
	ck, cv             []float32 // cache storage [Hkv, capacity, hd]
	capacity           int
	hd, hq, hkv, group int
	l, s, n            int
	gather             bool // phase: gather and rotate (true) or attend (false)
}

// run does the part [lo, hi) of the current phase: KV heads when
// gathering, query heads when attending.
func (sc *attnScratch) run(worker, lo, hi int) {
	if sc.gather {
		sc.gatherHeads(lo, hi)
	} else {
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
	sc.keys = resize(sc.keys, hkv*n*hd)
	sc.vals = resize(sc.vals, hkv*n*hd)
	sc.valid = resize(sc.valid, hkv*n)
	sc.qrot = resize(sc.qrot, hq*s*hd)
	sc.probs = resize(sc.probs, min(b.workers, hq)*s*n)
	if a.Mass != nil && view.MassMode == backend.MassFlashReference {
		checkFlash(view, l, s)
		sc.flash = resize(sc.flash, min(b.workers, hq)*2*roundUp(n, backend.FlashBlockM))
	}
	sc.a, sc.rt, sc.out, sc.q, sc.k, sc.v = a, rt, out, q, k, v
	sc.ck, sc.cv, sc.capacity = nil, nil, 0
	if view.K != nil {
		sc.ck, sc.cv = tensor(view.K).data, tensor(view.V).data
		sc.capacity = tensor(view.K).shape[1]
	}
	sc.hd, sc.hq, sc.hkv, sc.group, sc.l, sc.s, sc.n = hd, hq, hkv, group, l, s, n
	sc.gather = true
	b.split(hkv, sc)
	sc.gather = false
	b.split(hq, sc)
	sc.a, sc.out, sc.q, sc.k, sc.v, sc.ck, sc.cv = nil, nil, nil, nil, nil, nil, nil
}

// gatherHeads gathers and rotates the keys and values of KV heads [lo, hi)
// and rotates their groups' queries.
func (sc *attnScratch) gatherHeads(lo, hi int) {
	view := &sc.a.View
	hd, hq, hkv, group, l, s, n := sc.hd, sc.hq, sc.hkv, sc.group, sc.l, sc.s, sc.n
	rt, ck, cv, capacity, q, k, v := sc.rt, sc.ck, sc.cv, sc.capacity, sc.q, sc.k, sc.v
	for h := lo; h < hi; h++ {
		for j := 0; j < l; j++ {
			slot := view.Slots[h*l+j]
			dk := sc.keys[(h*n+j)*hd : (h*n+j+1)*hd]
			dv := sc.vals[(h*n+j)*hd : (h*n+j+1)*hd]
			if slot < 0 {
				sc.valid[h*n+j] = false
				continue
			}
			sc.valid[h*n+j] = true
			off := (h*capacity + int(slot)) * hd
			rt.rotate(dk, ck[off:off+hd], int(view.Pos[h*l+j]))
			copy(dv, cv[off:off+hd])
		}
		qp := int(view.QueryPos[h])
		for i := 0; i < s; i++ {
			src := k[(i*hkv+h)*hd : (i*hkv+h+1)*hd]
			rt.rotate(sc.keys[(h*n+l+i)*hd:(h*n+l+i+1)*hd], src, qp+i)
			copy(sc.vals[(h*n+l+i)*hd:(h*n+l+i+1)*hd], v[(i*hkv+h)*hd:(i*hkv+h+1)*hd])
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
// worker's [S, L+S] block of probabilities, computed with matrix products:
// scores = Q·Kᵀ, masked softmax per row, out = P·V, mass = wᵀ·P.
func (sc *attnScratch) attendHeads(worker, lo, hi int) {
	a, view := sc.a, &sc.a.View
	hd, hq, group, l, s, n, out := sc.hd, sc.hq, sc.group, sc.l, sc.s, sc.n, sc.out
	p := sc.probs[worker*s*n : (worker+1)*s*n]
	for qh := lo; qh < hi; qh++ {
		h := qh / group
		valid := sc.valid[h*n : (h+1)*n]
		keys := blas32.General{Rows: n, Cols: hd, Stride: hd, Data: sc.keys[h*n*hd : (h+1)*n*hd]}
		vals := blas32.General{Rows: n, Cols: hd, Stride: hd, Data: sc.vals[h*n*hd : (h+1)*n*hd]}
		if s == 1 {
			// Decoding: matrix-vector products, which do not allocate.
			blas32.Gemv(blas.NoTrans, a.Scale, keys, blas32.Vector{N: hd, Inc: 1, Data: sc.qrot[qh*hd : (qh+1)*hd]},
				0, blas32.Vector{N: n, Inc: 1, Data: p})
		} else {
			blas32.Gemm(blas.NoTrans, blas.Trans, a.Scale,
				blas32.General{Rows: s, Cols: hd, Stride: hd, Data: sc.qrot[qh*s*hd : (qh+1)*s*hd]},
				keys, 0, blas32.General{Rows: s, Cols: n, Stride: n, Data: p})
		}
		if a.Window > 0 {
			sc.maskWindow(p, h)
		}
		if a.Mass != nil && view.MassMode == backend.MassFlashReference {
			sc.flashMass(a.Mass[qh*n:(qh+1)*n], p, valid, view.QueryWeights, worker)
		}
		for i := 0; i < s; i++ {
			row := p[i*n : (i+1)*n]
			last := l + i + 1 // keys visible to query i
			m := float32(math.Inf(-1))
			for j := 0; j < last; j++ {
				if valid[j] {
					m = max(m, row[j])
				}
			}
			var sum float32
			for j := 0; j < last; j++ {
				if !valid[j] {
					row[j] = 0
					continue
				}
				e := float32(math.Exp(float64(row[j] - m)))
				row[j] = e
				sum += e
			}
			inv := 1 / sum
			for j := 0; j < last; j++ {
				row[j] *= inv
			}
			clear(row[last:])
		}
		if s == 1 {
			blas32.Gemv(blas.Trans, 1, vals, blas32.Vector{N: n, Inc: 1, Data: p},
				0, blas32.Vector{N: hd, Inc: 1, Data: out[qh*hd : (qh+1)*hd]})
		} else {
			blas32.Gemm(blas.NoTrans, blas.NoTrans, 1,
				blas32.General{Rows: s, Cols: n, Stride: n, Data: p},
				vals, 0, blas32.General{Rows: s, Cols: hd, Stride: hq * hd, Data: out[qh*hd:]})
		}
		if a.Mass != nil && view.MassMode == backend.MassExact {
			mass := a.Mass[qh*n : (qh+1)*n]
			clear(mass)
			for i := 0; i < s; i++ {
				if w := view.QueryWeights[i]; w != 0 {
					blas32.Axpy(w, blas32.Vector{N: l + i + 1, Inc: 1, Data: p[i*n:]}, blas32.Vector{N: l + i + 1, Inc: 1, Data: mass})
				}
			}
		}
	}
}

// maskWindow sets to −∞ the scores p [S, L+S] of KV head h's keys that lie
// outside the sliding window of each query: at RoPE positions up to the
// query's minus Attention.Window. The softmax then gives them nothing.
func (sc *attnScratch) maskWindow(p []float32, h int) {
	view, w := &sc.a.View, sc.a.Window
	l, s, n := sc.l, sc.s, sc.n
	pos := view.Pos[h*l : (h+1)*l]
	qp := int(view.QueryPos[h])
	inf := float32(math.Inf(-1))
	for i := 0; i < s; i++ {
		row, lo := p[i*n:(i+1)*n], qp+i-w // keys at positions ≤ lo are out
		for j, kp := range pos {
			if int(kp) <= lo {
				row[j] = inf
			}
		}
		for c := 0; c <= i-w; c++ { // chunk key c is at qp+c
			row[l+c] = inf
		}
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
// kernel's estimate (backend.MassFlashReference) from the logits p [S, L+S]
// (scale·q·k, before the softmax) and valid [L+S], the keys that are not
// padding. Query rows past S are the kernel's zero queries: logit 0.
func (sc *attnScratch) flashMass(mass, p []float32, valid []bool, weights []float32, worker int) {
	l, s, n := sc.l, sc.s, sc.n
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
		return p[r*n+j]
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

var _ backend.ReferenceMasser = (*Backend)(nil)
