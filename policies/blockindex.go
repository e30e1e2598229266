package policies

import "slices"

// blockIndex is the key index of one KV head of the logsearch policy: a
// tree of per-dimension key bounds over blocks of B consecutive tokens
// (Quest's page bounds), built level by level as tokens arrive.
//
// Leaf j (level 0) holds, for each of the hd dimensions, the minimum and
// maximum of the keys of tokens j·B … j·B+B−1 of the stream it is given.
// Node i of level ℓ+1 merges nodes 2i and 2i+1 of level ℓ (element-wise
// min of minima, max of maxima) and is built the moment node 2i+1 exists,
// as a binary counter carries: every block costs O(hd) amortised to insert,
// so building the index is linear in the tokens. The nodes without a
// parent (the last node of each level with an odd count) are the roots of
// the forest, at most one per level, ⌈log₂ blocks⌉+1 in all.
//
// Keys are indexed as given (before RoPE); the memory is 2·hd float32 per
// leaf and about as much again for the levels above it.
type blockIndex struct {
	hd, b  int
	lo, hi [][]float32 // [level][node·hd] per-dimension minimum and maximum
	fill   int         // tokens in the open (incomplete) leaf
	openLo []float32   // [hd] bounds of the open leaf
	openHi []float32

	frontier nodeHeap  // search scratch
	next     []node    // searchBeam's scratch
	qp, qn   []float32 // [g·hd] the search's queries split by sign (bound)
}

func newBlockIndex(hd, b int) *blockIndex {
	return &blockIndex{hd: hd, b: b, openLo: make([]float32, hd), openHi: make([]float32, hd)}
}

// blocks returns the number of complete leaves.
func (x *blockIndex) blocks() int {
	if len(x.lo) == 0 {
		return 0
	}
	return len(x.lo[0]) / x.hd
}

// add takes the key [hd] of the next token.
func (x *blockIndex) add(k []float32) {
	if x.fill == 0 {
		copy(x.openLo, k)
		copy(x.openHi, k)
	} else {
		for d, v := range k[:x.hd] {
			x.openLo[d] = min(x.openLo[d], v)
			x.openHi[d] = max(x.openHi[d], v)
		}
	}
	x.fill++
	if x.fill < x.b {
		return
	}
	x.fill = 0
	x.push(0, x.openLo, x.openHi)
	// carry: while level ℓ has an even count, its last two nodes make a
	// node of level ℓ+1
	for l := 0; len(x.lo[l])/x.hd%2 == 0; l++ {
		n, hd := len(x.lo[l]), x.hd
		aLo, bLo := x.lo[l][n-2*hd:n-hd], x.lo[l][n-hd:]
		aHi, bHi := x.hi[l][n-2*hd:n-hd], x.hi[l][n-hd:]
		lo, hi := x.openLo, x.openHi // scratch: the open leaf is empty now
		for d := range hd {
			lo[d] = min(aLo[d], bLo[d])
			hi[d] = max(aHi[d], bHi[d])
		}
		x.push(l+1, lo, hi)
	}
}

// push appends a node with bounds lo, hi [hd] to level l.
func (x *blockIndex) push(l int, lo, hi []float32) {
	if l == len(x.lo) {
		x.lo = append(x.lo, nil)
		x.hi = append(x.hi, nil)
	}
	x.lo[l] = append(x.lo[l], lo[:x.hd]...)
	x.hi[l] = append(x.hi[l], hi[:x.hd]...)
}

// split keeps the queries qs [g·hd] of a search as their positive parts
// qp = max(q, 0) and negative parts qn = min(q, 0), for bound.
func (x *blockIndex) split(qs []float32) {
	x.qp, x.qn = append(x.qp[:0], qs...), append(x.qn[:0], qs...)
	for d, v := range qs {
		if v >= 0 {
			x.qn[d] = 0
		} else {
			x.qp[d] = 0
		}
	}
}

