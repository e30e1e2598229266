package cuda

import (
	"errors"
	"fmt"
)

// Sentinel errors for what a machine may lack; the errors Open functions
// return wrap them with the details (paths tried, dlerror's text).
var (
	// ErrNoDriver means libcuda.so.1 could not be loaded or lacks an entry
	// point this package needs.
	ErrNoDriver = errors.New("libcuda.so.1 not found: no NVIDIA driver")
	// ErrNoDevice means the driver loaded but reports no usable GPU.
	ErrNoDevice = errors.New("no CUDA device")
	// ErrNoNVRTC means no NVRTC library (libnvrtc.so) could be loaded.
	ErrNoNVRTC = errors.New("NVRTC not found: install the CUDA toolkit (or set CUDA_HOME)")
	// ErrNoCUBLAS means no cuBLAS library (libcublas.so) could be loaded.
	ErrNoCUBLAS = errors.New("cuBLAS not found")
	// ErrNoCUBLASLt means no cuBLASLt library (libcublasLt.so) could be
	// loaded.
	ErrNoCUBLASLt = errors.New("cuBLASLt not found")
)

// Error is a failed driver, NVRTC, cuBLAS or cuBLASLt call.
type Error struct {
	Op   string // the call, e.g. "cuMemAlloc"
	Code int    // its status code
	Name string // the code's name, e.g. "CUDA_ERROR_OUT_OF_MEMORY", if known
	Text string // the library's description, if any
}

func (e *Error) Error() string {
	switch {
	case e.Name != "" && e.Text != "":
		return fmt.Sprintf("%s: %s (%s)", e.Op, e.Name, e.Text)
	case e.Name != "":
		return fmt.Sprintf("%s: %s", e.Op, e.Name)
	case e.Text != "":
		return fmt.Sprintf("%s: %s (code %d)", e.Op, e.Text, e.Code)
	}
	return fmt.Sprintf("%s: error %d", e.Op, e.Code)
}

// errNoDevice is CUDA_ERROR_NO_DEVICE, what cuInit says on a machine with
// a driver and no GPU.
const errNoDevice = 100
