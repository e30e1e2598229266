package gpu

import (
	"errors"
	"fmt"
	"testing"

	"kvcascade/gpu/cuda"
)

// TestKernelsCompile compiles every kernel source with NVRTC for Ampere
// and Hopper at the head dimensions the models use. It needs NVRTC, not a
// GPU, so it also runs on machines with a toolkit and no device.
func TestKernelsCompile(t *testing.T) {
	nv, err := cuda.OpenNVRTC()
	if errors.Is(err, cuda.ErrNoNVRTC) {
		t.Skipf("no NVRTC: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer nv.Close()
	t.Logf("NVRTC %s at %s", nv.Version(), nv.Path)
	for _, cc := range [][2]int{{8, 0}, {9, 0}} {
		c := cuda.NewCompiler(nv, cc[0], cc[1], "")
		t.Run(fmt.Sprintf("sm_%d%d", cc[0], cc[1]), func(t *testing.T) {
			img, err := c.Compile("ops.cu", opsSource)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("ops.cu: %d bytes (PTX %v)", len(img.Code), img.PTX)
			for _, hd := range []int{16, 32, 64, 128, 256} {
				img, err := c.Compile("attention.cu", attentionSource, fmt.Sprintf("-DHEAD_DIM=%d", hd))
				if err != nil {
					t.Fatalf("HEAD_DIM=%d: %v", hd, err)
				}
				t.Logf("attention.cu HEAD_DIM=%d: %d bytes", hd, len(img.Code))
			}
			for _, hd := range flashHeadDims {
				// Arrays of size −1 fail to compile unless flash.go's
				// geometry and shared memory sizes match the #defines.
				src := flashSource + fmt.Sprintf("\ntypedef char flash_fwd_shared[FWD_SHARED == %d ? 1 : -1];\n"+
					"typedef char flash_mass_shared[MASS_SHARED == %d ? 1 : -1];\n"+
					"typedef char flash_geometry[TR == %d && BQ == %d && BKM == %d && THREADS == %d ? 1 : -1];\n",
					flashFwdShared(hd), flashMassShared(hd), flashTile(hd), flashRows, flashRows, flashThreads)
				img, err := c.Compile("flash.cu", src, fmt.Sprintf("-DHEAD_DIM=%d", hd))
				if err != nil {
					t.Fatalf("flash.cu HEAD_DIM=%d: %v", hd, err)
				}
				t.Logf("flash.cu HEAD_DIM=%d: %d bytes", hd, len(img.Code))
			}
		})
	}
}
