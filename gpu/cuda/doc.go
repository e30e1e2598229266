// Package cuda reaches an NVIDIA GPU through the CUDA driver API and
// compiles kernels at run time with NVRTC, loading both libraries with
// dlopen when asked, so that programs build and run on machines without
// CUDA and find the GPU at run time where there is one.
//
// OpenDriver loads libcuda.so.1 (installed with the NVIDIA driver) and Open
// makes a Device of one GPU, on its primary context (the one the CUDA
// runtime and cuBLAS use too). OpenNVRTC finds libnvrtc in CUDA_HOME,
// CUDA_PATH, LD_LIBRARY_PATH, /usr/local/cuda or the system search path; a
// Compiler turns CUDA C source into a cubin for the device's architecture
// (PTX when this NVRTC cannot emit cubins) and keeps it in a disk cache
// keyed by the SHA-256 of the source, options, architecture and NVRTC
// version. OpenCUBLAS is the optional cuBLAS, for float32 matrix products;
// OpenCUBLASLt the optional cuBLASLt, for products of bfloat16 (or half)
// matrices with float32 accumulation, its heuristic's choice of algorithm
// cached per shape, types and pointer alignments.
//
// A missing library, symbol or device is an error wrapping ErrNoDriver,
// ErrNoDevice, ErrNoNVRTC, ErrNoCUBLAS or ErrNoCUBLASLt, never a crash. Without cgo (or
// outside Linux) every Open returns such an error. The package keeps no
// global mutable state: library handles live in the values Open returns.
//
// Every call makes the device's context current on the calling thread
// first, so a Device may be used from any goroutine; it is not safe for
// concurrent use. Work goes to the legacy default stream, in order.
package cuda
