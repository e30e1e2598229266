package policies

import "kvcascade/runtime/backend"

// tokenLists is the host state h2o and snapkv share: per KV head a
// tokenList and the slotPool of its storage slots. (deviceLists is the same
// on the backend's device.)
type tokenLists struct {
	s         Shape
	positions positions
	lists     []tokenList // [Hkv]
	pools     []slotPool  // [Hkv]

	// host scratch of absorb and evict
	a     []float32 // [L+n] reduced mass of one head
	flags []bool    // [T] tokens kept
	idx   []int32   // [T−recent] candidates, best first after selectTop

	// reduce combines a GQA group's mass in absorb (host only).
	reduce reduction
	// mode is the mass the lists ask the backend for (host only).
	mode backend.MassMode
}

func newTokenLists(s Shape, pos positions) tokenLists {
	return tokenLists{s: s, positions: pos, lists: make([]tokenList, s.KVHeads), pools: make([]slotPool, s.KVHeads)}
}

// plan fills view with the view of the lists for the chunk of step and asks
// for the chunk's mass with weights (nil: none).
func (t *tokenLists) plan(step Step, view *backend.View, weights []float32) {
	view.QueryWeights = weights
	view.MassMode = t.mode
	planList(t.lists, step, t.positions, view)
	view.Device = nil
}

// queryPos sets the chunk's first RoPE position for every KV head: right
// after the view of L keys, or its original position.
func queryPos(qpos []int32, L int, step Step, pos positions) {
	for h := range qpos {
		qpos[h] = int32(L)
		if pos == originalPositions {
			qpos[h] = int32(step.Start)
		}
	}
}

// Held returns head h's tokens in order.
func (t *tokenLists) Held(h int, dst []int64) []int64 { return append(dst, t.lists[h].pos...) }

// Scores returns the scores of head h's tokens, in order, appended to dst.
func (t *tokenLists) Scores(h int, dst []float32) []float32 {
	return append(dst, t.lists[h].score...)
}

// bytes is the memory of the lists, pools and scratch.
func (t *tokenLists) bytes() int64 {
	b := int64(cap(t.a)+cap(t.idx))*4 + int64(cap(t.flags))
	for h := range t.lists {
		b += t.lists[h].bytes() + t.pools[h].bytes()
	}
	return b
}

// absorb takes a chunk into head h's list: the chunk's mass [Hq·(L+n)],
// reduced over the head's GQA group (t.reduce; the mean unless set), is added to the scores of the L held
// tokens, and the n chunk tokens are appended with their own mass as score
// and no slot yet; their places (place, the chunk's row of head h) are −1
// until store gives them one.
func (t *tokenLists) absorb(h int, mass []float32, step Step, place []int32) {
	t.absorbRow(h, mass, t.lists[h].len(), step, place)
}

// absorbRow is absorb for a view whose rows are L keys long, which may be
// more than head h holds (a pooled view pads the shorter heads): the mass
// is [Hq·(L+n)], and h's own keys are the first of its row.
func (t *tokenLists) absorbRow(h int, mass []float32, L int, step Step, place []int32) {
	l := &t.lists[h]
	own, g := l.len(), t.s.Group()
	w := L + step.N
	t.a = grow(t.a, w)
	reduceMass(t.a, mass, w, h*g, (h+1)*g, t.reduce)
	for j := range own {
		l.score[j] += t.a[j]
	}
	for i := range place {
		place[i] = -1
		l.add(step.Start+int64(i), -1, t.a[L+i])
	}
}

// evict keeps the last recent tokens of head h's list and the keep best of
// the others under better (a strict total order on list indices), in
// order, and gives the slots of the rest back to the head's pool.
func (t *tokenLists) evict(h, recent, keep int, better func(i, j int32) bool) {
	l := &t.lists[h]
	T := l.len()
	m := T - recent
	t.flags = grow(t.flags, T)
	t.idx = grow(t.idx, m)
	for j := range t.flags {
		t.flags[j] = j >= m
	}
	for j := range t.idx {
		t.idx[j] = int32(j)
	}
	selectTop(t.idx, keep, better)
	for _, j := range t.idx[:keep] {
		t.flags[j] = true
	}
	l.keep(t.flags, &t.pools[h])
}

