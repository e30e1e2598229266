//go:build !(cgo && linux)

package cuda

import (
	"errors"
	"runtime"
)

// errNoBinding explains why nothing loads in this build.
var errNoBinding = errors.New("built without cgo on " + runtime.GOOS + ": CUDA libraries are loaded only by linux builds with cgo (CGO_ENABLED=1)")

func loadDriver(string) (driverAPI, error)     { return nil, errNoBinding }
func loadNVRTC(string) (nvrtcAPI, error)       { return nil, errNoBinding }
func loadCUBLAS(string) (cublasAPI, error)     { return nil, errNoBinding }
func loadCUBLASLt(string) (cublasLtAPI, error) { return nil, errNoBinding }
func preload(string) (func(), error)           { return nil, errNoBinding }
