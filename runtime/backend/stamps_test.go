package backend

import (
	"fmt"
	"slices"
	"testing"
)

func TestRowStamps(t *testing.T) {
	var r RowStamps
	for _, c := range []struct {
		name  string
		n     int
		heads [][]int32 // rows taken in turn, head by head
		want  [][]bool  // Take's answers
	}{
		{"distinct", 4, [][]int32{{0, 1, 2, 3}}, [][]bool{{false, false, false, false}}},
		{"twice in a head", 4, [][]int32{{2, 0, 2}}, [][]bool{{false, false, true}}},
		{"again in the next head", 3, [][]int32{{1, 2}, {2, 1, 1}}, [][]bool{{false, false}, {false, false, true}}},
		{"grown", 9, [][]int32{{8, 0, 8}}, [][]bool{{false, false, true}}},
	} {
		r.Start(c.n)
		for h, rows := range c.heads {
			r.Next()
			for i, row := range rows {
				if got := r.Take(row); got != c.want[h][i] {
					t.Errorf("%s: head %d, Take(%d) = %v, want %v", c.name, h, row, got, c.want[h][i])
				}
			}
		}
	}
}

// TestRowStampsWrap checks that a generation that wraps around clears the
// stamps: a row stamped 2³²−1 generations ago must not read as taken.
func TestRowStampsWrap(t *testing.T) {
	var r RowStamps
	r.Start(2)
	r.Next()
	r.Take(0)
	r.gen = ^uint32(0) // the last generation before the wrap
	r.stamp[1] = 1     // as if taken in generation 1
	r.Next()           // wraps to generation 1
	if r.gen != 1 {
		t.Fatalf("generation %d after the wrap, want 1", r.gen)
	}
	if r.Take(1) {
		t.Error("a row stamped before the wrap reads as taken after it")
	}
}

func BenchmarkRowStamps(b *testing.B) {
	var r RowStamps
	b.ReportAllocs()
	for b.Loop() {
		r.Start(65536)
		for h := 0; h < 8; h++ {
			r.Next()
			for i := int32(0); i < 4096; i++ {
				r.Take(i * 7 % 65536)
			}
		}
	}
}

func TestCopyPairs(t *testing.T) {
	type visit struct {
		h, e int
		skip bool
	}
	var r RowStamps
	var got []visit
	n := r.CopyPairs("t", []int{2, 4, 8}, []int{2, 3, 8}, []int32{3, -1, 0, 3}, []int32{2, 1, 0, -5}, func(h, e int, skip bool) {
		got = append(got, visit{h, e, skip})
	})
	want := []visit{{0, 0, false}, {0, 1, true}, {1, 2, false}, {1, 3, true}}
	if n != 2 || !slices.Equal(got, want) {
		t.Fatalf("CopyPairs: n = %d, visits %v; want 2, %v", n, got, want)
	}
	// No heads and no rows: nothing to copy, nothing visited.
	if n := r.CopyPairs("t", []int{0, 4, 8}, []int{0, 3, 8}, nil, nil, func(h, e int, skip bool) {
		t.Errorf("CopyPairs without heads visited head %d pair %d", h, e)
	}); n != 0 {
		t.Errorf("CopyPairs without heads: n = %d, want 0", n)
	}
	for _, c := range []struct {
		name     string
		dst, src []int
		dr, sr   []int32
		msg      string
	}{
		{"heads", []int{2, 4, 8}, []int{1, 4, 8}, []int32{0, 1}, []int32{0, 1}, "t: CopyRows of 2 rows from [1 4 8] to [2 4 8]"},
		{"width", []int{1, 4, 8}, []int{1, 4, 4}, []int32{0}, []int32{0}, "t: CopyRows of 1 rows from [1 4 4] to [1 4 8]"},
		{"lengths", []int{1, 4, 8}, []int{1, 4, 8}, []int32{0, 1}, []int32{0}, "t: CopyRows of 1 rows from [1 4 8] to [1 4 8]"},
		{"uneven", []int{2, 4, 8}, []int{2, 4, 8}, []int32{0, 1, 2}, []int32{0, 1, 2}, "t: CopyRows of 3 rows from [2 4 8] to [2 4 8]"},
		{"dst range", []int{1, 4, 8}, []int{1, 9, 8}, []int32{4}, []int32{5}, "t: CopyRows of row 5 of [1 9 8] to row 4 of [1 4 8]"},
		{"src range", []int{1, 4, 8}, []int{1, 2, 8}, []int32{1}, []int32{2}, "t: CopyRows of row 2 of [1 2 8] to row 1 of [1 4 8]"},
		{"twice", []int{2, 4, 8}, []int{2, 4, 8}, []int32{0, 1, 2, 2}, []int32{0, 1, 2, 3}, "t: CopyRows names row 2 of head 1 twice"},
		{"rows without heads", []int{0, 4, 8}, []int{0, 4, 8}, []int32{0}, []int32{0}, "t: CopyRows of 1 rows from [0 4 8] to [0 4 8]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if got := fmt.Sprint(recover()); got != c.msg {
					t.Errorf("panic %q, want %q", got, c.msg)
				}
			}()
			r.CopyPairs("t", c.dst, c.src, c.dr, c.sr, func(int, int, bool) {})
		})
	}
}
