// Package seeded makes the random streams the dataset generators draw
// samples from: one stream per sample, a pure function of the sample's
// coordinates, so that a sample never depends on which others were drawn.
package seeded

import "math/rand/v2"

// Stream returns a PCG stream seeded from seed and then each of parts in
// turn, each folded in by SplitMix64: the same arguments always give the
// same stream.
func Stream(seed uint64, parts ...uint64) *rand.Rand {
	s := splitmix(seed)
	for _, p := range parts {
		s = splitmix(s ^ p)
	}
	return rand.New(rand.NewPCG(s, splitmix(s)))
}

// splitmix is SplitMix64's output function of the state advanced once.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
