package gpu

import "testing"

// TestStagePlace follows the staging ring's bookkeeping through uploads
// that repeat the last one, differ from it, repeat an older one and wrap
// the ring.
func TestStagePlace(t *testing.T) {
	r := stage{host: make([]byte, 4*stageAlign)}
	a, b := []byte{1, 2, 3, 4}, []byte{5, 6, 7, 8}
	big := make([]byte, stageAlign+1)
	big[0] = 9
	for i, c := range []struct {
		src         []byte
		off         int
		fresh, wrap bool
	}{
		{a, 0, true, false},              // the first upload
		{a, 0, false, false},             // repeats it: nothing copied
		{b, stageAlign, true, false},     // differs: the next aligned part
		{a, 2 * stageAlign, true, false}, // an older upload's bytes: copied again
		{big, 0, true, true},             // no room at the end: the ring wraps …
		{big, 0, false, false},           // … and repeating it after costs nothing
		{b, 2 * stageAlign, true, false},
	} {
		off, fresh, wrap := r.place(c.src)
		if off != c.off || fresh != c.fresh || wrap != c.wrap {
			t.Fatalf("upload %d: at %d, fresh %v, wrap %v; want %d, %v, %v", i, off, fresh, wrap, c.off, c.fresh, c.wrap)
		}
		if got := r.host[off : off+len(c.src)]; string(got) != string(c.src) {
			t.Fatalf("upload %d: the ring holds %v at %d, want %v", i, got, off, c.src)
		}
	}
}
