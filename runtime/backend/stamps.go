package backend

import "fmt"

// RowStamps finds a row named twice within one head of a batch of row
// indices (Scatter's slots, CopyRows' destinations) without clearing a
// table per head: a row is taken in the current head when its stamp equals
// the generation, and the next head only moves the generation on. The zero
// value is ready for use; it is not safe for concurrent use.
type RowStamps struct {
	stamp []uint32 // by row
	gen   uint32   // the current head's stamp; 0 is never one
}

// Start prepares the stamps for rows [0, n); Next then starts each head.
func (r *RowStamps) Start(n int) {
	if cap(r.stamp) < n {
		r.stamp = make([]uint32, n)
	}
	r.stamp = r.stamp[:n]
}

// Next starts a head: no row is taken in it yet.
func (r *RowStamps) Next() {
	if r.gen++; r.gen == 0 { // wrapped: old stamps could match again
		clear(r.stamp[:cap(r.stamp)])
		r.gen = 1
	}
}

// Take marks row i (0 ≤ i < n of the last Start) taken in the current head
// and reports whether it already was.
func (r *RowStamps) Take(i int32) (taken bool) {
	if r.stamp[i] == r.gen {
		return true
	}
	r.stamp[i] = r.gen
	return false
}

// CopyPairs checks the arguments of a HostTier's CopyRows from src
// [Hkv, Cap₂, hd] into dst [Hkv, Cap₁, hd] (their shapes) and calls visit
// for every pair e = h·n+i of head h in order, with skip set where either row is
// negative. It panics, the message starting with who, on shapes that do
// not match, a row out of range, or a destination row named twice within
// a head. It returns n, the pairs per head.
func (r *RowStamps) CopyPairs(who string, dst, src []int, dstRows, srcRows []int32, visit func(h, e int, skip bool)) (n int) {
	if len(dst) != 3 || len(src) != 3 || dst[0] != src[0] || dst[2] != src[2] || len(dstRows) != len(srcRows) ||
		len(dstRows) > 0 && (dst[0] == 0 || len(dstRows)%dst[0] != 0) {
		panic(fmt.Sprintf("%s: CopyRows of %d rows from %v to %v", who, len(srcRows), src, dst))
	}
	if len(dstRows) == 0 { // nothing to copy, with heads or without
		return 0
	}
	hkv := dst[0]
	n = len(dstRows) / hkv
	r.Start(dst[1])
	for h := 0; h < hkv; h++ {
		r.Next()
		for i := 0; i < n; i++ {
			e := h*n + i
			dr, sr := dstRows[e], srcRows[e]
			if dr < 0 || sr < 0 {
				visit(h, e, true)
				continue
			}
			if int(dr) >= dst[1] || int(sr) >= src[1] {
				panic(fmt.Sprintf("%s: CopyRows of row %d of %v to row %d of %v", who, sr, src, dr, dst))
			}
			if r.Take(dr) {
				panic(fmt.Sprintf("%s: CopyRows names row %d of head %d twice", who, dr, h))
			}
			visit(h, e, false)
		}
	}
	return n
}
