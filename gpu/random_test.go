package gpu_test

import (
	"math"
	"testing"

	"kvcascade/gpu"
	"kvcascade/runtime/model"
)

// TestRandomNormal checks the device's normal fill against the host's
// (model.FillNormal): same numbers element by element, up to the last bits
// of the device's log and cos, and a standard normal's moments.
func TestRandomNormal(t *testing.T) {
	b := openGPU(t, gpu.Options{})
	const rows, cols = 1<<10 + 3, 1 << 10 // not a multiple of the grid's stride
	key := model.TensorKey(7, "model.layers.0.mlp.up_proj.weight")
	d := b.RandomNormal(key, 0.5, 2, rows, cols)
	defer b.Free(d)
	got := poison(rows * cols)
	b.Read(d, got)
	want := make([]float32, len(got))
	model.FillNormal(want, key, 0.5, 2)
	var worst float64
	var sum, sq float64
	for i := range got {
		if math.IsNaN(float64(got[i])) {
			t.Fatalf("element %d not written", i)
		}
		worst = max(worst, math.Abs(float64(got[i]-want[i])))
		z := (float64(got[i]) - 0.5) / 2
		sum += z
		sq += z * z
	}
	if worst > 1e-5 {
		t.Errorf("largest difference from the host generator %g", worst)
	}
	mean, vr := sum/float64(len(got)), sq/float64(len(got))
	if math.Abs(mean) > 5e-3 || math.Abs(vr-1) > 5e-3 {
		t.Errorf("z has mean %.4f and second moment %.4f, want 0 and 1", mean, vr)
	}
	free, total, err := b.MemInfo()
	if err != nil || free <= 0 || free > total {
		t.Errorf("MemInfo = %d, %d, %v", free, total, err)
	}
}
