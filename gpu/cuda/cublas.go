package cuda

import (
	"fmt"
	"os"
	"unsafe"
)

// cublasAPI is cuBLAS as the package sees it; binding_cgo.go implements
// it. Calls that run on the device make ctx current through drv first.
type cublasAPI interface {
	create(drv driverAPI, ctx unsafe.Pointer) (unsafe.Pointer, int)
	destroy(drv driverAPI, ctx, h unsafe.Pointer) int
	version(h unsafe.Pointer) (int, int)
	setMathMode(h unsafe.Pointer, mode int) int
	sgemm(drv driverAPI, ctx, h unsafe.Pointer, transA, transB, m, n, k int, alpha float32,
		a DevicePtr, lda int, b DevicePtr, ldb int, beta float32, c DevicePtr, ldc int) int
	close()
}

// cuBLAS constants.
const (
	cublasOpN        = 0
	cublasOpT        = 1
	cublasMathStrict = 0 // CUBLAS_DEFAULT_MATH: float32 products stay float32 (no TF32)
)

// cublasStatusNames are the cublasStatus_t values.
var cublasStatusNames = map[int]string{
	1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED",
	7: "CUBLAS_STATUS_INVALID_VALUE", 8: "CUBLAS_STATUS_ARCH_MISMATCH",
	11: "CUBLAS_STATUS_MAPPING_ERROR", 13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED",
	16: "CUBLAS_STATUS_LICENSE_ERROR",
}

// BLAS is a cuBLAS handle on one device.
type BLAS struct {
	api     cublasAPI
	g       *Device
	h       unsafe.Pointer
	Path    string // the library loaded
	Version int    // cuBLAS version, e.g. 130100 for 13.1.0
}

// OpenCUBLAS loads libcublas (searched like NVRTC) and creates a handle on
// g in strict float32 mode (no TF32). Errors wrap ErrNoCUBLAS when the
// library is missing.
func OpenCUBLAS(g *Device) (*BLAS, error) {
	api, path, err := openFirst("libcublas", ErrNoCUBLAS, candidates(cublasNames, searchDirs(os.Getenv)), loadCUBLAS)
	if err != nil {
		return nil, err
	}
	b := &BLAS{api: api, g: g, Path: path}
	h, st := api.create(g.drv.api, g.ctx)
	if st != 0 {
		api.close()
		return nil, fmt.Errorf("%s: %w", path, b.check("cublasCreate", st))
	}
	b.h = h
	if b.Version, st = api.version(h); st != 0 {
		b.Close()
		return nil, b.check("cublasGetVersion", st)
	}
	if st := api.setMathMode(h, cublasMathStrict); st != 0 {
		b.Close()
		return nil, b.check("cublasSetMathMode", st)
	}
	return b, nil
}

func (b *BLAS) check(op string, st int) error {
	switch {
	case st == 0:
		return nil
	case st < 0: // the context could not be made current
		return b.g.check(op, -st)
	}
	return &Error{Op: op, Code: st, Name: cublasStatusNames[st]}
}

// Close destroys the handle and unloads the library.
func (b *BLAS) Close() error {
	if b.api == nil {
		return nil
	}
	var err error
	if b.h != nil {
		err = b.check("cublasDestroy", b.api.destroy(b.g.drv.api, b.g.ctx, b.h))
	}
	b.api.close()
	b.api, b.h = nil, nil
	return err
}

// MatMulNT sets c = a·bᵀ for row-major a [m, k], b [n, k] and c [m, n],
// queued on the default stream. cuBLAS is column-major, where these
// buffers are aᵀ, bᵀ and cᵀ; so it computes cᵀ = b·aᵀ.
func (b *BLAS) MatMulNT(c, a, bm DevicePtr, m, n, k int) error {
	st := b.api.sgemm(b.g.drv.api, b.g.ctx, b.h, cublasOpT, cublasOpN, n, m, k, 1, bm, k, a, k, 0, c, n)
	return b.check("cublasSgemm", st)
}
