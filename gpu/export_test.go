package gpu

// LtPlans exposes to the tests how many cuBLASLt plans of b have an
// algorithm and how many have none (0, 0 without cuBLASLt).
func LtPlans(b *Backend) (withAlgo, without int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lt == nil {
		return 0, 0
	}
	return b.lt.Plans()
}
