package policies

// slotPool hands out the storage slots of one KV head: slots given back
// first, most recently freed first, then fresh ones above the high-water
// mark. A token is written once into the slot it gets and stays there until
// the policy drops it and puts the slot back.
type slotPool struct {
	free []int32
	next int32 // lowest slot never handed out
}

// get returns a free slot.
func (p *slotPool) get() int32 {
	if n := len(p.free); n > 0 {
		s := p.free[n-1]
		p.free = p.free[:n-1]
		return s
	}
	p.next++
	return p.next - 1
}

// put gives a slot back.
func (p *slotPool) put(s int32) { p.free = append(p.free, s) }

// need returns the slots per head the pool needs so that n more gets succeed.
func (p *slotPool) need(n int) int { return int(p.next) + max(0, n-len(p.free)) }

// bytes is the memory the pool's free list holds.
func (p *slotPool) bytes() int64 { return int64(cap(p.free)) * 4 }
