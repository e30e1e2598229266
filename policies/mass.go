package policies

import "fmt"

// reduction is how the attention mass of the query heads of a GQA group is
// combined into one score per key and KV head.
type reduction int

const (
	reduceMean reduction = iota
	reduceMax
)

// reduceMass sets dst[j], j < w, to the reduction over query heads
// [q0, q1) of mass[h·w+j]. A nil mass gives zeros. The mean is the float32
// sum in head order times 1/(q1−q0), as torch.mean computes it.
func reduceMass(dst, mass []float32, w, q0, q1 int, r reduction) {
	dst = dst[:w]
	if mass == nil {
		clear(dst)
		return
	}
	copy(dst, mass[q0*w:q0*w+w])
	for h := q0 + 1; h < q1; h++ {
		row := mass[h*w : h*w+w]
		if r == reduceMax {
			for j, x := range row {
				if x > dst[j] {
					dst[j] = x
				}
			}
			continue
		}
		for j, x := range row {
			dst[j] += x
		}
	}
	if r == reduceMean && q1-q0 > 1 {
		f := 1 / float32(q1-q0)
		for j := range dst {
			dst[j] *= f
		}
	}
}

// checkMass panics when mass does not have the layout Plan asked for: a
// programmer error in the caller.
func checkMass(mass []float32, s Shape, w int) {
	if mass != nil && len(mass) != s.QHeads*w {
		panic(fmt.Sprintf("policies: mass has %d values, want %d query heads × %d keys", len(mass), s.QHeads, w))
	}
}
