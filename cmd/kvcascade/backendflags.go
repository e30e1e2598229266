package main

import (
	"flag"
	"fmt"

	"kvcascade/runtime/backend"
	"kvcascade/runtime/backends"
)

// backendFlags are the flags that choose a backend and its options, as a
// sweep file's [backend] table does.
type backendFlags struct {
	name, dtype              *string
	device                   *int
	noFlash, noCUBLAS, hostP *bool
}

// addBackendFlags registers --backend, --device, --dtype, --no-flash,
// --no-cublas and --host-policies on fs.
func addBackendFlags(fs *flag.FlagSet) *backendFlags {
	return &backendFlags{
		name:     fs.String("backend", "cpu", "cpu or cuda"),
		device:   fs.Int("device", 0, "with --backend cuda: the GPU, 0 for the first visible one"),
		dtype:    fs.String("dtype", "", "storage type: f32 or bf16 (default: f32 on cpu, bf16 on cuda)"),
		noFlash:  fs.Bool("no-flash", false, "with --backend cuda: CUDA-core attention kernels only"),
		noCUBLAS: fs.Bool("no-cublas", false, "with --backend cuda: the embedded matrix-product kernel even where cuBLAS loads"),
		hostP:    fs.Bool("host-policies", false, "with --backend cuda: keep every policy's bookkeeping on the host"),
	}
}

// spec returns the backend.Spec the flags choose.
func (f *backendFlags) spec() (backend.Spec, error) {
	s := backend.DefaultSpec(*f.name)
	s.Device, s.NoFlash, s.NoCUBLAS, s.HostPolicies = *f.device, *f.noFlash, *f.noCUBLAS, *f.hostP
	if *f.dtype != "" {
		d, err := backend.ParseDType(*f.dtype)
		if err != nil {
			return s, fmt.Errorf("--dtype: %w", err)
		}
		s.DType = d
	}
	return s, nil
}

// open opens the backend the flags choose.
func (f *backendFlags) open() (backend.Backend, error) {
	s, err := f.spec()
	if err != nil {
		return nil, err
	}
	b, err := backends.Open(s)
	if err != nil {
		return nil, fmt.Errorf("--backend %q: %w", s.String(), err)
	}
	return b, nil
}