// bound returns the upper bound, over the keys under node i of level l, of
// the largest dot product with any of the queries of the last split:
// max over queries of Σ_d max(q_d·lo_d, q_d·hi_d). That term is q⁺_d·hi_d +
// q⁻_d·lo_d, one of the two products being zero, so the sum takes no
// branch (which random signs mispredict) and rounds as the larger
// product alone does.
func (x *blockIndex) bound(l, i int) float32 {
	hd := x.hd
	lo, hi := x.lo[l][i*hd:(i+1)*hd], x.hi[l][i*hd:(i+1)*hd]
	best := float32(0)
	first := true
	keep := func(s float32) {
		if first || s > best {
			best = s
		}
		first = false
	}
	nq := len(x.qp) / hd
	g := 0
	// Four queries at a time: each sum keeps its own order over d, and
	// the four chains run side by side.
	for ; g+4 <= nq; g += 4 {
		p0, p1, p2, p3 := x.qp[g*hd:(g+1)*hd], x.qp[(g+1)*hd:(g+2)*hd], x.qp[(g+2)*hd:(g+3)*hd], x.qp[(g+3)*hd:(g+4)*hd]
		n0, n1, n2, n3 := x.qn[g*hd:(g+1)*hd], x.qn[(g+1)*hd:(g+2)*hd], x.qn[(g+2)*hd:(g+3)*hd], x.qn[(g+3)*hd:(g+4)*hd]
		lo := lo[:len(hi)]
		p0, p1, p2, p3 = p0[:len(hi)], p1[:len(hi)], p2[:len(hi)], p3[:len(hi)]
		n0, n1, n2, n3 = n0[:len(hi)], n1[:len(hi)], n2[:len(hi)], n3[:len(hi)]
		var s0, s1, s2, s3 float32
		for d, h := range hi {
			o := lo[d]
			s0 += p0[d]*h + n0[d]*o
			s1 += p1[d]*h + n1[d]*o
			s2 += p2[d]*h + n2[d]*o
			s3 += p3[d]*h + n3[d]*o
		}
		keep(s0)
		keep(s1)
		keep(s2)
		keep(s3)
	}
	for ; g < nq; g++ {
		qp, qn := x.qp[g*hd:(g+1)*hd], x.qn[g*hd:(g+1)*hd]
		qp, qn, lo := qp[:len(hi)], qn[:len(hi)], lo[:len(hi)]
		var s float32
		for d, h := range hi {
			s += qp[d]*h + qn[d]*lo[d]
		}
		keep(s)
	}
	return best
}

// search appends to dst the indices of the k leaves among the first limit
// with the highest bound for queries qs [g·hd] (ties: the later leaf), best
// first, and returns it with the number of nodes whose bound it computed.
//
// It is a best-first descent: a max-heap of nodes keyed by bound starts
// with the roots, and a popped node is expanded into its children until k
// leaves have popped. A node's bound is at least its children's (their
// boxes lie inside its box), so a popped leaf beats every leaf not yet
// popped: the result is exactly the top k by bound. The nodes whose bound
// it computes are the roots, and the children of every internal node whose
// bound exceeds the k-th result: O(k·log N) when the bounds separate the
// best blocks from the rest (a relevant block under subtrees of unrelated
// keys), O(N/B) in the worst case (every box as loose as its parent's).
func (x *blockIndex) search(qs []float32, k, limit int, dst []int32) ([]int32, int) {
	limit = min(limit, x.blocks())
	if k <= 0 || limit <= 0 {
		return dst, 0
	}
	x.split(qs)
	h := &x.frontier
	*h = (*h)[:0]
	visits := 0
	visit := func(l, i int) {
		if i<<l >= limit { // every leaf under it is out of range
			return
		}
		visits++
		h.push(node{ub: x.bound(l, i), level: int32(l), idx: int32(i)})
	}
	for l := range x.lo {
		if n := len(x.lo[l]) / x.hd; n%2 == 1 {
			visit(l, n-1)
		}
	}
	found := 0
	for len(*h) > 0 && found < k {
		top := h.pop()
		if top.level == 0 {
			dst = append(dst, top.idx)
			found++
			continue
		}
		l, i := int(top.level)-1, 2*int(top.idx)
		visit(l, i)
		visit(l, i+1)
	}
	return dst, visits
}

