package backend

import "testing"

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
