package backend

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
