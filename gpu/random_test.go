package gpu_test

import (
	"math"
	"testing"

	"kvcascade/gpu"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/model"
)

// TestRandomNormal checks the device's normal fill against the host's
// (model.FillNormal): in float32 the same numbers element by element, up
// to the last bits of the device's log and cos (1e-5); in bf16 the host's
// numbers rounded to bf16 (what FromFloat32 stores), where those last bits
// may move a value across a rounding boundary, one bf16 step (2⁻⁸ of it),
// which must stay rare. Both draw a standard normal's moments.
func TestRandomNormal(t *testing.T) {
	for _, opt := range []gpu.Options{f32, bf16} {
		t.Run(opt.DType.String(), func(t *testing.T) {
			b := openGPU(t, opt)
			const rows, cols = 1<<10 + 3, 1 << 10 // not a multiple of the grid's stride
			key := model.TensorKey(7, "model.layers.0.mlp.up_proj.weight")
			d := b.RandomNormal(key, 0.5, 2, rows, cols)
			defer b.Free(d)
			if d.DType() != b.DType() {
				t.Fatalf("drawn as %v on a %v backend", d.DType(), b.DType())
			}
			got := poison(rows * cols)
			b.Read(d, got)
			want := make([]float32, len(got))
			model.FillNormal(want, key, 0.5, 2)
			tol := 0.0
			if opt.DType == backend.BF16 {
				want, tol = roundBF16(want), bf16ULP
			}
			var worst float64
			var sum, sq float64
			differ := 0
			for i := range got {
				if math.IsNaN(float64(got[i])) {
					t.Fatalf("element %d not written", i)
				}
				d := math.Abs(float64(got[i] - want[i]))
				if d > 1e-5+tol*math.Abs(float64(want[i])) {
					t.Fatalf("element %d = %v, the host draws %v", i, got[i], want[i])
				}
				if d != 0 {
					differ++
				}
				worst = max(worst, d)
				z := (float64(got[i]) - 0.5) / 2
				sum += z
				sq += z * z
			}
			if differ > len(got)/1000 {
				t.Errorf("%d of %d elements differ from the host's", differ, len(got))
			}
			t.Logf("largest difference from the host generator %g, %d elements differ", worst, differ)
			mean, vr := sum/float64(len(got)), sq/float64(len(got))
			if math.Abs(mean) > 5e-3 || math.Abs(vr-1) > 5e-3+2*tol {
				t.Errorf("z has mean %.4f and second moment %.4f, want 0 and 1", mean, vr)
			}
			free, total, err := b.MemInfo()
			if err != nil || free <= 0 || free > total {
				t.Errorf("MemInfo = %d, %d, %v", free, total, err)
			}
		})
	}
}