// searchBeam is an approximate search that descends the tree level by
// level keeping only the beam best nodes (beam ≥ k): the roots are the
// first frontier; each round the frontier's nodes of the highest level
// present are replaced by their children and the frontier is cut back to
// its beam best by bound, until it holds leaves only, of which it appends
// the k best. It returns them with the number of bounds computed: at most
// the roots plus 2·beam per level, O(beam·log N) whatever the keys, where
// search computes O(N/B) when the boxes do not separate the blocks. A
// subtree cut from the frontier may hold a leaf of the exact top k by
// bound; with a beam of at least the number of leaves it is exact.
func (x *blockIndex) searchBeam(qs []float32, k, limit, beam int, dst []int32) ([]int32, int) {
	limit = min(limit, x.blocks())
	if k <= 0 || limit <= 0 {
		return dst, 0
	}
	beam = max(beam, k)
	x.split(qs)
	cur, next := x.frontier[:0], x.next[:0]
	visits := 0
	add := func(f []node, l, i int) []node {
		if i<<l >= limit { // every leaf under it is out of range
			return f
		}
		visits++
		return append(f, node{ub: x.bound(l, i), level: int32(l), idx: int32(i)})
	}
	for l := range x.lo {
		if n := len(x.lo[l]) / x.hd; n%2 == 1 {
			cur = add(cur, l, n-1)
		}
	}
	byBound := func(a, b node) int {
		switch {
		case a.before(b):
			return -1
		case b.before(a):
			return 1
		}
		return 0
	}
	for {
		slices.SortFunc(cur, byBound)
		cur = cur[:min(len(cur), beam)]
		top := int32(0)
		for _, n := range cur {
			top = max(top, n.level)
		}
		if top == 0 {
			break
		}
		next = next[:0]
		for _, n := range cur {
			if n.level != top {
				next = append(next, n)
				continue
			}
			l, i := int(n.level)-1, 2*int(n.idx)
			next = add(next, l, i)
			next = add(next, l, i+1)
		}
		cur, next = next, cur
	}
	for _, n := range cur[:min(k, len(cur))] {
		dst = append(dst, n.idx)
	}
	x.frontier, x.next = cur, next
	return dst, visits
}

// bytes is the memory the index holds.
func (x *blockIndex) bytes() int64 {
	b := int64(cap(x.openLo)+cap(x.openHi)) * 4
	for l := range x.lo {
		b += int64(cap(x.lo[l])+cap(x.hi[l])) * 4
	}
	return b + int64(cap(x.frontier)+cap(x.next))*12
}

// node is a tree node on the search frontier.
type node struct {
	ub    float32
	level int32
	idx   int32
}

// nodeHeap is a max-heap of nodes by bound; on equal bounds an internal
// node comes before a leaf (so that no tied leaf under it is missed) and a
// later node before an earlier one. Its push and pop take and return nodes
// as they are: container/heap's interface would allocate for each node
// (every visited node of every search, each decoding step).
type nodeHeap []node

// before reports whether a comes out of the heap before b.
func (a node) before(b node) bool {
	if a.ub != b.ub {
		return a.ub > b.ub
	}
	if a.level != b.level {
		return a.level > b.level
	}
	return a.idx > b.idx
}

func (h *nodeHeap) push(v node) {
	*h = append(*h, v)
	s := *h
	for i := len(s) - 1; i > 0; {
		up := (i - 1) / 2
		if !s[i].before(s[up]) {
			break
		}
		s[i], s[up] = s[up], s[i]
		i = up
	}
}

func (h *nodeHeap) pop() node {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && s[c+1].before(s[c]) {
			c++
		}
		if !s[c].before(s[i]) {
			break
		}
		s[i], s[c] = s[c], s[i]
		i = c
	}
	*h = s
	return top
}
