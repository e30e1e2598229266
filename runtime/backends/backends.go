// Package backends opens the backend a backend.Spec chooses. It is the one
// place that knows every backend (runtime/cpu and gpu), so that sweeps,
// the runner and the command-line tool all construct backends alike.
package backends

import (
	"fmt"

	"kvcascade/gpu"
	"kvcascade/runtime/backend"
	"kvcascade/runtime/cpu"
)

// Open checks s and returns the backend it chooses: the CPU backend on all
// cores, or CUDA device s.Device with s's storage type and kernel
// switches. Its errors do not repeat the spec; callers say where it came
// from.
func Open(s backend.Spec) (backend.Backend, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	switch s.Name {
	case "cuda":
		g, err := gpu.NewWithOptions(s.Device, gpu.Options{DType: s.DType, NoFlash: s.NoFlash, NoCUBLAS: s.NoCUBLAS, HostPolicies: s.HostPolicies})
		if err != nil {
			return nil, err
		}
		return g, nil
	case "cpu":
		return cpu.New(0), nil
	}
	return nil, fmt.Errorf("backend %q: no constructor", s.Name) // Check keeps it out
}