// tokenList is the tokens one KV head holds, in original order, with the
// storage slot and score of each. Policies that evict by score and keep the
// survivors in order (h2o, snapkv) build on it.
type tokenList struct {
	pos   []int64
	slot  []int32 // −1: not stored yet
	score []float32
}

func (l *tokenList) len() int { return len(l.pos) }

func (l *tokenList) add(pos int64, slot int32, score float32) {
	l.pos = append(l.pos, pos)
	l.slot = append(l.slot, slot)
	l.score = append(l.score, score)
}

// keep keeps the tokens whose flag is set, in order, and gives the slots of
// the others back to pool.
func (l *tokenList) keep(flags []bool, pool *slotPool) {
	n := 0
	for i, k := range flags[:l.len()] {
		if !k {
			if l.slot[i] >= 0 {
				pool.put(l.slot[i])
			}
			continue
		}
		l.pos[n], l.slot[n], l.score[n] = l.pos[i], l.slot[i], l.score[i]
		n++
	}
	l.pos, l.slot, l.score = l.pos[:n], l.slot[:n], l.score[:n]
}

// store gives a slot to every token of the chunk starting at start that
// has none yet and records it in place, the chunk's row of this head.
func (l *tokenList) store(pool *slotPool, start int64, place []int32) {
	for i, s := range l.slot {
		if s < 0 {
			s = pool.get()
			l.slot[i] = s
			place[l.pos[i]-start] = s
		}
	}
}

func (l *tokenList) bytes() int64 { return int64(cap(l.pos))*8 + int64(cap(l.slot)+cap(l.score))*4 }

// better reports whether token i ranks above token j: a higher score, or
// the same score and more recent.
func (l *tokenList) better(i, j int32) bool {
	si, sj := l.score[i], l.score[j]
	return si > sj || (si == sj && l.pos[i] > l.pos[j])
}

// planList fills view with the view of per-head token lists that all have the
// same length: the tokens in order, at cache or original positions.
func planList(lists []tokenList, step Step, pos positions, view *backend.View) {
	hk := len(lists)
	L := lists[0].len()
	sizeView(view, hk, L)
	for h := range lists {
		l := &lists[h]
		copy(view.Slots[h*L:], l.slot)
		p := view.Pos[h*L : (h+1)*L]
		if pos == originalPositions {
			for j, t := range l.pos {
				p[j] = int32(t)
			}
			continue
		}
		for j := range p {
			p[j] = int32(j)
		}
	}
	queryPos(view.QueryPos, L, step, pos)
}

// selectTop reorders idx so that its first k elements are the k best under
// the strict total order better (quickselect, expected linear time).
func selectTop(idx []int32, k int, better func(a, b int32) bool) {
	lo, hi := 0, len(idx)
	for hi-lo > 1 {
		// median of three as pivot, moved to the end
		mid := lo + (hi-lo)/2
		a, b, c := lo, mid, hi-1
		if better(idx[b], idx[a]) {
			a, b = b, a
		}
		if better(idx[c], idx[b]) {
			b = c
			if better(idx[b], idx[a]) {
				b = a
			}
		}
		idx[b], idx[hi-1] = idx[hi-1], idx[b]
		pivot := idx[hi-1]
		store := lo
		for i := lo; i < hi-1; i++ {
			if better(idx[i], pivot) {
				idx[i], idx[store] = idx[store], idx[i]
				store++
			}
		}
		idx[store], idx[hi-1] = idx[hi-1], idx[store]
		switch {
		case store == k:
			return
		case store < k:
			lo = store + 1
		default:
			hi = store
		}
	}
}
