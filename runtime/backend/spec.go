package backend

import (
	"fmt"
	"strings"
)

// Spec chooses a backend and its options: what a sweep file's backend
// table, or a command's --backend flag, says. runtime/backends opens it.
// Make one with DefaultSpec and change what differs; Check says whether
// the result makes sense.
type Spec struct {
	// Name is "cpu" or "cuda".
	Name string
	// Device is the CUDA device, 0 for the first visible one (cuda only).
	Device int
	// DType is the type the backend stores weights, activations and KV
	// caches in: F32 on the CPU; BF16 (the default) or F32 on CUDA, where
	// F16 is stored as BF16.
	DType DType
	// NoFlash runs attention through the CUDA-core kernels also where the
	// tensor-core (flash) kernels would take it (cuda only).
	NoFlash bool
	// NoCUBLAS uses the embedded matrix-product kernel even where cuBLAS
	// loads (cuda only).
	NoCUBLAS bool
	// HostPolicies keeps the cache's bookkeeping on the host even where
	// the device could run it (cuda only).
	HostPolicies bool
}

// SpecNames are the backends a Spec may name.
var SpecNames = []string{"cpu", "cuda"}

// DefaultSpec returns the default options of the named backend: device 0,
// F32 on the CPU and BF16 on CUDA, every kernel on. Names other than
// SpecNames' get the CPU's options; Check refuses them.
func DefaultSpec(name string) Spec {
	s := Spec{Name: name, DType: F32}
	if name == "cuda" {
		s.DType = BF16
	}
	return s
}

// IsDefault reports whether s is its backend's DefaultSpec.
func (s Spec) IsDefault() bool { return s == DefaultSpec(s.Name) }

// Check returns an error naming the first field of s that its backend
// does not take.
func (s Spec) Check() error {
	switch s.Name {
	case "cpu":
		switch {
		case s.DType != F32:
			return fmt.Errorf("dtype: the cpu backend stores %s only, got %s", F32, s.DType)
		case s.Device != 0:
			return fmt.Errorf("device: the cpu backend has no device %d (only cuda takes device)", s.Device)
		case s.NoFlash || s.NoCUBLAS || s.HostPolicies:
			return fmt.Errorf("the cpu backend takes none of no_flash, no_cublas, host_policies")
		}
	case "cuda":
		if s.Device < 0 {
			return fmt.Errorf("device: %d is negative", s.Device)
		}
		if s.DType != F32 && s.DType != BF16 && s.DType != F16 {
			return fmt.Errorf("dtype: %s is not a storage type", s.DType)
		}
	default:
		return fmt.Errorf("%q is not a backend (known: %s)", s.Name, strings.Join(SpecNames, ", "))
	}
	return nil
}

// Options returns the options of s that differ from its backend's default,
// by the names sweep files give them (device, dtype, no_flash, no_cublas,
// host_policies), with dtype in lower case; nil when s is the default.
func (s Spec) Options() map[string]any {
	d := DefaultSpec(s.Name)
	m := map[string]any{}
	if s.Device != d.Device {
		m["device"] = s.Device
	}
	if s.DType != d.DType {
		m["dtype"] = strings.ToLower(s.DType.String())
	}
	for _, o := range []struct {
		name   string
		on, at bool
	}{{"no_flash", s.NoFlash, d.NoFlash}, {"no_cublas", s.NoCUBLAS, d.NoCUBLAS}, {"host_policies", s.HostPolicies, d.HostPolicies}} {
		if o.on != o.at {
			m[o.name] = o.on
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// String returns the name, then the options that differ from the default
// in brackets: "cuda", "cuda[dtype=f32 no_flash=true]".
func (s Spec) String() string {
	o := s.Options()
	if o == nil {
		return s.Name
	}
	var parts []string
	for _, k := range []string{"device", "dtype", "no_flash", "no_cublas", "host_policies"} {
		if v, ok := o[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return s.Name + "[" + strings.Join(parts, " ") + "]"
}

// Has reports whether the backend s names has the optional attention
// feature f, so that a sweep can refuse, before it runs, a policy that
// needs one: the cpu backend has them all, cuda none.
func (s Spec) Has(f Feature) bool {
	switch f {
	case FlashReferenceMass, GroupMaxMass, QueryHeadViews:
		return s.Name == "cpu"
	}
	return false
}

// ParseDType reads a storage type as sweep files and flags write it: f32,
// bf16 or f16, in any case.
func ParseDType(s string) (DType, error) {
	for _, d := range []DType{F32, BF16, F16} {
		if strings.EqualFold(s, d.String()) {
			return d, nil
		}
	}
	return 0, fmt.Errorf("%q is not a dtype (known: f32, bf16, f16)", s)
}
