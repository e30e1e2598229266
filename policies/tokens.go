package policies

import "kvcascade/runtime/backend"

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

// planList fills ctx with the view of per-head token lists that all have the
// same length: the tokens in order, at cache or original positions.
func planList(lists []tokenList, step Step, pos positions, ctx *backend.Context) {
	hk := len(lists)
	L := lists[0].len()
	sizeView(ctx, hk, L)
	for h := range lists {
		l := &lists[h]
		copy(ctx.Slots[h*L:], l.slot)
		p := ctx.Pos[h*L : (h+1)*L]
		if pos == originalPositions {
			for j, t := range l.pos {
				p[j] = int32(t)
			}
			ctx.QueryPos[h] = int32(step.Start)
			continue
		}
		for j := range p {
			p[j] = int32(j)
		}
		ctx.QueryPos[h] = int32(L)
	}
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
