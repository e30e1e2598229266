package seeded

import "testing"

// TestStream: equal arguments give equal streams, and each argument, its
// position included, changes the stream.
func TestStream(t *testing.T) {
	first := func(seed uint64, parts ...uint64) uint64 { return Stream(seed, parts...).Uint64() }
	if a, b := first(1, 2, 3), first(1, 2, 3); a != b {
		t.Fatal("the same arguments gave different streams")
	}
	for _, c := range [][]uint64{{2, 2, 3}, {1, 3, 3}, {1, 2, 4}, {1, 3, 2}, {1, 2}} {
		if first(c[0], c[1:]...) == first(1, 2, 3) {
			t.Errorf("Stream%v equals Stream(1, 2, 3)", c)
		}
	}
}
